"""`genre schema infer|check`: write and check schema files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from genre.cli.common import console, fail, parse_label
from genre.data.encoder import Encoder, target_labels
from genre.data.schema import Schema
from genre.data.schema_file import save_schema
from genre.errors import GenreError
from genre.io import check_outputs
from genre.utils.readers import read_table

schema_app = typer.Typer(help="Write and check schema files.", no_args_is_help=True)


@schema_app.command("infer")
def schema_infer(
    data: Annotated[Path, typer.Argument(help="your table (CSV or Parquet)")],
    target: Annotated[str, typer.Option(help="the label column")],
    out: Annotated[Path, typer.Option(help="YAML file to write")],
    favourable: Annotated[str | None, typer.Option(help="the favourable label")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
    id_column: Annotated[str | None, typer.Option(
        "--id", help="an identifier column: not a feature, written as the schema's `id:`")]
    = None,
) -> None:
    """Write a starting schema for --data; edit it (immutable, monotone, bounds) before fit."""

    try:
        check_outputs([out], inputs=[data], overwrite=overwrite)
        table = read_table(data)
        try:
            inferred = Schema.infer(table, target, parse_label(favourable),
                                    id_column=id_column)
        except GenreError as exc:  # about the table: name it
            raise type(exc)(f"{data}: {exc}") from None
        save_schema(inferred, out)
    except GenreError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"{exc.filename or out}: {exc.strerror or exc}")
    for note in inferred.extra.get("notes", []):
        console.print(f"note: {escape(note)}")
    console.print(f"wrote {out}: {inferred.n_features} features; review it, then "
                  f"`genre fit --data {data} --schema {out} --out MODEL_DIR`")


@schema_app.command("check")
def schema_check(
    schema: Annotated[Path, typer.Argument(help="the YAML schema")],
    data: Annotated[Path | None, typer.Option(help="also check this table against it")] = None,
) -> None:
    """Validate a schema file (and optionally a table against it: every cell, and, when the
    table holds the target column, that both the favourable value and another occur)."""

    try:
        loaded = Schema.from_yaml(schema)
        if data is not None:
            table = read_table(data)
            if loaded.target in table.columns:
                target_labels(table, loaded, source=str(data))
            enc = Encoder(loaded).fit(table, source=str(data))
            enc.transform(table, source=str(data))
    except GenreError as exc:
        fail(exc)
    console.print(f"{schema}: OK ({loaded.n_features} features, target '{loaded.target}')")
