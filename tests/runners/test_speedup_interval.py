"""The speculative speedup's 95% interval covers the true geometric mean ~95% of the time.

Simulated at the pair counts evalkit prints it for: 3 (the smallest; below MIN_N pairs none is
printed), 4 (the test sweep), 14 (a
constraints run), 28 and 56; per-sample log speed ratios drawn normal and, harder, skewed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.metrics.intervals import MIN_N, t_quantile_scalar
from evalkit.speculative import geomean_interval

REPS = 4000


@pytest.mark.slow  # 40,000 simulated runs: 15-40 s each on 2 cores, no model
@pytest.mark.parametrize("n", [3, 4, 14, 28, 56])
@pytest.mark.parametrize("shape", ["normal", "skewed"])
def test_interval_coverage(n, shape):
    rng = np.random.default_rng(n)
    hits = 0
    for _ in range(REPS):
        if shape == "normal":
            logs, true = rng.normal(0.3, 0.25, size=n), 0.3
        else:  # log of a gamma-distributed speed ratio: mean of the logs known in closed form
            logs, true = np.log(rng.gamma(4.0, 0.4, size=n)), _digamma(4.0) + math.log(0.4)
        lo, hi = geomean_interval(logs)  # type: ignore[misc]
        hits += math.log(lo) <= true <= math.log(hi)
    coverage = hits / REPS
    assert 0.93 <= coverage <= 0.97 if shape == "normal" else 0.91 <= coverage <= 0.98, coverage


def _digamma(x: float) -> float:
    # x = 4: psi(4) = 1 + 1/2 + 1/3 - Euler-Mascheroni
    assert x == 4.0
    return 1 + 1 / 2 + 1 / 3 - 0.5772156649015329


def test_t_quantiles_match_tables():
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 13: 2.160, 27: 2.052, 55: 2.004}
    for df, want in table.items():
        assert t_quantile_scalar(0.975, df) == pytest.approx(want, abs=2e-3), df


def test_no_interval_below_min_pairs():
    assert geomean_interval(np.array([0.1] * (MIN_N - 1))) is None
