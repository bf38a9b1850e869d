"""Speculative decoding is lossless, proven per divergence on the real SmolLM2 Q4_1.

The issue's own command: prompt lookup against plain greedy decoding over all 14 constraint
prompts. Every pair must be identical or a near tie that batch numerics flip, checked by
replaying both paths' decodes and reading the competing tokens' logits in both rows.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_runs import greedy_sweep, run_evalkit, runs_by, speculative_method

pytestmark = pytest.mark.slow  # every test here runs a real model

SWEEP = greedy_sweep("smollm2_135m", "prompt_lookup")


@pytest.fixture(scope="module")
def spec_result(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("lossless")
    proc = run_evalkit(cwd, *SWEEP)
    assert proc.returncode == 0, proc.stderr
    spec = runs_by(cwd, speculative_method)["prompt_lookup"][1]
    return spec, proc


def test_every_prompt_is_identical_or_explained_by_numerics(spec_result):
    spec, proc = spec_result
    s = spec.speculative
    assert s is not None and s.n_pairs == 14
    assert s.n_identical_outputs + s.n_numerics_explained + s.n_unexplained + s.n_unchecked == 14
    assert s.n_unchecked == 0, [d.reason for d in s.divergences]
    assert s.n_unexplained == 0, [d.model_dump() for d in s.divergences if d.verdict == "unexplained"]
    assert len(s.divergences) == 14 - s.n_identical_outputs
    assert "lossless check:" in proc.stdout


def test_each_divergence_is_a_measured_flip(spec_result):
    s = spec_result[0].speculative
    for d in s.divergences:
        # The plain row prefers its token, the verify batch's row the other: both gaps measured,
        # both >= 0 (each path's argmax), and small against the rows' agreement.
        assert d.token_plain != d.token_spec and d.position is not None and d.position >= 0
        assert d.gap_single is not None and d.gap_batch is not None
        assert d.gap_single >= 0 and d.gap_batch >= 0
        assert d.gap_single + d.gap_batch <= 2 * d.row_max_abs_diff + 1e-6
        assert d.batch_rows is not None and d.batch_rows >= 1
        assert np.isfinite(d.row_max_abs_diff)


INJECT = '''
import sys
import evalkit.backends.llama_cpp as m
_orig = m.LlamaCppBackend.sample
# The bug: a verify batch's row i is read from row i-1 (an off-by-one in the verify loop).
m.LlamaCppBackend.sample = lambda self, sampler, row: _orig(self, sampler, row - 1 if row > 0 else row)
from evalkit.__main__ import main
sys.argv[0] = "evalkit"
main()
'''


def test_an_off_by_one_in_the_verify_loop_is_unexplained(tmp_path):
    """The check is not vacuous: a real bug (a verify row read one row early) is caught."""
    script = tmp_path / "inject.py"
    script.write_text(INJECT)
    args = greedy_sweep("smollm2_135m", "prompt_lookup", "task.prompts=[no_lists,one_sentence,two_paragraphs]",
                        "print_table=false", max_tokens=32)
    proc = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    s = runs_by(tmp_path, speculative_method)["prompt_lookup"][1].speculative
    assert s.n_unexplained >= 1 and s.n_identical_outputs + s.n_numerics_explained + s.n_unexplained == 3
    bad = [d for d in s.divergences if d.verdict == "unexplained"]
    assert all(d.row_max_abs_diff > 1.5 * d.batch_noise_floor for d in bad)
