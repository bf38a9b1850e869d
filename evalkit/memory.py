"""Process memory: resident set before the model loads, and its peak during the run.

The peak is the kernel's high-water mark (VmHWM), reset at the start of each job, so in a
multirun sweep a small model's job does not inherit the peak of the large model before it.
"""

from __future__ import annotations

import resource
from pathlib import Path

import psutil

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def current_rss() -> int:
    return psutil.Process().memory_info().rss


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryWatch:
    """Baseline at construction (before loading), peak on demand."""

    def __init__(self) -> None:
        reset_peak()  # where the kernel allows it, peak() then counts from here
        self.baseline = current_rss()

    def peak(self) -> int:
        return max(peak_rss(), current_rss())


def gpu_memory_used_bytes() -> int | None:
    """Memory this process (and a server it started) holds on NVIDIA GPUs (NVML).

    None without a GPU, without NVML, or when none of these processes holds GPU memory.
    """
    try:
        import os

        import pynvml

        pynvml.nvmlInit()
        pids = {os.getpid()} | {c.pid for c in psutil.Process().children(recursive=True)}
        total = 0
        found = False
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in pids and proc.usedGpuMemory is not None:
                    total += int(proc.usedGpuMemory)
                    found = True
        return total if found else None
    except Exception:
        return None
