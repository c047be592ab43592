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
