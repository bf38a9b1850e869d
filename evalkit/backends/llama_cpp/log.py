"""llama.cpp's log, captured instead of sprayed over the terminal.

The lines are kept in a ring buffer: quiet by default, yet the last lines explain a failed load,
and facts llama.cpp computes itself (the KV-cache size) can be read back from them.
Set EVALKIT_LLAMA_LOG=1 to echo everything to stderr as llama.cpp would.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections import deque

import llama_cpp

_LINES: deque[str] = deque(maxlen=4000)
_COUNT = 0
_DEBUG, _CONT = 4, 5
_last_kept = True


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _COUNT, _last_kept
    piece = text.decode("utf-8", errors="replace")
    if os.environ.get("EVALKIT_LLAMA_LOG") == "1":
        sys.stderr.write(piece)
    keep = _last_kept if level == _CONT else level != _DEBUG  # debug lines: thousands per load
    _last_kept = keep
    if keep:
        _LINES.append(piece)
        _COUNT += 1


def install() -> None:
    """Route llama.cpp's (and ggml's) log to the buffer; idempotent."""
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def mark() -> int:
    return _COUNT


def since(start: int) -> str:
    """Everything logged after `mark()` returned `start` (as far as the buffer still holds)."""
    n = min(_COUNT - start, len(_LINES))
    return "".join(list(_LINES)[len(_LINES) - n :]) if n > 0 else ""


def last_error(start: int) -> str | None:
    """The most telling line llama.cpp logged since `start`, for a one-line error message."""
    lines = [ln.strip() for ln in since(start).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.search(r"error|failed|invalid|corrupt", ln, re.I):
            return ln[:200]
    return lines[-1][:200] if lines else None


install()
