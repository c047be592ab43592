"""`genre recourse`: answer everyone in a table, in original units."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from genre.cli.common import Device, console, fail
from genre.errors import GenreError
from genre.io import check_outputs
from genre.tables.constraints import Constraints
from genre.tables.decision import check_min_probability
from genre.tables.explain import format_value
from genre.tables.streaming import stream_recourse
from genre.utils.limits import CHUNK_MAX, WORKERS_MAX, check_int, check_request


def recourse(
    model: Annotated[Path, typer.Option(help="a fitted GenRe model directory")],
    input: Annotated[Path, typer.Option(
        "--input", help="the people, original units: a CSV or Parquet (.parquet) file")],
    output: Annotated[Path, typer.Option(
        help="where to write the recourse profiles: .csv writes CSV, .parquet Parquet")],
    options: Annotated[int, typer.Option(help="up to K distinct recourses per person")] = 1,
    changes_path: Annotated[Path | None, typer.Option(
        "--changes", help="also write the changes only, long format: person, option, "
        "feature, from, to (.csv or .parquet)")] = None,
    best_k: Annotated[int | None, typer.Option(help="samples per person (default: model's)")]
    = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    show: Annotated[int, typer.Option(help="people whose changes are printed")] = 10,
    chunk_size: Annotated[int, typer.Option(help="rows read and answered at a time "
                                            "(memory stays flat as the file grows)")] = 50_000,
    overwrite: Annotated[bool, typer.Option(
        help="replace --output/--changes files that already exist")] = False,
    id_column: Annotated[str | None, typer.Option(
        "--id", help="an identifier column of --input, carried through to every output "
        "(default: the schema's `id:`, if any)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="answer on a Ray cluster (the [ray] extra); "
                                      "the output is identical to the single-process one")]
    = False,
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster to join (default: start a local one)")] = None,
    ray_workers: Annotated[int | None, typer.Option(
        help="Ray actors, each loading the model once (default: one per CPU)")] = None,
    device: Device = "cpu",
    min_probability: Annotated[float | None, typer.Option(
        metavar="P", help="a recourse needs at least this probability from h, besides h "
        "accepting it (a margin, like DiCE's stopping threshold)")] = None,
    freeze: Annotated[list[str] | None, typer.Option(
        "--freeze", metavar="FEATURE",
        help="a feature no recourse may change, for every row (repeatable)")]
    = None,
    ranges: Annotated[list[str] | None, typer.Option(
        "--range", metavar="FEATURE=LO:HI", help="a changed numeric feature must lie in [LO, HI] "
        "(either end may be empty, e.g. age=:40), for every row (repeatable)")] = None,
    validate_first: Annotated[bool, typer.Option(
        "--validate-first", help="check every row of --input against the schema before "
        "answering any, so a bad row anywhere fails in seconds (one extra read of the file)")]
    = False,
    raw_csv: Annotated[bool, typer.Option(
        "--raw-csv", help="write text cells to CSV outputs as they are; by default a cell "
        "starting with =, +, -, @, a tab or a carriage return (a spreadsheet formula) gets a "
        "leading '")] = False,
    sampler: Annotated[str | None, typer.Option(
        help="autoregressive (GenRe's transformer) or student (the one-pass sampler "
        "distilled at fit time); default: the model's own")] = None,
) -> None:
    """Recourse for each person in --input (CSV or Parquet), in original units.

    `person` is the 0-based row index of --input (the first data row is person 0). Values
    a profile leaves unchanged are written as given; changed numbers with the precision the
    model resolves, integers as integers.

    With --options 1 (default) each person gets the sample h scores highest (GenRe's rule;
    with a model fitted with select="effort", the cheapest sample h accepts); with
    --options K, up to K distinct accepted profiles ranked by the schema's effort (the
    `effort` column), distinct sets of changed features first. A profile is a recourse
    only if h accepts it (and gives it at least --min-probability); otherwise more samples
    are drawn, then the status is 'none found'. --freeze and --range constrain every
    option by construction. Every row carries h's probability, the L1 cost in
    normalised units and a plausibility flag (distance to the training data's favourable
    rows, its threshold calibrated to flag about 5% of held-out ones). People h already
    accepts come back unchanged with status 'already accepted'. The mean number of
    features changed is printed at the end.

    --output and --changes must be new files (or, with --overwrite, existing regular files);
    an output that is an input, a link, a directory or a device is refused before any work.

    CSV outputs are safe to open in a spreadsheet: a text cell (an id, a category) starting
    with =, +, -, @, a tab or a carriage return is written with a leading ' (--raw-csv
    writes it as it is); Parquet outputs hold the values as they are.
    """
    from genre.core.estimator import GenRe
    from genre.core.student import check_sampler
    from genre.utils.device import resolve_device

    try:
        check_min_probability(min_probability, "--min-probability")
        constraints = Constraints.from_cli(freeze, ranges)
        seed, best_k, options = check_request(
            seed=seed, best_k=best_k, options=options,
            names={"seed": "--seed", "best_k": "--best-k", "options": "--options"})
        check_int(chunk_size, "--chunk-size", 1, CHUNK_MAX)
        check_int(show, "--show", 0, CHUNK_MAX)
        if ray_workers is not None:
            check_int(ray_workers, "--ray-workers", 1, WORKERS_MAX)
        if sampler is not None:
            check_sampler(sampler)
        if ray and (device != "cpu" or sampler is not None):
            raise GenreError("--device and --sampler are not available with --ray (the Ray "
                             "actors sample on their CPUs with the model's own sampler)")
        resolve_device(device)  # an unusable device fails before anything is read
        check_outputs((output, changes_path), inputs=(input, model), overwrite=overwrite)
    except GenreError as exc:
        fail(exc)
    if ray:
        _recourse_on_ray(model, input, output, options, best_k, seed, changes_path, ray_address,
                         ray_workers, overwrite, id_column, not raw_csv, min_probability,
                         constraints)
        return
    try:
        genre_model = GenRe.load(model).set_params(device=device)
        if sampler is not None:
            genre_model.set_params(sampler=sampler)
        summary = stream_recourse(genre_model, input, output, options=options, best_k=best_k,
                                  seed=seed, changes_path=changes_path, progress=True,
                                  show=show, chunk_size=chunk_size, overwrite=overwrite,
                                  id_column=id_column, min_probability=min_probability,
                                  constraints=constraints, validate_first=validate_first,
                                  csv_safe=not raw_csv)
    except GenreError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"{exc.filename or output}: {exc.strerror or exc}")
    _print_changes(summary["preview"], show)
    console.print(f"wrote {output}: {summary['people']} people; {summary['recourse']} with "
                  f"recourse, {summary['none found']} without, {summary['already accepted']} "
                  "already accepted (returned unchanged)"
                  + (f"; changes in {changes_path}" if changes_path else ""))
    if summary["profiles"]:
        mean = summary["changes"] / summary["profiles"]
        console.print(f"features changed per recourse: {mean:.2f} on average")


def _recourse_on_ray(model, input, output, options, best_k, seed, changes_path, address,
                     workers, overwrite, id_column, csv_safe, min_probability,
                     constraints) -> None:
    if changes_path is not None:
        fail(GenreError("--changes is not available with --ray (the profiles hold every "
                        "feature's recourse value, row for row with the input)"))
    try:
        import ray as _  # noqa: F401
    except ImportError as exc:
        fail(f"--ray needs the [ray] extra: pip install 'genre-recourse[ray]' ({exc})")
    from genre.service.ray import recourse_file

    if id_column is not None:
        fail(GenreError("--id is not available with --ray (give the id in the schema's `id:`)"))
    try:
        summary = recourse_file(model, input, output, options=options, best_k=best_k,
                                seed=seed, address=address, workers=workers,
                                overwrite=overwrite, csv_safe=csv_safe,
                                min_probability=min_probability, constraints=constraints)
    except GenreError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"{exc.filename or output}: {exc.strerror or exc}")
    console.print(f"wrote {output} (on Ray): {summary['people']} people; {summary['recourse']} "
                  f"with recourse, {summary['none found']} without, "
                  f"{summary['already accepted']} already accepted (returned unchanged)")


def _print_changes(diff, show: int) -> None:
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
