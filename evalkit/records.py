"""Records: the only interface between running and reporting.

Everything the leaderboard shows comes from these files: `samples.jsonl` (one line per
generation, appended and flushed as it completes), `results.json` (the validated summary) and
`items.jsonl` (lm_eval's scored documents). Units are in the field names. Each file type has one
reader here (`read_samples`, `read_result`, `read_items`); an older results.json or sample line is
upgraded to the current schema on read (`upgrade_result`, `upgrade_sample`), never skipped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from pydantic_core import PydanticCustomError

from evalkit.hardware import HardwareInfo

# 2: status / finish_reason / task_kind are closed sets, a speculative block accounts for every
# differing pair (n_identical_outputs + n_numerics_explained + n_unexplained + n_unchecked == n_pairs).
# 1 is read and upgraded (MIGRATIONS below); a file from a newer evalkit is refused in one line.
SCHEMA_VERSION = 2
OLDEST_SCHEMA_VERSION = 1

SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
ITEMS_FILE = "items.jsonl"

# Every value evalkit writes in these fields; a new one is added here, once.
Status = Literal["complete", "interrupted", "failed"]
FinishReason = Literal["stop", "length", "error"]  # "error": the sample failed (see `error`)
Verdict = Literal["numerics", "unexplained", "unchecked"]  # Divergence.verdict (evalkit.divergence)


def _registered_kind(name: str) -> str:
    """A kind is registered by its own runner module (evalkit.kinds), so its name is checked there
    when a record is validated; importing this module imports no runner."""
    from evalkit.kinds import kinds

    known = sorted(kinds())
    if name in known:
        return name
    *rest, last = [repr(k) for k in known]
    expected = f"{', '.join(rest)} or {last}" if rest else last
    raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})


# The name of a registered task kind (evalkit.kinds.kinds()), like a Literal over them all.
TaskKind = Annotated[str, AfterValidator(_registered_kind)]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stable_hash(data: Any, n: int = 16) -> str:
    """Hash of JSON-able data, independent of key order."""
    raw = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:n]


class BackendInfo(BaseModel):
    """results.json `backend`: what the backend is and every setting that can change speed or outputs."""

    type: str
    build: str | None = None  # llama.cpp / server version
    device: str | None = None  # "CPU" or GPU name
    gpu_offload: bool = False
    # The llama.cpp build: "cpu", "cuda", "metal", ... (evalkit.llama_build); None: a remote server.
    flavour: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)  # speed-relevant settings
    output_settings: dict[str, Any] = Field(default_factory=dict)  # outputs depend on these
    chat_template: str | None = None  # "gguf", "none", or the server's
    extra: dict[str, Any] = Field(default_factory=dict)


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
    # Set for synthetic random-weight models: a plain statement that the scores mean nothing.
    synthetic: str | None = None


class CheckOutcome(BaseModel):
    check: str
    params: dict[str, Any]
    passed: bool  # strict
    value: Any = None
    reason: str
    passed_loose: bool
    spans: list[tuple[int, int]] | None = None  # failing [start, end) offsets in the output, when located


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
    finish_reason: FinishReason
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
    # Remote backends: where the token counts come from ("usage": the server's count, "chunks":
    # counted stream chunks, "timings": llama-server's timings) and how many attempts it took.
    token_counts: str | None = None
    attempts: int | None = None
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
    # Speculative decoding with a draft or MTP model: what that second model adds.
    draft_file_size_bytes: int | None = None
    draft_model_buffer_bytes: int | None = None
    draft_kv_cache_bytes: int | None = None  # 0 for an MTP drafter: it reads the target's
    draft_compute_buffer_bytes: int | None = None


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
        from evalkit.metrics.moments import mean, sample_sd

        return cls(mean=mean(xs), sd=sample_sd(xs), n=len(xs))


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


class ScoringTiming(BaseModel):
    """Where the seconds of a corpus-scoring pass went (model load and tokenization excluded)."""

    scoring_s: float  # decode + logits processing
    decode_s: float  # llama.cpp (synchronized)
    process_s: float  # evalkit's numpy work on the logits
    tokens_per_s: float  # scored tokens / scoring_s
    chunk_s_mean: float | None = None


class ScoredCorpus(BaseModel):
    """What a corpus-scoring pass scored: the same tokens make perplexity and KLD comparable."""

    n_scored: int
    n_chunks: int
    corpus: str
    corpus_description: str
    corpus_sha256: str
    corpus_tokens: int
    n_ctx: int
    add_bos: bool


class PerplexitySummary(ScoredCorpus):
    """task=perplexity: llama-perplexity's method on one variant."""

    ppl: float
    ppl_se: float  # PPL * sigma(nll) / sqrt(N - 1), as llama-perplexity prints it
    ppl_se_clustered: float | None = None  # positions clustered by chunk
    nll_mean: float
    nll_se: float
    timing: ScoringTiming


class KldCacheInfo(BaseModel):
    path: str
    bytes: int
    bytes_per_token: float
    built: bool  # this run built it (False: reused)
    build_s: float | None = None
    rebuilt_because: str | None = None  # an existing file was rejected (corrupt, mismatched)


class KldPromptStats(BaseModel):
    """task.corpus=responses:<task>: one prompt's reference answer, scored on its answer tokens."""

    id: str
    category: str
    seed: int  # the seed the reference answer was sampled with
    prompt_tokens: int  # chat-templated prompt, as the reference tokenized it
    answer_tokens: int  # scored tokens: the reference's answer (its end-of-generation token included)
    finish: FinishReason  # "stop" (the reference ended it) | "length" (cut at task.answer_max_tokens)
    kld_mean: float
    kld_p99: float
    kld_max: float
    same_top_pct: float
    ln_ppl_ratio_mean: float  # mean of nll(candidate) - nll(reference) over the answer tokens


class KldGroupStats(BaseModel):
    """Answer tokens of every prompt of one category (or of all prompts), pooled."""

    category: str
    n_prompts: int
    n_scored: int
    kld_mean: float
    kld_se_clustered: float | None = None  # clustered by prompt (None with one prompt)
    kld_p99: float
    same_top_pct: float
    ln_ppl_ratio_mean: float


class KldResponses(BaseModel):
    """KLD on a generation task's own prompts: the reference answers once, every candidate is
    scored on the reference's exact token ids (prompt + answer), on the answer tokens only."""

    task: str  # the task file as named (stress, constraints, a path)
    task_sha256: str
    sampling: dict[str, Any]  # what the reference answers were sampled with
    answer_max_tokens: int | None  # cap on each reference answer (None: the task's own)
    chat_template: bool
    system_prompt: str | None = None
    scored: str = "answer tokens only (rows predicting the reference's answer tokens, EOG included)"
    prompts: list[KldPromptStats]
    categories: list[KldGroupStats]


class KldSummary(ScoredCorpus):
    """task=kld: a candidate against its reference on the same tokens (llama-perplexity's figures)."""

    reference: str  # human label: model, variant and provenance
    reference_model: str
    reference_variant: str
    reference_sha256: str
    reference_provenance: str
    ppl: float
    ppl_se: float
    ppl_ref: float
    ppl_ref_se: float
    ppl_ratio: float
    ppl_ratio_se: float
    ln_ppl_ratio_mean: float
    ln_ppl_ratio_se: float
    ln_ppl_ratio_se_clustered: float | None = None
    kld_mean: float
    kld_se: float
    kld_se_clustered: float | None = None
    kld_median: float
    kld_p90: float
    kld_p95: float
    kld_p99: float
    kld_p999: float
    kld_max: float
    # The per-token KLD distribution, compact: KLD at each level of KLD_QUANTILE_LEVELS (report plots it).
    kld_quantile_levels: list[float] | None = None
    kld_quantiles: list[float] | None = None
    same_top_pct: float
    same_top_se_pct: float
    same_top_se_clustered_pct: float | None = None
    dp_mean: float  # q(t) - p(t) for the actual next token t
    dp_se: float
    dp_rms: float
    dp_rms_se: float
    dp_max_abs: float
    top_k: int  # reference log-probs kept per token (exact mode keeps them all besides)
    tail_samples: int  # tokens sampled from the reference's tail per token (unbiased tail KLD)
    exact: bool
    cache: KldCacheInfo
    timing: ScoringTiming
    responses: KldResponses | None = None  # task.corpus=responses:<task>: per prompt and category


class SpeedTest(BaseModel):
    """One llama-bench test: tokens/s of every repetition, with mean and sample sd."""

    name: str  # "pp512", "tg128", "pp512+tg128", with " @ d4096" when the KV cache was pre-filled
    n_prompt: int
    n_gen: int
    depth: int
    repetitions: int
    tokens_per_s_mean: float
    tokens_per_s_sd: float
    samples_tokens_per_s: list[float]
    samples_ns: list[int]  # wall clock of each timed repetition (llama-bench's samples_ns)
    avg_ns: float
    stdev_ns: float


class SpeedSummary(BaseModel):
    """task=speed: the tests plus every setting that changes the figures."""

    tests: list[SpeedTest]
    model_desc: str  # llama.cpp's own description, e.g. "llama ?B Q4_1"
    model_size_bytes: int  # tensor bytes, as llama-bench reports "size"
    model_n_params: int
    backend: str  # ggml backends, e.g. "CPU" or "CUDA"
    n_threads: int
    n_threads_batch: int
    n_batch: int
    n_ubatch: int
    n_ctx: int
    n_gpu_layers: int
    flash_attn: bool
    type_k: str
    type_v: str
    use_mmap: bool
    warmup: bool
    seed: int
    build: str  # llama-cpp-python version and ggml version/commit
    cpu: str
    gpu: str | None  # the GPU's name when layers are offloaded to one
    system_info: str


class Divergence(BaseModel):
    """The first token where a speculative sample's text leaves the plain sample's, explained.

    Both generations are replayed in process with the same batches; the logits of the two
    competing tokens are read from the verify batch's row and from one-token-at-a-time decoding.
    """

    prompt_id: str
    sample_index: int
    seed: int
    position: int | None = None  # generated-token index of the first different token
    token_plain: int | None = None  # what plain (one token at a time) decoding chose there
    token_spec: int | None = None  # what the speculative run chose there
    token_plain_text: str | None = None
    token_spec_text: str | None = None
    # "numerics": a near tie whose order flips between batch and single-token numerics;
    # "unexplained": the two paths' logits disagree by more than rounding (a bug);
    # "unchecked": the diagnostic could not replay it (see reason).
    verdict: Verdict
    reason: str
    gap_single: float | None = None  # logit[plain token] - logit[spec token], single-token decoding
    gap_batch: float | None = None  # logit[spec token] - logit[plain token], the verify batch's row
    batch_rows: int | None = None  # tokens in the decode whose row produced the speculative token
    row_max_abs_diff: float | None = None  # max |batch - single| over the batch row's top tokens
    # The same measure between batched and single-token decoding of the plain text's own tokens
    # (no speculation): the largest over its positions. Rounding stays within a small multiple.
    batch_noise_floor: float | None = None


class SpeculativeSummary(BaseModel):
    """Speculative decoding against the same variant, task and seeds without it.

    Samples are paired by their resume key (which does not depend on speculative settings);
    speedups are ratios of generation tokens/s (wall clock), speculative over plain.
    """

    method: str  # "prompt_lookup" | "draft" | a server's own ("server")
    num_pred_tokens: int | None = None
    draft_model: str | None = None
    drafted_tokens: int | None = None
    accepted_tokens: int | None = None
    acceptance_rate: float | None = None
    baseline_run: str | None = None  # run id (sibling directory) without speculation; None: none yet
    n_pairs: int = 0
    n_identical_outputs: int = 0  # pairs whose text is the same with and without speculation
    gen_tokens_per_s: float | None = None  # aggregate over the paired samples
    gen_tokens_per_s_baseline: float | None = None
    speedup: float | None = None  # aggregate ratio: gen_tokens_per_s / gen_tokens_per_s_baseline
    speedup_geomean: float | None = None  # geometric mean of per-sample ratios
    speedup_ci_low: float | None = None  # 95% paired t interval of the geometric mean (none below 3 pairs)
    speedup_ci_high: float | None = None
    total_s_ratio: float | None = None  # baseline end-to-end seconds / speculative (paired)
    # Pairs whose text differs, by what the losslessness diagnostic found (evalkit.divergence):
    # n_identical_outputs + these three == n_pairs.
    n_numerics_explained: int = 0
    n_unexplained: int = 0
    n_unchecked: int = 0
    divergences: list[Divergence] = Field(default_factory=list)


class LmEvalTaskScore(BaseModel):
    """task=lm_eval: one lm-evaluation-harness task (or group) on one variant."""

    metric: str  # the primary metric (the task's first), e.g. "acc" or "exact_match"
    value: float | None
    stderr: float | None
    n: int | None  # documents scored
    filter: str = "none"  # lm-eval's filter the metric was computed under
    higher_is_better: bool | None = None
    is_group: bool = False
    n_shot: int | None = None
    version: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)  # every "metric,filter" value


class FlipStats(BaseModel):
    """Items answered correctly by one variant and not the other, on the items both answered."""

    n_common: int  # items present in both runs (same task, doc id and document hash)
    n_flips: int  # to_correct + to_incorrect
    to_correct: int  # wrong in the reference, right here
    to_incorrect: int  # right in the reference, wrong here
    accuracy: float | None = None  # this run, on the common items
    reference_accuracy: float | None = None
    accuracy_delta: float | None = None  # accuracy - reference_accuracy
    accuracy_delta_se: float | None = None  # paired standard error of the delta
    n_changed_answers: int = 0  # items whose prediction differs, right or wrong
    reference: str  # human label of the reference run


class LmEvalItem(BaseModel):
    """items.jsonl: one scored document, enough to count flips against another run."""

    task: str
    doc_id: int
    doc_hash: str  # lm-eval's hash of the document: the same id on other data never matches
    metric: str
    score: float | None  # the primary metric's per-item value
    correct: bool | None  # score == 1 for 0/1 metrics; None where the metric is not binary
    prediction: str
    target: str
    logprobs: list[float] | None = None  # multiple choice: log-likelihood of each choice


class LmEvalSummary(BaseModel):
    """task=lm_eval: scores per task, flips against a reference run, the work it took."""

    tasks: dict[str, LmEvalTaskScore]
    flips: dict[str, FlipStats] | None = None
    flips_total: FlipStats | None = None  # every task's common items together
    reference: str | None = None  # what task.reference asked for
    reference_run: str | None = None  # the run directory the flips were counted against
    reference_note: str | None = None  # why there are no flips, when asked for and absent
    items_file: str = "items.jsonl"
    n_items: int = 0
    lm_eval_version: str
    model_type: str  # "evalkit-llama" (in-process) or the lm-eval model used for a server
    limit: int | float | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool = False
    sampling: dict[str, Any] = Field(default_factory=dict)  # generation defaults under task kwargs
    cache: str | None = None  # lm-eval's request cache (sqlite), keyed by the model's sha256
    cached_requests: int | None = None  # requests answered from that cache in this run
    stats: dict[str, Any] = Field(default_factory=dict)  # requests, tokens, seconds
    remote_check: dict[str, Any] | None = None  # server log-likelihoods against in-process ones
    data_sources: dict[str, str] = Field(default_factory=dict)  # task -> package its rows came from


class RunResult(BaseModel):
    """results.json: one run of one task on one model variant with one backend."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Status
    message: str | None = None
    created_at: str
    finished_at: str | None = None
    evalkit_version: str
    task: str
    task_kind: TaskKind
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
    perplexity: PerplexitySummary | None = None
    kld: KldSummary | None = None
    speed: SpeedSummary | None = None
    lm_eval: LmEvalSummary | None = None
    speculative: SpeculativeSummary | None = None  # generation runs with speculation on

    @classmethod
    def read(cls, out_dir: Path) -> "RunResult | None":
        """The run's results.json (older schemas upgraded), or None when it is absent, half-written,
        does not validate or comes from a newer evalkit; `read_result` says which."""
        try:
            return read_result(out_dir)
        except RecordError:
            return None

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
            rec = parse_sample(line)
            if rec is None:
                self.dropped_lines += 1
            else:
                self.records.append(rec)
                good.append(line)
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
        return list(latest_per_key(self.records).values())

    def close(self) -> None:
        self._fh.close()


# --- Readers: one per file type; every consumer reads records through these. ---------------------


class RecordError(ValueError):
    """A record file that cannot be read as this evalkit's schema; the message is one line."""


def _upgrade(raw: Any, migrations: dict[int, Any], what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RecordError("not a JSON object")
    if "schema_version" not in raw:
        raise RecordError(f"no schema_version (not an evalkit {what}?)")
    v = raw["schema_version"]
    if isinstance(v, int) and not isinstance(v, bool) and v > SCHEMA_VERSION:
        raise RecordError(
            f"schema_version {v!r} is newer than this evalkit (it reads {OLDEST_SCHEMA_VERSION}..{SCHEMA_VERSION}); "
            "upgrade evalkit to read it"
        )
    if v != SCHEMA_VERSION and v not in migrations:
        raise RecordError(f"schema_version {v!r}, this evalkit reads {OLDEST_SCHEMA_VERSION}..{SCHEMA_VERSION}")
    data = dict(raw)
    while data["schema_version"] != SCHEMA_VERSION:
        data = migrations[data["schema_version"]](data)
    return data


def _result_1_to_2(d: dict[str, Any]) -> dict[str, Any]:
    """Version 1 files may predate fields added since (llama.cpp flavour, synthetic models, KLD
    quantiles and per-answer responses, drafter memory, the losslessness diagnostic, lm-eval data
    sources): state their absence explicitly. Differing speculative pairs of a run made before the
    diagnostic existed were never checked: they count as unchecked."""
    d = copy.deepcopy(d)
    if isinstance(d.get("backend"), dict):
        d["backend"].setdefault("flavour", None)
    if isinstance(d.get("model"), dict):
        d["model"].setdefault("synthetic", None)
    if isinstance(d.get("memory"), dict):
        for k in ("draft_file_size_bytes", "draft_model_buffer_bytes", "draft_kv_cache_bytes",
                  "draft_compute_buffer_bytes"):
            d["memory"].setdefault(k, None)
    if isinstance(d.get("kld"), dict):
        for k in ("kld_quantile_levels", "kld_quantiles", "responses"):
            d["kld"].setdefault(k, None)
    spec = d.get("speculative")
    if isinstance(spec, dict) and "n_unchecked" not in spec:
        differing = int(spec.get("n_pairs") or 0) - int(spec.get("n_identical_outputs") or 0)
        spec.setdefault("n_numerics_explained", 0)
        spec.setdefault("n_unexplained", 0)
        spec["n_unchecked"] = max(differing - spec["n_numerics_explained"] - spec["n_unexplained"], 0)
        spec.setdefault("divergences", [])
    if isinstance(d.get("lm_eval"), dict):
        d["lm_eval"].setdefault("data_sources", {})
    d["schema_version"] = 2
    return d


def _sample_1_to_2(d: dict[str, Any]) -> dict[str, Any]:
    """Version 1 check outcomes may predate failing-span offsets: none were located."""
    d = dict(d)
    if isinstance(d.get("checks"), list):
        d["checks"] = [{**c, "spans": c.get("spans")} if isinstance(c, dict) else c for c in d["checks"]]
    d["schema_version"] = 2
    return d


# schema_version n -> a function returning the same record as version n + 1.
RESULT_MIGRATIONS: dict[int, Any] = {1: _result_1_to_2}
SAMPLE_MIGRATIONS: dict[int, Any] = {1: _sample_1_to_2}


def upgrade_result(raw: Any) -> dict[str, Any]:
    """A parsed results.json as the current schema's dict (RecordError: not one evalkit can read)."""
    return _upgrade(raw, RESULT_MIGRATIONS, RESULTS_FILE)


def upgrade_sample(raw: Any) -> dict[str, Any]:
    """A parsed samples.jsonl line as the current schema's dict (a line without a version is 1's)."""
    if isinstance(raw, dict) and "schema_version" not in raw:
        raw = {**raw, "schema_version": 1}
    return _upgrade(raw, SAMPLE_MIGRATIONS, "sample")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def read_result(path: Path) -> RunResult:
    """results.json of a run directory (or the file itself), upgraded to the current schema.

    RecordError, with a one-line reason, when it is absent, not JSON, of an unknown schema version
    or does not validate.
    """
    path = path / RESULTS_FILE if path.is_dir() else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"unreadable JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    data = upgrade_result(raw)
    try:
        return RunResult.model_validate(data)
    except ValidationError as exc:
        raise RecordError(f"does not validate ({_first_error(exc)})") from None


def parse_sample(line: str) -> SampleRecord | None:
    """One samples.jsonl line as a record (older schemas upgraded); None for a broken line."""
    try:
        return SampleRecord.model_validate(upgrade_sample(json.loads(line)))
    except (ValueError, RecordError):  # ValidationError is a ValueError
        return None


@dataclass
class SamplesFile:
    records: list[SampleRecord]  # every valid line, in file order
    broken_lines: int  # lines that did not parse (a killed writer's tail, another schema)


def read_samples(path: Path) -> SamplesFile:
    """samples.jsonl of a run directory (or the file itself), read-only: a broken line is counted
    and skipped, never rewritten (SampleStore repairs the file it appends to). Absent: empty."""
    path = path / SAMPLES_FILE if path.is_dir() else path
    records: list[SampleRecord] = []
    broken = 0
    if not path.is_file():
        return SamplesFile(records, 0)
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = parse_sample(line)
            if rec is None:
                broken += 1
            else:
                records.append(rec)
    return SamplesFile(records, broken)


def latest_per_key(records: list[SampleRecord]) -> dict[str, SampleRecord]:
    """One record per resume key: the newest success, else the newest failure."""
    best: dict[str, SampleRecord] = {}
    for r in records:
        prev = best.get(r.key)
        if prev is None or r.error is None or prev.error is not None:
            best[r.key] = r
    return best


def finished_samples(path: Path) -> dict[str, SampleRecord]:
    """The newest successful record per key of a run's samples.jsonl (failures left out)."""
    return {k: r for k, r in latest_per_key(read_samples(path).records).items() if r.error is None}


def read_items(path: Path) -> list[LmEvalItem]:
    """items.jsonl of a run directory (or the file itself); broken lines are skipped."""
    path = path / ITEMS_FILE if path.is_dir() else path
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    out.append(LmEvalItem.model_validate_json(line))
                except ValueError:
                    continue
    return out


def write_items(path: Path, items: Iterable[LmEvalItem]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(item.model_dump_json() + "\n")
    tmp.replace(path)
