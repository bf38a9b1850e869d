"""Pareto flags and recommendations on a constructed table, against hand-computed answers."""

import pytest

from evalkit.metrics.pareto import pareto_flags
from evalkit.report.frontier import frontier
from evalkit.report.rows import to_frame
from evalkit.report.load import ReportError

# variant: (tg tokens/s, KLD, memory GB). Worked out by hand:
#  speed frontier (faster is better, lower KLD is better):
#    f16  10/0.000  yes: nothing has lower KLD
#    q8_0 15/0.001  yes: only f16 has lower KLD, and it is slower
#    q6_k 14/0.004  NO: q8_0 is faster and has lower KLD
#    q4_k 20/0.030  yes
#    q4_0 19/0.050  NO: q4_k is faster with lower KLD
#    q2_k 22/0.450  yes: fastest
#  memory frontier (less is better):
#    f16 0.30 yes (best KLD); q8_0 0.18 yes; q6_k 0.15 yes (nothing smaller has KLD <= 0.004);
#    q4_k 0.12 yes; q4_0 0.11 yes (smaller than q4_k); q2_k 0.08 yes (smallest)
#    q5_0 0.16/0.006 NO: q6_k is smaller and better. (speed 12: NO, q8_0 dominates)
TABLE = {
    "f16": (10.0, 0.000, 0.30),
    "q8_0": (15.0, 0.001, 0.18),
    "q6_k": (14.0, 0.004, 0.15),
    "q5_0": (12.0, 0.006, 0.16),
    "q4_k": (20.0, 0.030, 0.12),
    "q4_0": (19.0, 0.050, 0.11),
    "q2_k": (22.0, 0.450, 0.08),
}
SPEED_FRONT = {"f16", "q8_0", "q4_k", "q2_k"}
MEMORY_FRONT = {"f16", "q8_0", "q6_k", "q4_k", "q4_0", "q2_k"}


def _rows(table=TABLE, hw="hw1", extra=None):
    rows = []
    for v, (tg, kld, mem) in table.items():
        rows.append(
            {
                "model": "m", "variant": v, "family": "m", "backend": "llama_cpp", "settings": "llama_cpp",
                "hardware": f"CPU {hw}", "hardware_fingerprint": hw, "status": "complete",
                "tg_tokens_per_s": tg, "kld_mean": kld, "memory_gb": mem, "size_gb": mem * 0.8,
                "kld_reference_sha256": "ref", "kld_corpus_sha256": "corpus", "kld_reference": "m f16",
                **(extra or {}),
            }
        )  # fmt: skip
    return rows


def _flags(front, col):
    return {r["variant"] for r in front.frame.to_dicts() if r[col]}


def test_pareto_flags_by_hand():
    assert pareto_flags([1, 2, 3], [3, 2, 1]) == [True, True, True]
    assert pareto_flags([1, 2, 3], [1, 2, 3]) == [False, False, True]
    assert pareto_flags([1, 1], [2, 2]) == [True, True], "ties both stay"
    assert pareto_flags([1, None, 3], [1, 5, None]) == [True, None, None]
    assert pareto_flags([5, 4], [0.1, 0.2], maximize_y=False) == [True, False]


def test_frontier_flags_match_hand_computation():
    front = frontier(to_frame(_rows()))
    assert front.quality == "kld_mean"
    assert _flags(front, "pareto_speed") == SPEED_FRONT
    assert _flags(front, "pareto_memory") == MEMORY_FRONT
    df = front.frame
    assert set(df["speed_metric"]) == {"tg_tokens_per_s"} and set(df["memory_metric"]) == {"memory_gb"}


def test_recommendation_is_fastest_within_budgets():
    front = frontier(to_frame(_rows()), max_kld=0.04)
    (rec,) = front.recommendations
    assert rec.row["variant"] == "q4_k"
    assert "fastest (20.0 tg_tokens_per_s)" in rec.reason and "kld_mean <= 0.04" in rec.reason
    assert "next: m:q8_0 at 15.0" in rec.reason
    assert any("q2_k (KLD 0.45 > 0.04)" in e for e in rec.excluded)
    assert _flags(front, "recommended") == {"q4_k"}

    front = frontier(to_frame(_rows()), max_kld=0.01, max_memory_gb=0.16)
    assert front.recommendations[0].row["variant"] == "q6_k"
    assert any("q8_0 (memory_gb 0.18 > 0.16 GB)" in e for e in front.recommendations[0].excluded)

    front = frontier(to_frame(_rows()), max_kld=0.0001, max_memory_gb=0.1)
    assert front.recommendations[0].row is None and "no variant meets" in front.recommendations[0].reason


def test_hardware_classes_are_separate_groups():
    rows = _rows(hw="hw1") + _rows({"q8_0": (40.0, 0.001, 0.18), "q4_k": (30.0, 0.03, 0.12)}, hw="hw2")
    front = frontier(to_frame(rows), max_kld=0.04)
    assert len(front.recommendations) == 2
    picks = {r.row["hardware_fingerprint"]: r.row["variant"] for r in front.recommendations}
    assert picks == {"hw1": "q4_k", "hw2": "q8_0"}  # on hw2 the 8-bit is faster
    hw2 = [r for r in front.frame.to_dicts() if r["hardware_fingerprint"] == "hw2"]
    assert {r["variant"] for r in hw2 if r["pareto_speed"]} == {"q8_0"}


def test_pass_rate_quality_and_missing_values():
    rows = _rows()
    for r, p in zip(rows, [0.9, 0.9, 0.8, 0.7, 0.95, None, 0.5]):
        r.pop("kld_mean")
        r["pass_strict"] = p
        r["gen_tasks"], r["sampling"] = "constraints(14p x5)", "T=1.0"
    front = frontier(to_frame(rows), min_pass_rate=0.85)
    assert front.quality == "pass_strict"
    flags = {r["variant"]: r["pareto_speed"] for r in front.frame.to_dicts()}
    # (speed, pass): f16 10/.9, q8 15/.9, q6 14/.8, q5 12/.7, q4_k 20/.95, q4_0 19/None, q2 22/.5
    assert flags == {"f16": False, "q8_0": False, "q6_k": False, "q5_0": False, "q4_k": True, "q4_0": None, "q2_k": True}
    assert front.recommendations[0].row["variant"] == "q4_k"


def test_unknown_or_unmeasured_quality_metric_is_an_error():
    with pytest.raises(ReportError, match="unknown quality metric"):
        frontier(to_frame(_rows()), quality="vibes")
    with pytest.raises(ReportError, match="no run measured pass_strict"):
        frontier(to_frame(_rows()), quality="pass_strict")
