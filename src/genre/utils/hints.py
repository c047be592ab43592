"""Hints for column errors: the near match of a renamed column, an identifier to declare."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_ID_NAME = re.compile(r"(^|[_\s.-])(id|ids|key|ref|uuid|guid|identifier)$|^id([_\s.-]|$)",
                      re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](ID|Id|Key|Ref)$")  # CustomerID, loanId


def near_match(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` (same name ignoring case and
    spaces first, then difflib), or ''.

    Parameters
    ----------
    name : str
    choices : iterable of str

    Returns
    -------
    str
    """
    choices = [str(c) for c in choices]
    plain = {re.sub(r"[\s_-]", "", c).lower(): c for c in choices}
    same = plain.get(re.sub(r"[\s_-]", "", str(name)).lower())
    close = [same] if same is not None else difflib.get_close_matches(
        str(name), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def renamed_hint(missing: list[str], extra: list[str]) -> str:
    """'; 'income' may be the column 'Income' (rename it)' for missing names that nearly
    match a column the schema does not know, or ''."""
    found = []
    for name in missing:
        hint = near_match(name, extra)
        if hint:
            found.append(f"'{name}' may be the column '{hint.split(chr(39))[1]}'")
    return ("; " + ", ".join(found) + " (rename it, or the schema's feature)") if found else ""


def looks_like_id(name: str, values=None) -> bool:
    """Whether a column is probably an identifier: its name (applicant_id, ID, key, ref ...)
    or, given its values, text or integers that are all different."""
    if _ID_NAME.search(str(name).strip()) or _CAMEL_ID.search(str(name).strip()):
        return True
    if values is None or len(values) < 2:
        return False
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    return kind in "OUSiu" and values.nunique() == len(values) and (
        kind != "O" or values.map(lambda v: isinstance(v, str)).all())


def id_hint(extra: list[str], df=None) -> str:
    """'; if 'applicant_id' identifies people, ...' for the extra columns that look like an
    identifier (see looks_like_id), or ''."""
    ids = [c for c in extra if looks_like_id(c, None if df is None or len(df) == 0 else df[c])]
    if not ids:
        return ""
    name = ids[0]
    return (f"; if '{name}' identifies people, declare it: --id {name} on the command line, "
            f"`id: {name}` in the schema, id_column='{name}' in Python (it is then carried "
            "through to every output, never used as a feature)")


__all__ = ["id_hint", "looks_like_id", "near_match", "renamed_hint"]
