"""One path for a table: every entry point answers through genre.tables.streaming.answer_blocks
and the model's `answer`, which scores each candidate with h once; the only other scoring is
of more draws for people h rejected every sample of (issue 21: draw again) and, once, of the
profiles as written (so that status tells the truth)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre import GenRe
from genre.service.serve import recourse_records
from genre.tables.streaming import stream_recourse

FIXTURE = Path(__file__).parent / "fixtures" / "house"


class CountingClassifier:
    """h, counting the rows it scores."""

    def __init__(self, h):
        self.h, self.rows, self.calls, self.sizes = h, 0, 0, []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.rows += len(X)
        self.calls += 1
        self.sizes.append(len(X))
        return self.h.predict_proba(X)


@pytest.fixture
def people():
    return pd.read_csv(FIXTURE / "people.csv")


@pytest.mark.parametrize("options", [1, 3])
def test_h_scores_each_candidate_once(people, options):
    model = GenRe.load(FIXTURE / "model")
    accepted = model.classifier_.predict_proba(model.encoder_.transform(people)) > 0.5
    counter = model.classifier_ = CountingClassifier(model.classifier_)
    result = model.recourse(people, options=options, seed=0)
    samples = model.best_k if options == 1 else max(model.best_k, 10 * options)
    # the factuals once, then best_k candidates per rejected person, each scored once ...
    rejected = int((~accepted).sum())
    assert counter.sizes[:2] == [len(people), rejected * samples]
    # ... then more draws only for people h rejected every sample of, each as many again,
    # and the written profiles once
    *retries, written = counter.sizes[2:]
    assert all(n % samples == 0 and n <= rejected * samples for n in retries)
    assert (result["status"] == "recourse").sum() <= written <= rejected * options
    assert (result["status"] == "already accepted").sum() == accepted.sum()


def test_every_entry_point_gives_the_same_table(people, tmp_path):
    model = GenRe.load(FIXTURE / "model")
    direct = model.recourse(people, seed=3)
    served, _ = recourse_records(model, people, seed=3)
    stream_recourse(model, FIXTURE / "people.csv", tmp_path / "out.csv", seed=3,
                    progress=False, chunk_size=7)
    streamed = pd.read_csv(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(direct, served)
    assert direct.to_csv(index=False) == streamed.to_csv(index=False)
