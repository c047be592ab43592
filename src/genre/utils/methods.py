"""The names of the recourse methods, in the paper's order: the one list. The lab registers a
class under each (genre.baselines.METHODS, keyed by each class's `name`); the CLI offers
them without importing the lab (tests/test_cli_conventions.py keeps the two equal)."""

METHOD_NAMES = ("genre", "nnr", "wachter", "gs", "dice", "roar", "probe", "cchvae", "revise",
                "cruds", "diffusion", "genre-student")
