"""Perplexity and KL-divergence arithmetic, in plain numpy: per-row maths and the statistics.

Row functions take a block of raw logits (rows x n_vocab float32, usually a view of llama.cpp's
output buffer) and never keep more than one block of temporaries, so a 262,144-token vocabulary
costs a few tens of MB at a time, not n_ctx x n_vocab floats.

Statistics follow llama-perplexity (tools/perplexity/perplexity.cpp) so the numbers can be put
side by side: uncertainties are sigma/sqrt(N-1) with sigma the population standard deviation,
percentiles interpolate linearly. Positions within one chunk share their context and are not
independent, so every mean also gets a standard error clustered by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# --------------------------------------------------------------------------------------------
# Row maths
# --------------------------------------------------------------------------------------------


@dataclass
class RowsOut:
    """What one block of a candidate's rows gives: next-token log-prob, argmax, KLD if asked."""

    lp_next: np.ndarray  # float64 (rows,)  log q(t_{i+1})
    argmax: np.ndarray  # int64 (rows,)
    kld: np.ndarray | None = None  # float64 (rows,)


@dataclass
class ReferenceRows:
    """The compact reference for a block of rows (what the cache stores)."""

    top_ids: np.ndarray  # (rows, K) by decreasing probability, ties by lower id
    top_lp: np.ndarray  # float16 (rows, K) log p of those ids
    log_rest: np.ndarray  # float32 (rows,) log of the probability mass outside the top K
    lp_next: np.ndarray  # float32 (rows,) log p(t_{i+1}), exact
    tail_ids: np.ndarray  # (rows, M) tokens drawn from the tail, with probability ~ p
    tail_lp: np.ndarray  # float32 (rows, M) their log p
    full_lp: np.ndarray | None = None  # float32 (rows, n_vocab), exact mode only

    def rows(self, s: slice) -> "ReferenceRows":
        """The rows s of every array (views, no copy)."""
        return ReferenceRows(**{f.name: _take(getattr(self, f.name), s) for f in fields(self)})

    @classmethod
    def concat(cls, parts: list["ReferenceRows"]) -> "ReferenceRows":
        """Blocks of rows, in order, as one."""
        return cls(**{f.name: _join([getattr(p, f.name) for p in parts]) for f in fields(cls)})


def _take(a: np.ndarray | None, s: slice) -> np.ndarray | None:
    return None if a is None else a[s]


def _join(arrays: list) -> np.ndarray | None:
    return None if arrays[0] is None else np.concatenate(arrays)


def _softmax_parts(x: np.ndarray):
    """argmax, max, exp(x - max) (a new float32 block) and its float64 row sums."""
    rows = np.arange(x.shape[0])
    idx = np.argmax(x, axis=1)
    m = x[rows, idx]
    y = np.subtract(x, m[:, None], dtype=np.float32)
    np.exp(y, out=y)
    total = y.sum(axis=1, dtype=np.float64)
    return rows, idx, m.astype(np.float64), y, total


def reference_rows(
    x: np.ndarray,
    next_tokens: np.ndarray,
    top_k: int,
    tail_samples: int = 0,
    u: np.ndarray | None = None,
    full: bool = False,
) -> ReferenceRows:
    """Top-K log-probs, the tail's mass, M tokens sampled from the tail, log p(next token).

    The remaining mass is summed directly over the tokens outside the top K (total minus the top
    K's own float32 terms, in float64), not as 1 - sum(top), so a tiny tail keeps its precision.
    Tail tokens are drawn by systematic sampling along the cumulative tail mass (offsets
    (u + j) / M, u uniform per row): token v is drawn M p_v / p_rest times in expectation, which
    makes the tail estimate in `candidate_rows` unbiased.
    """
    n_vocab = x.shape[1]
    k = min(top_k, n_vocab)
    rows, idx, m, y, total = _softmax_parts(x)
    log_z = m + np.log(total)
    if k < n_vocab:
        part = np.argpartition(x, n_vocab - k, axis=1)[:, n_vocab - k :]
    else:
        part = np.broadcast_to(np.arange(n_vocab), (x.shape[0], n_vocab)).copy()
    vals = np.take_along_axis(x, part, axis=1)
    order = np.lexsort((part, -vals), axis=-1)
    top_ids = np.take_along_axis(part, order, axis=1)
    top_vals = np.take_along_axis(vals, order, axis=1).astype(np.float64)
    y_top = np.take_along_axis(y, top_ids, axis=1).astype(np.float64).sum(axis=1)
    rest = np.maximum(total - y_top, 0.0)
    with np.errstate(divide="ignore"):
        log_rest = np.log(rest) - np.log(total)
    lp_next = x[rows, next_tokens].astype(np.float64) - log_z
    tail_ids = np.zeros((x.shape[0], tail_samples), dtype=np.int64)
    tail_lp = np.full((x.shape[0], tail_samples), -np.inf, dtype=np.float64)
    if tail_samples and k < n_vocab:
        if u is None:
            u = np.full(x.shape[0], 0.5)
        np.put_along_axis(y, top_ids, 0.0, axis=1)  # y is ours: the tail is what is left
        steps = (np.arange(tail_samples) + 0.0) / tail_samples
        for r in range(x.shape[0]):
            if rest[r] <= 0:
                continue
            cum = np.cumsum(y[r], dtype=np.float64)
            targets = (u[r] / tail_samples + steps) * cum[-1]
            ids = np.minimum(np.searchsorted(cum, targets, side="right"), n_vocab - 1)
            tail_ids[r] = ids
            tail_lp[r] = x[r, ids].astype(np.float64) - log_z[r]
    full_lp = None
    if full:
        full_lp = np.subtract(x, log_z[:, None].astype(np.float32), dtype=np.float32)
    return ReferenceRows(
        top_ids=top_ids.astype(np.int32),
        top_lp=(top_vals - log_z[:, None]).astype(np.float16),
        log_rest=log_rest.astype(np.float32),
        lp_next=lp_next.astype(np.float32),
        tail_ids=tail_ids.astype(np.int32),
        tail_lp=tail_lp.astype(np.float32),
        full_lp=full_lp,
    )


def candidate_rows(x: np.ndarray, next_tokens: np.ndarray, ref: ReferenceRows | None = None,
                   exact: bool = False) -> RowsOut:
    """log q(next), argmax q and, given a reference, KLD(p || q) for each row.

    Compact reference: KLD = sum_topK p (log p - log q) + p_rest (log p_rest - log q_rest)
    + p_rest * KL(tail_p || tail_q). The last term is what top-K alone loses (13% of the KLD of
    SmolLM2's q8_0 at K=128, docs/kld.md); it is estimated from the M sampled tail tokens with
    the non-negative unbiased estimator mean(r - 1 - log r), r = (q_v/q_rest)/(p_v/p_rest).
    The stored fp16 log-probs are renormalised together with the rest mass first, so their
    rounding leaves no first-order mass error. Exact mode (ref.full_lp): the plain sum over
    the whole vocabulary.
    """
    rows, idx, m, y, total = _softmax_parts(x)
    log_total = np.log(total)
    log_z = m + log_total
    lp_next = x[rows, next_tokens].astype(np.float64) - log_z
    out = RowsOut(lp_next=lp_next, argmax=idx)
    if ref is None:
        return out
    if exact:
        assert ref.full_lp is not None
        lq = np.subtract(x, log_z[:, None].astype(np.float32), dtype=np.float32)
        p = np.exp(ref.full_lp)
        np.subtract(ref.full_lp, lq, out=lq)
        lq *= p
        out.kld = lq.sum(axis=1, dtype=np.float64)
        return out
    ids = ref.top_ids.astype(np.intp)
    lp = ref.top_lp.astype(np.float64)
    lr = ref.log_rest.astype(np.float64)
    # Renormalise the stored distribution (fp16 rounding leaves its mass at 1 +- 1e-4).
    with np.errstate(divide="ignore"):
        log_norm = np.logaddexp(np.logaddexp.reduce(lp, axis=1), lr)
    lp -= log_norm[:, None]
    lr -= log_norm
    p = np.exp(lp)
    lq = np.take_along_axis(x, ids, axis=1).astype(np.float64) - log_z[:, None]
    top_terms = np.where(p > 0, p * (lp - lq), 0.0).sum(axis=1)
    q_rest = np.maximum(total - np.take_along_axis(y, ids, axis=1).astype(np.float64).sum(axis=1), 0.0)
    p_rest = np.exp(lr)
    with np.errstate(divide="ignore", invalid="ignore"):
        lq_rest = np.log(q_rest) - log_total
        rest_terms = np.where(p_rest > 0, p_rest * (lr - lq_rest), 0.0)
        tail_terms = 0.0
        if ref.tail_ids.shape[1]:
            tids = ref.tail_ids.astype(np.intp)
            # log r = log(q_v / q_rest) - log(p_v / p_rest); lp, lr share log_norm, so it cancels.
            log_r = (np.take_along_axis(x, tids, axis=1).astype(np.float64) - log_z[:, None] - lq_rest[:, None]) - (
                ref.tail_lp.astype(np.float64) - ref.log_rest.astype(np.float64)[:, None]
            )
            g = np.expm1(log_r) - log_r  # r - 1 - log r >= 0
            g = np.where(np.isfinite(g), g, 0.0)
            tail_terms = np.where(p_rest > 0, p_rest * g.mean(axis=1), 0.0)
    out.kld = top_terms + rest_terms + tail_terms
    return out


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and its uncertainty as llama-perplexity computes it: sigma_pop / sqrt(N - 1)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan")
    var = float(np.mean(x * x) - mean * mean)
    return mean, (max(var, 0.0) / (n - 1)) ** 0.5


def clustered_se(x: np.ndarray, clusters: np.ndarray) -> float | None:
    """Standard error of the mean with positions clustered (CR1: G/(G-1) small-sample factor).

    Scores of neighbouring positions in one chunk are correlated; treating them as independent
    understates the uncertainty. None with fewer than two clusters.
    """
    x = np.asarray(x, dtype=np.float64)
    labels, inverse = np.unique(clusters, return_inverse=True)
    g = labels.size
    if g < 2 or x.size == 0:
        return None
    resid = x - x.mean()
    sums = np.bincount(inverse, weights=resid, minlength=g)
    return float(np.sqrt(g / (g - 1) * np.sum(sums * sums)) / x.size)


# The stored KLD distribution: every percent, then the tail in finer steps (p99.9 and beyond
# matter most for quantization): 106 numbers whatever the corpus size.
KLD_QUANTILE_LEVELS: list[float] = [i / 100 for i in range(100)] + [0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0]


def kld_quantiles(kld: np.ndarray) -> list[float]:
    """KLD at each of KLD_QUANTILE_LEVELS (same interpolation as `percentile`)."""
    x = np.asarray(kld, dtype=np.float64)
    return [float(v) for v in np.quantile(x, KLD_QUANTILE_LEVELS)] if x.size else []


def percentile(x: np.ndarray, q: float) -> float:
    """Linear interpolation between order statistics (llama-perplexity's `percentile`)."""
    return float(np.quantile(np.asarray(x, dtype=np.float64), q))


def perplexity_stats(nll: np.ndarray, chunk: np.ndarray) -> dict[str, float | None]:
    mean, se = mean_se(nll)
    ppl = float(np.exp(mean))
    se_cl = clustered_se(nll, chunk)
    return {
        "ppl": ppl,
        "ppl_se": ppl * se,
        "ppl_se_clustered": ppl * se_cl if se_cl is not None else None,
        "nll_mean": mean,
        "nll_se": se,
        "n_scored": int(np.asarray(nll).size),
    }


def kld_stats(
    nll: np.ndarray,
    nll_ref: np.ndarray,
    kld: np.ndarray,
    same_top: np.ndarray,
    dp: np.ndarray,
    chunk: np.ndarray,
) -> dict[str, float | int | None]:
    """Every figure of llama-perplexity --kl-divergence, plus clustered uncertainties."""
    n = int(np.asarray(kld).size)
    ppl = perplexity_stats(nll, chunk)
    ref = perplexity_stats(nll_ref, chunk)
    diff = np.asarray(nll, dtype=np.float64) - np.asarray(nll_ref, dtype=np.float64)
    ln_ratio, ln_ratio_se = mean_se(diff)
    ln_ratio_se_cl = clustered_se(diff, chunk)
    kld_mean, kld_se = mean_se(kld)
    top = np.asarray(same_top, dtype=np.float64)
    p_top = float(top.mean()) if n else float("nan")
    top_se = (p_top * (1 - p_top) / (n - 1)) ** 0.5 if n > 1 else float("nan")
    top_se_cl = clustered_se(top, chunk)
    dp = np.asarray(dp, dtype=np.float64)
    dp_mean, dp_se = mean_se(dp)
    dp2_mean, dp2_se = mean_se(dp * dp)
    dp_rms = dp2_mean**0.5
    kld_se_cl = clustered_se(kld, chunk)
    return {
        "ppl": ppl["ppl"],
        "ppl_se": ppl["ppl_se"],
        "ppl_ref": ref["ppl"],
        "ppl_ref_se": ref["ppl_se"],
        "ppl_ratio": float(np.exp(ln_ratio)),
        "ppl_ratio_se": float(np.exp(ln_ratio)) * ln_ratio_se,
        "ln_ppl_ratio_mean": ln_ratio,
        "ln_ppl_ratio_se": ln_ratio_se,
        "ln_ppl_ratio_se_clustered": ln_ratio_se_cl,
        "kld_mean": kld_mean,
        "kld_se": kld_se,
        "kld_se_clustered": kld_se_cl,
        "kld_median": percentile(kld, 0.5),
        "kld_p90": percentile(kld, 0.90),
        "kld_p95": percentile(kld, 0.95),
        "kld_p99": percentile(kld, 0.99),
        "kld_p999": percentile(kld, 0.999),
        "kld_max": float(np.max(kld)),
        "kld_quantile_levels": list(KLD_QUANTILE_LEVELS),
        "kld_quantiles": kld_quantiles(kld),
        "same_top_pct": 100.0 * p_top,
        "same_top_se_pct": 100.0 * top_se,
        "same_top_se_clustered_pct": 100.0 * top_se_cl if top_se_cl is not None else None,
        "dp_mean": dp_mean,
        "dp_se": dp_se,
        "dp_rms": dp_rms,
        "dp_rms_se": 0.5 / dp_rms * dp2_se if dp_rms > 0 else 0.0,
        "dp_max_abs": float(np.max(np.abs(dp))),
        "n_scored": n,
        "n_chunks": int(np.unique(chunk).size),
    }
