"""Flips are a pure function of two runs' items: counted per task, both directions, paired."""

import math

import pytest

from evalkit.metrics.flips import compute_flips, read_items, write_items
from evalkit.records import LmEvalItem


def item(task, doc, correct, pred=None, doc_hash=None):
    return LmEvalItem(
        task=task,
        doc_id=doc,
        doc_hash=doc_hash or f"h{doc}",
        metric="acc",
        score=None if correct is None else float(correct),
        correct=correct,
        prediction=pred if pred is not None else ("right" if correct else "wrong"),
        target="right",
    )


def test_counts_both_directions_and_the_paired_delta():
    ref = [item("a", i, c) for i, c in enumerate([1, 1, 1, 0, 0, 1])]
    cur = [item("a", i, c) for i, c in enumerate([1, 0, 1, 1, 0, 0])]
    per_task, total = compute_flips(cur, ref, "ref")
    f = per_task["a"]
    assert (f.n_common, f.to_correct, f.to_incorrect, f.n_flips) == (6, 1, 2, 3)
    assert f.accuracy == pytest.approx(3 / 6) and f.reference_accuracy == pytest.approx(4 / 6)
    assert f.accuracy_delta == pytest.approx(-1 / 6)
    diffs = [0, -1, 0, 1, 0, -1]
    mean = sum(diffs) / 6
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 5 / 6)
    assert f.accuracy_delta_se == pytest.approx(se)
    assert total.n_common == 6 and total.n_flips == 3 and f.reference == "ref"


def test_only_common_items_with_the_same_document_count():
    ref = [item("a", 0, 1), item("a", 1, 1), item("a", 2, 0, doc_hash="other-data"), item("b", 0, 1)]
    cur = [item("a", 0, 0), item("a", 1, 1), item("a", 2, 1), item("a", 3, 1), item("c", 0, 1)]
    per_task, total = compute_flips(cur, ref, "ref")
    assert set(per_task) == {"a"}  # b and c have no common item
    assert per_task["a"].n_common == 2 and per_task["a"].to_incorrect == 1
    assert total.n_common == 2


def test_non_binary_items_are_left_out_and_changed_answers_are_counted():
    ref = [item("a", 0, 1, pred="x"), item("a", 1, 0, pred="y"), item("a", 2, None)]
    cur = [item("a", 0, 1, pred="x"), item("a", 1, 0, pred="z"), item("a", 2, None)]
    per_task, _ = compute_flips(cur, ref, "ref")
    f = per_task["a"]
    assert f.n_common == 2 and f.n_flips == 0 and f.n_changed_answers == 1


def test_items_round_trip_through_jsonl(tmp_path):
    items = [item("a", i, i % 2 == 0) for i in range(5)]
    write_items(tmp_path / "items.jsonl", items)
    with (tmp_path / "items.jsonl").open("a") as fh:
        fh.write('{"task": "a", "doc_id": 9, "broken')  # a killed writer's tail is skipped
    assert read_items(tmp_path) == items
