"""Speculative decoding against plain decoding: the same variant, task and seeds, paired.

`python -m evalkit -m backend.speculative=none,prompt_lookup task=stress_quick` writes two sibling
run directories (outputs/<task>/<variant>/llama_cpp-<hash>) whose configs differ only in the
speculative settings. A sample's resume key does not depend on those settings, so the samples
pair up one to one. Whichever of the two finishes second writes the comparison into the
speculative run's results.json (`speculative` block): drafted/accepted tokens, acceptance rate,
and the generation-speed ratio (wall-clock tokens/s) with a paired t interval of the per-sample
geometric mean (same prompt and seed on both sides; none below intervals.MIN_N pairs).

`python -m evalkit.speculative RUN_DIR` recomputes and prints it for an existing run.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.metrics.intervals import MIN_N, log_ratio_test
from evalkit.records import RESULTS_FILE, RunResult, SampleRecord, SpeculativeSummary, finished_samples

# Backend keys that only choose the speculation; everything else must match for a fair pair.
SPECULATIVE_KEYS = ("speculative", "num_pred_tokens", "draft_model")
# Task keys that only choose how many samples/prompts: pairing is by sample key anyway.
EXTENDABLE_TASK_KEYS = ("samples", "prompts")


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(config)
    for key in SPECULATIVE_KEYS:
        cfg.get("backend", {}).pop(key, None)
    for key in EXTENDABLE_TASK_KEYS:
        cfg.get("task", {}).pop(key, None)
    cfg.pop("print_table", None)
    cfg.pop("progress", None)
    return cfg


def method_of(config: dict[str, Any]) -> str:
    return str(config.get("backend", {}).get("speculative", "none") or "none")


def siblings(run_dir: Path, result: RunResult) -> list[tuple[Path, RunResult]]:
    """Other runs of the same task and variant whose config differs only in speculation."""
    mine = comparable_config(result.config)
    found = []
    if not run_dir.parent.is_dir():
        return found
    for other in sorted(run_dir.parent.iterdir()):
        if other.resolve() == run_dir.resolve() or not (other / RESULTS_FILE).is_file():
            continue
        res = RunResult.read(other)
        if res is None or res.generation is None:
            continue
        if res.hardware_fingerprint != result.hardware_fingerprint:
            continue
        if comparable_config(res.config) == mine:
            found.append((other, res))
    return found


def _samples(run_dir: Path) -> dict[str, SampleRecord]:
    """The newest successful record per sample key."""
    return finished_samples(run_dir)


def _rate(records: list[SampleRecord]) -> float | None:
    tokens = sum(max((r.completion_tokens or 0) - 1, 0) for r in records)
    seconds = sum(r.generation_s or 0.0 for r in records)
    return tokens / seconds if seconds > 0 else None


def _draft_model(spec: RunResult) -> str | None:
    """The draft model the run used (mtp may take it from the model config, not the backend's)."""
    return spec.backend.settings.get("draft_model") or spec.config.get("backend", {}).get("draft_model")


def geomean_intervals(logs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% intervals of geometric means of per-sample ratios, one per row of `logs` (log ratios,
    pairs along the last axis): a paired t interval on the logs. A percentile bootstrap of the same
    mean covered only ~80% at 4 pairs and ~91% at 14 (tests/runners/test_speedup_interval.py
    simulates the sizes evalkit prints)."""
    n = logs.shape[-1]
    test = log_ratio_test(logs.mean(axis=-1), logs.std(axis=-1, ddof=1) / math.sqrt(n), n - 1)
    return test.lo, test.hi


def geomean_interval(logs: np.ndarray) -> tuple[float, float] | None:
    """The printed speedup interval; none below MIN_N pairs."""
    if len(logs) < MIN_N:
        return None
    lo, hi = geomean_intervals(np.asarray(logs, float))
    return float(lo), float(hi)


def summarize(
    spec_dir: Path, spec: RunResult, base_dir: Path | None, seed: int = 0
) -> SpeculativeSummary:
    g = spec.generation
    backend = spec.config.get("backend", {})
    summary = SpeculativeSummary(
        method=method_of(spec.config),
        num_pred_tokens=backend.get("num_pred_tokens"),
        draft_model=_draft_model(spec) if method_of(spec.config) in ("draft", "mtp") else None,
        drafted_tokens=g.drafted_tokens if g else None,
        accepted_tokens=g.accepted_tokens if g else None,
        acceptance_rate=g.acceptance_rate if g else None,
        baseline_run=base_dir.name if base_dir is not None else None,
    )
    if base_dir is None:
        return summary
    a, b = _samples(spec_dir), _samples(base_dir)
    keys = sorted(
        k for k in a.keys() & b.keys() if a[k].gen_tokens_per_s and b[k].gen_tokens_per_s
    )
    if not keys:
        return summary
    spec_recs, base_recs = [a[k] for k in keys], [b[k] for k in keys]
    summary.n_pairs = len(keys)
    summary.n_identical_outputs = sum(1 for x, y in zip(spec_recs, base_recs) if x.output == y.output)
    base = RunResult.read(base_dir)
    if base is not None and summary.n_identical_outputs < summary.n_pairs:
        from evalkit.divergence import explain

        summary.divergences = explain(spec, base, list(zip(spec_recs, base_recs)))
        verdicts = [d.verdict for d in summary.divergences]
        summary.n_numerics_explained = verdicts.count("numerics")
        summary.n_unexplained = verdicts.count("unexplained")
        summary.n_unchecked = verdicts.count("unchecked")
    summary.gen_tokens_per_s = _rate(spec_recs)
    summary.gen_tokens_per_s_baseline = _rate(base_recs)
    if summary.gen_tokens_per_s and summary.gen_tokens_per_s_baseline:
        summary.speedup = summary.gen_tokens_per_s / summary.gen_tokens_per_s_baseline
    logs = np.log([x.gen_tokens_per_s / y.gen_tokens_per_s for x, y in zip(spec_recs, base_recs)])  # type: ignore[operator]
    summary.speedup_geomean = float(math.exp(logs.mean()))
    interval = geomean_interval(logs)
    if interval is not None:
        summary.speedup_ci_low, summary.speedup_ci_high = interval
    spec_total = sum(r.total_s or 0.0 for r in spec_recs)
    base_total = sum(r.total_s or 0.0 for r in base_recs)
    summary.total_s_ratio = base_total / spec_total if spec_total > 0 else None
    return summary


def describe(s: SpeculativeSummary) -> str:
    parts = [f"speculative ({s.method})"]
    if s.drafted_tokens is not None:
        rate = f" ({100 * s.acceptance_rate:.0f}%)" if s.acceptance_rate is not None else ""
        parts.append(f"{s.accepted_tokens}/{s.drafted_tokens} drafted tokens accepted{rate}")
    if s.speedup is not None:
        ci = (
            f", per-sample geometric mean {s.speedup_geomean:.2f}× "
            f"(95% paired t CI {s.speedup_ci_low:.2f}–{s.speedup_ci_high:.2f})"
            if s.speedup_ci_low is not None
            else ""
        )
        parts.append(
            f"generation {s.gen_tokens_per_s:.1f} vs {s.gen_tokens_per_s_baseline:.1f} tok/s without: "
            f"{s.speedup:.2f}×{ci} over {s.n_pairs} paired samples "
            f"({s.n_identical_outputs} with identical text)"
        )
    if s.n_pairs and s.n_identical_outputs < s.n_pairs:
        parts.append(lossless_line(s))
    elif s.baseline_run is None:
        parts.append("no run without speculation found beside it yet (run backend.speculative=none too)")
    return "; ".join(parts)


def lossless_line(s: SpeculativeSummary) -> str:
    """Identical / numerics-explained / unexplained, with the largest near-tie gap measured."""
    line = (
        f"lossless check: {s.n_identical_outputs} identical, {s.n_numerics_explained} differ by "
        f"a near tie flipped by batch numerics, {s.n_unexplained} unexplained"
    )
    if s.n_unchecked:
        line += f", {s.n_unchecked} unchecked"
    gaps = [max(d.gap_single or 0, d.gap_batch or 0) for d in s.divergences if d.verdict == "numerics"]
    if gaps:
        line += f" (largest logit gap at a flip {max(gaps):.3g})"
    return line


def attach(run_dir: Path, result: RunResult, console=None) -> RunResult:
    """After a generation run: fill the speculative block of whichever run of the pair needs it."""
    if result.generation is None:
        return result
    if method_of(result.config) != "none":
        base = next(((d, r) for d, r in siblings(run_dir, result) if method_of(r.config) == "none"), None)
        result.speculative = summarize(run_dir, result, base[0] if base else None)
        result.write(run_dir)
        if console is not None:
            console.print(describe(result.speculative), markup=False, highlight=False)
        return result
    for other_dir, other in siblings(run_dir, result):
        if method_of(other.config) == "none":
            continue
        other.speculative = summarize(other_dir, other, run_dir)
        other.write(other_dir)
        if console is not None:
            console.print(f"{other_dir}: {describe(other.speculative)}", markup=False, highlight=False)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m evalkit.speculative RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    code = 0
    for arg in args:
        run_dir = Path(arg)
        result = RunResult.read(run_dir)
        if result is None or result.generation is None:
            print(f"evalkit: error: {run_dir} holds no generation results.json", file=sys.stderr)
            code = 2
            continue
        if method_of(result.config) == "none":
            print(f"{run_dir}: speculative decoding was off in this run", file=sys.stderr)
            attach(run_dir, result, None)
            continue
        attach(run_dir, result, None)
        print(json.dumps(result.speculative.model_dump() if result.speculative else None, indent=2))
        print(describe(result.speculative) if result.speculative else "")
    return code


if __name__ == "__main__":
    sys.exit(main())
