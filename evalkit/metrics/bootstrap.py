"""Stratified bootstrap of A/B ratios over generation samples (pairwise comparisons).

Samples are resampled with replacement *within each prompt and each side*, so a prompt with long
answers never trades places with a prompt with short ones. Each replicate recomputes the same
statistics as the point estimate; the 95% interval is the 2.5th..97.5th percentile of the
replicate ratios. Seeded numpy Generator: the same records give the same interval.

Per prompt, from the samples' columns:
  throughput (chars/s) = sum chars / sum end-to-end seconds
  gen tok/s            = sum (completion tokens - 1) / sum generation seconds
  time (s)             = mean end-to-end seconds
  output (chars)       = mean characters
Total over prompts: the per-prompt means summed (so unequal sample counts do not reweight
prompts), throughput = total chars / total time, as the published "total generation time over
six prompts" comparisons do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Column order of a side's per-prompt sample matrix.
COLUMNS = ("chars", "total_s", "gen_tokens", "generation_s")
METRICS = ("chars_per_s", "gen_tokens_per_s", "total_s", "output_chars")


@dataclass
class Ratio:
    a: float | None
    b: float | None
    ratio: float | None
    lo: float | None = None
    hi: float | None = None
    note: str | None = None  # why there is no interval

    @property
    def covers_one(self) -> bool | None:
        if self.lo is None or self.hi is None:
            return None
        return self.lo <= 1.0 <= self.hi


def _metrics(means: np.ndarray) -> np.ndarray:
    """means[..., 4] (column means) -> metrics[..., 4] in METRICS order."""
    chars, total, gtok, gsec = (means[..., i] for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack(
            [
                np.where(total > 0, chars / total, np.nan),
                np.where(gsec > 0, gtok / gsec, np.nan),
                total,
                chars,
            ],
            axis=-1,
        )


def _replicate_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, 4) column means of n_boot resamples of the rows of x."""
    idx = rng.integers(0, x.shape[0], size=(n_boot, x.shape[0]))
    return x[idx].mean(axis=1)


def _ratio(a: float, b: float) -> float | None:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return float(a / b)


def _interval(ra: np.ndarray, rb: np.ndarray) -> tuple[float | None, float | None]:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ra / rb
    r = r[np.isfinite(r)]
    if r.size < 0.9 * ra.size:  # too many undefined replicates to trust percentiles
        return None, None
    lo, hi = np.percentile(r, [2.5, 97.5])
    return float(lo), float(hi)


def paired_ratios(
    a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, dict[str, Ratio]], dict[str, Ratio]]:
    """Per-prompt and total A/B ratios with stratified-bootstrap 95% intervals.

    a, b: prompt id -> (n_samples, 4) float matrix in COLUMNS order; only prompts present on
    both sides are compared. A prompt with fewer than two samples on either side has no
    interval: one draw at temperature 1 says nothing about noise.
    """
    prompts = sorted(set(a) & set(b))
    rng = np.random.default_rng(seed)
    per_prompt: dict[str, dict[str, Ratio]] = {}
    reps_a: list[np.ndarray] = []
    reps_b: list[np.ndarray] = []
    can_total = True
    for pid in prompts:
        xa, xb = np.asarray(a[pid], float), np.asarray(b[pid], float)
        ma, mb = _metrics(xa.mean(axis=0)), _metrics(xb.mean(axis=0))
        enough = xa.shape[0] >= 2 and xb.shape[0] >= 2
        can_total &= enough
        ba = _replicate_means(xa, n_boot, rng)
        bb = _replicate_means(xb, n_boot, rng)
        reps_a.append(ba)
        reps_b.append(bb)
        qa, qb = _metrics(ba), _metrics(bb)
        row = {}
        for k, name in enumerate(METRICS):
            r = Ratio(_num(ma[k]), _num(mb[k]), _ratio(ma[k], mb[k]))
            if r.ratio is not None:
                if enough:
                    r.lo, r.hi = _interval(qa[:, k], qb[:, k])
                    if r.lo is None:
                        r.note = "undefined in too many resamples"
                else:
                    r.note = f"n={xa.shape[0]}/{xb.shape[0]}: no interval below 2 samples a side"
            row[name] = r
        per_prompt[pid] = row

    total: dict[str, Ratio] = {}
    if prompts:
        sum_a = sum(np.asarray(a[p], float).mean(axis=0) for p in prompts)
        sum_b = sum(np.asarray(b[p], float).mean(axis=0) for p in prompts)
        ta, tb = _metrics(sum_a), _metrics(sum_b)
        qa, qb = _metrics(sum(reps_a)), _metrics(sum(reps_b))
        for k, name in enumerate(METRICS):
            r = Ratio(_num(ta[k]), _num(tb[k]), _ratio(ta[k], tb[k]))
            if r.ratio is not None:
                if can_total:
                    r.lo, r.hi = _interval(qa[:, k], qb[:, k])
                else:
                    r.note = "some prompt has under 2 samples a side: no interval"
            total[name] = r
    return per_prompt, total


def _num(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
