"""Coverage simulation: every interval and "distinguishable" verdict the pair report prints.

Under a true null (A and B drawn from one distribution) a valid 95% interval excludes "no
difference" 5% of the time. The speed and volume ratios are checked at every n at which the
report prints them (3..10 samples a side per prompt; 2 must print none), per prompt and for the
total over six prompts, through the same vectorised code the report runs (ratio_tests). Seeded:
deterministic. SIMS = 2000 replicates: the binomial SE of a 5% rate is 0.49%, so 5% +/- 2% is a
> 4 sigma band for the totals, and per-prompt rates pool six prompts (SE 0.2%).

Measured (this file's seeds): 3.5-5.8% at every n and metric, per prompt and total; power for a
1.3x throughput change at n = 5: 96% per prompt, 99.95% total; a true effect equal to the printed
"detectable" (8.9%) is found 75% of the time.

Pass rates and accuracy are discrete: no non-randomised test reaches exactly 5% at a few dozen
pairs, so for them the bound is one-sided (never above 7%): measured 0.2-4.4% at 12-120 pairs;
power for a 20-point drop 64% at 60 pairs, 93% at 120.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.metrics.bootstrap import METRICS, paired_ratios, ratio_tests
from evalkit.metrics.intervals import (
    MIN_N,
    clustered_difference,
    log_ratio_test,
    mcnemar_exact_p,
    paired_difference_interval,
)

SIMS = 2000
PROMPT_TOKENS = np.array([40.0, 80.0, 150.0, 250.0, 400.0, 700.0])  # six prompts' median answer lengths
LENGTH_SIGMA = 0.5  # answer length: log-normal
JITTER_SIGMA = 0.08  # tokens/s: log-normal jitter


def side(rng: np.random.Generator, n: int, speed: float = 1.0) -> list[np.ndarray]:
    """One variant's samples: per prompt an (SIMS, n, 4) array in COLUMNS order."""
    out = []
    for median in PROMPT_TOKENS:
        tokens = median * np.exp(LENGTH_SIGMA * rng.standard_normal((SIMS, n))) + 2
        rate = speed * 25.0 * np.exp(JITTER_SIGMA * rng.standard_normal((SIMS, n)))
        gen_s = (tokens - 1) / rate
        total_s = gen_s + 0.05 * np.exp(JITTER_SIGMA * rng.standard_normal((SIMS, n)))  # prompt eval
        out.append(np.stack([4.2 * tokens, total_s, tokens - 1, gen_s], axis=-1))
    return out


def rejections(test) -> np.ndarray:
    return (test.lo > 1.0) | (test.hi < 1.0)


SPEED_N = (3, 4, 5, 7, 10)


@pytest.fixture(scope="module")
def null_rates() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    rates = {}
    for n in SPEED_N:
        rng = np.random.default_rng(1000 + n)
        per, (_, _, total) = ratio_tests(side(rng, n), side(rng, n))
        per_prompt = np.mean([rejections(t) for _, _, t in per], axis=(0, 1))  # per metric
        rates[n] = (per_prompt, rejections(total).mean(axis=0))
    return rates


@pytest.mark.parametrize("n", SPEED_N)
def test_speed_ratios_are_distinguishable_5_percent_of_the_time_under_the_null(null_rates, n):
    per_prompt, total = null_rates[n]
    for k, metric in enumerate(METRICS):
        assert 0.03 <= per_prompt[k] <= 0.07, (n, metric, "per prompt", per_prompt[k])
        assert 0.03 <= total[k] <= 0.07, (n, metric, "total", total[k])


def test_below_min_n_no_interval_is_printed():
    assert MIN_N == 3
    rng = np.random.default_rng(5)
    a = {f"p{i}": x[0] for i, x in enumerate(side(rng, 2))}
    b = {f"p{i}": x[0] for i, x in enumerate(side(rng, 2))}
    per, total = paired_ratios(a, b)
    for row in list(per.values()) + [total]:
        for r in row.values():
            assert r.ratio is not None and r.lo is None and r.covers_one is None and "no interval" in r.note


def test_power_at_1_3x_throughput_and_5_samples():
    rng = np.random.default_rng(77)
    per, (_, _, total) = ratio_tests(side(rng, 5, speed=1.3), side(rng, 5))
    k = METRICS.index("chars_per_s")
    power_prompt = np.mean([t.lo[:, k] > 1.0 for _, _, t in per])
    power_total = np.mean(total.lo[:, k] > 1.0)
    assert power_prompt >= 0.9 and power_total >= 0.99, (power_prompt, power_total)
    # volume is unchanged by a speed change: still ~5%
    assert np.mean(rejections(total)[:, METRICS.index("output_chars")]) <= 0.07


def test_detectable_effect_is_what_80_percent_power_finds():
    """A true ratio equal to the printed 'detectable' effect is found about 80% of the time."""
    rng = np.random.default_rng(11)
    _, (_, _, total) = ratio_tests(side(rng, 5), side(rng, 5))
    k = METRICS.index("chars_per_s")
    mde = float(np.median(total.mde[:, k]))
    _, (_, _, shifted) = ratio_tests(side(rng, 5, speed=1 + mde), side(rng, 5))
    power = np.mean(shifted.lo[:, k] > 1.0)
    assert 0.72 <= power <= 0.88, (mde, power)


def paired_binary(rng, n: int, rho: float, shift: float = 0.0):
    """Six prompts' pass/fail outcomes, A and B paired by seed (B copies A with prob rho)."""
    p = np.array([0.2, 0.4, 0.5, 0.6, 0.8, 0.9])
    a = rng.random((SIMS, 6, n)) < np.clip(p + shift, 0, 1)[:, None]
    b_own = rng.random((SIMS, 6, n)) < p[:, None]
    b = np.where(rng.random((SIMS, 6, n)) < rho, a, b_own) if shift == 0 else b_own
    a, b = a.reshape(SIMS, -1), b.reshape(SIMS, -1)
    return (a & b).sum(1), (a & ~b).sum(1), (~a & b).sum(1), (~a & ~b).sum(1)


@pytest.mark.parametrize("n", (2, 3, 5, 10, 20))  # 12 to 120 pairs: the report prints from 10
@pytest.mark.parametrize("rho", (0.0, 0.5))
def test_pass_rate_verdicts_never_exceed_5_percent_by_more_than_noise(n, rho):
    rng = np.random.default_rng(n * 10 + int(rho * 10))
    n11, n10, n01, n00 = paired_binary(rng, n, rho)
    lo, hi = paired_difference_interval(n11, n10, n01, n00)
    interval_rate = np.mean((lo > 0) | (hi < 0))
    mcnemar_rate = np.mean([mcnemar_exact_p(int(x), int(y)) < 0.05 for x, y in zip(n10, n01)])
    assert interval_rate <= 0.07 and mcnemar_rate <= 0.07, (n, rho, interval_rate, mcnemar_rate)
    if n == 20 and rho == 0.0:  # not vacuous: close to nominal once pairs are many
        assert interval_rate >= 0.025, interval_rate


@pytest.mark.parametrize("n, least", ((10, 0.55), (20, 0.85)))
def test_pass_rate_power_for_a_20_point_drop(n, least):
    """Measured: 64% power at 10 samples a prompt (60 pairs), 93% at 20 (120 pairs)."""
    rng = np.random.default_rng(3)
    n11, n10, n01, n00 = paired_binary(rng, n, 0.0, shift=-0.2)
    lo, hi = paired_difference_interval(n11, n10, n01, n00)
    power = np.mean(hi < 0)
    assert power >= least, power


@pytest.mark.parametrize("chunks", (4, 8, 32))
def test_clustered_kld_difference_holds_its_level(chunks):
    """Per-token KLD differences with a shared chunk effect: the chunk-clustered t stays at 5%."""
    rng = np.random.default_rng(chunks)
    tokens = 64
    hits = 0
    sims = 1000
    chunk = np.repeat(np.arange(chunks), tokens)
    for _ in range(sims):
        effect = rng.standard_normal(chunks)[chunk] * 0.02  # chunk-level shift shared by A and B ...
        a = np.exp(rng.standard_normal(chunks * tokens)) * 0.05 + effect + np.repeat(rng.standard_normal(chunks) * 0.01, tokens)
        b = np.exp(rng.standard_normal(chunks * tokens)) * 0.05 + effect + np.repeat(rng.standard_normal(chunks) * 0.01, tokens)
        d = clustered_difference(a, b, chunk)  # ... and a per-side chunk effect the token SE would miss
        hits += not d.covers_zero
    rate = hits / sims
    assert 0.025 <= rate <= 0.08, (chunks, rate)  # 1000 sims: SE 0.7%


@pytest.mark.parametrize("n", (3, 5, 10))
def test_speculative_paired_t_holds_its_level(n):
    """evalkit.speculative: paired t on per-sample log tokens/s ratios."""
    rng = np.random.default_rng(n)
    logs = JITTER_SIGMA * math.sqrt(2) * rng.standard_normal((SIMS * 2, n))
    test = log_ratio_test(logs.mean(1), logs.std(1, ddof=1) / math.sqrt(n), n - 1)
    rate = np.mean(rejections(test))
    assert 0.035 <= rate <= 0.065, rate
