"""Seeds derived from a base seed and what is being drawn: distinct, reproducible, recorded."""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *parts: object) -> int:
    """A 31-bit seed from sha256("base:part:part..."): the same inputs, the same seed, on any machine."""
    digest = hashlib.sha256(":".join(str(p) for p in (base, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
