"""Every prompt suite in tasks/ loads; broken suites fail at load with the reason."""

from pathlib import Path

import pytest
import yaml

from evalkit.errors import TaskError
from evalkit.paths import TASKS_DIR
from evalkit.suite import load_suite

SUITES = sorted(p for p in TASKS_DIR.glob("*.yaml") if "prompts" in (yaml.safe_load(p.read_text()) or {}))


def test_the_shipped_suites_are_there():
    names = {p.stem for p in SUITES}
    assert {"stress", "constraints"} <= names


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_loads(path: Path):
    suite = load_suite(str(path))
    assert suite.prompts and len(suite.sha256) == 64
    for prompt in suite.prompts:
        assert prompt.prompt.strip()


def test_stress_suite_has_the_six_categories_and_no_cap():
    suite = load_suite("stress")
    assert [p.id for p in suite.prompts] == [
        "creative_voice",
        "multi_hop_reasoning",
        "nuanced_distinction",
        "constraint_following",
        "edge_case_judgment",
        "creative_continuation",
    ]
    s = suite.sampling
    assert (s.temperature, s.top_p, s.top_k, s.max_tokens) == (1.0, 0.95, 64, None)


def test_constraints_suite_covers_every_checker():
    from evalkit.checks import REGISTRY

    suite = load_suite("constraints")
    assert len(suite.prompts) >= 12
    used = {c.name for p in suite.prompts for c in p.checks}
    assert set(REGISTRY) <= used | {n for n in REGISTRY if n.startswith("ifeval")}


def test_unknown_check_fails_at_load(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nprompts:\n  - id: p1\n    category: c\n    prompt: hi\n    checks:\n      - no_such_check: {}\n"
    )
    with pytest.raises(TaskError, match="unknown check 'no_such_check'"):
        load_suite(str(bad))


def test_sampling_override_is_validated(tmp_path):
    with pytest.raises(TaskError, match="temperature"):
        load_suite("stress", {"temperature": -1})
