"""`-m backend.speculative=none,prompt_lookup`: both runs end to end, paired, counts that add up."""

from __future__ import annotations

import math

import pytest
from cli_runs import greedy_sweep, run_evalkit, runs_by, sample_records, speculative_method

from evalkit.records import RunResult
from evalkit.speculative import main as speculative_main

pytestmark = pytest.mark.slow  # every test here runs a real model

SWEEP = greedy_sweep(
    "smollm2_135m", "prompt_lookup", "backend.num_pred_tokens=4", "task.prompts=[no_lists,one_sentence]",
    "task.samples=2", max_tokens=32,
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("spec")
    proc = run_evalkit(cwd, *SWEEP, timeout=600)
    assert proc.returncode == 0, proc.stderr
    runs = runs_by(cwd, speculative_method)
    assert set(runs) == {"none", "prompt_lookup"}
    return runs, proc


def test_acceptance_counts_add_up(sweep):
    runs, _ = sweep
    run_dir, result = runs["prompt_lookup"]
    samples = sample_records(run_dir)
    g = result.generation
    assert len(samples) == 4 and g.n_samples == 4
    for s in samples:
        assert s.drafted_tokens is not None and 0 <= s.accepted_tokens <= s.drafted_tokens
        assert s.accepted_tokens <= s.completion_tokens
        if s.drafted_tokens:
            assert s.acceptance_rate == s.accepted_tokens / s.drafted_tokens
    assert g.drafted_tokens == sum(s.drafted_tokens for s in samples) > 0
    assert g.accepted_tokens == sum(s.accepted_tokens for s in samples)
    assert g.acceptance_rate == pytest.approx(g.accepted_tokens / g.drafted_tokens)
    plain = sample_records(runs["none"][0])
    assert all(s.drafted_tokens is None for s in plain)


def test_speedup_is_paired_against_the_plain_run(sweep):
    runs, proc = sweep
    run_dir, result = runs["prompt_lookup"]
    s = result.speculative
    assert s is not None and s.method == "prompt_lookup" and s.num_pred_tokens == 4
    assert (run_dir.parent / s.baseline_run).resolve() == runs["none"][0].resolve()
    # Greedy speculation is lossless: every pair is identical, or differs only where a near tie
    # flips between the verify batch's numerics and single-token decoding (measured, not assumed).
    assert s.n_pairs == 4 and s.n_identical_outputs + s.n_numerics_explained == 4
    assert s.n_unexplained == 0 and s.n_unchecked == 0
    assert len(s.divergences) == 4 - s.n_identical_outputs
    assert (s.drafted_tokens, s.accepted_tokens) == (result.generation.drafted_tokens, result.generation.accepted_tokens)
    for x in (s.speedup, s.speedup_geomean, s.speedup_ci_low, s.speedup_ci_high, s.total_s_ratio):
        assert x is not None and math.isfinite(x) and x > 0
    assert s.speedup_ci_low <= s.speedup_geomean <= s.speedup_ci_high
    assert s.speedup == pytest.approx(s.gen_tokens_per_s / s.gen_tokens_per_s_baseline)
    assert runs["none"][1].speculative is None  # the plain run is the baseline, not compared
    assert "drafted tokens accepted" in proc.stdout and "paired samples" in proc.stdout


def test_recompute_from_the_command_line(sweep, capsys):
    runs, _ = sweep
    run_dir, result = runs["prompt_lookup"]
    assert speculative_main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert '"speedup"' in out and "paired samples" in out
    again = RunResult.model_validate_json((run_dir / "results.json").read_text())
    assert again.speculative.speedup == pytest.approx(result.speculative.speedup)
