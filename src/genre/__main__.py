"""`python -m genre`: the `genre` command."""

from genre.cli import app

app(prog_name="genre")
