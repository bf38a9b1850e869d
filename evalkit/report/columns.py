"""The leaderboard's column catalogue: one entry per column says everything about it.

An entry holds the column's name, type, unit, meaning, how its cells are written and which views show it
(the compact terminal table, the wide one, the HTML summary table; every column is in the CSV,
parquet and JSON rows). Everything that lists columns reads this catalogue: the row frame's order
and types, the terminal and HTML tables, the HTML column reference and docs/leaderboard.md, whose
column reference is generated from it (`python -m evalkit.report.columns --update docs/leaderboard.md`)
and checked against it by a test. Adding a column is one entry here; a column whose value is a
function of the row's runs gives that function as `value` and needs nothing else.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import polars as pl

if TYPE_CHECKING:
    from evalkit.report.load import Run

S, F, I, B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean
TYPE_NAMES = {S: "text", F: "float", I: "int", B: "bool"}

# The views a column can be shown in, besides the files (which hold every column).
COMPACT, WIDE, SUMMARY = "compact", "wide", "summary"


# --------------------------------------------------------------------------------------------
# Cell formatters: one per kind of number; a column names its own.


def number(v: float) -> str:
    """Three significant digits below 1, two decimals up to 100, whole numbers above."""
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def share(v: float) -> str:
    """A share in 0..1 as a whole percentage."""
    return f"{100 * v:.0f}%"


def precise(v: float) -> str:
    """Four significant digits: KLD figures span decades and differ in the third."""
    return f"{v:.4g}"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Any
    doc: str
    fmt: Callable[[float], str] = number  # how a float cell is written (tables and HTML)
    unit: str = ""  # GB are 10^9 bytes; share: 0..1
    header: str | None = None  # the terminal table's header (default: the name with spaces)
    show: tuple[str, ...] = ()  # views besides the files: COMPACT, WIDE, SUMMARY
    at: int = 0  # position in those views (they order columns for reading, not as the files do)
    keep: int | None = None  # compact terminal table: when too wide, the highest `keep` is dropped first
    value: Callable[[list[Run]], Any] | None = None  # the cell from the row's runs (else a row block sets it)


@dataclass(frozen=True)
class Family:
    """A set of dynamic columns (one per check, lm-eval task or category), documented as a pattern."""

    pattern: str  # e.g. check_<check>_strict
    dtype: Any
    doc: str
    fmt: Callable[[float], str] = number
    unit: str = ""

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("".join(".+" if p.startswith("<") else re.escape(p) for p in re.split(r"(<[^>]+>)", self.pattern)) + "$")


@dataclass(frozen=True)
class Section:
    title: str
    columns: list[Column]
    families: list[Family]  # dynamic columns placed after this section's fixed ones


_c = Column
_VIEWS = (COMPACT, WIDE, SUMMARY)

IDENTITY = [
    _c("model", S, "model config name (conf/model/<name>.yaml)", show=_VIEWS, at=10, keep=2),
    _c("variant", S, "ladder type (`model.quant`) or the file's own type", show=_VIEWS, at=20, keep=1),
    _c("family", S, "model family: variants of the same weights share it"),
    _c("file_type", S, "GGUF file type (Q8_0, Q4_K, ...)"),
    _c("qat", B, "quantization-aware-trained weights"),
    _c("backend", S, "backend type (llama_cpp, openai, llama_server)"),
    _c("settings", S, "backend settings that differ from the defaults (the row's settings)", show=_VIEWS, at=30, keep=14),
    _c("settings_hash", S, "hash of the backend settings that define the row (n_ctx and seeds excluded)"),
    _c("hardware", S, "CPU (cores) + GPU of the machine class", show=(SUMMARY,), at=35),
    _c("hardware_fingerprint", S, "hash of CPU model, core count, memory size and GPUs"),
    _c("device", S, "where the model ran (CPU or the GPU's name)"),
    _c("backend_build", S, "llama.cpp / server build"),
    _c("status", S, "complete, or which runs were not (only with --include-incomplete)"),
    _c("tasks", S, "the task runs merged into this row", value=lambda runs: "+".join(sorted(r.result.task for r in runs))),
]  # fmt: skip
FRONTIER = [
    _c("quality_metric", S, "the column the frontier and recommendation judge quality by"),
    _c("speed_metric", S, "the column used as speed"),
    _c("memory_metric", S, "the column used as memory"),
    _c("frontier_group", S, "rows compared with each other: same hardware and comparable quality"),
    _c("pareto_speed", B, "on the quality-vs-speed frontier of its group (null: not measured)", header="front",
       show=(WIDE, SUMMARY), at=200),
    _c("pareto_memory", B, "on the quality-vs-memory frontier of its group (null: not measured)", header="front mem",
       show=(WIDE, SUMMARY), at=210),
    _c("recommended", B, "the recommendation for its group under the given budgets", header="rec", show=_VIEWS,
       at=220, keep=8),
]  # fmt: skip
MEMORY = [
    _c("size_gb", F, "GGUF file size, 10^9 bytes", header="size GB", show=(WIDE, SUMMARY), at=40, keep=12, unit="GB"),
    _c("bits_per_weight", F, "8 x file bytes / parameter count", header="bpw", show=(WIDE, SUMMARY), at=50, unit="bits"),
    _c("peak_rss_gb", F, "highest peak resident set of the row's generation and speed runs (any run if none); "
       "in a multirun sweep it includes what earlier jobs of the same process left behind", unit="GB"),
    _c("rss_delta_gb", F, "peak resident set minus the process's resident set before the model was loaded: what "
       "this variant needed (weights touched, KV cache, compute buffers)", unit="GB"),
    _c("gpu_memory_gb", F, "highest GPU memory held by the process (NVML); null on CPU", unit="GB"),
    _c("memory_gb", F, "gpu_memory_gb when a GPU was used, else rss_delta_gb (else peak_rss_gb)", header="mem GB",
       show=_VIEWS, at=60, keep=7, unit="GB"),
    _c("kv_cache_mb", F, "KV cache as llama.cpp allocated it (MiB) in the row's generation/speed runs", unit="MiB"),
]  # fmt: skip
SPEED = [
    _c("pp_test", S, "the prompt-processing test shown (pp512 when run)"),
    _c("pp_tokens_per_s", F, "prompt processing tokens/s, mean over repetitions (task=speed)", header="pp tok/s",
       show=_VIEWS, at=70, keep=9, unit="tok/s"),
    _c("pp_tokens_per_s_sd", F, "standard deviation of pp_tokens_per_s", unit="tok/s"),
    _c("tg_test", S, "the generation test shown (tg128 when run)"),
    _c("tg_tokens_per_s", F, "generation tokens/s, mean over repetitions (task=speed)", header="tg tok/s",
       show=_VIEWS, at=80, keep=3, unit="tok/s"),
    _c("tg_tokens_per_s_sd", F, "standard deviation of tg_tokens_per_s", unit="tok/s"),
    _c("speed_repetitions", I, "repetitions per speed test"),
]  # fmt: skip
GENERATION = [
    _c("gen_tasks", S, "generation suites pooled into the gen_* columns, with prompts x samples"),
    _c("sampling", S, "sampling settings of those suites"),
    _c("gen_samples", I, "completed generations", header="n gen", show=(WIDE, SUMMARY), at=190),
    _c("gen_failed", I, "failed generations (not in any rate)"),
    _c("gen_truncated", I, "generations stopped by the token cap or the context"),
    _c("ttft_s", F, "time to first token, mean over generations (s)", header="ttft s", show=(WIDE, SUMMARY), at=110, unit="s"),
    _c("ttft_s_sd", F, "standard deviation of ttft_s", unit="s"),
    _c("prompt_tokens_per_s", F, "prompt tokens/s within generations, mean", unit="tok/s"),
    _c("gen_tokens_per_s", F, "generation tokens/s per generation (first to last token), mean", header="gen tok/s",
       show=(WIDE, SUMMARY), at=90, keep=4, unit="tok/s"),
    _c("gen_tokens_per_s_sd", F, "standard deviation of gen_tokens_per_s", unit="tok/s"),
    _c("gen_tokens_per_s_total", F, "all generated tokens / all generation seconds", unit="tok/s"),
    _c("chars_per_s", F, "output characters / end-to-end seconds per generation, mean", header="chars/s",
       show=(WIDE, SUMMARY), at=100, unit="chars/s"),
    _c("chars_per_s_sd", F, "standard deviation of chars_per_s", unit="chars/s"),
    _c("chars_per_s_total", F, "all output characters / all end-to-end seconds", unit="chars/s"),
    _c("gen_total_s", F, "sum of end-to-end seconds of all generations", unit="s"),
    _c("output_chars_mean", F, "output volume: characters per generation, mean", header="chars", show=(WIDE, SUMMARY),
       at=140, unit="chars"),
    _c("output_chars_total", I, "output volume: characters, all generations", unit="chars"),
    _c("output_tokens_mean", F, "generated tokens per generation, mean", unit="tokens"),
    _c("acceptance_rate", F, "speculative decoding: accepted / drafted tokens", unit="share"),
    _c("spec_speedup", F, "speculative decoding: generation tokens/s with it / without it, same variant", unit="ratio"),
    _c("pass_strict", F, "share of checked generations passing every check (strict)", fmt=share, header="strict",
       show=_VIEWS, at=120, keep=6, unit="share"),
    _c("pass_loose", F, "the same, loose mode (stray first/last line and markup forgiven)", fmt=share, header="loose",
       show=(WIDE, SUMMARY), at=130, unit="share"),
    _c("pass_n", I, "generations the pass rates are over"),
]  # fmt: skip
QUALITY = [
    _c("ppl", F, "perplexity (task=perplexity, else the kld run's own)", show=(WIDE, SUMMARY), at=150, keep=13),
    _c("ppl_se", F, "its standard error"),
    _c("ppl_source", S, "perplexity or kld"),
    _c("ppl_corpus", S, "corpus the perplexity is over"),
    _c("kld_reference", S, "the reference variant of the KLD figures"),
    _c("kld_mean", F, "mean KL divergence to the reference (nats/token)", fmt=precise, header="KLD", show=_VIEWS,
       at=160, keep=5, unit="nats/token"),
    _c("kld_se", F, "its standard error", fmt=precise, unit="nats/token"),
    _c("kld_median", F, "median KLD", fmt=precise, unit="nats/token"),
    _c("kld_p99", F, "99th percentile KLD", fmt=precise, header="KLD p99", show=_VIEWS, at=170, keep=10, unit="nats/token"),
    _c("kld_max", F, "maximum KLD", fmt=precise, unit="nats/token"),
    _c("same_top_pct", F, "share of positions where the reference's and the variant's top token agree (%)",
       header="top %", show=_VIEWS, at=180, keep=11, unit="%"),
    _c("ppl_ratio", F, "PPL(variant) / PPL(reference)", fmt=precise, unit="ratio"),
    _c("kld_n_scored", I, "scored tokens", unit="tokens"),
    _c("kld_corpus", S, "corpus the KLD is over"),
    _c("kld_reference_sha256", S, "reference file hash (frontier groups never mix references)"),
    _c("kld_corpus_sha256", S, "corpus hash"),
    _c("kld_resp_task", S, "KLD on a task's own prompts (task.corpus=responses:<task>): the task"),
    _c("kld_resp_reference", S, "the reference variant whose answers were scored"),
    _c("kld_resp_mean", F, "mean KLD over the reference's answer tokens (nats/token)", fmt=precise, unit="nats/token"),
    _c("kld_resp_se", F, "its standard error, clustered by prompt", fmt=precise, unit="nats/token"),
    _c("kld_resp_p99", F, "99th percentile KLD over the answer tokens", fmt=precise, unit="nats/token"),
    _c("kld_resp_same_top_pct", F, "share of answer tokens where the top tokens agree (%)", fmt=precise, unit="%"),
    _c("kld_resp_n_scored", I, "scored answer tokens", unit="tokens"),
    _c("kld_resp_reference_sha256", S, "reference file hash of the answers (frontier groups never mix references)"),
    _c("kld_resp_corpus_sha256", S, "hash of the answers' key (task file, seeds, sampling, cap, settings)"),
]  # fmt: skip
PROVENANCE = [
    _c("model_sha256", S, "sha256 of the GGUF file"),
    _c("provenance", S, "where the weights come from (a ladder build says what it was built from)"),
    _c("runs", I, "runs merged into the row", value=len),
    _c("run_dirs", S, "their directories, relative to the outputs tree",
       value=lambda runs: "; ".join(sorted(r.rel for r in runs))),
]  # fmt: skip

CHECKS = [
    Family("check_<check>_strict", F, "per-check pass rate (strict) over the pooled generations", fmt=share, unit="share"),
    Family("check_<check>_loose", F, "per-check pass rate (loose)", fmt=share, unit="share"),
]
BENCH = [
    Family("bench_<task>_stderr", F, "its standard error"),
    Family("bench_<task>_n", I, "items scored"),
    Family("bench_<task>_flips", I, "items answered differently from the reference run (null without one)"),
    Family("bench_<task>_<metric>", F, "lm-eval score of that task (e.g. bench_arc_easy_acc)"),
]
RESP_CATEGORIES = [
    Family("kld_resp_cat_<category>", F, "KLD on a task's own prompts: mean over that category's answer tokens",
           fmt=precise, unit="nats/token"),
]  # fmt: skip

SECTIONS = [
    Section("Identity", IDENTITY, []),
    Section("Frontier", FRONTIER, []),
    Section("Size and memory", MEMORY, []),
    Section("Speed (task=speed, llama-bench's method)", SPEED, []),
    Section("Generation (stress, constraints, your own suites)", GENERATION, CHECKS),
    Section("Reference-based quality (task=perplexity, task=kld)", QUALITY, BENCH + RESP_CATEGORIES),
    Section("Provenance", PROVENANCE, []),
]
COLUMNS: list[Column] = [c for s in SECTIONS for c in s.columns]
FAMILIES: list[Family] = [f for s in SECTIONS for f in s.families]
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
FAMILIES_TITLE = "Per check and per benchmark (one set per check / lm-eval task)"
# The families in the order docs/leaderboard.md and the HTML column reference list them.
DOC_FAMILIES: list[Family] = [CHECKS[0], CHECKS[1], BENCH[3], BENCH[0], BENCH[1], BENCH[2], *RESP_CATEGORIES]


def family_of(name: str) -> Family | None:
    return next((f for f in FAMILIES if f.regex.match(name)), None)


def slug(text: str) -> str:
    """A check, task or category name as part of a column name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "x"


# --------------------------------------------------------------------------------------------
# Views


def view(name: str) -> list[str]:
    """The columns a view shows, in its order."""
    return [c.name for c in sorted((c for c in COLUMNS if name in c.show), key=lambda c: c.at)]


def keep_order() -> list[str]:
    """The compact terminal table's columns by how long they are kept when it is too wide."""
    return [c.name for c in sorted((c for c in COLUMNS if c.keep is not None), key=lambda c: c.keep)]


def header(name: str) -> str:
    c = BY_NAME.get(name)
    return c.header if c is not None and c.header else name.replace("_", " ")


def format_cell(v: Any, name: str) -> str:
    """One cell as the terminal and HTML tables write it, for any column (fixed or dynamic)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "✔" if v else ""
    if isinstance(v, float):
        c = BY_NAME.get(name) or family_of(name)
        return (c.fmt if c is not None else number)(v)
    return str(v)


# --------------------------------------------------------------------------------------------
# Files: order and types


def schema(names: Iterable[str]) -> dict[str, Any]:
    """Frame order and types for these column names: each section's fixed columns, then its
    dynamic ones (per-check after generation; per-benchmark, then per-category and any other
    after quality)."""
    names = set(names)
    dynamic = sorted(n for n in names if n not in BY_NAME)
    out: dict[str, Any] = {}
    for s in SECTIONS:
        out.update((c.name, c.dtype) for c in s.columns)
        if s.families is CHECKS:  # strict before loose, per check
            mine = sorted((n for n in dynamic if family_of(n) in CHECKS),
                          key=lambda k: (k.rsplit("_", 1)[0], not k.endswith("_strict")))  # fmt: skip
        elif s.families:
            bench = [n for n in dynamic if family_of(n) in BENCH]
            mine = bench + [n for n in dynamic if n not in bench and family_of(n) not in CHECKS]
        else:
            continue
        out.update((n, _dynamic_dtype(n)) for n in mine)
    return out


def _dynamic_dtype(name: str) -> Any:
    f = family_of(name)
    if f is not None:
        return f.dtype
    return I if name.endswith(("_n", "_flips")) else F


# --------------------------------------------------------------------------------------------
# Documentation


def reference() -> list[tuple[str, str]]:
    """(column or pattern, meaning) for every column: the HTML page's column reference."""
    return [(c.name, c.doc) for c in COLUMNS] + [(f.pattern, f.doc) for f in DOC_FAMILIES]


def markdown() -> str:
    """docs/leaderboard.md's column reference, one table per section."""
    head = "| column | type | unit | meaning |\n| --- | --- | --- | --- |\n"
    parts = []
    for s in SECTIONS:
        rows = "".join(f"| `{c.name}` | {TYPE_NAMES[c.dtype]} | {c.unit} | {c.doc} |\n" for c in s.columns)
        parts.append(f"#### {s.title}\n\n{head}{rows}")
    rows = "".join(f"| `{f.pattern}` | {TYPE_NAMES[f.dtype]} | {f.unit} | {f.doc} |\n" for f in DOC_FAMILIES)
    parts.append(f"#### {FAMILIES_TITLE}\n\n{head}{rows}")
    return "\n".join(parts)


BEGIN = "<!-- columns: generated by `python -m evalkit.report.columns --update docs/leaderboard.md` -->"
END = "<!-- end of columns -->"


def documented(text: str) -> str:
    """The generated part of a document: between BEGIN and END."""
    if BEGIN not in text or END not in text:
        return ""
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def update(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"evalkit: error: {path} has no {BEGIN} ... {END} block")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    path.write_text(f"{before}{BEGIN}\n\n{markdown()}\n{END}{after}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"] and len(sys.argv) == 3:
        update(Path(sys.argv[2]))
    else:
        print(markdown(), end="")
