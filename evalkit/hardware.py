"""The machine a run ran on. Rows from different hardware are never averaged together."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from functools import lru_cache

from pydantic import BaseModel


class HardwareInfo(BaseModel):
    hostname: str
    cpu: str
    cpu_cores_physical: int
    cpu_threads: int
    memory_bytes: int
    gpus: list[str]
    os: str
    python: str

    @property
    def fingerprint(self) -> str:
        """Same CPU model, core count, memory size and GPUs: same hardware class."""
        key = f"{self.cpu}|{self.cpu_cores_physical}|{self.memory_bytes // 2**30}|{','.join(self.gpus)}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        gpu = f" + {self.gpus[0]}" if self.gpus else ""
        return f"{self.cpu} ({self.cpu_cores_physical} cores){gpu}"


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@lru_cache(maxsize=1)
def gpu_names() -> list[str]:
    """NVIDIA GPUs through NVML (nvidia-ml-py); an empty list where there are none."""
    try:
        import pynvml

        pynvml.nvmlInit()
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    except Exception:
        return []


@lru_cache(maxsize=1)
def hardware_info() -> HardwareInfo:
    import psutil

    return HardwareInfo(
        hostname=socket.gethostname(),
        cpu=cpu_name(),
        cpu_cores_physical=physical_cores(),
        cpu_threads=os.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
        gpus=gpu_names(),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
    )
