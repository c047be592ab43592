"""`python -m genre`: the `genre` command."""

from genre.cli import main

main()
