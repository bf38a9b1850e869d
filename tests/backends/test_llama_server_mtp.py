"""backend=llama_server backend.speculative=mtp: llama-server drafts with the Gemma 4 assistant.

The real part runs the synthetic Gemma 4 pair (offline) through the llama-server that
scripts/llama-tools.sh builds: greedy output with MTP equals greedy output without, prompts
included whose text runs past the sliding window, acceptance strictly between 0 and 1, and the
speculative pair block as for in-process runs. The flag probing is also checked on help texts
of older and newer llama-server builds.
"""

from __future__ import annotations

import pytest
from cli_runs import greedy_sweep, run_evalkit, runs_by, sample_records, speculative_method
from conftest import requires_llama_server
from servers import find_llama_server

from evalkit.backends.llama_server import server_help, spec_types, speculative_args
from evalkit.errors import BackendError

pytestmark = pytest.mark.slow  # every test here runs a real model

BINARY = find_llama_server()

CURRENT = """
-md,   --spec-draft-model, --model-draft FNAME    draft model for speculative decoding (default: unused)
--spec-draft-n-max N                     number of tokens to draft for speculative decoding (default: 16)
--spec-type none,draft-simple,draft-eagle3,draft-mtp,ngram-simple,ngram-mod
                                        comma-separated list of types of speculative decoding to use
--draft, --draft-n, --draft-max N        the argument has been removed. use --spec-draft-n-max
"""
OLDER = """
-md,   --model-draft FNAME              draft model for speculative decoding (default: unused)
--draft-max, --draft, --draft-n N       number of tokens to draft for speculative decoding (default: 16)
--spec-type [none|draft|mtp|ngram-cache]  type of speculative decoding
"""
OLDEST = """
-md,   --model-draft FNAME              draft model for speculative decoding (default: unused)
--draft-max, --draft, --draft-n N       number of tokens to draft for speculative decoding (default: 16)
"""


def test_flags_are_probed_not_hard_coded():
    assert speculative_args(CURRENT, "mtp", "a.gguf", 3, "x") == [
        "--spec-type", "draft-mtp", "--spec-draft-model", "a.gguf", "--spec-draft-n-max", "3"
    ]  # fmt: skip
    assert speculative_args(OLDER, "mtp", "a.gguf", 3, "x") == [
        "--spec-type", "mtp", "--model-draft", "a.gguf", "--draft-max", "3"
    ]  # fmt: skip
    assert speculative_args(CURRENT, "draft", "d.gguf", 5, "x")[:2] == ["--spec-type", "draft-simple"]
    assert speculative_args(OLDEST, "draft", "d.gguf", 5, "x") == ["--model-draft", "d.gguf", "--draft-max", "5"]


def test_a_build_without_mtp_is_one_line_error():
    with pytest.raises(BackendError, match="no draft-mtp/mtp type .no --spec-type flag at all.") as exc:
        speculative_args(OLDEST, "mtp", "a.gguf", 3, "llama-server /x (version: 1)")
    assert "\n" not in str(exc.value) and "llama-server /x" in str(exc.value)


@requires_llama_server
def test_the_built_server_offers_draft_mtp():
    text = server_help(str(BINARY))
    assert "draft-mtp" in spec_types(text)
    args = speculative_args(text, "mtp", "a.gguf", 3, "x")
    assert args[:2] == ["--spec-type", "draft-mtp"] and "--spec-draft-n-max" in args


PROMPTS = "[under_fifty_words,one_sentence,no_lists,two_paragraphs]"


@pytest.fixture(scope="module")
def server_sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("server_mtp")
    sweep = greedy_sweep(
        "gemma4_tiny", "mtp", "backend=llama_server", f"backend.binary={BINARY}", "backend.n_ctx=1024",
        "backend.num_pred_tokens=3", f"task.prompts={PROMPTS}", max_tokens=200,
    )
    proc = run_evalkit(cwd, *sweep)
    assert proc.returncode == 0, proc.stderr
    runs = runs_by(cwd, speculative_method)
    assert set(runs) == {"none", "mtp"}
    return runs, proc


@requires_llama_server
def test_greedy_mtp_through_llama_server_equals_plain(server_sweep):
    runs, _ = server_sweep
    plain = {s.prompt_id: s for s in sample_records(runs["none"][0])}
    mtp = {s.prompt_id: s for s in sample_records(runs["mtp"][0])}
    assert set(plain) == set(mtp) and len(plain) == 4
    for pid, s in mtp.items():
        assert s.output == plain[pid].output, pid
    # Past the sliding window (128 tokens in gemma4_tiny): drafting reads the window's cache.
    assert max(s.prompt_tokens + s.completion_tokens for s in mtp.values()) > 128 + 64


@requires_llama_server
def test_server_mtp_counts_and_flags(server_sweep):
    runs, _ = server_sweep
    run_dir, result = runs["mtp"]
    cmd = result.backend.extra["command"]
    assert cmd[cmd.index("--spec-type") + 1] == "draft-mtp"
    assert cmd[cmd.index("--spec-draft-n-max") + 1] == "3"
    assert cmd[cmd.index("--spec-draft-model") + 1].endswith(".gguf")
    assert result.backend.settings["draft_model"] == "gemma4_tiny_assistant"
    samples = sample_records(run_dir)
    for s in samples:
        assert s.drafted_tokens == s.server_timings.get("draft_n", 0)
        assert s.accepted_tokens == s.server_timings.get("draft_n_accepted", 0)
    g = result.generation
    assert g.drafted_tokens == sum(s.drafted_tokens for s in samples) > 0
    assert 0 < g.acceptance_rate < 1  # both the accept and the reject path ran
    assert all(s.drafted_tokens is None for s in sample_records(runs["none"][0]))


@requires_llama_server
def test_server_runs_get_the_speculative_pair_block(server_sweep):
    runs, proc = server_sweep
    s = runs["mtp"][1].speculative
    assert s is not None and s.method == "mtp" and s.draft_model == "gemma4_tiny_assistant"
    assert (runs["mtp"][0].parent / s.baseline_run).resolve() == runs["none"][0].resolve()
    assert s.n_pairs == 4 and s.n_identical_outputs == 4 and s.n_unexplained == 0
    assert s.speedup is not None and s.speedup_ci_low <= s.speedup_geomean <= s.speedup_ci_high
    assert "speculative (mtp)" in proc.stdout and "paired samples" in proc.stdout
