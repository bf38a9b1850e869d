"""From a model config to one GGUF file on disk, with its identity and provenance."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from evalkit.config import ModelConfig
from evalkit.errors import ConfigError, ModelError
from evalkit.models.embedded import EMBEDDED, embedded_path
from evalkit.models.hub import hub_path
from evalkit.models.identity import GgufInfo, file_sha256, gguf_info
from evalkit.models.ladder import FLOAT_TYPES, build_variant, normalize_quant
from evalkit.paths import CONF_DIR
from evalkit.records import ModelRecord


class ResolvedModel(BaseModel):
    """A model config made concrete: the file, what it is, and where it came from."""

    name: str
    family: str | None
    variant: str  # "q8_0" for a ladder build, else the file's own type ("Q4_1")
    path: Path
    sha256: str
    size_bytes: int
    gguf: GgufInfo
    bits_per_weight: float
    qat: bool
    provenance: str  # honest description of the weights, e.g. "f16 of the shipped Q4_1 weights"
    base_sha256: str | None = None  # the file a ladder variant was built from
    synthetic: str | None = None  # random-weight stand-in: says so (evalkit.models.synthetic)

    def record(self) -> ModelRecord:
        """What records say about this file: its identity here, its facts from the GGUF header."""
        return ModelRecord(
            **self.model_dump(include=_OWN_FIELDS),
            **self.gguf.model_dump(include=_GGUF_FIELDS),
            path=str(self.path),
        )


_OWN_FIELDS = {"name", "family", "variant", "sha256", "size_bytes", "bits_per_weight", "qat", "provenance",
               "base_sha256", "synthetic"}
_GGUF_FIELDS = {"file_type", "architecture", "parameter_count", "context_length", "n_vocab"}


def resolve_model(cfg: ModelConfig) -> ResolvedModel:
    """Find (or fetch, or build) the GGUF a model config names and describe it."""
    base, base_note = _base_file(cfg)
    base_info = gguf_info(base)
    base_sha = file_sha256(base)
    if cfg.quant is None:
        path, variant, note, parent = base, base_info.file_type, base_note, None
    else:
        quant = normalize_quant(cfg.quant)
        path, note = _ladder_variant(base, base_sha, base_info, quant, base_note)
        variant, parent = quant, base_sha
    info = gguf_info(path) if path != base else base_info
    sha = file_sha256(path) if path != base else base_sha
    size = path.stat().st_size
    return ResolvedModel(
        name=cfg.name,
        family=cfg.family or cfg.name,
        variant=variant,
        path=path,
        sha256=sha,
        size_bytes=size,
        gguf=info,
        bits_per_weight=round(8 * size / info.parameter_count, 4),
        qat=cfg.qat,
        provenance=note,
        base_sha256=parent,
        synthetic=_synthetic_note(cfg),
    )


def _synthetic_note(cfg: ModelConfig) -> str | None:
    if cfg.path or cfg.source != "synthetic" or cfg.synthetic is None:
        return None
    from evalkit.models.synthetic import SYNTHETIC

    return SYNTHETIC[cfg.synthetic].note


def _base_file(cfg: ModelConfig) -> tuple[Path, str]:
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path, cfg.precision_note or f"local file {path.name}"
    if cfg.source == "embedded":
        assert cfg.embedded is not None
        return embedded_path(cfg.embedded), cfg.precision_note or EMBEDDED[cfg.embedded].note
    if cfg.source == "synthetic":
        from evalkit.models.synthetic import SYNTHETIC, synthetic_path

        assert cfg.synthetic is not None
        path = synthetic_path(cfg.synthetic)
        return path, cfg.precision_note or SYNTHETIC[cfg.synthetic].note
    assert cfg.hf_repo and cfg.hf_file
    path = hub_path(cfg.hf_repo, cfg.hf_file, cfg.hf_revision)
    return path, cfg.precision_note or f"{cfg.hf_repo}/{path.name}"


def _ladder_variant(
    base: Path, base_sha: str, info: GgufInfo, quant: str, base_note: str
) -> tuple[Path, str]:
    """Quantize from a float file directly; from a quantized one, through its f16 dequant.

    The note never calls a dequantized f16 the original precision.
    """
    if info.file_type.upper() in FLOAT_TYPES:
        src, src_sha, src_note = base, base_sha, f"{info.file_type} ({base_note})"
    else:
        src = build_variant(base, base_sha, "f16")
        src_sha = file_sha256(src)
        src_note = f"f16 of the shipped {info.file_type} weights ({base_note})"
    if quant == "f16" and src is not base:
        return src, src_note
    if info.file_type.upper() == quant.upper() and src is base:
        return base, base_note
    return build_variant(src, src_sha, quant), f"{quant} quantized from {src_note}"


def model_config_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def load_model_config(name: str, **overrides) -> ModelConfig:
    """A conf/model/<name>.yaml outside Hydra (references, draft models)."""
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown model config '{name}'; available: {', '.join(model_config_names())}"
        )
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("defaults", None)  # `- base_model_gguf`: ModelConfig's own defaults, which validation fills
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ModelConfig.model_validate(data)
    except Exception as exc:
        raise ConfigError(f"conf/model/{name}.yaml is invalid: {exc}".splitlines()[0]) from None
