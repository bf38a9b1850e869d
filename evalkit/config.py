"""Pydantic schemas for everything Hydra composes: where defaults and bounds live. A task kind's own
schema lives in its runner module, declared by its TaskKind (evalkit.kinds); `TaskConfig` and the
Hydra task bases are built from that registry.

Hydra gives us composition and overrides; pydantic gives us one-line, field-named errors for a
bad value (``backend.n_ctx=-5``) before anything expensive (a model load) happens.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, ValidationError, field_validator, model_validator

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
    """What every task config has; each kind's subclass adds `kind: Literal["<its name>"]`."""

    name: str
    description: str = ""


class CorpusTaskBase(TaskBase):
    """llama-perplexity's method: chunks of n_ctx tokens, the second half of each scored."""

    # "embedded" (Python's own pydoc topics text), "wikitext2" (needs network), or a file path.
    corpus: str = "embedded"
    n_ctx: int = Field(512, ge=16)
    n_batch: int | None = Field(None, ge=1)  # None: one chunk per batch (n_batch = n_ctx)
    chunks: int | None = Field(None, ge=1)  # None: the whole corpus


# Each kind's own task config (its `kind` literal the tag) lives in its runner module and is
# declared by its TaskKind (evalkit.kinds); `task` validates as the discriminated union of them all.
class _RegisteredTaskConfigs:
    """The union is built when RunConfig is first used (defer_build), after every runner module has
    registered its kind, so importing this module imports no runner."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        from evalkit.kinds import kinds

        configs = tuple(kind.config for _, kind in sorted(kinds().items()))
        return handler.generate_schema(Annotated[Union[configs], Field(discriminator="kind")])


TaskConfig = Annotated[TaskBase, _RegisteredTaskConfigs()]


class RunConfig(Strict):
    model_config = ConfigDict(defer_build=True)  # the task union needs every kind registered first

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
    from evalkit.kinds import kinds

    return part in HYDRA_BASES["backend"] or part in kinds()


# --------------------------------------------------------------------------------------------
# Hydra: these schemas' defaults are the base every conf/ YAML starts from
# --------------------------------------------------------------------------------------------

# Hydra group -> {option type: schema}; conf/<group>/<name>.yaml starts with `- base_<group>_<type>`.
# The task group is every registered kind's config (hydra_bases()).
HYDRA_BASES: dict[str, dict[str, type[Strict]]] = {
    "model": {"gguf": ModelConfig},
    "backend": {
        "llama_cpp": LlamaCppBackendConfig,
        "openai": OpenAIBackendConfig,
        "llama_server": LlamaServerBackendConfig,
    },
}
# Not in any base. The composed config's keys feed the run directory's hash, so a base adds no key
# its YAMLs did not already have: `description` is per-file text, and only the synthetic models
# ever had a `synthetic` key.
_NOT_IN_BASE = {"description", "synthetic"}


def hydra_bases() -> dict[str, dict[str, type[Strict]]]:
    """HYDRA_BASES and `task`: {kind name: its config} for every kind registered (evalkit.kinds)."""
    from evalkit.kinds import kinds

    return {**HYDRA_BASES, "task": {name: kind.config for name, kind in sorted(kinds().items())}}


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
    for group, schemas in hydra_bases().items():
        for type_, schema in schemas.items():
            store.store(group=group, name=f"base_{group}_{type_}", node=hydra_base(schema))
