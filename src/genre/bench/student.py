"""The lab's "genre-student" row: GenRe answering with its one-pass student sampler
(genre.core.student), distilled from the very GenRe of the "genre" row.

The teacher is built and fitted exactly as the "genre" row's (genre.bench.methods.make and
fit_genre_cached: the same parameters, params["genre"] included, the same cached fit and the
same tune="auto" choice); the student is then distilled from it at its tuned sampling
settings and cached beside it. params["genre-student"] holds StudentConfig overrides (not
GenRe parameters). A cell's key is the teacher's parameters plus the student's config.
"""

from __future__ import annotations

import math

import numpy as np

from genre.bench.methods import GENRE_CACHE, fit_genre_cached, genre_cache_key, make
from genre.errors import ModelError

STUDENT = "genre-student"
# --quick: StudentConfig caps (the teacher is the quick "genre").
QUICK_STUDENT = {"rows": 2000, "samples_per_row": 8, "epochs": 3, "patience": 2}
# The student sampler on the speed run's ratio datasets: at least this many times GenRe's
# individuals/s at THROUGHPUT_AT, and its Score at most this far below GenRe's (same run).
TARGET_STUDENT_RATIO, TARGET_STUDENT_SCORE = 20.0, 0.03


def student_config(params: dict[str, dict] | None, seed: int, quick: bool = False):
    """The StudentConfig of a cell: the defaults, the seed, the quick caps, then
    params["genre-student"].

    Parameters
    ----------
    params : dict or None
        Per-row overrides of the run.
    seed : int
        The protocol seed.
    quick : bool
        Apply QUICK_STUDENT.

    Returns
    -------
    genre.core.student.StudentConfig
    """
    from genre.core.student import StudentConfig

    return StudentConfig(**({"seed": seed} | (QUICK_STUDENT if quick else {})
                            | (params or {}).get(STUDENT, {})))


def teacher_for(dataset: str, seed: int, quick: bool, params: dict[str, dict] | None = None):
    """The unfitted teacher: the "genre" row's method (its params["genre"] included)."""
    return make("genre", dataset, seed, quick, params)


def student_key(dataset: str, seed: int, quick: bool,
                params: dict[str, dict] | None = None) -> dict:
    """What a genre-student cell depends on besides the protocol: the teacher's parameters
    and the student's config and format version."""
    from genre.core.student import STUDENT_VERSION

    teacher = teacher_for(dataset, seed, quick, params)
    return {"teacher": teacher.get_params(),
            "student": student_config(params, seed, quick).to_dict(),
            "student_version": STUDENT_VERSION}


def student_cache_dir(teacher, protocol, monotone: bool, config):
    """Where the teacher + student are cached: beside the teacher's entry, keyed by the
    teacher's key, its sampling settings (the student learns its samples at them), the
    student's config and the student's code."""
    from genre.core.sampling import setting
    from genre.utils.cache import cache_dir, code_digest, key_digest

    sampling = {"temperature": setting(teacher, "temperature"), "sigma": teacher.sigma,
                "stay_in_bin": teacher.stay_in_bin, "bin_value": teacher.bin_value}
    tag = key_digest({"config": config.to_dict(), "sampling": sampling,
                      "code": code_digest("genre.core.student")})
    return (cache_dir() / GENRE_CACHE
            / f"{genre_cache_key(teacher, protocol, monotone)}-student-{tag[:12]}")


def fit_student_cached(teacher, protocol, monotone: bool = False, use_cache: bool = True,
                       config=None):
    """Distil the student from `teacher` (fitted by fit_genre_cached on the same protocol)
    on the protocol's training rows, or load teacher + student from the cache.

    Parameters
    ----------
    teacher : GenRe
        Fitted (or loaded) by fit_genre_cached.
    protocol : Protocol
        Its protocol.
    monotone : bool
        Whether the task enforced monotone facts.
    use_cache : bool
        Load/save the distilled model.
    config : StudentConfig, optional
        Default: StudentConfig(seed=teacher.seed).

    Returns
    -------
    tuple
        (model, cached, distill_seconds); model has `student_` and keeps the teacher's
        sampler setting (use model.sampling_with("student")).
    """
    from genre.core.estimator import GenRe
    from genre.core.student import StudentConfig
    from genre.utils.cache import cache_entry, report_rebuild

    config = config or StudentConfig(seed=teacher.seed)
    where = student_cache_dir(teacher, protocol, monotone, config)
    if use_cache and (where.exists() or where.is_symlink()):
        try:
            loaded = GenRe.load(where, classifier=protocol.h, require_manifest=True)
            if getattr(loaded, "student_", None) is None:
                raise ModelError(f"{where}: holds no student")
        except ModelError as exc:
            report_rebuild(where, exc)
        else:
            loaded.set_params(progress=teacher.progress, sampler=teacher.sampler)
            loaded.tuning_ = teacher.tuning_  # the teacher's choice for this h
            return loaded, True, float(loaded.student_.log.get("seconds", math.nan))
    teacher.distill(protocol.X_train, config)
    if use_cache:
        with cache_entry(where) as tmp:
            teacher.save(tmp)
    return teacher, False, float(teacher.student_.log["seconds"])


def fit_student_row(protocol, *, seed: int, quick: bool, monotone: bool,
                    params: dict[str, dict] | None = None, use_cache: bool = True):
    """The genre-student cell's method: the "genre" row's cached teacher, its student
    distilled (or loaded), sampler="student".

    Returns
    -------
    tuple
        (model, cached, train_seconds: the teacher's training plus the distillation).
    """
    teacher, cached, train_seconds = fit_genre_cached(
        teacher_for(protocol.name, seed, quick, params), protocol, monotone, use_cache)
    model, student_cached, seconds = fit_student_cached(
        teacher, protocol, monotone, use_cache, student_config(params, seed, quick))
    model.set_params(sampler="student")
    return model, cached and student_cached, train_seconds + seconds


def student_speed(genre, protocol, X: np.ndarray, methods: dict, *, seed: int, quick: bool,
                  use_cache: bool) -> dict:
    """The speed run's student figures: the student distilled from this very GenRe (cached
    beside it), its time per individual on X (added to `methods` as the STUDENT row), its
    Score on X and its throughput at THROUGHPUT_AT individuals.

    Returns
    -------
    dict
        student_fit_seconds, student_fit_cached, student_score, student_metrics,
        student_per_s_10k.
    """
    from genre.bench.evaluation import run_method
    from genre.bench.speed_measures import GENRE, THROUGHPUT_AT, timed

    model, cached, seconds = fit_student_cached(genre, protocol, use_cache=use_cache,
                                                config=student_config(None, seed, quick))
    with model.sampling_with("student"):
        model.generate(X[:1])  # warm-up
        t = timed(lambda: model.generate(X), min_runs=3)
        report, _, _ = run_method(model, protocol, len(X), fitted=True, X=X)
        batch = np.resize(X, (THROUGHPUT_AT, X.shape[1]))
        per_s = THROUGHPUT_AT / timed(lambda: model.generate(batch), min_seconds=1.0,
                                      min_runs=2)
    ms = 1000 * t / len(X)
    methods[STUDENT] = {"ms_per_individual": ms, "individuals": len(X),
                        "fit_seconds": seconds,
                        "genre_speedup": ms / methods[GENRE]["ms_per_individual"]}
    return {"student_fit_seconds": seconds, "student_fit_cached": cached,
            "student_score": report.score,
            "student_metrics": {"cost": report.cost, "val": report.val, "lof": report.lof},
            "student_per_s_10k": per_s}
