"""The leaderboard: one row per (model, variant, backend settings, hardware), every task merged.

Runs of different task kinds of the same variant (generation suites, kld, perplexity, speed,
lm_eval) become one row. Runs on different hardware classes are different rows: nothing is ever
averaged across machines. Within a row, generation runs of different suites are pooled (their
names are in `gen_tasks`); two runs of the *same* task in one row (e.g. two token caps) cannot
both be shown, so the newest wins and a warning names the other.

Which columns there are, in which order and type, is the catalogue's (evalkit/report/columns.py);
this module computes their values from the runs' records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import lru_cache
from typing import Any, Iterable

import polars as pl

from evalkit.records import SpeedTest, Stat, read_samples, stable_hash
from evalkit.report.columns import COLUMNS, schema
from evalkit.report.columns import slug as _slug
from evalkit.report.load import ReportError, Run

GB = 1e9


# Backend config keys that do not define a row: per-task context size, seeds, client plumbing.
_NOT_ROW_SETTINGS = {
    "n_ctx", "seed", "timeout_s", "max_retries", "backoff_s", "api_key_env", "startup_timeout_s",
    "port", "host", "binary", "stream",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _backend_defaults(kind: str) -> dict[str, Any]:
    from pydantic import TypeAdapter

    from evalkit.config import BackendConfig

    try:
        return TypeAdapter(BackendConfig).validate_python({"type": kind}).model_dump(mode="json")
    except Exception:
        return {}


def row_settings(run: Run) -> dict[str, Any]:
    """The run's backend config over the current defaults: a key added to the schema later
    does not split an older run's row from a newer one's."""
    backend = dict(run.result.config.get("backend") or {})
    kind = backend.get("type") or run.result.backend.type
    merged = {**_backend_defaults(kind), **backend, "type": kind}
    return {k: v for k, v in merged.items() if k not in _NOT_ROW_SETTINGS}


def settings_label(settings: dict[str, Any]) -> str:
    kind = str(settings.get("type"))
    defaults = _backend_defaults(kind)
    diffs = [
        f"{k}={_short(v)}"
        for k, v in sorted(settings.items())
        if k != "type" and (k not in defaults or defaults[k] != v) and v not in (None, [], {})
    ]
    return " ".join([kind, *diffs])


def _short(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def row_key(run: Run) -> tuple:
    m = run.result.model
    return (m.name, m.variant, m.sha256, stable_hash(row_settings(run), 10), run.result.hardware_fingerprint)


def _newest(runs: list[Run]) -> Run:
    return max(runs, key=lambda r: (r.result.finished_at or r.result.created_at, r.rel))


def dedupe_tasks(runs: list[Run], warnings: list[str]) -> list[Run]:
    """One run per task name in a row: the newest; the others are named in a warning."""
    by_task: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        # A kld run over a task's own answers sits beside the corpus kld run, not in its place.
        by_task[r.result.task + (":responses" if _is_responses(r) else "")].append(r)
    kept = []
    for task, group in sorted(by_task.items()):
        best = _newest(group)
        kept.append(best)
        for other in group:
            if other is not best:
                warnings.append(
                    f"{other.dir}: another run of task '{task}' for the same row "
                    f"({best.result.model.name} {best.result.model.variant}); showing the newer {best.rel}. "
                    "Give different settings their own outputs tree to compare them"
                )
    return kept


def _pool(stats: Iterable[Stat | None]) -> tuple[float | None, float | None, int]:
    """Combine (mean, sd, n) groups into one mean and sample sd, exactly."""
    groups = [(s.mean, s.sd or 0.0, s.n) for s in stats if s and s.mean is not None and s.n]
    n = sum(g[2] for g in groups)
    if not n:
        return None, None, 0
    mean = sum(m * k for m, _, k in groups) / n
    if n < 2:
        return mean, 0.0, n
    ss = sum((k - 1) * sd**2 + k * (m - mean) ** 2 for m, sd, k in groups)
    return mean, math.sqrt(ss / (n - 1)), n


def _first_sampling(run: Run) -> str | None:
    first = next(iter(read_samples(run.dir).records), None)
    if first is None:
        return None
    s = first.sampling
    parts = [
        f"T={s.get('temperature')}",
        f"top_p={s.get('top_p')}",
        f"top_k={s.get('top_k')}",
    ]
    if s.get("min_p"):
        parts.append(f"min_p={s['min_p']}")
    if s.get("repeat_penalty") not in (None, 1.0):
        parts.append(f"repeat_penalty={s['repeat_penalty']}")
    parts.append(f"max_tokens={s.get('max_tokens') or 'none'}")
    return " ".join(parts)


def _gen_block(runs: list[Run]) -> dict[str, Any]:
    gens = [(r, r.result.generation) for r in runs if r.result.generation is not None]
    if not gens:
        return {}
    out: dict[str, Any] = {}
    labels, samplings = [], []
    for r, g in gens:
        n_samples = (r.result.config.get("task") or {}).get("samples")
        labels.append(f"{r.result.task}({g.n_prompts}p x{n_samples or '?'})")
        s = _first_sampling(r)
        if s and s not in samplings:
            samplings.append(s)
    out["gen_tasks"] = "+".join(labels)
    out["sampling"] = "; ".join(samplings) or None
    out["gen_samples"] = sum(g.n_samples for _, g in gens)
    out["gen_failed"] = sum(g.n_failed for _, g in gens)
    out["gen_truncated"] = sum(g.n_truncated for _, g in gens)
    for col, key in (("ttft_s", "ttft_s"), ("gen_tokens_per_s", "gen_tokens_per_s"), ("chars_per_s", "chars_per_s")):
        mean, sd, _ = _pool(getattr(g, key) for _, g in gens)
        out[col], out[f"{col}_sd"] = mean, sd
    out["prompt_tokens_per_s"] = _pool(g.prompt_tokens_per_s for _, g in gens)[0]
    gen_s = sum(g.total_generation_s or 0.0 for _, g in gens)
    agg = [(g.gen_tokens_per_s_aggregate, g.total_generation_s) for _, g in gens if g.gen_tokens_per_s_aggregate]
    out["gen_tokens_per_s_total"] = (sum(a * s for a, s in agg) / sum(s for _, s in agg)) if agg and gen_s else None
    total_s = sum(g.total_s or 0.0 for _, g in gens)
    chars = sum(g.total_chars for _, g in gens)
    n = out["gen_samples"]
    out["chars_per_s_total"] = chars / total_s if total_s else None
    out["gen_total_s"] = total_s
    out["output_chars_total"] = chars
    out["output_chars_mean"] = chars / n if n else None
    out["output_tokens_mean"] = sum(g.total_completion_tokens for _, g in gens) / n if n else None
    drafted = sum(g.drafted_tokens or 0 for _, g in gens)
    accepted = sum(g.accepted_tokens or 0 for _, g in gens)
    out["acceptance_rate"] = accepted / drafted if drafted else None
    speedups = [r.result.speculative.speedup if r.result.speculative else None for r, _ in gens]
    out["spec_speedup"] = next((s for s in speedups if s is not None), None)

    strict = loose = weight = 0.0
    for _, g in gens:
        for p in g.per_prompt.values():
            if p.pass_rate_strict is not None and p.n:
                strict += p.pass_rate_strict * p.n
                loose += (p.pass_rate_loose or 0.0) * p.n
                weight += p.n
    out["pass_strict"] = strict / weight if weight else None
    out["pass_loose"] = loose / weight if weight else None
    out["pass_n"] = int(weight)
    checks: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for _, g in gens:
        for name, c in g.per_check.items():
            checks[name].append((c.strict, c.loose, c.n))
    for name, parts in sorted(checks.items()):
        n_c = sum(k for _, _, k in parts)
        slug = _slug(name)
        out[f"check_{slug}_strict"] = sum(s * k for s, _, k in parts) / n_c if n_c else None
        out[f"check_{slug}_loose"] = sum(lo * k for _, lo, k in parts) / n_c if n_c else None
    return out


def _pick_test(tests: list[SpeedTest], kind: str) -> SpeedTest | None:
    if kind == "pp":
        cands = [t for t in tests if t.n_gen == 0 and t.n_prompt > 0]
        preferred = "pp512"
    else:
        cands = [t for t in tests if t.n_prompt == 0 and t.n_gen > 0]
        preferred = "tg128"
    if not cands:
        return None
    cands.sort(key=lambda t: (t.depth != 0, t.name != preferred))
    return cands[0]


def _speed_block(runs: list[Run]) -> dict[str, Any]:
    tests: list[SpeedTest] = []
    for r in runs:
        if r.result.speed is not None:
            tests.extend(r.result.speed.tests)
    out: dict[str, Any] = {}
    for kind in ("pp", "tg"):
        t = _pick_test(tests, kind)
        if t:
            out[f"{kind}_test"] = t.name
            out[f"{kind}_tokens_per_s"] = t.tokens_per_s_mean
            out[f"{kind}_tokens_per_s_sd"] = t.tokens_per_s_sd
            out["speed_repetitions"] = t.repetitions
    return out


def _is_responses(r: Run) -> bool:
    return bool(r.result.kld and r.result.kld.responses)


def _kld_responses_block(runs: list[Run]) -> dict[str, Any]:
    """task.corpus=responses:<task>: overall columns, then one `kld_resp_cat_<category>` each."""
    klds = [r for r in runs if _is_responses(r)]
    if not klds:
        return {}
    k = klds[0].result.kld
    assert k is not None and k.responses is not None
    resp = k.responses
    overall = dict(
        kld_resp_task=resp.task,
        kld_resp_reference=k.reference,
        kld_resp_mean=k.kld_mean,
        kld_resp_se=k.kld_se_clustered,
        kld_resp_p99=k.kld_p99,
        kld_resp_same_top_pct=k.same_top_pct,
        kld_resp_n_scored=k.n_scored,
        kld_resp_reference_sha256=k.reference_sha256,
        kld_resp_corpus_sha256=k.corpus_sha256,
    )
    for c in resp.categories:
        overall[f"kld_resp_cat_{_slug(c.category)}"] = _float(c.kld_mean)
    return overall


def _kld_block(runs: list[Run]) -> dict[str, Any]:
    klds = [r for r in runs if r.result.kld and not _is_responses(r)]
    if not klds:
        return {}
    k = klds[0].result.kld
    assert k is not None
    return {
        "kld_reference": k.reference,
        "kld_mean": k.kld_mean,
        "kld_se": k.kld_se,
        "kld_median": k.kld_median,
        "kld_p99": k.kld_p99,
        "kld_max": k.kld_max,
        "same_top_pct": k.same_top_pct,
        "ppl_ratio": k.ppl_ratio,
        "kld_n_scored": k.n_scored,
        "kld_corpus": k.corpus,
        "kld_reference_sha256": k.reference_sha256,
        "kld_corpus_sha256": k.corpus_sha256,
    }


def _ppl_block(runs: list[Run]) -> dict[str, Any]:
    for r in runs:
        p = r.result.perplexity
        if p is not None:
            return {"ppl": p.ppl, "ppl_se": p.ppl_se, "ppl_source": "perplexity", "ppl_corpus": p.corpus}
    for r in runs:
        k = r.result.kld
        if k is not None and not _is_responses(r):
            return {"ppl": k.ppl, "ppl_se": k.ppl_se, "ppl_source": "kld", "ppl_corpus": k.corpus}
    return {}


def _bench_block(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in runs:
        lm = r.result.lm_eval
        if lm is None:
            continue
        flips = lm.flips or {}
        for task, t in sorted(lm.tasks.items()):
            base = f"bench_{_slug(task)}"
            metric = _slug(t.metric or "score")
            out[f"{base}_{metric}"] = _float(t.value)
            out[f"{base}_stderr"] = _float(t.stderr)
            out[f"{base}_n"] = t.n
            f = flips.get(task)
            out[f"{base}_flips"] = f.n_flips if f is not None else None
    return out


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def memory_block(runs: list[Run]) -> dict[str, Any]:
    serving = [r for r in runs if r.result.task_kind in ("generation", "speed")] or runs
    rss = [r.result.memory.peak_rss_bytes for r in serving if r.result.memory.peak_rss_bytes]
    delta = [r.result.memory.peak_rss_delta_bytes for r in serving if r.result.memory.peak_rss_delta_bytes]
    gpu = [r.result.memory.gpu_memory_used_bytes for r in serving if r.result.memory.gpu_memory_used_bytes]
    kv = [r.result.memory.kv_cache_bytes for r in serving if r.result.memory.kv_cache_bytes]
    peak = max(rss) / GB if rss else None
    delta_gb = max(delta) / GB if delta else None
    gpu_gb = max(gpu) / GB if gpu else None
    host = delta_gb if delta_gb is not None else peak
    return {
        "peak_rss_gb": peak,
        "rss_delta_gb": delta_gb,
        "gpu_memory_gb": gpu_gb,
        "memory_gb": gpu_gb if gpu_gb is not None else host,
        "memory_source": "gpu" if gpu_gb is not None else ("rss delta" if delta_gb is not None else "peak rss"),
        "kv_cache_mb": max(kv) / 2**20 if kv else None,
    }


def build_rows(runs: list[Run], warnings: list[str]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        groups[row_key(r)].append(r)
    rows = []
    for key, group in groups.items():
        group = dedupe_tasks(group, warnings)
        first = _newest(group)
        m = first.result.model
        hw = first.result.hardware
        settings = row_settings(first)
        builds = sorted({r.result.backend.build or "?" for r in group})
        incomplete = [f"{r.result.task}:{r.result.status}" for r in group if r.result.status != "complete"]
        row: dict[str, Any] = {
            "model": m.name,
            "variant": m.variant,
            "family": m.family,
            "file_type": m.file_type,
            "qat": m.qat,
            "backend": first.result.backend.type,
            "settings": settings_label(settings),
            "settings_hash": key[3],
            "hardware": hw.label,
            "hardware_fingerprint": first.result.hardware_fingerprint,
            "device": first.result.backend.device,
            "backend_build": "; ".join(builds),
            "status": "complete" if not incomplete else "incomplete: " + ", ".join(incomplete),
            "size_gb": m.size_bytes / GB if m.size_bytes else None,
            "bits_per_weight": m.bits_per_weight,
            "model_sha256": m.sha256,
            "provenance": m.provenance,
        }
        mem = memory_block(group)
        mem.pop("memory_source")
        row.update(mem)
        row.update(_speed_block(group))
        row.update(_gen_block(group))
        row.update(_ppl_block(group))
        row.update(_kld_block(group))
        row.update(_kld_responses_block(group))
        row.update(_bench_block(group))
        row.update((c.name, c.value(group)) for c in COLUMNS if c.value is not None)
        rows.append(row)
    rows.sort(key=lambda r: (r["hardware"], r["family"] or "", r["model"], -(r["bits_per_weight"] or 0), r["variant"], r["settings"]))
    return rows


def to_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Every catalogue column in its order and type, the dynamic ones after their section."""
    order = schema(k for r in rows for k in r)
    data = {k: [r.get(k) for r in rows] for k in order}
    return pl.DataFrame(data, schema=order, strict=False)


def require_rows(rows: list[dict], warnings: list[str], roots: list[str]) -> None:
    if not rows:
        detail = f" ({len(warnings)} skipped; see the warnings above)" if warnings else ""
        raise ReportError(f"no complete runs with a valid results.json under {', '.join(roots)}{detail}")
