"""User errors of task=kld / task=perplexity: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import pytest
from conftest import assert_one_line_error


def test_unknown_quant_type_fails_before_the_sweep(any_cli):
    r = any_cli("-m", "model=smollm2_135m", "model.quant=f16,q9_9", "task=kld")
    assert_one_line_error(r, "unknown quant type 'q9_9'")
    assert not r.run_dirs()


@pytest.mark.slow
def test_corpus_shorter_than_two_contexts(cli, tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("A sentence or two is far too short to score with a context of 128 tokens.")
    r = cli("task=perplexity", f"task.corpus={text}", "task.n_ctx=128")
    assert_one_line_error(r, "needs at least 256 (2 x n_ctx)")


@pytest.mark.slow
def test_reference_with_another_vocabulary(cli):
    r = cli("task=kld", "task.reference=gemma3_270m", "task.n_ctx=128", "task.chunks=2")
    assert_one_line_error(r, "different vocabularies", "49152 vs 262144")


@pytest.mark.slow
def test_wikitext_offline(cli):
    r = cli("task=perplexity", "task.corpus=wikitext2", env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert_one_line_error(r, "task.corpus=wikitext2", "offline")
