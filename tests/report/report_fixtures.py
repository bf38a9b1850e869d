"""Constructed runs written as real results.json / samples.jsonl files through evalkit's records.

The values are chosen by hand so that the expected leaderboard rows, frontier flags and pair
ratios can be computed in the tests themselves. Summary blocks of other issues (kld, speed) are
filled from their pydantic schemas, so these fixtures follow schema changes.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evalkit.backends.base import BackendInfo
from evalkit.config import LlamaCppBackendConfig
from evalkit.hardware import HardwareInfo
from evalkit.metrics.generation import summarize
from evalkit.records import CheckOutcome, MemoryRecord, ModelRecord, RunResult, SampleRecord, stable_hash

HW_A = HardwareInfo(
    hostname="node-a", cpu="Test CPU 9000", cpu_cores_physical=8, cpu_threads=16,
    memory_bytes=64 * 2**30, gpus=[], os="Linux", python="3.11.7",
)  # fmt: skip
HW_B = HardwareInfo(
    hostname="node-b", cpu="Other CPU 7000", cpu_cores_physical=4, cpu_threads=8,
    memory_bytes=32 * 2**30, gpus=["NVIDIA Test GPU"], os="Linux", python="3.11.7",
)  # fmt: skip
SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": 64, "min_p": 0.0, "repeat_penalty": 1.0,
            "max_tokens": None, "seed": 0, "stop": []}  # fmt: skip


def _fill(annotation: Any, value: Any = None) -> Any:
    """A schema-valid value for an annotation, taking `value` where given."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None:
            return None if type(None) in args else _fill(inner[0])
        for a in inner:
            if isinstance(a, type) and issubclass(a, BaseModel) and isinstance(value, dict):
                return fill(a, value)
        return value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return fill(annotation, value or {})
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return [fill(args[0], v) for v in (value or [])]
    if value is not None:
        return value
    return {float: 0.0, int: 0, str: "", bool: False}.get(annotation, None if origin is None else origin())


def fill(cls: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, f in cls.model_fields.items():
        if name in values:
            out[name] = _fill(f.annotation, values[name])
        elif f.is_required():
            out[name] = _fill(f.annotation)
    extra = {k: v for k, v in values.items() if k not in cls.model_fields}
    return {**out, **extra}


def _sample(model: ModelRecord, run_id: str, task: str, pid: str, i: int, chars: int, total_s: float,
            tokens: int, sampling: dict, passed: bool | None, finish: str = "stop") -> SampleRecord:  # fmt: skip
    gen_s = max(total_s - 0.1, 0.01)
    checks = []
    if passed is not None:
        checks = [CheckOutcome(check="word_count", params={}, passed=passed, value=1, reason="r", passed_loose=True)]
    return SampleRecord(
        key=stable_hash([model.sha256, task, pid, i, sampling], 24), run_id=run_id, created_at="2026-01-01T00:00:00+00:00",
        task=task, model=model.name, variant=model.variant, model_sha256=model.sha256, backend="llama_cpp",
        prompt_id=pid, category="c", sample_index=i, seed=1000 + i, sampling=sampling, prompt="p", output="x" * chars,
        finish_reason=finish, prompt_tokens=20, completion_tokens=tokens, chars=chars, ttft_s=0.1, prompt_eval_s=0.1,
        generation_s=gen_s, total_s=total_s, prompt_tokens_per_s=200.0,
        gen_tokens_per_s=(tokens - 1) / gen_s, chars_per_s=chars / total_s, checks=checks,
        passed_strict=passed, passed_loose=True if passed is not None else None,
    )  # fmt: skip


def checked(rec: SampleRecord, text: str, specs: list[tuple[str, dict]]) -> SampleRecord:
    """The sample with this output, checked by the real checks (verdicts, reasons, spans)."""
    from evalkit.checks import compile_check, run_check

    outcomes = []
    for name, params in specs:
        check, p = compile_check(name, params)
        strict, loose = run_check(check, p, text)
        outcomes.append(CheckOutcome(check=name, params=p.model_dump(), passed=strict.passed, value=strict.value,
                                     reason=strict.reason, passed_loose=loose, spans=strict.spans))  # fmt: skip
    return rec.model_copy(update={
        "output": text, "chars": len(text), "prompt": f"Prompt {rec.prompt_id}: answer in plain prose.",
        "chars_per_s": len(text) / rec.total_s, "checks": outcomes,
        "passed_strict": all(o.passed for o in outcomes), "passed_loose": all(o.passed_loose for o in outcomes),
    })  # fmt: skip


def write_run(
    root: Path,
    *,
    model: str,
    variant: str,
    file_type: str,
    bpw: float,
    size_bytes: int,
    qat: bool = False,
    family: str = "fam",
    task: str = "stress",
    kind: str = "generation",
    hw: HardwareInfo = HW_A,
    type_k: str = "f16",
    build: str = "llama-cpp-python 0.3.36",
    flavour: str = "cpu",
    samples: dict[str, list[tuple[int, float]]] | None = None,  # prompt -> [(chars, total_s)]
    passed: dict[str, list[bool]] | None = None,
    sampling: dict | None = None,
    kld: dict | None = None,
    speed: dict | None = None,
    lm_eval: dict | None = None,
    peak_rss: int = 2 * 10**9,
    status: str = "complete",
    finished_at: str = "2026-01-01T01:00:00+00:00",
    truncated: bool = False,
    texts: dict[str, list[str]] | None = None,  # prompt -> outputs, checked by `checks`
    checks: list[tuple[str, dict]] | None = None,
) -> Path:
    sha = stable_hash([model, variant], 64).ljust(64, "0")
    m = ModelRecord(name=model, family=family, variant=variant, sha256=sha, size_bytes=size_bytes,
                    bits_per_weight=bpw, file_type=file_type, architecture="llama", parameter_count=10**9,
                    n_vocab=1000, qat=qat, provenance=f"constructed {variant}")  # fmt: skip
    backend_cfg = LlamaCppBackendConfig(type_k=type_k, n_threads=8).model_dump(mode="json")
    info = BackendInfo(type="llama_cpp", build=build, flavour=flavour, device=hw.gpus[0] if hw.gpus else "CPU",
                       settings={"n_ctx": 4096, "n_threads": 8, "type_k": type_k, "type_v": "f16", "flash_attn": False},
                       output_settings={"type_k": type_k}, chat_template="gguf")  # fmt: skip
    run_id = f"llama_cpp-{stable_hash([model, variant, task, hw.fingerprint, type_k], 10)}"
    out = root / task / f"{model}-{variant}" / run_id
    out.mkdir(parents=True, exist_ok=True)
    sampling = sampling or SAMPLING
    n_per_prompt = max((len(v) for v in (samples or {}).values()), default=1)
    fields: dict[str, Any] = {}
    if kind == "generation":
        recs = []
        for pid, vals in (samples or {}).items():
            for i, (chars, total_s) in enumerate(vals):
                ok = passed[pid][i] if passed and pid in passed else None
                rec = _sample(m, run_id, task, pid, i, chars, total_s, max(chars // 4, 2), sampling, ok,
                              "length" if truncated else "stop")  # fmt: skip
                if texts and pid in texts:
                    rec = checked(rec, texts[pid][i], checks or [])
                recs.append(rec)
        with (out / "samples.jsonl").open("w") as fh:
            for r in recs:
                fh.write(r.model_dump_json() + "\n")
        fields["generation"] = summarize(recs, len(samples or {}))
        fields["task_sha256"] = "t" * 16
    for name, value in (("kld", kld), ("speed", speed), ("lm_eval", lm_eval)):
        if value is not None:
            cls = _model_of(RunResult.model_fields[name].annotation)
            fields[name] = fill(cls, value) if cls else value
    result = RunResult(
        run_id=run_id, status=status, created_at="2026-01-01T00:00:00+00:00", finished_at=finished_at,
        evalkit_version="0.1.0", task=task, task_kind=kind, model=m, backend=info, hardware=hw,
        hardware_fingerprint=hw.fingerprint,
        memory=MemoryRecord(file_size_bytes=size_bytes, bits_per_weight=bpw, peak_rss_bytes=peak_rss,
                            rss_baseline_bytes=10**8, peak_rss_delta_bytes=peak_rss - 10**8, kv_cache_bytes=2**27),
        config={"model": {"name": model}, "backend": backend_cfg, "task": {"name": task, "kind": kind, "samples": n_per_prompt}},
        **fields,
    )  # fmt: skip
    result.write(out)
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for a in typing.get_args(annotation) or (annotation,):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None
