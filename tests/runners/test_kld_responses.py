"""task=kld task.corpus=responses:<task> end to end on the embedded model's ladder.

A two-prompt task, short answers: the f16 reference answers once (cached), q8_0 and q2_k are
scored on the reference's token ids, and f16 against itself scores exactly zero, which it can
only do if it read the same tokens with the same positions as the reference pass.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runs import fresh_cache_env, run_evalkit, runs_by

pytestmark = pytest.mark.slow  # every test here runs a real model

TASK = """\
name: two
description: two prompts, two categories
sampling: {temperature: 1.0, top_p: 0.95, top_k: 64, seed: 3}
prompts:
  - id: haiku
    category: creative
    prompt: Write a haiku about a slow computer.
  - id: capital
    category: facts
    prompt: What is the capital of France? Answer in one sentence.
"""
CAP = 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("kld_responses")
    cache, env = fresh_cache_env(tmp_path_factory)
    (cwd / "two.yaml").write_text(TASK)
    common = ["model=smollm2_135m", "task=kld", f"task.corpus=responses:{cwd / 'two.yaml'}",
              f"task.answer_max_tokens={CAP}", "backend.n_threads=1", "progress=false"]
    procs = {}
    for quant in ("q8_0", "q2_k", "f16"):
        procs[quant] = proc = run_evalkit(cwd, *common, f"model.quant={quant}", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    found = runs_by(cwd, lambda r: r.model.variant)
    assert set(found) == set(procs)
    out = {quant: (*found[quant], proc) for quant, proc in procs.items()}
    return cache, out


@pytest.mark.slow
def test_reference_answers_are_generated_once_and_reused(runs):
    cache, out = runs
    first, second, third = (out[q][1].kld.cache for q in ("q8_0", "q2_k", "f16"))
    assert first.built and not second.built and not third.built
    assert first.path == second.path == third.path
    assert list((cache / "kldref").glob("*responses*.npz")) == [Path(first.path)]
    assert "reference answers" not in out["q2_k"][2].stderr  # no regeneration message either


@pytest.mark.slow
def test_candidates_are_scored_on_the_same_tokens(runs):
    from evalkit.refcache import ResponsesCache
    import json

    _, out = runs
    with np.load(out["q8_0"][1].kld.cache.path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    cache = ResponsesCache(Path(out["q8_0"][1].kld.cache.path), header, arrays)
    n_answer = sum(len(s) - f - 1 for s, f in zip(cache.seqs, cache.firsts))
    for quant in ("q8_0", "q2_k", "f16"):
        run_dir, result, _ = out[quant]
        k = result.kld
        assert k.n_scored == n_answer and k.corpus_sha256 == out["q8_0"][1].kld.corpus_sha256
        tokens = np.load(run_dir / "per_token.npz")
        assert len(tokens["kld"]) == n_answer
        # the rows are the answer tokens, prompt by prompt, as the reference recorded them
        assert [p.answer_tokens for p in k.responses.prompts] == [len(s) - f - 1 for s, f in zip(cache.seqs, cache.firsts)]
        assert np.array_equal(tokens["nll_ref"], np.load(out["q8_0"][0] / "per_token.npz")["nll_ref"])
    for p, a in zip(out["q8_0"][1].kld.responses.prompts, header["answers"]):
        assert 1 <= p.answer_tokens <= CAP and p.seed == a["seed"] and p.prompt_tokens == a["prompt_tokens"] > 5
    # f16 against its own answers: the same tokens at the same positions give exactly zero
    f16 = out["f16"][1].kld
    assert f16.kld_max < 1e-5 and f16.same_top_pct == 100.0
    assert out["q2_k"][1].kld.kld_mean > out["q8_0"][1].kld.kld_mean > 0


@pytest.mark.slow
def test_per_prompt_and_per_category_in_the_record(runs):
    _, out = runs
    r = out["q2_k"][1].kld.responses
    assert [p.id for p in r.prompts] == ["haiku", "capital"]
    assert [(c.category, c.n_prompts) for c in r.categories] == [("creative", 1), ("facts", 1)]
    assert sum(c.n_scored for c in r.categories) == out["q2_k"][1].kld.n_scored
    assert r.answer_max_tokens == CAP and r.sampling["seed"] == 3 and "answer tokens only" in r.scored
    for p, c in zip(r.prompts, r.categories):
        assert p.kld_mean == pytest.approx(c.kld_mean)
    assert "KLD per category" in out["q2_k"][2].stdout and "creative" in out["q2_k"][2].stdout


def test_bad_responses_specs_are_one_line(cli):
    from conftest import assert_one_line_error

    r = cli("model=smollm2_135m", "task=kld", "task.corpus=responses:no_such_task", "backend.n_threads=1")
    assert_one_line_error(r, "unknown task file 'no_such_task'")
    r = cli("model=smollm2_135m", "task=kld", "task.corpus=responses:", "backend.n_threads=1")
    assert_one_line_error(r, "responses:<task> needs a task name")
    r = cli("model=smollm2_135m", "task=perplexity", "task.corpus=responses:stress", "backend.n_threads=1",
            "task.chunks=1")
    assert_one_line_error(r, "task=kld corpus only")


@pytest.mark.slow
def test_leaderboard_columns_and_frontier(runs, tmp_path):
    import json

    _, out = runs
    outputs = out["q8_0"][0].parents[2]
    proc = subprocess.run([sys.executable, "-m", "evalkit.leaderboard", str(outputs), "--quality", "kld_resp",
                           "--json", str(tmp_path / "lb.json"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "lb.json").read_text())
    assert data["frontier"]["quality_metric"] == "kld_resp_mean"
    rows = {r["variant"]: r for r in data["rows"]}
    for quant in ("q8_0", "q2_k", "f16"):
        k = out[quant][1].kld
        row = rows[quant]
        assert row["kld_resp_mean"] == pytest.approx(k.kld_mean) and row["kld_resp_n_scored"] == k.n_scored
        assert row["kld_resp_cat_creative"] == pytest.approx(k.responses.categories[0].kld_mean)
        assert row["kld_mean"] is None  # the corpus KLD columns stay for corpus runs
    assert len({r["frontier_group"] for r in data["rows"]}) == 1
