"""Flips: items one variant gets right and the other wrong, per task (pure functions of records).

Accuracy deltas hide churn: a quant can lose ten items and gain eight and look 2 points worse.
Flips count both directions on the items both runs scored (same task, doc id and document
hash), with the paired standard error of the accuracy delta. The leaderboard imports these.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping

from evalkit.metrics.moments import sample_sd
from evalkit.records import ITEMS_FILE, FlipStats, LmEvalItem, RunResult, read_items, write_items  # noqa: F401 (re-exported)

Key = tuple[str, int, str]


def _index(items: Iterable[LmEvalItem | Mapping]) -> dict[Key, LmEvalItem]:
    out = {}
    for it in items:
        item = it if isinstance(it, LmEvalItem) else LmEvalItem.model_validate(it)
        if item.correct is not None:
            out[(item.task, item.doc_id, item.doc_hash)] = item
    return out


def flip_stats(pairs: list[tuple[LmEvalItem, LmEvalItem]], reference: str) -> FlipStats:
    """Flip counts and the paired accuracy delta for (item, reference item) pairs."""
    n = len(pairs)
    to_correct = sum(1 for a, r in pairs if a.correct and not r.correct)
    to_incorrect = sum(1 for a, r in pairs if r.correct and not a.correct)
    changed = sum(1 for a, r in pairs if a.prediction != r.prediction)
    if n == 0:
        return FlipStats(
            n_common=0, n_flips=0, to_correct=0, to_incorrect=0, n_changed_answers=0, reference=reference
        )
    acc = sum(1 for a, _ in pairs if a.correct) / n
    ref_acc = sum(1 for _, r in pairs if r.correct) / n
    diffs = [int(bool(a.correct)) - int(bool(r.correct)) for a, r in pairs]
    se = sample_sd(diffs) / math.sqrt(n) if n > 1 else None
    return FlipStats(
        n_common=n,
        n_flips=to_correct + to_incorrect,
        to_correct=to_correct,
        to_incorrect=to_incorrect,
        accuracy=acc,
        reference_accuracy=ref_acc,
        accuracy_delta=acc - ref_acc,
        accuracy_delta_se=se,
        n_changed_answers=changed,
        reference=reference,
    )


def compute_flips(
    items: Iterable[LmEvalItem | Mapping],
    reference_items: Iterable[LmEvalItem | Mapping],
    reference: str,
) -> tuple[dict[str, FlipStats], FlipStats]:
    """Per-task flips of `items` against `reference_items`, and all tasks together.

    Only items with a 0/1 verdict on both sides count; tasks with no common item are left out.
    """
    mine, theirs = _index(items), _index(reference_items)
    by_task: dict[str, list[tuple[LmEvalItem, LmEvalItem]]] = defaultdict(list)
    for key, item in mine.items():
        ref = theirs.get(key)
        if ref is not None:
            by_task[key[0]].append((item, ref))
    per_task = {task: flip_stats(pairs, reference) for task, pairs in sorted(by_task.items())}
    every = [p for pairs in by_task.values() for p in pairs]
    return per_task, flip_stats(every, reference)


def flips_between_runs(run_dir: Path, reference_dir: Path, reference: str | None = None):
    """compute_flips for two run directories (each with items.jsonl)."""
    label = reference or run_label(reference_dir)
    return compute_flips(read_items(run_dir), read_items(reference_dir), label)


def run_label(run_dir: Path, *, with_dir: bool = False) -> str:
    """'model [variant]' of a run directory (with its name in brackets), else its path."""
    result = RunResult.read(run_dir)
    if result is None:
        return str(run_dir)
    label = f"{result.model.name} [{result.model.variant}]"
    return f"{label} ({run_dir.name})" if with_dir else label
