"""A loglikelihood task against the real llama-cpp-python server (session fixture).

That server's echoed log-probabilities are shifted by one token (its issue #1983; the version
is pinned in pyproject.toml), so evalkit's check must catch the disagreement: refuse by
default, record it with task.remote_check=flag. The in-process side of the check is the same
model file and must reproduce the exact in-process value (-0.2644 nats for " Paris").
"""

import json

import pytest
from conftest import assert_one_line_error, requires_llama_server

from evalkit.harness.remote import ABS_TOL, REL_TOL

pytestmark = pytest.mark.slow  # every test here runs a real model


def remote(url, *extra, limit=2):
    return [
        "model=smollm2_135m",
        "backend=openai",
        f"backend.base_url={url}",
        "backend.tokenizer_model=smollm2_135m",
        "task=benchmarks",
        "task.tasks=[evalkit_facts_mc]",
        f"task.limit={limit}",
        "progress=false",
        *extra,
    ]


def check_is_honest(rc: dict) -> None:
    """The verdict follows from the recorded numbers, and the in-process side is exact."""
    pairs = rc["pairs"]
    assert rc["n_checked"] == len(pairs) == 3
    for p in pairs:
        within = abs(p["remote"] - p["in_process"]) <= ABS_TOL + REL_TOL * abs(p["in_process"])
        assert p["agree"] == within
    assert rc["agree"] == all(p["agree"] for p in pairs)
    paris = next(p for p in pairs if p["continuation"] == " Paris")
    assert paris["in_process"] == pytest.approx(-0.2644, abs=2e-3) and paris["in_process_greedy"]


def test_disagreeing_server_log_likelihoods_refuse_the_run(openai_server, cli):
    result = cli(*remote(openai_server))
    assert_one_line_error(result, "disagree with in-process scoring", "issue #1983", "remote_check=flag")
    (data,) = result.results()
    assert data["status"] == "failed" and data["lm_eval"]["tasks"] == {}
    rc = data["lm_eval"]["remote_check"]
    check_is_honest(rc)
    assert rc["agree"] is False and rc["max_abs_diff"] > 1.0  # llama-cpp-python 0.3.36's echo bug


def test_flagged_run_completes_and_records_the_disagreement(openai_server, cli):
    result = cli(*remote(openai_server, "task.remote_check=flag", limit=1))
    assert result.returncode == 0, result.stderr
    (data,) = result.results()
    s = data["lm_eval"]
    assert data["status"] == "complete" and s["model_type"] == "local-completions"
    assert s["tasks"]["evalkit_facts_mc"]["n"] == 1 and s["n_items"] == 1
    check_is_honest(s["remote_check"])
    assert s["remote_check"]["agree"] is False
    assert "DISAGREE" in result.stdout
    items = [json.loads(ln) for ln in (result.run_dirs()[0] / "items.jsonl").read_text().splitlines()]
    assert len(items) == 1 and len(items[0]["logprobs"]) == 4


def test_loglikelihood_over_a_server_needs_a_local_tokenizer(openai_server, cli):
    args = [a for a in remote(openai_server) if not a.startswith("backend.tokenizer_model")]
    result = cli(*args)
    assert_one_line_error(result, "backend.tokenizer_model")


@requires_llama_server
def test_llama_server_is_detected_as_not_echoing(cli):
    """llama.cpp's llama-server ignores `echo`: said in one line, before any task request."""
    result = cli(
        "model=smollm2_135m", "backend=llama_server",  # backend.binary: the default lookup
        "backend.n_threads=1", "backend.n_ctx=1024", "backend.tokenizer_model=smollm2_135m",
        "task=benchmarks", "task.tasks=[evalkit_facts_mc]", "task.limit=1", "progress=false",
    )
    assert_one_line_error(result, "does not return prompt log-probabilities", "llama-server ignores echo")
