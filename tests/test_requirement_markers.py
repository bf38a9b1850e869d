"""CI can never skip the llama-server and Chromium tests: with CI set a missing tool fails them.

Runs pytest on two of those tests with the tools hidden (an empty PATH and an empty llama-tools
cache), once as CI and once as a user's machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs a nested pytest (2-5 s): the full suite and CI run them

ROOT = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/backends/test_llama_server.py::test_sigterm_stops_the_server_and_keeps_samples",
    "tests/report/test_leaderboard_files.py::test_html_report_renders_in_chromium",
]


def pytest_without_tools(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PATH=str(empty), EVALKIT_LLAMA_TOOLS=str(empty), **({"CI": "true"} if ci else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *TESTS], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_in_ci_a_missing_tool_fails_the_test(tmp_path):
    out = pytest_without_tools(tmp_path, ci=True)
    assert out.returncode == 1, out.stdout
    assert "2 errors" in out.stdout and "skipped" not in out.stdout
    assert "llama-server is missing and CI is set: CI must run this test (`bash scripts/llama-tools.sh`)" in out.stdout
    assert "chromium is missing and CI is set" in out.stdout


def test_on_a_users_machine_it_skips_naming_the_command(tmp_path):
    out = pytest_without_tools(tmp_path, ci=False)
    assert out.returncode == 0, out.stdout
    assert "2 skipped" in out.stdout
    assert "llama-server not found; enable with: bash scripts/llama-tools.sh" in out.stdout
    assert "chromium not found; enable with: sudo apt-get install -y chromium" in out.stdout
