"""The plain/MTP x two-variant grid from one offline sweep of the synthetic Gemma 4, and its
quality interval's coverage at the sample counts the grid prints it for."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_runs import greedy_sweep, run_evalkit

from evalkit.report.load import load_runs
from evalkit.report.mtp_grid import grid_rows, wilson

# the second variant stands in for QAT (no QAT file offline)
SWEEP = greedy_sweep("gemma4_tiny", "mtp", "print_table=false", quants="null,q4_0")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("grid")
    proc = run_evalkit(cwd, *SWEEP)
    assert proc.returncode == 0, proc.stderr
    return cwd / "outputs"


@pytest.mark.slow
def test_grid_rows_from_one_sweep(outputs):
    rows = grid_rows(load_runs([outputs]).runs)
    assert len(rows) == 4 and len({r.group for r in rows}) == 1
    assert {(r.variant, r.speculative) for r in rows} == {("F32", "none"), ("F32", "mtp"), ("q4_0", "none"), ("q4_0", "mtp")}
    for r in rows:
        assert r.n_samples == 14 and r.pass_n == 14 and r.gen_tokens_per_s > 0
        assert r.pass_strict_ci_low <= r.pass_strict <= r.pass_strict_ci_high
        if r.speculative == "mtp":
            assert r.draft_model == "gemma4_tiny_assistant"
            assert 0 < r.acceptance_rate < 1
            assert r.speedup_ci_low <= r.speedup <= r.speedup_ci_high
            assert r.n_identical + r.n_numerics_explained == r.n_pairs == 14 and r.n_unexplained == 0
        else:
            assert r.speedup is None and r.drafted_tokens is None
    # Lossless: the speculative row's quality is the plain row's, variant by variant.
    by = {(r.variant, r.speculative): r for r in rows}
    for v in ("F32", "q4_0"):
        if by[(v, "mtp")].n_identical == 14:
            assert by[(v, "mtp")].pass_strict == by[(v, "none")].pass_strict


@pytest.mark.slow
def test_leaderboard_prints_the_grid(outputs):
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit.leaderboard", str(outputs)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "MTP / QAT grid" in proc.stdout and "speedup vs plain" in proc.stdout


@pytest.mark.slow
def test_report_has_the_grid_as_a_matrix(outputs, tmp_path):
    page = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit.leaderboard", str(outputs), "--html", str(page), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    grid = page.read_text().split("id='mtp-grid'", 1)[1].split("</table>", 1)[0]
    # one row per variant, one column per decoding method: the 2x2 the seeds drew
    assert grid.count("<tr>") == 3 and grid.count("<th class='l'>") == 3
    assert "acceptance" in grid and "pass strict" in grid and "not run" not in grid


@pytest.mark.parametrize("n", [14, 28, 56, 140])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_wilson_coverage(n, p):
    k = np.random.default_rng(n * 10 + int(p * 10)).binomial(n, p, size=4000)
    coverage = np.mean([lo <= p <= hi for lo, hi in (wilson(int(x), n) for x in k)])
    assert 0.92 <= coverage <= 0.99, coverage
