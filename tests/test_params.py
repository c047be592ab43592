"""GenRe's parameters: one table (genre.core.params.PARAM_CHECKS) for the signature's names,
checked alike by set_params and fit; a model saved after any accepted set_params loads; an
unfitted model raises NotFittedError."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genre import GenRe, ModelError
from genre.core.params import PARAM_CHECKS, NotFittedError, check_is_fitted, param_names

FIXTURE = Path(__file__).parent / "fixtures" / "house" / "model"


def test_the_table_lists_exactly_the_signature():
    assert set(PARAM_CHECKS) == set(param_names(GenRe))
    assert tuple(GenRe().get_params()) == param_names(GenRe)


def test_set_params_refuses_a_value_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"select.*one of \['h', 'effort'\].*'Effort'"):
        GenRe().set_params(select="Effort")
    with pytest.raises(ValueError, match=r"unknown GenRe parameters \['selekt'\]"):
        GenRe().set_params(selekt="h")
    model = GenRe()
    with pytest.raises(ValueError, match="gamma"):
        model.set_params(best_k=5, gamma=1.5)
    assert model.gamma == 0.7  # nothing set: the value is checked before


def test_fit_checks_with_the_same_table(make_mixed_task):
    with pytest.raises(ValueError, match=r"select.*one of \['h', 'effort'\]"):
        GenRe(select="Effort", max_epochs=1, sampler="autoregressive").fit(make_mixed_task())


def test_unfitted_model_raises_not_fitted_error():
    model = GenRe()
    for call in (lambda: model.generate(np.zeros((1, 3))), lambda: model.save("nowhere"),
                 model.plausibility):
        with pytest.raises(NotFittedError) as info:
            call()
        assert isinstance(info.value, ModelError)
        assert isinstance(info.value, sklearn.exceptions.NotFittedError)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(model)
    check_is_fitted(GenRe.load(FIXTURE))  # fitted: no error


VALUES = st.one_of(
    st.integers(-3, 70), st.floats(allow_nan=True), st.booleans(),
    st.sampled_from(["h", "effort", "Effort", "data", "edge", "cpu", "cuda", "cuda:1", "auto",
                     "gpu", "", None, math.inf]))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(PARAM_CHECKS)), value=VALUES)
def test_a_model_saved_after_any_accepted_set_params_loads(tmp_path_factory, name, value):
    model = GenRe.load(FIXTURE)
    try:
        model.set_params(**{name: value})
    except ValueError:
        assert PARAM_CHECKS[name](value) is not None  # refused by the table, and only then
        return
    out = tmp_path_factory.mktemp("saved")
    model.save(out)
    back = GenRe.load(out)
    assert back.encoder_.schema_ == model.encoder_.schema_
    shutil.rmtree(out)
