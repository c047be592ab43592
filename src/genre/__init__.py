"""genre: generative algorithmic recourse (GenRe, ICLR 2025).

The Python API works in original units (your DataFrame's columns and labels)::

    import genre

    schema = genre.Schema.infer(df, target="approved")     # or genre.Schema.from_yaml(path)
    model = genre.fit(df, schema, max_epochs=50)          # classifier=None: train h on df
    result = model.recourse(people, options=1)            # the CLI's recourse.csv columns
    diff = genre.changes(people, result)                  # person, option, feature, from, to
    model.save("model_dir"); model = genre.load("model_dir")

`import genre` is light: torch, scikit-learn and the rest load on first use.
"""

from genre.errors import GenreError, InputError, ModelError, SchemaError

__version__ = "0.1.0"

# Public name -> the module defining it, imported on first access (PEP 562).
_LAZY = {
    "Schema": "genre.data.schema",
    "Feature": "genre.data.schema",
    "GenRe": "genre.core.estimator",
    "fit": "genre.api",
    "load": "genre.api",
    "changes": "genre.api",
}

__all__ = ["GenRe", "GenreError", "Feature", "InputError", "ModelError", "Schema",
           "SchemaError", "__version__", "changes", "fit", "load"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genre' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
