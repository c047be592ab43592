"""Errors raised on bad user input. Messages name the file, column and row at fault."""


class GenreError(Exception):
    """Base class for every error this package raises on purpose."""


class InputError(GenreError, ValueError):
    """A table does not match its schema (missing column, NaN, unknown category, ...)."""


class SchemaError(GenreError, ValueError):
    """A schema (YAML or dict) is malformed or inconsistent."""


class ModelError(GenreError, ValueError):
    """A saved model directory is unreadable or was made for another schema."""


class GenreWarning(UserWarning):
    """Something worked but deserves attention (e.g. a model saved without a manifest)."""


class OutputError(GenreError, ValueError):
    """An output path would destroy or replace something it must not (see genre.io)."""


def value_repr(value) -> str:
    """repr() for messages, with numpy scalars and arrays as plain Python values: 30.5, not
    np.float64(30.5); [0, 1], not [np.int64(0), np.int64(1)]."""
    for attr in ("tolist", "item"):  # numpy arrays and scalars (and pandas' scalars)
        convert = getattr(value, attr, None)
        if callable(convert) and type(value).__module__.split(".")[0] in ("numpy", "pandas"):
            try:
                return repr(convert())
            except (TypeError, ValueError):
                break
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_repr(v) for v in value) + "]"
    return repr(value)
