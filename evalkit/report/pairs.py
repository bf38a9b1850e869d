"""Pairwise comparison, the published QAT-versus-regular style, made statistically honest.

`--pair A=B` (model names, or name:variant): per prompt and in total, the A/B ratios of
throughput (chars/s), generation tokens/s, end-to-end time and output volume, each with a
small-sample 95% t interval on the log ratio (evalkit/metrics/bootstrap.py); where the interval
covers 1.0 the report says "not distinguishable from noise". Beside them, the quality rows
(evalkit/report/pair_quality.py): pass rates paired by prompt and seed, KLD, benchmark accuracy. Everything the two sides differ in besides the compared
factor is flagged as a confound: bit width, KV-cache types, sampling, backend, hardware,
llama.cpp build, backend settings, sample counts, prompt sets, truncation.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.metrics.bootstrap import INTERVAL, METRICS, Ratio, paired_ratios
from evalkit.report.pair_quality import QualityRow, generation_quality, kld_quality, lmeval_quality, print_quality
from evalkit.report.rows import dedupe_tasks, memory_block, row_key, row_settings
from evalkit.report.load import ReportError, Run, read_samples

METRIC_LABELS = {
    "chars_per_s": "throughput (chars/s)",
    "gen_tokens_per_s": "generation (tokens/s)",
    "total_s": "time (s)",
    "output_chars": "output (chars)",
}
NOISE = "not distinguishable from noise"


@dataclass(frozen=True)
class SideSpec:
    model: str
    variant: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model}:{self.variant}" if self.variant else self.model


def parse_pair(spec: str) -> tuple[SideSpec, SideSpec]:
    if spec.count("=") != 1:
        raise ReportError(f"--pair wants A=B (model names, or name:variant), got '{spec}'")
    sides = []
    for part in spec.split("="):
        part = part.strip()
        if not part:
            raise ReportError(f"--pair wants A=B (model names, or name:variant), got '{spec}'")
        name, _, variant = part.partition(":")
        sides.append(SideSpec(name, variant or None))
    return sides[0], sides[1]


@dataclass
class PairReport:
    a: str
    b: str
    task: str
    factor: str
    per_prompt: dict[str, dict[str, Ratio]]
    counts: dict[str, tuple[int, int]]
    total: dict[str, Ratio]
    confounds: list[str]
    memory: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    n_boot: int = 0
    seed: int = 0
    quality: list[QualityRow] = field(default_factory=list)

    def verdict(self, r: Ratio) -> str:
        if r.ratio is None:
            return "not measured"
        if r.covers_one is None:
            return r.note or "no interval"
        return NOISE if r.covers_one else "distinguishable"

    def to_dict(self) -> dict[str, Any]:
        def rd(r: Ratio) -> dict[str, Any]:
            return {"a": r.a, "b": r.b, "ratio": r.ratio, "ci95": [r.lo, r.hi], "verdict": self.verdict(r),
                    "df": r.df, "p": r.p, "detectable": r.mde}  # fmt: skip

        return {
            "a": self.a,
            "b": self.b,
            "task": self.task,
            "factor": self.factor,
            "interval": INTERVAL,
            "per_prompt": {
                p: {"n_a": self.counts[p][0], "n_b": self.counts[p][1], **{m: rd(v) for m, v in row.items()}}
                for p, row in self.per_prompt.items()
            },
            "total": {m: rd(v) for m, v in self.total.items()},
            "quality": [q.to_dict() for q in self.quality],
            "memory": self.memory,
            "confounds": self.confounds,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------


def nominal_bits(file_type: str | None, bpw: float | None) -> int | None:
    """8 for Q8_0, 4 for Q4_K_M / IQ4_XS / a QAT Q4_0, 16 for F16; else the rounded bpw."""
    ft = (file_type or "").upper()
    if ft in ("F16", "BF16"):
        return 16
    if ft == "F32":
        return 32
    m = re.match(r"^(?:UD-)?(?:I?Q|TQ)(\d)", ft)
    if m:
        return int(m.group(1))
    return round(bpw) if bpw else None


def _select(runs: list[Run], side: SideSpec) -> dict[tuple, list[Run]]:
    rows: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        m = r.result.model
        if m.name == side.model and (side.variant is None or m.variant.lower() == side.variant.lower()):
            rows[row_key(r)].append(r)
    return rows


def _describe(key: tuple, runs: list[Run]) -> str:
    r = runs[0]
    return f"{key[1]} on {r.result.hardware.label}, {r.result.backend.type} settings {key[3]}"


def _match_rows(runs: list[Run], a: SideSpec, b: SideSpec) -> list[tuple[list[Run], list[Run]]]:
    ra, rb = _select(runs, a), _select(runs, b)
    for side, rows in ((a, ra), (b, rb)):
        if not rows:
            known = sorted({f"{r.result.model.name}:{r.result.model.variant}" for r in runs})
            raise ReportError(f"--pair: no complete runs of '{side.label}'; have: {', '.join(known) or 'none'}")
    # Same variant-independent conditions (settings, hardware) first: those are fair pairs.
    pairs = []
    for ka, va in ra.items():
        same = [kb for kb in rb if kb[3:] == ka[3:]]
        if len(same) == 1:
            pairs.append((va, rb[same[0]]))
    if pairs:
        return pairs
    if len(ra) == 1 and len(rb) == 1:
        return [(next(iter(ra.values())), next(iter(rb.values())))]
    listing = "; ".join(
        f"{s.label}: " + ", ".join(_describe(k, v) for k, v in rows.items()) for s, rows in ((a, ra), (b, rb))
    )
    raise ReportError(f"--pair {a.label}={b.label} is ambiguous ({listing}); name a variant as name:variant")


def _matrix(records) -> dict[str, np.ndarray]:
    by_prompt: dict[str, list[list[float]]] = defaultdict(list)
    for s in records:
        gen_ok = s.generation_s and (s.completion_tokens or 0) > 1
        by_prompt[s.prompt_id].append(
            [
                float(s.chars),
                float(s.total_s or 0.0),
                float((s.completion_tokens or 0) - 1) if gen_ok else 0.0,
                float(s.generation_s) if gen_ok else 0.0,
            ]
        )
    return {p: np.asarray(v, float) for p, v in by_prompt.items()}


def _sampling_diff(sa, sb) -> list[str]:
    da = {json.dumps(s.sampling, sort_keys=True) for s in sa}
    db = {json.dumps(s.sampling, sort_keys=True) for s in sb}
    if da == db:
        return []
    ka = {k: v for d in da for k, v in json.loads(d).items()}
    kb = {k: v for d in db for k, v in json.loads(d).items()}
    keys = sorted(k for k in set(ka) | set(kb) if ka.get(k) != kb.get(k)) or ["per-sample values"]
    return [f"{k} {ka.get(k)!r} vs {kb.get(k)!r}" for k in keys]


def confounds(a: Run, b: Run, sa, sb, counts: dict[str, tuple[int, int]]) -> tuple[str, list[str]]:
    """(the factor compared, everything else the two sides differ in)."""
    ma, mb = a.result.model, b.result.model
    flags: list[str] = []
    same_family = (ma.family or ma.name) == (mb.family or mb.name)
    if ma.qat != mb.qat:
        factor = "QAT vs post-training quantization" if ma.qat else "post-training quantization vs QAT"
    elif same_family:
        factor = f"quantization ({ma.variant} vs {mb.variant})"
    else:
        factor = f"model ({ma.name} vs {mb.name})"
    bits_a, bits_b = nominal_bits(ma.file_type, ma.bits_per_weight), nominal_bits(mb.file_type, mb.bits_per_weight)
    if bits_a != bits_b and not factor.startswith("quantization ("):
        flags.append(
            f"bit width: {bits_a}-bit {ma.file_type} ({ma.bits_per_weight or 0:.2f} bpw) vs {bits_b}-bit "
            f"{mb.file_type} ({mb.bits_per_weight or 0:.2f} bpw): the ratios measure bit width too, not only {factor.split(' (')[0]}"
        )
    if not same_family:
        flags.append(f"model family: {ma.family} vs {mb.family}")
    sa_set, sb_set = a.result.backend.settings, b.result.backend.settings
    kv = [k for k in ("type_k", "type_v") if sa_set.get(k) != sb_set.get(k)]
    if kv:
        flags.append("KV-cache types: " + ", ".join(f"{k} {sa_set.get(k)} vs {sb_set.get(k)}" for k in kv))
    samp = _sampling_diff(sa, sb)
    if samp:
        flags.append("sampling: " + "; ".join(samp))
    if a.result.backend.type != b.result.backend.type:
        flags.append(f"backend: {a.result.backend.type} vs {b.result.backend.type}")
    if a.result.hardware_fingerprint != b.result.hardware_fingerprint:
        flags.append(f"hardware: {a.result.hardware.label} vs {b.result.hardware.label}")
    if a.result.backend.build != b.result.backend.build:
        flags.append(f"llama.cpp build: {a.result.backend.build} vs {b.result.backend.build}")
    if a.result.backend.flavour != b.result.backend.flavour:  # cpu / cuda / metal ... build of llama.cpp
        flags.append(f"llama.cpp flavour: {a.result.backend.flavour} vs {b.result.backend.flavour}")
    if a.result.backend.device != b.result.backend.device:
        flags.append(f"device: {a.result.backend.device} vs {b.result.backend.device}")
    other = sorted(
        k for k in set(sa_set) | set(sb_set) if k not in ("type_k", "type_v") and sa_set.get(k) != sb_set.get(k)
    )
    if other:
        flags.append("backend settings: " + ", ".join(f"{k} {sa_set.get(k)} vs {sb_set.get(k)}" for k in other))
    cfg_a, cfg_b = row_settings(a), row_settings(b)
    if a.result.backend.chat_template != b.result.backend.chat_template:
        flags.append(f"chat template: {a.result.backend.chat_template} vs {b.result.backend.chat_template}")
    elif cfg_a.get("chat_template") != cfg_b.get("chat_template"):
        flags.append("chat template setting differs")
    if a.result.task_sha256 != b.result.task_sha256:
        flags.append("task file differs (the prompts may be worded differently)")
    uneven = {p: c for p, c in counts.items() if c[0] != c[1]}
    if uneven:
        flags.append(
            "sample counts: " + ", ".join(f"{p} {na} vs {nb}" for p, (na, nb) in sorted(uneven.items()))
        )
    trunc_a = sum(1 for s in sa if s.finish_reason == "length")
    trunc_b = sum(1 for s in sb if s.finish_reason == "length")
    if trunc_a or trunc_b:
        flags.append(
            f"truncated outputs: {trunc_a} of {len(sa)} vs {trunc_b} of {len(sb)} stopped at the length limit "
            "(token cap or full context: time and volume ratios are capped)"
        )
    if counts and max(min(c) for c in counts.values()) < 2:
        flags.append("one sample per prompt: no noise estimate is possible (use task.samples>=2, better >=5)")
    return factor, flags


def _memory(a_rows: list[Run], b_rows: list[Run]) -> dict[str, Any]:
    ma, mb = memory_block(a_rows), memory_block(b_rows)
    size_a, size_b = a_rows[0].result.model.size_bytes, b_rows[0].result.model.size_bytes
    out: dict[str, Any] = {
        "size_gb_a": size_a / 1e9 if size_a else None,
        "size_gb_b": size_b / 1e9 if size_b else None,
        "memory_gb_a": ma["memory_gb"],
        "memory_gb_b": mb["memory_gb"],
        "memory_source": ma["memory_source"],
    }
    for k in ("size_gb", "memory_gb"):
        va, vb = out[f"{k}_a"], out[f"{k}_b"]
        out[f"{k}_saved"] = vb - va if va is not None and vb is not None else None
        out[f"{k}_saved_pct"] = 100 * (vb - va) / vb if va is not None and vb else None
    return out


def build_pairs(
    runs: list[Run], spec: str, warnings: list[str], *, n_boot: int = 2000, seed: int = 0
) -> list[PairReport]:
    a_spec, b_spec = parse_pair(spec)
    reports: list[PairReport] = []
    for a_runs, b_runs in _match_rows(runs, a_spec, b_spec):
        a_runs = dedupe_tasks(a_runs, warnings)
        b_runs = dedupe_tasks(b_runs, warnings)
        ga = {r.result.task: r for r in a_runs if r.result.generation}
        gb = {r.result.task: r for r in b_runs if r.result.generation}
        common = sorted(set(ga) & set(gb))
        if not common:
            raise ReportError(
                f"--pair {spec}: no generation task in common (A has {', '.join(ga) or 'none'}, "
                f"B has {', '.join(gb) or 'none'})"
            )
        for task in common:
            ra, rb = ga[task], gb[task]
            sa, sb = read_samples(ra), read_samples(rb)
            for run, s in ((ra, sa), (rb, sb)):
                if s.broken_lines:
                    warnings.append(f"{run.dir / 'samples.jsonl'}: skipped {s.broken_lines} broken line(s) (a killed writer's)")
            xa, xb = _matrix(sa.records), _matrix(sb.records)
            notes = []
            only = sorted(set(xa) ^ set(xb))
            if only:
                notes.append(f"prompts on one side only, left out: {', '.join(only)}")
            common_p = sorted(set(xa) & set(xb))
            if not common_p:
                raise ReportError(f"--pair {spec}: task '{task}' has no prompt with samples on both sides")
            counts = {p: (len(xa[p]), len(xb[p])) for p in common_p}
            per_prompt, total = paired_ratios(xa, xb, n_boot=n_boot, seed=seed)
            used_a = [s for s in sa.records if s.prompt_id in counts]
            used_b = [s for s in sb.records if s.prompt_id in counts]
            factor, flags = confounds(ra, rb, used_a, used_b, counts)
            if only:
                flags.append(f"prompt sets differ ({len(only)} prompt(s) on one side only)")
            quality, qnotes = generation_quality(used_a, used_b)
            if task == common[0]:  # kld and benchmark rows once per pair of rows, with its first task
                for extra in (kld_quality(a_runs, b_runs), lmeval_quality(a_runs, b_runs)):
                    quality += extra[0]
                    qnotes += extra[1]
            notes += qnotes
            reports.append(
                PairReport(
                    a=f"{ra.result.model.name}:{ra.result.model.variant}",
                    b=f"{rb.result.model.name}:{rb.result.model.variant}",
                    task=task,
                    factor=factor,
                    per_prompt=per_prompt,
                    counts=counts,
                    total=total,
                    confounds=flags,
                    memory=_memory(a_runs, b_runs),
                    notes=notes,
                    n_boot=n_boot,
                    seed=seed,
                    quality=quality,
                )
            )
    return reports


def pair_rows(report: PairReport) -> list[dict[str, Any]]:
    """Flat rows for a CSV: one per speed ratio (per prompt and total) and one per quality row."""
    head = {"a": report.a, "b": report.b, "task": report.task, "factor": report.factor,
            "confounds": "; ".join(report.confounds)}  # fmt: skip
    out = []
    for scope, row in [*report.per_prompt.items(), ("total", report.total)]:
        for m, r in row.items():
            out.append({**head, "kind": "speed", "scope": scope, "metric": m, "a_value": r.a, "b_value": r.b,
                        "effect": r.ratio, "effect_unit": "ratio A/B", "ci_low": r.lo, "ci_high": r.hi, "p": r.p,
                        "test": "t on log ratio" if r.lo is not None else None, "detectable": r.mde,
                        "n": None, "a_only": None, "b_only": None, "verdict": report.verdict(r)})  # fmt: skip
    for q in report.quality:
        out.append({**head, "kind": "quality", "scope": "total", "metric": q.metric, "a_value": q.a, "b_value": q.b,
                    "effect": q.diff, "effect_unit": "A - B (share)" if q.unit == "pts" else "A - B (nats)",
                    "ci_low": q.lo, "ci_high": q.hi, "p": q.p, "test": q.test, "detectable": q.mde, "n": q.n,
                    "a_only": q.a_only, "b_only": q.b_only, "verdict": q.verdict})  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# Text


def fmt_ratio(r: Ratio) -> str:
    if r.ratio is None:
        return "-"
    text = f"{r.ratio:.2f}x"
    if r.lo is not None and r.hi is not None:
        text += f" [{r.lo:.2f}-{r.hi:.2f}]"
        if r.covers_one:
            text += " noise"
    elif r.note:
        text += " (no CI)"
    return text


def fmt_detectable(r: Ratio) -> str:
    """'detectable ±12%': the smallest ratio change found 80% of the time at this n and noise."""
    return f"detectable ±{100 * r.mde:.0f}%" if r.mde is not None else ""


def _val(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if metric == "output_chars" else f"{v:.1f}" if metric != "total_s" else f"{v:.2f}"


def memory_lines(mem: dict[str, Any]) -> list[str]:
    """'A saves x GB (y%)' or 'A needs x GB (y%) more' for memory and file size."""
    lines = []
    for key, label in (("memory_gb", f"memory ({mem.get('memory_source')})"), ("size_gb", "file size")):
        saved = mem.get(f"{key}_saved")
        if saved is None:
            continue
        pct = mem.get(f"{key}_saved_pct") or 0.0
        how = f"A saves {saved:.2f} GB ({pct:.0f}%)" if saved >= 0 else f"A needs {-saved:.2f} GB ({-pct:.0f}%) more"
        lines.append(f"{label}: A {mem[f'{key}_a']:.2f} GB vs B {mem[f'{key}_b']:.2f} GB: {how}")
    return lines


def print_pair(report: PairReport, console) -> None:
    from evalkit.report.tables import pair_table

    table, dropped = pair_table(report, console.width)  # whole cells; what does not fit is named
    console.print(table)
    if dropped:
        console.print(f"not shown (too wide for {console.width} columns): {', '.join(dropped)}; "
                      "--width N, --json or --html show them", markup=False)  # fmt: skip
    for m in METRICS:
        r = report.total[m]
        if r.ratio is not None:
            ci = f" [{r.lo:.2f}-{r.hi:.2f}]" if r.lo is not None else ""
            det = f" ({fmt_detectable(r)})" if r.mde is not None else ""
            console.print(f"total {METRIC_LABELS[m]}: A/B {r.ratio:.2f}x{ci}: {report.verdict(r)}{det}", markup=False)
    print_quality(report.quality, console)
    for line in memory_lines(report.memory):
        console.print(line, markup=False)
    if report.confounds:
        console.print("[bold yellow]confounds[/] (the two sides differ in more than the factor compared):")
        for c in report.confounds:
            console.print(f"  - {c}", markup=False)
    else:
        console.print("confounds: none found (same bit width, KV cache, sampling, backend, hardware, build, counts)")
    for n in report.notes:
        console.print(f"note: {n}", markup=False)
