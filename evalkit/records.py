"""Records: the only interface between running and reporting.

Everything the leaderboard shows comes from these files: `samples.jsonl` (one line per
generation, appended and flushed as it completes) and `results.json` (the validated summary).
Units are in the field names.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, Field, ValidationError

from evalkit.backends.base import BackendInfo
from evalkit.hardware import HardwareInfo

SCHEMA_VERSION = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stable_hash(data: Any, n: int = 16) -> str:
    """Hash of JSON-able data, independent of key order."""
    raw = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:n]


class ModelRecord(BaseModel):
    name: str
    family: str | None = None
    variant: str
    sha256: str | None = None  # None for a remote server's model
    size_bytes: int | None = None
    bits_per_weight: float | None = None
    file_type: str | None = None
    architecture: str | None = None
    parameter_count: int | None = None
    context_length: int | None = None
    n_vocab: int | None = None
    qat: bool = False
    provenance: str | None = None
    path: str | None = None
    base_sha256: str | None = None


class CheckOutcome(BaseModel):
    check: str
    params: dict[str, Any]
    passed: bool  # strict
    value: Any = None
    reason: str
    passed_loose: bool


class SampleRecord(BaseModel):
    """One generation, with its timings and check results."""

    schema_version: int = SCHEMA_VERSION
    key: str  # resume key: model sha256, output settings, task file, prompt, index, seed
    run_id: str
    created_at: str
    task: str
    model: str
    variant: str
    model_sha256: str | None
    backend: str
    prompt_id: str
    category: str
    sample_index: int
    seed: int
    sampling: dict[str, Any]
    prompt: str
    output: str
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    chars: int
    ttft_s: float | None = None
    prompt_eval_s: float | None = None
    generation_s: float | None = None
    total_s: float | None = None
    prompt_tokens_per_s: float | None = None
    gen_tokens_per_s: float | None = None
    chars_per_s: float | None = None
    drafted_tokens: int | None = None
    accepted_tokens: int | None = None
    acceptance_rate: float | None = None
    server_model: str | None = None
    server_timings: dict[str, Any] | None = None
    checks: list[CheckOutcome] = Field(default_factory=list)
    passed_strict: bool | None = None  # all checks passed (None: the prompt has no checks)
    passed_loose: bool | None = None
    error: str | None = None  # set when the sample failed; such a sample is retried on resume


class MemoryRecord(BaseModel):
    file_size_bytes: int | None = None
    bits_per_weight: float | None = None
    rss_baseline_bytes: int | None = None  # before the model was loaded
    peak_rss_bytes: int | None = None
    peak_rss_delta_bytes: int | None = None  # peak minus baseline
    kv_cache_bytes: int | None = None  # as llama.cpp allocated it for this context
    compute_buffer_bytes: int | None = None
    gpu_memory_used_bytes: int | None = None  # NVML, when a GPU is in use; null on CPU


class Stat(BaseModel):
    """Mean and sample standard deviation of a measurement over n values."""

    mean: float | None = None
    sd: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values: list[float | None]) -> "Stat":
        xs = [float(v) for v in values if v is not None]
        if not xs:
            return cls()
        mean = sum(xs) / len(xs)
        sd = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
        return cls(mean=mean, sd=sd, n=len(xs))


class CheckRate(BaseModel):
    strict: float
    loose: float
    n: int


class PromptSummary(BaseModel):
    category: str
    n: int
    n_failed: int = 0
    pass_rate_strict: float | None = None
    pass_rate_loose: float | None = None
    mean_chars: float | None = None
    mean_completion_tokens: float | None = None
    gen_tokens_per_s: Stat = Stat()
    chars_per_s: Stat = Stat()
    total_s: Stat = Stat()


class GenerationSummary(BaseModel):
    n_prompts: int
    n_samples: int  # completed (not failed)
    n_failed: int
    n_truncated: int  # stopped by a token cap or the context, not by the model
    pass_rate_strict: float | None
    pass_rate_loose: float | None
    per_check: dict[str, CheckRate]
    per_prompt: dict[str, PromptSummary]
    total_chars: int
    total_completion_tokens: int
    total_prompt_tokens: int
    total_generation_s: float
    total_s: float  # sum of per-sample end-to-end seconds
    ttft_s: Stat
    prompt_tokens_per_s: Stat
    gen_tokens_per_s: Stat
    chars_per_s: Stat
    gen_tokens_per_s_aggregate: float | None  # all generated tokens / all generation seconds
    drafted_tokens: int | None = None
    accepted_tokens: int | None = None
    acceptance_rate: float | None = None
    concurrency: int = 1


class RunResult(BaseModel):
    """results.json: one run of one task on one model variant with one backend."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: str  # "complete" | "interrupted" | "failed"
    message: str | None = None
    created_at: str
    finished_at: str | None = None
    evalkit_version: str
    task: str
    task_kind: str
    task_file: str | None = None
    task_sha256: str | None = None
    model: ModelRecord
    backend: BackendInfo
    hardware: HardwareInfo
    hardware_fingerprint: str
    memory: MemoryRecord = MemoryRecord()
    config: dict[str, Any]  # the validated run config (no secrets: keys live in env vars)
    wall_s: float | None = None
    generation: GenerationSummary | None = None
    # Filled by the task kinds that produce them (perplexity/kld, speed, lm_eval):
    perplexity: dict[str, Any] | None = None
    kld: dict[str, Any] | None = None
    speed: dict[str, Any] | None = None
    lm_eval: dict[str, Any] | None = None

    def write(self, out_dir: Path) -> Path:
        path = out_dir / "results.json"
        tmp = out_dir / ".results.json.tmp"
        tmp.write_text(self.model_dump_json(indent=2))
        os.replace(tmp, path)
        return path


class SampleStore:
    """samples.jsonl: append-only, flushed per line, safe to resume after kill -9.

    A line cut short by a killed process is dropped on open (and the file rewritten without it),
    so an appended record never lands on the tail of a broken one.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.records: list[SampleRecord] = []
        self.dropped_lines = 0
        self._load()
        self._fh = path.open("a", encoding="utf-8")

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good: list[str] = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                self.records.append(SampleRecord.model_validate_json(line))
                good.append(line)
            except (ValidationError, ValueError):
                self.dropped_lines += 1
        if self.dropped_lines or (raw and not raw.endswith(b"\n")):
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text("".join(g + "\n" for g in good), encoding="utf-8")
            os.replace(tmp, self.path)

    def done_keys(self) -> set[str]:
        return {r.key for r in self.records if r.error is None}

    def append(self, record: SampleRecord) -> None:
        line = record.model_dump_json()
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            self.records.append(record)

    def latest(self) -> list[SampleRecord]:
        """One record per key: the newest success, else the newest failure."""
        best: dict[str, SampleRecord] = {}
        for r in self.records:
            prev = best.get(r.key)
            if prev is None or r.error is None or prev.error is not None:
                best[r.key] = r
        return list(best.values())

    def close(self) -> None:
        self._fh.close()


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Lines of a JSONL file that parse; broken ones (a killed writer's tail) are skipped."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue
