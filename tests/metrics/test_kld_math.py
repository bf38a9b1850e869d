"""The KLD arithmetic on synthetic logits, against direct full-vocabulary formulas."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics.kld import candidate_rows, clustered_se, kld_stats, mean_se, reference_rows


def _exact_kld(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lp = x - np.logaddexp.reduce(x.astype(np.float64), axis=1, keepdims=True)
    lq = y - np.logaddexp.reduce(y.astype(np.float64), axis=1, keepdims=True)
    return (np.exp(lp) * (lp - lq)).sum(axis=1)


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(7)
    v, n = 4000, 256
    # Zipf-like logits (a long tail, like a language model's) and a perturbed "quantized" copy.
    base = -1.1 * np.log(np.arange(1, v + 1))[rng.permutation(v)]
    x = (base + rng.normal(0, 1.5, (n, v))).astype(np.float32)
    y = (x + rng.normal(0, 0.15, (n, v))).astype(np.float32)
    return x, y, rng.integers(0, v, n)


def test_compact_reference_is_unbiased_where_top_k_alone_is_not(logits):
    x, y, nxt = logits
    exact = _exact_kld(x, y)
    u = np.random.default_rng(1).random(len(nxt))
    top_only = candidate_rows(y, nxt, reference_rows(x, nxt, 32, 0)).kld
    compact = candidate_rows(y, nxt, reference_rows(x, nxt, 32, 32, u=u)).kld
    full = candidate_rows(y, nxt, reference_rows(x, nxt, 1, 0, full=True), exact=True).kld
    assert np.allclose(full, exact, rtol=1e-4, atol=1e-7)
    assert np.all(top_only <= exact + 1e-6)  # top-K + rest is a lower bound (log-sum inequality)
    assert top_only.mean() < 0.9 * exact.mean()
    assert compact.mean() == pytest.approx(exact.mean(), rel=0.01)
    assert np.all(compact >= 0)


def test_reference_rows_are_exact_where_they_should_be(logits):
    x, _, nxt = logits
    r = reference_rows(x, nxt, 16, 8)
    lp = x - np.logaddexp.reduce(x.astype(np.float64), axis=1, keepdims=True)
    assert np.array_equal(r.top_ids[:, 0], np.argmax(x, axis=1))
    assert np.allclose(r.lp_next, lp[np.arange(len(nxt)), nxt], atol=1e-5)
    assert np.all(np.diff(r.top_lp.astype(np.float32), axis=1) <= 0)
    rest = 1 - np.exp(np.take_along_axis(lp, r.top_ids.astype(np.intp), axis=1)).sum(axis=1)
    assert np.allclose(np.exp(r.log_rest), rest, rtol=1e-4)
    assert not any(np.isin(t, k).any() for t, k in zip(r.tail_ids, r.top_ids))  # tail samples only


def test_against_itself_is_zero(logits):
    x, _, nxt = logits
    out = candidate_rows(x, nxt, reference_rows(x, nxt, 64, 64, u=np.full(len(nxt), 0.3)))
    assert np.all(np.abs(out.kld) < 1e-6)
    assert np.array_equal(out.argmax, np.argmax(x, axis=1))


def test_statistics_follow_llama_perplexity():
    rng = np.random.default_rng(3)
    x = rng.gamma(0.5, 0.02, 1000)
    mean, se = mean_se(x)
    assert mean == pytest.approx(x.mean()) and se == pytest.approx(x.std() / np.sqrt(len(x) - 1))
    chunks = np.repeat(np.arange(10), 100)
    s = kld_stats(x + 1, x + 0.9, x, rng.random(1000) < 0.9, rng.normal(0, 0.01, 1000), chunks)
    assert s["kld_p99"] == pytest.approx(np.quantile(x, 0.99)) and s["kld_median"] == pytest.approx(np.median(x))
    assert s["ln_ppl_ratio_mean"] == pytest.approx(0.1) and s["ln_ppl_ratio_se"] == pytest.approx(0.0, abs=1e-12)
    assert s["ppl_ratio"] == pytest.approx(np.exp(0.1))


def test_clustered_se_sees_correlation_that_naive_se_misses():
    rng = np.random.default_rng(5)
    chunk = np.repeat(np.arange(20), 50)
    shared = rng.normal(0, 1, 20)[chunk]  # positions in a chunk share their context
    x = shared + rng.normal(0, 0.1, chunk.size)
    naive = mean_se(x)[1]
    clustered = clustered_se(x, chunk)
    assert clustered > 4 * naive
    means = np.array([x[chunk == g].mean() for g in range(20)])
    assert clustered == pytest.approx(means.std(ddof=1) / np.sqrt(20), rel=0.05)
    assert clustered_se(x, np.zeros_like(chunk)) is None
