"""The small-sample interval functions against published values and hand computations."""

import math

import numpy as np
import pytest

from evalkit.metrics.intervals import (
    _wilson_cc,
    clustered_difference,
    mcnemar_exact_p,
    paired_difference_interval,
    paired_rate,
    t_quantile,
    t_two_sided_p,
)


def test_t_quantiles_match_the_printed_tables():
    # Student t 0.975 and 0.80 quantiles (any statistics table)
    table = {1: 12.706, 2: 4.303, 3: 3.182, 5: 2.571, 10: 2.228, 30: 2.042}
    got = t_quantile(0.975, list(table))
    assert got == pytest.approx(list(table.values()), abs=1e-3)
    assert t_quantile(0.80, [1, 5, 30]) == pytest.approx([1.376, 0.920, 0.854], abs=1e-3)
    assert float(t_quantile(0.975, 1e7)) == pytest.approx(1.95996, abs=1e-4)
    # fractional df (Welch-Satterthwaite) lies between its neighbours
    assert 4.303 < float(t_quantile(0.975, 1.7)) < 12.706
    assert float(t_two_sided_p(2.228, 10)) == pytest.approx(0.05, abs=1e-4)
    # df = 1 is Cauchy: P(|T| > t) = 1 - 2 atan(t) / pi
    assert float(t_two_sided_p(3.0, 1)) == pytest.approx(1 - 2 * math.atan(3.0) / math.pi, abs=1e-12)


def test_mcnemar_exact_p_known_values():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)  # 0.0625: five to none is not enough
    assert mcnemar_exact_p(6, 0) == pytest.approx(2 / 64)  # 0.03125
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)  # 0.021484375
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(10, 2) == mcnemar_exact_p(2, 10) == pytest.approx(2 * 79 / 4096)  # 0.03857
    # large counts: the normal approximation with continuity correction agrees to ~1e-3
    b, c = 120, 80
    z = (abs(b - c) - 1) / math.sqrt(b + c)
    assert mcnemar_exact_p(b, c) == pytest.approx(math.erfc(z / math.sqrt(2)), abs=2e-3)


def test_wilson_continuity_corrected_matches_newcombe_1998():
    # Newcombe (1998) Table I, method 4: 81/263 -> 0.2535-0.3682; 15/148 -> 0.0598-0.1644; 0/20 -> 0-0.2005
    for x, n, lo, hi in ((81, 263, 0.2535, 0.3682), (15, 148, 0.0598, 0.1644), (0, 20, 0.0, 0.2005)):
        l, u = _wilson_cc(np.array(float(x)), np.array(float(n)))
        assert float(l) == pytest.approx(lo, abs=6e-4) and float(u) == pytest.approx(hi, abs=6e-4)


def test_paired_difference_interval_properties():
    lo, hi = paired_difference_interval(20, 8, 2, 10)  # A passes 28/40, B 22/40
    assert float(lo) < 0.15 < float(hi) and -1 <= float(lo) and float(hi) <= 1
    lo2, hi2 = paired_difference_interval(20, 2, 8, 10)  # the same with the sides swapped
    assert float(lo2) == pytest.approx(-float(hi)) and float(hi2) == pytest.approx(-float(lo))
    lo3, hi3 = paired_difference_interval(15, 0, 0, 15)  # no discordant pair: narrow, around 0
    assert float(lo3) < 0 < float(hi3) and float(hi3) - float(lo3) < 0.2
    # more pairs with the same proportions: narrower
    lo4, hi4 = paired_difference_interval(80, 32, 8, 40)
    assert float(hi4) - float(lo4) < float(hi) - float(lo)


def test_paired_rate_counts_and_withholds_below_ten_pairs():
    pairs = [(True, True)] * 20 + [(True, False)] * 8 + [(False, True)] * 2 + [(False, False)] * 10
    r = paired_rate(pairs)
    assert (r.n, r.a_only, r.b_only) == (40, 8, 2)
    assert r.a_rate == pytest.approx(0.7) and r.b_rate == pytest.approx(0.55) and r.diff == pytest.approx(0.15)
    assert r.mcnemar_p == pytest.approx(mcnemar_exact_p(8, 2)) and r.mde > 0
    small = paired_rate(pairs[:5] + pairs[-4:])
    assert small.lo is None and small.note == "n=9<10 pairs: no interval" and small.mcnemar_p is not None


def test_clustered_difference_by_hand():
    chunk = np.repeat([0, 1, 2, 3], 3)
    a = np.array([0.1, 0.2, 0.3, 0.0, 0.1, 0.2, 0.4, 0.4, 0.4, 0.1, 0.1, 0.1])
    b = np.array([0.0, 0.1, 0.2, 0.1, 0.1, 0.1, 0.2, 0.3, 0.1, 0.0, 0.1, 0.2])
    d = clustered_difference(a, b, chunk)
    diff = a - b
    sums = [np.sum(diff[chunk == g] - diff.mean()) for g in range(4)]
    se = math.sqrt(4 / 3 * sum(s * s for s in sums)) / diff.size
    q = 3.182446305  # t(0.975, 3)
    assert d.diff == pytest.approx(diff.mean()) and d.se == pytest.approx(se)
    assert (d.lo, d.hi) == pytest.approx((diff.mean() - q * se, diff.mean() + q * se), abs=1e-8)
    assert (d.n_tokens, d.n_chunks) == (12, 4)
    assert clustered_difference(a[:6], b[:6], chunk[:6]).note == "2<3 chunks: no interval"
