"""Pareto frontiers over two objectives, for the leaderboard's quality-versus-cost flags.

A point is on the frontier when no other point is at least as good on both objectives and
strictly better on one. Points with a missing value take no part (their flag is None), so a
variant that was never measured is neither praised nor hidden behind a False.
"""

from __future__ import annotations

import math
from typing import Sequence


def _known(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a dominates b, both objectives oriented so that larger is better."""
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


def pareto_flags(
    x: Sequence[float | None],
    y: Sequence[float | None],
    *,
    maximize_x: bool = True,
    maximize_y: bool = True,
) -> list[bool | None]:
    """Frontier membership of every point (None where x or y is missing).

    Equal points are all on the frontier: a tie is not a reason to drop a variant.
    """
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    sx = 1.0 if maximize_x else -1.0
    sy = 1.0 if maximize_y else -1.0
    pts = [(sx * float(a), sy * float(b)) if _known(a) and _known(b) else None for a, b in zip(x, y)]
    flags: list[bool | None] = []
    for i, p in enumerate(pts):
        if p is None:
            flags.append(None)
            continue
        flags.append(not any(q is not None and j != i and dominates(q, p) for j, q in enumerate(pts)))
    return flags
