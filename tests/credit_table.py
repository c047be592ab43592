"""A small synthetic credit table (age, income, job -> approved) shared by the user-data tests."""

import numpy as np
import pandas as pd


def user_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """n rows; approval rises with income and a full-time job, with noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.integers(18, 70, n),
                       "income": np.round(rng.uniform(10, 100, n), 1),
                       "job": rng.choice(["none", "part-time", "full-time"], n)})
    df["approved"] = (df.income / 100 + 0.4 * (df.job == "full-time")
                      + rng.normal(0, 0.1, n) > 0.8).astype(int)
    return df
