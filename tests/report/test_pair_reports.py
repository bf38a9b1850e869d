"""Pair reports on constructed 4-bit QAT vs 8-bit PTQ runs (real files, hand-checked ratios)."""

import math

import numpy as np
import pytest

from evalkit.metrics.bootstrap import paired_ratios
from evalkit.metrics.intervals import t_quantile
from evalkit.report.load import ReportError, load_runs
from evalkit.report.pairs import NOISE, build_pairs, nominal_bits
from report_fixtures import HW_A, HW_B, write_run

# QAT side: p1 is twice as fast as the 8-bit (clearly real); p2 has the same values in another
# order (ratio exactly 1: noise); p3 a bit faster with wide spread.
QAT = {
    "p1": [(500, 5.0), (510, 5.1), (490, 4.9), (505, 5.2), (495, 4.8)],
    "p2": [(300, 3.0), (330, 3.3), (270, 2.7), (310, 3.1), (290, 2.9)],
    "p3": [(200, 2.0), (260, 2.2), (140, 1.5), (230, 2.6), (170, 1.9)],
}
Q8 = {
    "p1": [(500, 10.0), (505, 10.2), (495, 9.8), (510, 10.1), (490, 9.9)],
    "p2": [(330, 3.3), (300, 3.0), (290, 2.9), (270, 2.7), (310, 3.1)],
    "p3": [(210, 2.4), (150, 1.7), (250, 2.9), (180, 2.3)],  # one sample fewer: a confound
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs") / "outputs"
    write_run(root, model="g12_qat", variant="Q4_K", file_type="Q4_K", bpw=4.9, size_bytes=6_300_000_000,
              qat=True, family="g12", samples=QAT, type_k="q8_0", peak_rss=7_000_000_000)  # fmt: skip
    write_run(root, model="g12_q8", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=12_000_000_000,
              family="g12", samples=Q8, peak_rss=13_000_000_000)  # fmt: skip
    return root


def _total_throughput(side):
    chars = sum(np.mean([c for c, _ in v]) for v in side.values())
    time = sum(np.mean([t for _, t in v]) for v in side.values())
    return chars / time


def test_qat_vs_8bit_ratios_intervals_and_confounds(tree):
    warnings = []
    (rep,) = build_pairs(load_runs([tree]).runs, "g12_qat=g12_q8", warnings)
    assert rep.factor == "QAT vs post-training quantization"
    flags = " | ".join(rep.confounds)
    assert "bit width: 4-bit Q4_K (4.90 bpw) vs 8-bit Q8_0 (8.50 bpw)" in flags
    assert "KV-cache types: type_k q8_0 vs f16" in flags
    assert "sample counts: p3 5 vs 4" in flags
    assert "sampling" not in flags and "hardware" not in flags and "build" not in flags

    p1 = rep.per_prompt["p1"]["chars_per_s"]
    assert p1.ratio == pytest.approx((2500 / 25.0) / (2500 / 50.0))  # 2.0 by construction
    assert p1.lo > 1.0 and rep.verdict(p1) == "distinguishable"
    p2 = rep.per_prompt["p2"]["chars_per_s"]
    # every p2 sample runs at exactly 100 chars/s on both sides: no spread, the interval is the point 1.0
    assert p2.ratio == pytest.approx(1.0) and p2.lo <= 1.0 <= p2.hi and rep.verdict(p2) == NOISE
    assert rep.per_prompt["p2"]["output_chars"].covers_one  # same outputs: noise, said so
    total = rep.total["chars_per_s"]
    assert total.ratio == pytest.approx(_total_throughput(QAT) / _total_throughput(Q8))
    assert total.lo < total.ratio < total.hi
    assert rep.total["total_s"].ratio < 1  # the QAT side takes less time

    assert rep.memory["size_gb_saved"] == pytest.approx(12.0 - 6.3)
    assert rep.memory["memory_gb_saved"] == pytest.approx(13.0 - 7.0)
    assert rep.counts["p3"] == (5, 4)


def test_intervals_are_deterministic_and_match_the_jackknife_by_hand(tree):
    runs = load_runs([tree]).runs
    a = build_pairs(runs, "g12_qat=g12_q8", [])[0].to_dict()
    assert a == build_pairs(runs, "g12_qat=g12_q8", [])[0].to_dict()  # no resampling: same every time
    # p1 throughput by hand: log(sum c / sum t) with each sample left out in turn, per side
    parts = []
    for side in (QAT, Q8):
        c, t = np.array([x for x, _ in side["p1"]], float), np.array([y for _, y in side["p1"]], float)
        n = len(c)
        theta = [math.log(np.delete(c, i).sum() / np.delete(t, i).sum()) for i in range(n)]
        parts.append(((n - 1) / n * sum((x - np.mean(theta)) ** 2 for x in theta), n - 1))
    var = sum(v for v, _ in parts)
    df = var**2 / sum(v**2 / d for v, d in parts)
    q = float(t_quantile(0.975, df))
    row = a["per_prompt"]["p1"]["chars_per_s"]
    assert row["df"] == pytest.approx(df)
    assert row["ci95"] == pytest.approx([2.0 * math.exp(-q * math.sqrt(var)), 2.0 * math.exp(q * math.sqrt(var))])
    assert row["detectable"] > 0 and row["p"] < 0.05


def test_one_sample_per_prompt_gives_no_interval_and_says_so(tmp_path):
    root = tmp_path / "outputs"
    one = {"p1": [(400, 4.0)], "p2": [(100, 1.0)]}
    write_run(root, model="a", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**9, samples=one)
    write_run(root, model="b", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**9,
              samples={"p1": [(400, 8.0)], "p2": [(100, 2.0)]})  # fmt: skip
    (rep,) = build_pairs(load_runs([root]).runs, "a=b", [])
    r = rep.per_prompt["p1"]["chars_per_s"]
    assert r.ratio == pytest.approx(2.0) and r.lo is None and "no interval" in rep.verdict(r)
    assert rep.total["chars_per_s"].lo is None
    assert any("one sample per prompt" in c for c in rep.confounds)
    assert not any("bit width" in c or "KV-cache" in c for c in rep.confounds)


def test_other_confounds_hardware_sampling_build_truncation(tmp_path):
    root = tmp_path / "outputs"
    s = {"p1": [(400, 4.0), (420, 4.1)]}
    write_run(root, model="a", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**9, samples=s)
    write_run(root, model="b", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**9, samples=s, hw=HW_B,
              build="llama-server b9999", flavour="cuda", sampling={"temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
              "repeat_penalty": 1.0, "max_tokens": 64, "seed": 0, "stop": []}, truncated=True)  # fmt: skip
    (rep,) = build_pairs(load_runs([root]).runs, "a:q4_0=b", [])
    flags = " | ".join(rep.confounds)
    for needle in ("hardware: Test CPU 9000 (8 cores) vs Other CPU 7000 (4 cores) + NVIDIA Test GPU",
                   "llama.cpp build", "sampling: max_tokens None vs 64", "temperature 1.0 vs 0.0",
                   "truncated outputs: 0 of 2 vs 2 of 2", "device: CPU vs NVIDIA Test GPU",
                   "llama.cpp flavour: cpu vs cuda"):  # fmt: skip
        assert needle in flags, flags


def test_pair_errors_are_clear(tree):
    runs = load_runs([tree]).runs
    with pytest.raises(ReportError, match="no complete runs of 'nope'; have: g12_q8:Q8_0, g12_qat:Q4_K"):
        build_pairs(runs, "nope=g12_q8", [])
    with pytest.raises(ReportError, match="--pair wants A=B"):
        build_pairs(runs, "g12_qat", [])
    with pytest.raises(ReportError, match="no complete runs of 'g12_q8:q4_0'"):
        build_pairs(runs, "g12_qat=g12_q8:q4_0", [])


def test_ambiguous_sides_are_an_error_unless_a_fair_pair_exists(tmp_path):
    root = tmp_path / "outputs"
    s = {"p1": [(400, 4.0), (420, 4.1)]}
    for hw in (HW_A, HW_B):
        write_run(root, model="a", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**9, samples=s, hw=hw,
                  type_k="q8_0")  # fmt: skip
    write_run(root, model="b", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=10**9, samples=s)
    with pytest.raises(ReportError, match="is ambiguous .*name a variant"):
        build_pairs(load_runs([root]).runs, "a=b", [])
    write_run(root, model="b", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=10**9, samples=s, type_k="q8_0")
    (rep,) = build_pairs(load_runs([root]).runs, "a=b", [])  # same machine and settings: a fair pair
    assert not any("KV-cache" in c or "hardware" in c for c in rep.confounds)


def test_nominal_bits():
    assert [nominal_bits(t, None) for t in ("Q8_0", "Q4_K_M", "IQ4_XS", "Q2_K", "F16", "BF16", "TQ1_0")] == [8, 4, 4, 2, 16, 16, 1]
    assert nominal_bits("weird", 5.6) == 6


def test_paired_ratios_by_hand():
    a = {"p": np.array([[100, 1.0, 9, 0.9]] * 3)}
    b = {"p": np.array([[100, 2.0, 9, 1.8]] * 3)}
    per, total = paired_ratios(a, b)
    assert per["p"]["chars_per_s"].ratio == pytest.approx(2.0)
    assert per["p"]["gen_tokens_per_s"].ratio == pytest.approx(2.0)
    assert per["p"]["total_s"].ratio == pytest.approx(0.5)
    # no spread at all: the interval is the point, and it does not cover 1
    assert per["p"]["chars_per_s"].lo == pytest.approx(2.0) and per["p"]["chars_per_s"].covers_one is False
    # two samples a side: the ratio, but no interval, and the reason
    per2, total2 = paired_ratios({"p": a["p"][:2]}, {"p": b["p"][:2]})
    r = per2["p"]["chars_per_s"]
    assert r.ratio == pytest.approx(2.0) and r.lo is None and r.note == "n=2/2<3 a side: no interval"
    assert total2["chars_per_s"].lo is None and "no interval" in total2["chars_per_s"].note
