"""Pydantic schemas for everything Hydra composes: the only place defaults and bounds live.

Hydra gives us composition and overrides; pydantic gives us one-line, field-named errors for a
bad value (``backend.n_ctx=-5``) before anything expensive (a model load) happens.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    source: Literal["embedded", "hf", "path"] = "hf"
    embedded: str | None = None  # key in evalkit.models.embedded.EMBEDDED
    hf_repo: str | None = None
    hf_file: str | None = None  # file name or glob inside hf_repo, e.g. "*UD-Q4_K_XL*.gguf"
    hf_revision: str | None = None
    path: str | None = None  # a local file; wins over every other source
    # Ladder variant built from this model's file with llama_model_quantize (f16, q8_0, ...).
    quant: str | None = None
    qat: bool = False  # quantization-aware-trained weights (for pair confound flags)
    # Human description of the weights' precision, e.g. "vendor QAT Q4_0".
    precision_note: str | None = None

    @model_validator(mode="after")
    def _source_is_complete(self) -> "ModelConfig":
        if self.path:
            return self
        if self.source == "embedded" and not self.embedded:
            raise ValueError("source=embedded needs model.embedded")
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
    speculative: Literal["none", "prompt_lookup", "draft"] = "none"
    num_pred_tokens: int = Field(10, ge=1, le=64)  # drafted tokens per step
    draft_model: str | None = None  # a conf/model name, for speculative=draft

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
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # Local tokenizer (a conf/model name) for tasks that need token ids; None: server-side only.
    tokenizer_model: str | None = None


class LlamaServerBackendConfig(OpenAIBackendConfig):
    """evalkit starts a llama-server binary itself, waits for health, and stops it afterwards."""

    type: Literal["llama_server"] = "llama_server"  # type: ignore[assignment]
    binary: str = "llama-server"
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)  # None: a free port
    n_ctx: int = Field(4096, ge=16)
    n_gpu_layers: int | None = Field(None, ge=-1)
    n_threads: int | None = Field(None, ge=1)
    extra_args: list[str] = Field(default_factory=list)
    startup_timeout_s: float = Field(120.0, gt=0)


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
    # Overrides on top of the task file's own sampling block (null: keep the file's value).
    sampling: dict[str, Any] = Field(default_factory=dict)
    prompts: list[str] | None = None  # restrict to these prompt ids
    system_prompt: str | None = None


class CorpusTaskBase(TaskBase):
    # "embedded" (Python's own pydoc topics text), "wikitext2" (needs network), or a file path.
    corpus: str = "embedded"
    n_ctx: int = Field(512, ge=16)
    n_batch: int | None = Field(None, ge=1)  # None: one chunk per batch
    chunks: int | None = Field(None, ge=1)  # None: the whole corpus


class PerplexityTaskConfig(CorpusTaskBase):
    kind: Literal["perplexity"] = "perplexity"


class KldTaskConfig(CorpusTaskBase):
    kind: Literal["kld"] = "kld"
    # A conf/model name, or a ladder type of the same model ("f16"); None: the model's default.
    reference: str | None = None
    top_k: int = Field(128, ge=1, le=4096)  # reference log-probs kept per scored token


class SpeedTaskConfig(TaskBase):
    kind: Literal["speed"] = "speed"
    pp: list[int] = Field(default_factory=lambda: [512])
    tg: list[int] = Field(default_factory=lambda: [128])
    pg: list[str] = Field(default_factory=list)  # "512,128" = pp512+tg128 in one test
    depth: list[int] = Field(default_factory=lambda: [0])
    repetitions: int = Field(5, ge=1)
    warmup: bool = True


class LmEvalTaskConfig(TaskBase):
    kind: Literal["lm_eval"] = "lm_eval"
    tasks: list[str]
    include_path: str | None = None  # a folder of lm-eval YAML tasks; "tasks/lm_eval" built in
    limit: int | float | None = None
    num_fewshot: int | None = None
    batch_size: int = Field(1, ge=1)
    reference: str | None = None  # a run directory or model config to count flips against
    use_cache: bool = True
    apply_chat_template: bool = False
    gen_max_tokens: int = Field(256, ge=1)


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
