"""One job: open the backend once, hand it to the task's runner, write results.json."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

import evalkit
from evalkit.backends import Capability, OpenedBackend, capabilities_of, open_backend
from evalkit.config import RunConfig
from evalkit.hardware import HardwareInfo, hardware_info
from evalkit.kinds import TaskKind, check_capabilities, get_kind
from evalkit.memory import MemoryWatch, gpu_memory_used_bytes
from evalkit.records import MemoryRecord, RunResult, now_iso

@dataclass
class RunContext:
    cfg: RunConfig
    out_dir: Path
    run_id: str
    opened: OpenedBackend
    hardware: HardwareInfo
    memory: MemoryWatch
    console: Console
    started_at: str
    t0: float = field(default_factory=time.perf_counter)

    @property
    def backend(self) -> Any:
        return self.opened.backend

    def memory_record(self) -> MemoryRecord:
        m = self.opened.model
        # What llama.cpp itself allocated; a backend that cannot say leaves those fields null.
        facts = self.backend.memory_facts() if Capability.MEMORY_FACTS in capabilities_of(self.backend) else {}
        peak = self.memory.peak()
        return MemoryRecord(
            file_size_bytes=m.size_bytes,
            bits_per_weight=m.bits_per_weight,
            rss_baseline_bytes=self.memory.baseline,
            peak_rss_bytes=peak,
            peak_rss_delta_bytes=peak - self.memory.baseline,
            gpu_memory_used_bytes=gpu_memory_used_bytes(),
            **facts,
        )

    def result(self, status: str, message: str | None = None, **fields: Any) -> RunResult:
        """The results.json skeleton every runner fills with its own summary."""
        task = self.cfg.task
        return RunResult(
            run_id=self.run_id,
            status=status,
            message=message,
            created_at=self.started_at,
            finished_at=now_iso(),
            evalkit_version=evalkit.__version__,
            task=task.name,
            task_kind=task.kind,
            model=self.opened.model,
            backend=self.backend.info(),
            hardware=self.hardware,
            hardware_fingerprint=self.hardware.fingerprint,
            memory=self.memory_record(),
            config=self.cfg.model_dump(mode="json"),
            wall_s=time.perf_counter() - self.t0,
            **fields,
        )


def _already_complete(cfg: RunConfig, out_dir: Path, kind: TaskKind, console) -> RunResult | None:
    """The stored result of a finished measurement of this very file, or None to measure.

    Generation runs resume sample by sample instead; kinds without `show` always run.
    """
    if cfg.rerun or kind.show is None:
        return None
    result = RunResult.read(out_dir)
    if result is None or result.status != "complete":
        return None
    from evalkit.models import resolve_model

    if result.model.sha256 != resolve_model(cfg.model).sha256:
        return None  # the config now names another file
    console.print(f"already complete: {out_dir} (rerun=true measures it again)")
    if cfg.print_table:
        kind.show(result, console, out_dir)
    return result


def execute(cfg: RunConfig, out_dir: Path) -> RunResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = get_kind(cfg.task.kind)  # the task's runner module registered it (evalkit.kinds)
    check_capabilities(kind, cfg.task.name, cfg.backend.type)
    # Wide tables when piped to a file or a CI log; the terminal's width otherwise.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    done = _already_complete(cfg, out_dir, kind, console)
    if done is not None:
        return done
    memory = MemoryWatch()  # baseline before the model loads
    started = now_iso()
    overrides = kind.backend_overrides(cfg) if kind.backend_overrides is not None else {}
    opened = open_backend(cfg, **overrides)
    ctx = RunContext(
        cfg=cfg,
        out_dir=out_dir,
        run_id=out_dir.name,
        opened=opened,
        hardware=hardware_info(),
        memory=memory,
        console=console,
        started_at=started,
    )
    try:
        result = kind.run(ctx)
    finally:
        opened.backend.close()
    if kind.finish is not None:
        result = kind.finish(cfg, out_dir, result, console)
    return result
