"""genre: generative algorithmic recourse (GenRe, ICLR 2025)."""

from genre.errors import GenreError, InputError, ModelError, SchemaError

__version__ = "0.1.0"
__all__ = ["GenreError", "InputError", "ModelError", "SchemaError", "__version__"]
