"""GenRe answering with its distilled one-pass student sampler, as a registered method."""

from __future__ import annotations

from genre.core.estimator import GenRe


class GenReStudent(GenRe):
    """GenRe(sampler="student"): fit trains the transformer, then distils the student
    (genre.core.student) and answers with it. The benchmark's "genre-student" row distils it
    from the "genre" row's cached model instead (genre.bench.student).

    Parameters
    ----------
    **params
        GenRe's hyper-parameters (sampler defaults to "student").
    """

    name = "genre-student"

    def __init__(self, **params):
        super().__init__(**({"sampler": "student"} | params))

    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        return GenRe._param_names()  # GenRe's signature: this __init__ only forwards it
