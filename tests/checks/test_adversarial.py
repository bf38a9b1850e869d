"""The checkers against a hand-labelled adversarial set (tests/checks/adversarial_cases.yaml).

Each case says what a careful reader would decide; the score is the share of cases where the
checker's strict verdict agrees. The threshold is the score the checkers actually reach. Before
the fixes of issue 13 the first 100 cases scored 67/100; the 25 held-out cases at the end were
written afterwards and scored 22/25 before their three misses were fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalkit.checks import compile_check

CASES = yaml.safe_load((Path(__file__).with_name("adversarial_cases.yaml")).read_text(encoding="utf-8"))["cases"]
THRESHOLD = 1.0  # every case agrees today; lower it only with a written reason


def _verdict(case) -> bool:
    check, params = compile_check(case["check"], case.get("params") or {})
    return check(case["text"], params).passed


def test_the_set_is_big_and_well_formed():
    assert len(CASES) >= 60
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    for c in CASES:
        assert c["expect"] in ("pass", "fail") and c["why"].strip(), c["id"]
    # Both verdicts are represented for every checker family.
    for name in {c["check"] for c in CASES}:
        assert {c["expect"] for c in CASES if c["check"] == name} == {"pass", "fail"}, name


def test_adversarial_score(capsys):
    misses = []
    for case in CASES:
        got = "pass" if _verdict(case) else "fail"
        if got != case["expect"]:
            misses.append(f"{case['id']}: expected {case['expect']}, got {got} ({case['why']})")
    score = 1 - len(misses) / len(CASES)
    with capsys.disabled():
        print(f"\nadversarial checker set: {len(CASES) - len(misses)}/{len(CASES)} agree ({score:.1%})")
        for m in misses:
            print("  miss", m)
    assert score >= THRESHOLD, "\n".join(misses)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case):
    assert ("pass" if _verdict(case) else "fail") == case["expect"], case["why"]
