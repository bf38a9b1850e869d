"""The leaderboard: one row per (model, variant, backend settings, hardware), every task merged.

Runs of different task kinds of the same variant (generation suites, kld, perplexity, speed,
lm_eval) become one row. Runs on different hardware classes are different rows: nothing is ever
averaged across machines. Within a row, generation runs of different suites are pooled (their
names are in `gen_tasks`); two runs of the *same* task in one row (e.g. two token caps) cannot
both be shown, so the newest wins and a warning names the other.

The column list below is the documentation: docs/leaderboard.md is checked against it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import polars as pl

from evalkit.metrics.pareto import pareto_flags
from evalkit.records import stable_hash
from evalkit.report.load import ReportError, Run

GB = 1e9


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Any
    doc: str


def _c(name: str, dtype: Any, doc: str) -> Column:
    return Column(name, dtype, doc)


S, F, I, B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean

IDENTITY = [
    _c("model", S, "model config name (conf/model/<name>.yaml)"),
    _c("variant", S, "ladder type (`model.quant`) or the file's own type"),
    _c("family", S, "model family: variants of the same weights share it"),
    _c("file_type", S, "GGUF file type (Q8_0, Q4_K, ...)"),
    _c("qat", B, "quantization-aware-trained weights"),
    _c("backend", S, "backend type (llama_cpp, openai, llama_server)"),
    _c("settings", S, "backend settings that differ from the defaults (the row's settings)"),
    _c("settings_hash", S, "hash of the backend settings that define the row (n_ctx and seeds excluded)"),
    _c("hardware", S, "CPU (cores) + GPU of the machine class"),
    _c("hardware_fingerprint", S, "hash of CPU model, core count, memory size and GPUs"),
    _c("device", S, "where the model ran (CPU or the GPU's name)"),
    _c("backend_build", S, "llama.cpp / server build"),
    _c("status", S, "complete, or which runs were not (only with --include-incomplete)"),
    _c("tasks", S, "the task runs merged into this row"),
]
FRONTIER = [
    _c("quality_metric", S, "the column the frontier and recommendation judge quality by"),
    _c("speed_metric", S, "the column used as speed"),
    _c("memory_metric", S, "the column used as memory"),
    _c("frontier_group", S, "rows compared with each other: same hardware and comparable quality"),
    _c("pareto_speed", B, "on the quality-vs-speed frontier of its group (null: not measured)"),
    _c("pareto_memory", B, "on the quality-vs-memory frontier of its group (null: not measured)"),
    _c("recommended", B, "the recommendation for its group under the given budgets"),
]
MEMORY = [
    _c("size_gb", F, "GGUF file size, 10^9 bytes"),
    _c("bits_per_weight", F, "8 x file bytes / parameter count"),
    _c("peak_rss_gb", F, "highest peak resident set of the row's generation and speed runs (any run if none); "
       "in a multirun sweep it includes what earlier jobs of the same process left behind"),
    _c("rss_delta_gb", F, "peak resident set minus the process's resident set before the model was loaded: what "
       "this variant needed (weights touched, KV cache, compute buffers)"),
    _c("gpu_memory_gb", F, "highest GPU memory held by the process (NVML); null on CPU"),
    _c("memory_gb", F, "gpu_memory_gb when a GPU was used, else rss_delta_gb (else peak_rss_gb)"),
    _c("kv_cache_mb", F, "KV cache as llama.cpp allocated it (MiB) in the row's generation/speed runs"),
]
SPEED = [
    _c("pp_test", S, "the prompt-processing test shown (pp512 when run)"),
    _c("pp_tokens_per_s", F, "prompt processing tokens/s, mean over repetitions (task=speed)"),
    _c("pp_tokens_per_s_sd", F, "standard deviation of pp_tokens_per_s"),
    _c("tg_test", S, "the generation test shown (tg128 when run)"),
    _c("tg_tokens_per_s", F, "generation tokens/s, mean over repetitions (task=speed)"),
    _c("tg_tokens_per_s_sd", F, "standard deviation of tg_tokens_per_s"),
    _c("speed_repetitions", I, "repetitions per speed test"),
]
GENERATION = [
    _c("gen_tasks", S, "generation suites pooled into the gen_* columns, with prompts x samples"),
    _c("sampling", S, "sampling settings of those suites"),
    _c("gen_samples", I, "completed generations"),
    _c("gen_failed", I, "failed generations (not in any rate)"),
    _c("gen_truncated", I, "generations stopped by the token cap or the context"),
    _c("ttft_s", F, "time to first token, mean over generations (s)"),
    _c("ttft_s_sd", F, "standard deviation of ttft_s"),
    _c("prompt_tokens_per_s", F, "prompt tokens/s within generations, mean"),
    _c("gen_tokens_per_s", F, "generation tokens/s per generation (first to last token), mean"),
    _c("gen_tokens_per_s_sd", F, "standard deviation of gen_tokens_per_s"),
    _c("gen_tokens_per_s_total", F, "all generated tokens / all generation seconds"),
    _c("chars_per_s", F, "output characters / end-to-end seconds per generation, mean"),
    _c("chars_per_s_sd", F, "standard deviation of chars_per_s"),
    _c("chars_per_s_total", F, "all output characters / all end-to-end seconds"),
    _c("gen_total_s", F, "sum of end-to-end seconds of all generations"),
    _c("output_chars_mean", F, "output volume: characters per generation, mean"),
    _c("output_chars_total", I, "output volume: characters, all generations"),
    _c("output_tokens_mean", F, "generated tokens per generation, mean"),
    _c("acceptance_rate", F, "speculative decoding: accepted / drafted tokens"),
    _c("spec_speedup", F, "speculative decoding: generation tokens/s with it / without it, same variant"),
    _c("pass_strict", F, "share of checked generations passing every check (strict)"),
    _c("pass_loose", F, "the same, loose mode (stray first/last line and markup forgiven)"),
    _c("pass_n", I, "generations the pass rates are over"),
]
QUALITY = [
    _c("ppl", F, "perplexity (task=perplexity, else the kld run's own)"),
    _c("ppl_se", F, "its standard error"),
    _c("ppl_source", S, "perplexity or kld"),
    _c("ppl_corpus", S, "corpus the perplexity is over"),
    _c("kld_reference", S, "the reference variant of the KLD figures"),
    _c("kld_mean", F, "mean KL divergence to the reference (nats/token)"),
    _c("kld_se", F, "its standard error"),
    _c("kld_median", F, "median KLD"),
    _c("kld_p99", F, "99th percentile KLD"),
    _c("kld_max", F, "maximum KLD"),
    _c("same_top_pct", F, "share of positions where the reference's and the variant's top token agree (%)"),
    _c("ppl_ratio", F, "PPL(variant) / PPL(reference)"),
    _c("kld_n_scored", I, "scored tokens"),
    _c("kld_corpus", S, "corpus the KLD is over"),
    _c("kld_reference_sha256", S, "reference file hash (frontier groups never mix references)"),
    _c("kld_corpus_sha256", S, "corpus hash"),
    _c("kld_resp_task", S, "KLD on a task's own prompts (task.corpus=responses:<task>): the task"),
    _c("kld_resp_reference", S, "the reference variant whose answers were scored"),
    _c("kld_resp_mean", F, "mean KLD over the reference's answer tokens (nats/token)"),
    _c("kld_resp_se", F, "its standard error, clustered by prompt"),
    _c("kld_resp_p99", F, "99th percentile KLD over the answer tokens"),
    _c("kld_resp_same_top_pct", F, "share of answer tokens where the top tokens agree (%)"),
    _c("kld_resp_n_scored", I, "scored answer tokens"),
    _c("kld_resp_reference_sha256", S, "reference file hash of the answers (frontier groups never mix references)"),
    _c("kld_resp_corpus_sha256", S, "hash of the answers' key (task file, seeds, sampling, cap, settings)"),
]
PROVENANCE = [
    _c("model_sha256", S, "sha256 of the GGUF file"),
    _c("provenance", S, "where the weights come from (a ladder build says what it was built from)"),
    _c("runs", I, "runs merged into the row"),
    _c("run_dirs", S, "their directories, relative to the outputs tree"),
]
COLUMNS: list[Column] = IDENTITY + FRONTIER + MEMORY + SPEED + GENERATION + QUALITY + PROVENANCE

# Dynamic columns, one set per check / per lm-eval task (documented as patterns).
DYNAMIC_DOCS = {
    "check_<check>_strict": "per-check pass rate (strict) over the pooled generations",
    "check_<check>_loose": "per-check pass rate (loose)",
    "bench_<task>_<metric>": "lm-eval score of that task (e.g. bench_arc_easy_acc)",
    "bench_<task>_stderr": "its standard error",
    "bench_<task>_n": "items scored",
    "bench_<task>_flips": "items answered differently from the reference run (null without one)",
    "kld_resp_cat_<category>": "KLD on a task's own prompts: mean over that category's answer tokens",
}

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
    backend = dict((run.data.get("config") or {}).get("backend") or {})
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


def _pool(stats: Iterable[dict | None]) -> tuple[float | None, float | None, int]:
    """Combine (mean, sd, n) groups into one mean and sample sd, exactly."""
    groups = [(s["mean"], s["sd"] or 0.0, s["n"]) for s in stats if s and s.get("mean") is not None and s.get("n")]
    n = sum(g[2] for g in groups)
    if not n:
        return None, None, 0
    mean = sum(m * k for m, _, k in groups) / n
    if n < 2:
        return mean, 0.0, n
    ss = sum((k - 1) * sd**2 + k * (m - mean) ** 2 for m, sd, k in groups)
    return mean, math.sqrt(ss / (n - 1)), n


def _first_sampling(run: Run) -> str | None:
    path = run.dir / "samples.jsonl"
    if not path.exists():
        return None
    import json

    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                s = json.loads(line).get("sampling")
            except ValueError:
                continue
            if isinstance(s, dict):
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
    return None


def _gen_block(runs: list[Run]) -> dict[str, Any]:
    gens = [(r, r.data["generation"]) for r in runs if r.data.get("generation")]
    if not gens:
        return {}
    out: dict[str, Any] = {}
    labels, samplings = [], []
    for r, g in gens:
        n_samples = (r.data.get("config") or {}).get("task", {}).get("samples")
        labels.append(f"{r.result.task}({g['n_prompts']}p x{n_samples or '?'})")
        s = _first_sampling(r)
        if s and s not in samplings:
            samplings.append(s)
    out["gen_tasks"] = "+".join(labels)
    out["sampling"] = "; ".join(samplings) or None
    out["gen_samples"] = sum(g["n_samples"] for _, g in gens)
    out["gen_failed"] = sum(g["n_failed"] for _, g in gens)
    out["gen_truncated"] = sum(g["n_truncated"] for _, g in gens)
    for col, key in (("ttft_s", "ttft_s"), ("gen_tokens_per_s", "gen_tokens_per_s"), ("chars_per_s", "chars_per_s")):
        mean, sd, _ = _pool(g[key] for _, g in gens)
        out[col], out[f"{col}_sd"] = mean, sd
    out["prompt_tokens_per_s"] = _pool(g["prompt_tokens_per_s"] for _, g in gens)[0]
    gen_s = sum(g["total_generation_s"] or 0.0 for _, g in gens)
    agg = [(g["gen_tokens_per_s_aggregate"], g["total_generation_s"]) for _, g in gens if g.get("gen_tokens_per_s_aggregate")]
    out["gen_tokens_per_s_total"] = (sum(a * s for a, s in agg) / sum(s for _, s in agg)) if agg and gen_s else None
    total_s = sum(g["total_s"] or 0.0 for _, g in gens)
    chars = sum(g["total_chars"] for _, g in gens)
    n = out["gen_samples"]
    out["chars_per_s_total"] = chars / total_s if total_s else None
    out["gen_total_s"] = total_s
    out["output_chars_total"] = chars
    out["output_chars_mean"] = chars / n if n else None
    out["output_tokens_mean"] = sum(g["total_completion_tokens"] for _, g in gens) / n if n else None
    drafted = sum(g.get("drafted_tokens") or 0 for _, g in gens)
    accepted = sum(g.get("accepted_tokens") or 0 for _, g in gens)
    out["acceptance_rate"] = accepted / drafted if drafted else None
    speedups = [(r.data.get("speculative") or {}).get("speedup") for r, _ in gens]
    out["spec_speedup"] = next((s for s in speedups if s is not None), None)

    strict = loose = weight = 0.0
    for _, g in gens:
        for p in g["per_prompt"].values():
            if p.get("pass_rate_strict") is not None and p.get("n"):
                strict += p["pass_rate_strict"] * p["n"]
                loose += (p.get("pass_rate_loose") or 0.0) * p["n"]
                weight += p["n"]
    out["pass_strict"] = strict / weight if weight else None
    out["pass_loose"] = loose / weight if weight else None
    out["pass_n"] = int(weight)
    checks: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for _, g in gens:
        for name, c in g["per_check"].items():
            checks[name].append((c["strict"], c["loose"], c["n"]))
    for name, parts in sorted(checks.items()):
        n_c = sum(k for _, _, k in parts)
        slug = _slug(name)
        out[f"check_{slug}_strict"] = sum(s * k for s, _, k in parts) / n_c if n_c else None
        out[f"check_{slug}_loose"] = sum(lo * k for _, lo, k in parts) / n_c if n_c else None
    return out


def _pick_test(tests: list[dict], kind: str) -> dict | None:
    if kind == "pp":
        cands = [t for t in tests if (t.get("n_gen") or 0) == 0 and (t.get("n_prompt") or 0) > 0]
        preferred = "pp512"
    else:
        cands = [t for t in tests if (t.get("n_prompt") or 0) == 0 and (t.get("n_gen") or 0) > 0]
        preferred = "tg128"
    if not cands:
        return None
    cands.sort(key=lambda t: ((t.get("depth") or 0) != 0, t.get("name") != preferred))
    return cands[0]


def _speed_block(runs: list[Run]) -> dict[str, Any]:
    tests: list[dict] = []
    for r in runs:
        speed = r.data.get("speed") or {}
        tests.extend(t for t in speed.get("tests") or [] if isinstance(t, dict))
    out: dict[str, Any] = {}
    for kind in ("pp", "tg"):
        t = _pick_test(tests, kind)
        if t:
            out[f"{kind}_test"] = t.get("name")
            out[f"{kind}_tokens_per_s"] = t.get("tokens_per_s_mean")
            out[f"{kind}_tokens_per_s_sd"] = t.get("tokens_per_s_sd")
            out["speed_repetitions"] = t.get("repetitions")
    return out


def _is_responses(r: Run) -> bool:
    return bool((r.data.get("kld") or {}).get("responses"))


def _kld_responses_block(runs: list[Run]) -> dict[str, Any]:
    """task.corpus=responses:<task>: overall columns, then one `kld_resp_cat_<category>` each."""
    klds = [r for r in runs if _is_responses(r)]
    if not klds:
        return {}
    k = klds[0].data["kld"]
    resp = k["responses"]
    overall = dict(
        kld_resp_task=resp.get("task"),
        kld_resp_reference=k.get("reference"),
        kld_resp_mean=k.get("kld_mean"),
        kld_resp_se=k.get("kld_se_clustered"),
        kld_resp_p99=k.get("kld_p99"),
        kld_resp_same_top_pct=k.get("same_top_pct"),
        kld_resp_n_scored=k.get("n_scored"),
        kld_resp_reference_sha256=k.get("reference_sha256"),
        kld_resp_corpus_sha256=k.get("corpus_sha256"),
    )
    for c in resp.get("categories") or []:
        overall[f"kld_resp_cat_{_slug(c.get('category'))}"] = _float(c.get("kld_mean"))
    return overall


def _kld_block(runs: list[Run]) -> dict[str, Any]:
    klds = [r for r in runs if r.data.get("kld") and not _is_responses(r)]
    if not klds:
        return {}
    k = klds[0].data["kld"]
    return {
        "kld_reference": k.get("reference"),
        "kld_mean": k.get("kld_mean"),
        "kld_se": k.get("kld_se"),
        "kld_median": k.get("kld_median"),
        "kld_p99": k.get("kld_p99"),
        "kld_max": k.get("kld_max"),
        "same_top_pct": k.get("same_top_pct"),
        "ppl_ratio": k.get("ppl_ratio"),
        "kld_n_scored": k.get("n_scored"),
        "kld_corpus": k.get("corpus"),
        "kld_reference_sha256": k.get("reference_sha256"),
        "kld_corpus_sha256": k.get("corpus_sha256"),
    }


def _ppl_block(runs: list[Run]) -> dict[str, Any]:
    for r in runs:
        p = r.data.get("perplexity")
        if p and p.get("ppl") is not None:
            return {"ppl": p["ppl"], "ppl_se": p.get("ppl_se"), "ppl_source": "perplexity", "ppl_corpus": p.get("corpus")}
    for r in runs:
        k = r.data.get("kld")
        if k and k.get("ppl") is not None and not _is_responses(r):
            return {"ppl": k["ppl"], "ppl_se": k.get("ppl_se"), "ppl_source": "kld", "ppl_corpus": k.get("corpus")}
    return {}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "x"


def _bench_block(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in runs:
        lm = r.data.get("lm_eval") or {}
        flips = lm.get("flips") or {}
        for task, t in sorted((lm.get("tasks") or {}).items()):
            if not isinstance(t, dict):
                continue
            base = f"bench_{_slug(task)}"
            metric = _slug(t.get("metric") or "score")
            out[f"{base}_{metric}"] = _float(t.get("value"))
            out[f"{base}_stderr"] = _float(t.get("stderr"))
            out[f"{base}_n"] = t.get("n")
            f = flips.get(task)
            out[f"{base}_flips"] = f.get("n_flips") if isinstance(f, dict) else None
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
            "tasks": "+".join(sorted(r.result.task for r in group)),
            "size_gb": m.size_bytes / GB if m.size_bytes else None,
            "bits_per_weight": m.bits_per_weight,
            "model_sha256": m.sha256,
            "provenance": m.provenance,
            "runs": len(group),
            "run_dirs": "; ".join(sorted(r.rel for r in group)),
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
        rows.append(row)
    rows.sort(key=lambda r: (r["hardware"], r["family"] or "", r["model"], -(r["bits_per_weight"] or 0), r["variant"], r["settings"]))
    return rows


def to_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Fixed columns in documented order and type, then the dynamic ones after their section."""
    fixed = {c.name: c.dtype for c in COLUMNS}
    dynamic = sorted({k for r in rows for k in r if k not in fixed})
    checks = sorted((k for k in dynamic if k.startswith("check_")), key=lambda k: (k.rsplit("_", 1)[0], not k.endswith("_strict")))
    bench = [k for k in dynamic if k.startswith("bench_")]
    other = [k for k in dynamic if k not in checks and k not in bench]
    order = (
        [c.name for c in IDENTITY + FRONTIER + MEMORY + SPEED + GENERATION]
        + checks
        + [c.name for c in QUALITY]
        + bench
        + other
        + [c.name for c in PROVENANCE]
    )
    schema: dict[str, Any] = {}
    for k in order:
        if k in fixed:
            schema[k] = fixed[k]
        elif k.endswith("_n") or k.endswith("_flips"):
            schema[k] = I
        else:
            schema[k] = F
    data = {k: [r.get(k) for r in rows] for k in order}
    return pl.DataFrame(data, schema=schema, strict=False)


# --------------------------------------------------------------------------------------------
# Frontier and recommendation
# --------------------------------------------------------------------------------------------

# name -> (column, larger is better)
QUALITY_METRICS: dict[str, tuple[str, bool]] = {
    "kld": ("kld_mean", False),
    "kld_resp": ("kld_resp_mean", False),  # KLD on a task's own answers (responses:<task>)
    "pass_strict": ("pass_strict", True),
    "pass_loose": ("pass_loose", True),
    "ppl": ("ppl", False),
    "same_top": ("same_top_pct", True),
}
SPEED_METRICS = {"tg": "tg_tokens_per_s", "gen": "gen_tokens_per_s", "chars": "chars_per_s", "pp": "pp_tokens_per_s"}
MEMORY_METRICS = {"peak": "memory_gb", "size": "size_gb"}


@dataclass
class Recommendation:
    group: str
    row: dict[str, Any] | None
    reason: str
    excluded: list[str] = field(default_factory=list)


@dataclass
class Frontier:
    frame: pl.DataFrame
    quality: str | None  # column
    recommendations: list[Recommendation]
    notes: list[str]


def _quality_column(df: pl.DataFrame, quality: str) -> tuple[str | None, bool]:
    def has(col: str) -> bool:
        return col in df.columns and df[col].drop_nulls().len() > 0

    if quality == "auto":
        for name in ("kld", "pass_strict", "ppl"):
            col, up = QUALITY_METRICS[name]
            if has(col):
                return col, up
        return None, True
    if quality.startswith("bench:"):
        prefix = f"bench_{_slug(quality.split(':', 1)[1])}_"
        cols = [c for c in df.columns if c.startswith(prefix) and not c.endswith(("_stderr", "_n", "_flips"))]
        if not cols:
            raise ReportError(f"no benchmark column for '{quality}' in these runs")
        return cols[0], True
    if quality not in QUALITY_METRICS:
        raise ReportError(
            f"unknown quality metric '{quality}'; use auto, {', '.join(QUALITY_METRICS)} or bench:<task>"
        )
    col, up = QUALITY_METRICS[quality]
    if not has(col):
        raise ReportError(f"no run measured {col} (quality metric '{quality}')")
    return col, up


def _group_key(row: dict, qcol: str) -> str:
    parts = [row["hardware_fingerprint"]]
    if qcol.startswith("kld_resp"):
        parts += [str(row.get("kld_resp_reference_sha256") or "")[:8], str(row.get("kld_resp_corpus_sha256") or "")[:8]]
    elif qcol.startswith("kld") or qcol in ("same_top_pct",):
        parts += [str(row.get("kld_reference_sha256") or "")[:8], str(row.get("kld_corpus_sha256") or "")[:8]]
    elif qcol.startswith("pass"):
        parts += [stable_hash([row.get("gen_tasks"), row.get("sampling")], 8)]
    elif qcol == "ppl":
        parts += [str(row.get("ppl_corpus") or "")]
    return "/".join(parts)


def group_title(row: dict, qcol: str | None) -> str:
    """What the rows of a frontier group have in common, in words."""
    base = str(row.get("hardware"))
    if not qcol:
        return base
    if qcol.startswith("kld_resp"):
        return f"{base} · KLD against {row.get('kld_resp_reference') or '?'} on its answers to {row.get('kld_resp_task') or '?'}"
    if qcol.startswith("kld") or qcol == "same_top_pct":
        return f"{base} · KLD against {row.get('kld_reference') or '?'} on {row.get('kld_corpus') or '?'}"
    if qcol.startswith("pass"):
        return f"{base} · pass rates over {row.get('gen_tasks')} with {row.get('sampling') or '?'}"
    if qcol == "ppl":
        return f"{base} · perplexity on {row.get('ppl_corpus') or '?'}"
    return base


def _choose(rows: list[dict], choice: str, table: dict[str, str], order: list[str]) -> str:
    if choice != "auto":
        if choice not in table:
            raise ReportError(f"unknown metric '{choice}'; use auto or one of {', '.join(table)}")
        return table[choice]
    best, best_n = table[order[0]], -1
    for name in order:
        n = sum(1 for r in rows if r.get(table[name]) is not None)
        if n == len(rows):
            return table[name]
        if n > best_n:
            best, best_n = table[name], n
    return best


def frontier(
    df: pl.DataFrame,
    *,
    quality: str = "auto",
    speed: str = "auto",
    memory: str = "auto",
    max_kld: float | None = None,
    min_pass_rate: float | None = None,
    max_memory_gb: float | None = None,
) -> Frontier:
    """Pareto flags per comparable group, and the fastest row within the budgets per group."""
    qcol, up = _quality_column(df, quality)
    rows = df.to_dicts()
    notes: list[str] = []
    recs: list[Recommendation] = []
    for r in rows:
        r.update(quality_metric=qcol, speed_metric=None, memory_metric=None, frontier_group=None,
                 pareto_speed=None, pareto_memory=None, recommended=False)  # fmt: skip
    if qcol is None:
        notes.append("no quality metric measured (kld, constraint pass rate or perplexity): no frontier")
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_group_key(r, qcol or "")].append(r)
    for gkey, members in groups.items():
        scol = _choose(members, speed, SPEED_METRICS, ["tg", "gen", "chars"])
        mcol = _choose(members, memory, MEMORY_METRICS, ["peak", "size"])
        for r in members:
            r.update(speed_metric=scol, memory_metric=mcol, frontier_group=gkey)
        if qcol is not None:
            q = [r.get(qcol) for r in members]
            fs = pareto_flags([r.get(scol) for r in members], q, maximize_x=True, maximize_y=up)
            fm = pareto_flags([r.get(mcol) for r in members], q, maximize_x=False, maximize_y=up)
            for r, a, b in zip(members, fs, fm):
                r["pareto_speed"], r["pareto_memory"] = a, b
        recs.append(_recommend(gkey, members, scol, mcol, max_kld, min_pass_rate, max_memory_gb))
    out = to_frame(rows)
    return Frontier(out, qcol, recs, notes)


def _name(r: dict) -> str:
    return f"{r['model']}:{r['variant']}" + ("" if r["settings"] == r["backend"] else f" [{r['settings']}]")


def _recommend(gkey, members, scol, mcol, max_kld, min_pass, max_mem) -> Recommendation:
    budgets = []
    if max_kld is not None:
        budgets.append(f"kld_mean <= {max_kld:g}")
    if min_pass is not None:
        budgets.append(f"pass_strict >= {min_pass:g}")
    if max_mem is not None:
        budgets.append(f"{mcol} <= {max_mem:g} GB")
    ok, excluded = [], []
    for r in members:
        why = None
        if r.get("status") != "complete":
            why = "incomplete"
        elif r.get(scol) is None:
            why = f"no {scol}"
        elif max_kld is not None and r.get("kld_mean") is None:
            why = "no KLD measured"
        elif max_kld is not None and r["kld_mean"] > max_kld:
            why = f"KLD {r['kld_mean']:.4g} > {max_kld:g}"
        elif min_pass is not None and r.get("pass_strict") is None:
            why = "no pass rate measured"
        elif min_pass is not None and r["pass_strict"] < min_pass:
            why = f"pass rate {r['pass_strict']:.0%} < {min_pass:.0%}"
        elif max_mem is not None and r.get(mcol) is None:
            why = f"no {mcol}"
        elif max_mem is not None and r[mcol] > max_mem:
            why = f"{mcol} {r[mcol]:.2f} > {max_mem:g} GB"
        if why:
            excluded.append(f"{_name(r)} ({why})")
        else:
            ok.append(r)
    hw = members[0]["hardware"]
    if not ok:
        return Recommendation(gkey, None, f"on {hw}: no variant meets {' and '.join(budgets) or 'the budgets'}", excluded)
    ok.sort(key=lambda r: -r[scol])
    best = ok[0]
    best["recommended"] = True
    if budgets:
        reason = f"on {hw}: {_name(best)} is the fastest ({best[scol]:.1f} {scol}) of {len(ok)} variant(s) within {' and '.join(budgets)}"
    else:
        reason = (
            f"on {hw}: {_name(best)} is the fastest ({best[scol]:.1f} {scol}) of {len(ok)} variant(s); no budget "
            "was given, so quality was not weighed (pass --max-kld, --min-pass-rate or --max-memory-gb)"
        )
    qbits = [f"kld_mean {best['kld_mean']:.4g}" if best.get("kld_mean") is not None else None,
             f"pass_strict {best['pass_strict']:.0%}" if best.get("pass_strict") is not None else None,
             f"{mcol} {best[mcol]:.2f} GB" if best.get(mcol) is not None else None]  # fmt: skip
    extras = [q for q in qbits if q]
    if extras:
        reason += "; it has " + ", ".join(extras)
    if len(ok) > 1:
        reason += f"; next: {_name(ok[1])} at {ok[1][scol]:.1f}"
    return Recommendation(gkey, best, reason, excluded)


def require_rows(rows: list[dict], warnings: list[str], roots: list[str]) -> None:
    if not rows:
        detail = f" ({len(warnings)} skipped; see the warnings above)" if warnings else ""
        raise ReportError(f"no complete runs with a valid results.json under {', '.join(roots)}{detail}")
