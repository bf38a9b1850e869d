"""Pydantic schemas for everything Hydra composes: the only place defaults and bounds live.

Hydra gives us composition and overrides; pydantic gives us one-line, field-named errors for a
bad value (``backend.n_ctx=-5``) before anything expensive (a model load) happens.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evalkit.errors import ConfigError

KvCacheType = Literal["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in an override must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class SamplingConfig(Strict):
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(64, ge=0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0)
    # None: no cap; the model stops by itself, bounded only by the context window.
    max_tokens: int | None = Field(None, ge=1)
    # Base seed: sample i of prompt p is drawn with seed derive(seed, p, i), recorded per sample.
    seed: int = Field(0, ge=0)
    stop: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class ModelConfig(Strict):
    """Where a GGUF comes from, and which variant of it to evaluate."""

    name: str
    description: str = ""
    # Models that are variants of the same weights share a family (pairs, ladders, leaderboard).
    family: str | None = None
    source: Literal["embedded", "hf", "path", "synthetic"] = "hf"
    embedded: str | None = None  # key in evalkit.models.embedded.EMBEDDED
    # key in evalkit.models.synthetic.SYNTHETIC: random weights built on first use (stand-ins)
    synthetic: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None  # file name or glob inside hf_repo, e.g. "*UD-Q4_K_XL*.gguf"
    hf_revision: str | None = None
    path: str | None = None  # a local file; wins over every other source
    # Ladder variant built from this model's file with llama_model_quantize (f16, q8_0, ...).
    quant: str | None = None
    qat: bool = False  # quantization-aware-trained weights (for pair confound flags)
    # Human description of the weights' precision, e.g. "vendor QAT Q4_0".
    precision_note: str | None = None
    # The model's multi-token-prediction drafter (a conf/model name), used by
    # backend.speculative=mtp when backend.draft_model is not given.
    mtp_drafter: str | None = None

    @model_validator(mode="after")
    def _source_is_complete(self) -> "ModelConfig":
        if self.path:
            return self
        if self.source == "embedded" and not self.embedded:
            raise ValueError("source=embedded needs model.embedded")
        if self.source == "synthetic" and not self.synthetic:
            raise ValueError("source=synthetic needs model.synthetic")
        if self.source == "hf" and not (self.hf_repo and self.hf_file):
            raise ValueError("source=hf needs model.hf_repo and model.hf_file")
        if self.source == "path":
            raise ValueError("source=path needs model.path=/path/to/file.gguf")
        return self


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


class LlamaCppBackendConfig(Strict):
    """In-process llama-cpp-python. Every field that changes speed or output is recorded."""

    type: Literal["llama_cpp"] = "llama_cpp"
    # None: offload every layer when the build has a GPU backend, else run on the CPU.
    n_gpu_layers: int | None = Field(None, ge=-1)
    n_ctx: int = Field(4096, ge=16)
    n_batch: int = Field(512, ge=1)
    n_ubatch: int = Field(512, ge=1)
    # None: one thread per physical core (llama-bench's default, not llama-cpp-python's half).
    n_threads: int | None = Field(None, ge=1)
    n_threads_batch: int | None = Field(None, ge=1)
    flash_attn: bool = False
    type_k: KvCacheType = "f16"
    type_v: KvCacheType = "f16"
    seed: int = Field(0, ge=0)  # context seed, used where a request carries none
    chat_template: bool = True  # apply the GGUF's chat template to prompts
    use_mmap: bool = True
    # Full-size KV cache for sliding-window layers (Gemma). None: only under speculative
    # decoding, whose rejected drafts must be removed from the cache again; otherwise the small
    # window cache, as llama-bench and llama-server use by default.
    swa_full: bool | None = None
    # mtp: a multi-token-prediction assistant (Gemma 4) sharing the target's KV cache
    speculative: Literal["none", "prompt_lookup", "draft", "mtp"] = "none"
    num_pred_tokens: int = Field(10, ge=1, le=64)  # drafted tokens per step
    # A conf/model name, for speculative=draft or mtp (mtp: null uses model.mtp_drafter).
    draft_model: str | None = None

    @model_validator(mode="after")
    def _draft_needs_model(self) -> "LlamaCppBackendConfig":
        if self.speculative == "draft" and not self.draft_model:
            raise ValueError("speculative=draft needs backend.draft_model=<model config name>")
        if self.n_ubatch > self.n_batch:
            raise ValueError("n_ubatch must not exceed n_batch")
        return self


class OpenAIBackendConfig(Strict):
    """Any OpenAI-compatible server (llama-server, llama-swap, vLLM, ollama, LM Studio)."""

    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "default"
    # The key is read from this environment variable; the key itself never enters a config.
    api_key_env: str = "OPENAI_API_KEY"
    mode: Literal["chat", "completion"] = "chat"
    concurrency: int = Field(1, ge=1, le=256)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0)
    stream: bool = True
    # Send top_k, min_p and repeat_penalty (not OpenAI fields) in the request body; servers that
    # ignore unknown fields are unaffected, ones that reject them need sampling_extras=false.
    sampling_extras: bool = True
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # Local tokenizer (a conf/model name) for tasks that need token ids; None: server-side only.
    tokenizer_model: str | None = None

    def api_key(self) -> str | None:
        """The key, read from the environment variable api_key_env now (None: unset or empty)."""
        import os

        return os.environ.get(self.api_key_env) or None

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, v: str) -> str:
        # The config is saved with every run (.hydra/config.yaml, results.json): secrets never are.
        parts = urlsplit(v)
        if parts.username or parts.password:
            raise ValueError("put no credentials in base_url: the key goes in the env var named by api_key_env")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL such as http://127.0.0.1:8080/v1")
        return v


class LlamaServerBackendConfig(OpenAIBackendConfig):
    """evalkit starts a llama-server binary itself, waits for health, and stops it afterwards."""

    type: Literal["llama_server"] = "llama_server"  # type: ignore[assignment]
    # None: the llama-server scripts/llama-tools.sh built (evalkit.llama_tools), else one on PATH.
    binary: str | None = None
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)  # None: a free port
    n_ctx: int = Field(4096, ge=16)
    n_gpu_layers: int | None = Field(None, ge=-1)
    n_threads: int | None = Field(None, ge=1)
    extra_args: list[str] = Field(default_factory=list)
    startup_timeout_s: float = Field(120.0, gt=0)
    # Speculative decoding inside llama-server (flags probed from its --help): mtp, a Gemma 4
    # assistant drafter (draft_model, else model.mtp_drafter); draft, a small draft model.
    speculative: Literal["none", "draft", "mtp"] = "none"
    num_pred_tokens: int = Field(10, ge=1, le=64)  # drafted tokens per step (--spec-draft-n-max)
    draft_model: str | None = None  # a conf/model name

    @model_validator(mode="after")
    def _server_draft_needs_model(self) -> "LlamaServerBackendConfig":
        if self.speculative == "draft" and not self.draft_model:
            raise ValueError("speculative=draft needs backend.draft_model=<model config name>")
        return self

    @field_validator("extra_args", mode="before")
    @classmethod
    def _args_are_strings(cls, v: Any) -> Any:
        # Hydra reads `extra_args=[--spec-draft-n-max,4]` as a number 4: a flag value all the same.
        return [str(x) for x in v] if isinstance(v, (list, tuple)) else v


BackendConfig = Annotated[
    Union[LlamaCppBackendConfig, OpenAIBackendConfig, LlamaServerBackendConfig],
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


class TaskBase(Strict):
    name: str
    description: str = ""


class GenerationTaskConfig(TaskBase):
    """Prompts with checks (stress, constraints, or a user's own YAML file)."""

    kind: Literal["generation"] = "generation"
    file: str  # a name under tasks/ ("stress") or a path to a YAML file
    samples: int = Field(1, ge=1)
    # Overrides on top of the task file's own sampling block (null: keep the file's value). Every
    # key is present, so `task.sampling.max_tokens=16` needs no `+`.
    sampling: dict[str, Any] = Field(default_factory=lambda: dict.fromkeys(SamplingConfig.model_fields))
    prompts: list[str] | None = None  # restrict to these prompt ids
    system_prompt: str | None = None


class CorpusTaskBase(TaskBase):
    """llama-perplexity's method: chunks of n_ctx tokens, the second half of each scored."""

    # "embedded" (Python's own pydoc topics text), "wikitext2" (needs network), or a file path.
    corpus: str = "embedded"
    n_ctx: int = Field(512, ge=16)
    n_batch: int | None = Field(None, ge=1)  # None: one chunk per batch (n_batch = n_ctx)
    chunks: int | None = Field(None, ge=1)  # None: the whole corpus


class PerplexityTaskConfig(CorpusTaskBase):
    kind: Literal["perplexity"] = "perplexity"


class KldTaskConfig(CorpusTaskBase):
    kind: Literal["kld"] = "kld"
    # "f16" (or any ladder type) of the same model config, or a conf/model name; None: f16.
    reference: str | None = None
    # Reference log-probs kept per scored token, and tokens sampled from the rest of the
    # distribution (they estimate the tail's share of the KLD; docs/kld.md has the measurement).
    top_k: int = Field(64, ge=1, le=4096)
    tail_samples: int = Field(64, ge=0, le=4096)
    # Keep the reference's full float32 log-probs and compute exact KLD (validation; big files).
    exact: bool = False
    # corpus=responses:<task>: cap on each reference answer's tokens (None: the task's own cap).
    answer_max_tokens: int | None = Field(None, ge=1)


class SpeedTaskConfig(TaskBase):
    """llama-bench's tests: pp<N> (prompt), tg<N> (generation), pp<N>+tg<M>, each at every depth."""

    kind: Literal["speed"] = "speed"
    pp: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [512])
    tg: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128])
    pg: list[str] = Field(default_factory=list)  # "512,128" = pp512+tg128 in one test
    # Tokens already in the KV cache before the timed part starts (llama-bench's -d).
    depth: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0])
    repetitions: int = Field(5, ge=1)
    warmup: bool = True
    seed: int = Field(0, ge=0)  # random token ids: no prompt cache can short-circuit the work

    @model_validator(mode="after")
    def _tests_are_valid(self) -> "SpeedTaskConfig":
        for item in self.pg:
            parts = str(item).split(",")
            if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
                raise ValueError(f"task.pg entries look like \"512,128\" (pp,tg), got {item!r}")
        if not (self.pp or self.tg or self.pg):
            raise ValueError("task=speed needs at least one test in task.pp, task.tg or task.pg")
        if not self.depth:
            raise ValueError("task.depth needs at least one value (0: an empty KV cache)")
        return self


class LmEvalTaskConfig(TaskBase):
    """lm-evaluation-harness tasks through evalkit's own `LM` (local) or lm-eval's API models."""

    kind: Literal["lm_eval"] = "lm_eval"
    tasks: list[str] = Field(min_length=1)  # task, group or tag names (tasks/lm_eval searched first)
    include_path: str | None = None  # another folder of lm-eval YAML tasks
    limit: int | float | None = Field(None, gt=0)  # documents per task (< 1: a fraction)
    num_fewshot: int | None = Field(None, ge=0)
    batch_size: int = Field(1, ge=1)  # requests per HTTP call (servers only)
    # Flips against: a ladder type of the same model ("f16"), a conf/model name, or a run dir.
    reference: str | None = None
    use_cache: bool = True  # lm-eval's request cache, keyed by the model file's sha256
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    # Generation: greedy by default, under each task file's own kwargs; a value set here
    # overrides the task files (like lm-eval's --gen_kwargs). Null: keep the default.
    sampling: dict[str, Any] = Field(default_factory=lambda: dict.fromkeys(SamplingConfig.model_fields))
    gen_max_tokens: int = Field(256, ge=1)  # when a task sets no max_gen_toks
    bootstrap_iters: int = Field(10000, ge=0)  # for metrics without a closed-form stderr
    seed: int = Field(0, ge=0)  # lm-eval's random/numpy/few-shot seeds
    # Servers: compare a few log-likelihoods with in-process scoring first; refuse, flag or skip.
    remote_check: Literal["refuse", "flag", "off"] = "refuse"
    remote_check_items: int = Field(3, ge=1, le=5)

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_as_list(cls, v: Any) -> Any:
        return [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _sampling_is_valid(self) -> "LmEvalTaskConfig":
        try:
            self.sampling_config()
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"sampling.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return self

    def sampling_config(self) -> SamplingConfig:
        """Greedy unless overridden; null entries keep SamplingConfig's defaults."""
        given = {k: v for k, v in self.sampling.items() if v is not None}
        return SamplingConfig.model_validate({"temperature": 0.0, **given})


TaskConfig = Annotated[
    Union[
        GenerationTaskConfig,
        PerplexityTaskConfig,
        KldTaskConfig,
        SpeedTaskConfig,
        LmEvalTaskConfig,
    ],
    Field(discriminator="kind"),
]


class RunConfig(Strict):
    model: ModelConfig
    backend: BackendConfig
    task: TaskConfig
    # Print the results table (off for quiet sweeps).
    print_table: bool = True
    progress: bool = True
    # A kld / perplexity / speed run already complete in its directory is shown, not measured
    # again (so a re-run sweep only does what is missing); true measures it again.
    rerun: bool = False


def validate_run_config(data: dict[str, Any]) -> RunConfig:
    """Validate a composed config, turning pydantic's report into one line that names the field."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        got = err.get("input")
        if isinstance(got, str):  # never echo credentials a URL carries
            got = re.sub(r"//[^/@\s]*@", "//***@", got)
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
        parts.append(f"{loc}: {err['msg']}{shown}")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "invalid config: " + "; ".join(parts) + more


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the discriminator value into the location ("backend.llama_cpp.n_ctx").
    return part in {
        "llama_cpp",
        "openai",
        "llama_server",
        "generation",
        "perplexity",
        "kld",
        "speed",
        "lm_eval",
    }


# --------------------------------------------------------------------------------------------
# Hydra: these schemas' defaults are the base every conf/ YAML starts from
# --------------------------------------------------------------------------------------------

# Hydra group -> {option type: schema}; conf/<group>/<name>.yaml starts with `- base_<group>_<type>`.
HYDRA_BASES: dict[str, dict[str, type[Strict]]] = {
    "model": {"gguf": ModelConfig},
    "backend": {
        "llama_cpp": LlamaCppBackendConfig,
        "openai": OpenAIBackendConfig,
        "llama_server": LlamaServerBackendConfig,
    },
    "task": {
        "generation": GenerationTaskConfig,
        "perplexity": PerplexityTaskConfig,
        "kld": KldTaskConfig,
        "speed": SpeedTaskConfig,
        "lm_eval": LmEvalTaskConfig,
    },
}
# Not in any base. The composed config's keys feed the run directory's hash, so a base adds no key
# its YAMLs did not already have: `description` is per-file text, and only the synthetic models
# ever had a `synthetic` key.
_NOT_IN_BASE = {"description", "synthetic"}


def hydra_base(schema: type[Strict]) -> dict[str, Any]:
    """A schema's defaults as plain data, its tag first; required fields stay out (pydantic names
    them when a YAML forgets one)."""
    fields = {n: f for n, f in schema.model_fields.items() if not f.is_required() and n not in _NOT_IN_BASE}
    tag = next((n for n in ("kind", "type") if n in fields), None)
    order = ([tag] if tag else []) + [n for n in fields if n != tag]
    return {n: _plain(fields[n].get_default(call_default_factory=True)) for n in order}


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def register_hydra_defaults() -> None:
    """Store every `base_<group>_<type>` node in Hydra's ConfigStore, before any composition.

    Plain (untyped) nodes: pydantic, not OmegaConf, validates, so errors stay one named line.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, schemas in HYDRA_BASES.items():
        for type_, schema in schemas.items():
            store.store(group=group, name=f"base_{group}_{type_}", node=hydra_base(schema))
