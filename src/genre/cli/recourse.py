"""`genre recourse`: answer everyone in a table, in original units."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from genre.cli.common import Device, console, fail
from genre.errors import GenreError


def recourse(
    model: Annotated[Path, typer.Option(help="a fitted GenRe model directory")],
    input: Annotated[Path, typer.Option("--input", help="CSV of people, original units")],
    output: Annotated[Path, typer.Option(help="CSV to write the recourse profiles to")],
    options: Annotated[int, typer.Option(help="up to K distinct recourses per person")] = 1,
    changes_path: Annotated[Path | None, typer.Option(
        "--changes", help="also write the changes only, long format: person, option, "
        "feature, from, to")] = None,
    best_k: Annotated[int | None, typer.Option(help="samples per person (default: model's)")]
    = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    show: Annotated[int, typer.Option(help="people whose changes are printed")] = 10,
    chunk_size: Annotated[int, typer.Option(help="rows read and answered at a time "
                                            "(memory stays flat as the file grows)")] = 50_000,
    device: Device = "cpu",
) -> None:
    """Recourse for each person in --input, in original units.

    With --options 1 (default) each person gets the sample h scores highest (GenRe's rule);
    with --options K, up to K distinct accepted profiles ranked by cost. Every row carries
    h's probability, the L1 cost in normalised units and a plausibility flag (LOF inlier
    among the training data's favourable rows). People h already accepts come back
    unchanged with status 'already accepted'.
    """
    from genre.device import resolve_device
    from genre.estimator import GenRe
    from genre.streaming import stream_recourse

    if options < 1:
        fail(GenreError("--options must be at least 1"))
    try:
        resolve_device(device)  # an unusable device fails before anything is read
        genre_model = GenRe.load(model).set_params(device=device)
        summary = stream_recourse(genre_model, input, output, options=options, best_k=best_k,
                                  seed=seed, changes_path=changes_path, progress=True,
                                  show=show, chunk_size=chunk_size)
    except GenreError as exc:
        fail(exc)
    _print_changes(summary["preview"], show)
    console.print(f"wrote {output}: {summary['people']} people; {summary['recourse']} with "
                  f"recourse, {summary['none found']} without, {summary['already accepted']} "
                  "already accepted (returned unchanged)"
                  + (f"; changes in {changes_path}" if changes_path else ""))


def _print_changes(diff, show: int) -> None:
    from genre.explain import format_value

    people = list(dict.fromkeys(diff["person"]))[:show]
    if not people:
        return
    table = Table(title=f"changes for the first {len(people)} people with recourse "
                        "(original units)")
    for col in ("person", "option", "feature", "from", "to"):
        table.add_column(col)
    for row in diff[diff["person"].isin(people)].to_dict("records"):
        table.add_row(str(row["person"]), str(row["option"]), row["feature"],
                      format_value(row["from"]), format_value(row["to"]))
    console.print(table)
