"""task=benchmarks end to end on two ladder variants of the embedded model, with flips.

One sweep (q8_0 as the reference, then q2_k) through the real CLI, real lm-eval and the real
model; then a re-run that lm-eval's cache must answer whole. lm-eval's cache lives in a fresh
EVALKIT_CACHE; the ladder variants are shared with the default cache so they are built once.
"""

import json
from pathlib import Path

import pytest
from cli_runs import fresh_cache_env, run_evalkit, runs_by

from evalkit.metrics.flips import compute_flips, read_items
from evalkit.records import RunResult

pytestmark = pytest.mark.slow  # every test here runs a real model

LIMIT = 3
TASKS = ["evalkit_arith_mc", "evalkit_units_mc", "evalkit_facts_mc", "evalkit_reading_mc", "evalkit_arith_gen"]
COMMON = ["model=smollm2_135m", "task=benchmarks", f"task.limit={LIMIT}", "task.reference=q8_0",
          "backend.n_threads=1", "progress=false"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("benchmarks")
    _, env = fresh_cache_env(tmp_path_factory)
    proc = run_evalkit(cwd, "-m", *COMMON, "model.quant=q8_0,q2_k", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_by(cwd, lambda r: r.model.variant)
    assert set(runs) == {"q8_0", "q2_k"}
    return cwd, env, runs, proc


def test_scores_items_and_records_agree(sweep):
    _, _, runs, proc = sweep
    for variant, (run_dir, result) in runs.items():
        s = result.lm_eval
        assert result.status == "complete" and s.model_type == "evalkit-llama"
        assert list(s.tasks) == TASKS
        items = read_items(run_dir)
        assert len(items) == s.n_items == LIMIT * len(TASKS)
        for name, score in s.tasks.items():
            mine = [i for i in items if i.task == name]
            assert score.n == LIMIT and len(mine) == LIMIT
            assert score.metric == ("exact_match" if name.endswith("_gen") else "acc")
            # The task's score is the mean of its items' verdicts, and stderr is the sample SE.
            assert score.value == pytest.approx(sum(i.correct for i in mine) / LIMIT)
            assert score.stderr is not None and score.stderr >= 0
        mc = [i for i in items if i.task.endswith("_mc")]
        assert all(len(i.logprobs) == 4 and all(lp < 0 for lp in i.logprobs) for i in mc)
        # Fresh cache: every request was computed by evalkit-llama, the shared prefixes reused.
        assert s.cached_requests == 0 and s.stats["loglikelihood_requests"] == 4 * LIMIT * 4
        assert s.stats["generate_requests"] == LIMIT and s.stats["tokens_reused"] > 0
        assert s.cache and Path(s.cache).name.startswith(result.model.sha256[:16])
    assert "evalkit_arith_gen" in proc.stdout and "flips vs" in proc.stdout  # the printed tables


def test_flips_against_the_reference_variant_come_from_the_records(sweep):
    _, _, runs, _ = sweep
    ref_dir, ref = runs["q8_0"]
    run_dir, result = runs["q2_k"]
    s = result.lm_eval
    assert s.reference == "q8_0" and Path(s.reference_run) == ref_dir
    per_task, total = compute_flips(read_items(run_dir), read_items(ref_dir), "x")
    assert set(s.flips) == set(per_task) == set(TASKS)
    for name, f in per_task.items():
        got = s.flips[name]
        assert (got.n_common, got.to_correct, got.to_incorrect) == (f.n_common, f.to_correct, f.to_incorrect)
        # The accuracy delta is the difference of the two runs' task scores (same items).
        assert got.accuracy_delta == pytest.approx(result.lm_eval.tasks[name].value - ref.lm_eval.tasks[name].value)
    assert s.flips_total.n_flips == total.n_flips == sum(f.n_flips for f in per_task.values())
    # The reference run counted itself: zero flips by construction, and says so.
    assert ref.lm_eval.reference_note == "this run is the reference"
    assert ref.lm_eval.flips_total.n_flips == 0 and ref.lm_eval.flips_total.n_common == LIMIT * len(TASKS)
    # Different files, different caches: a changed model never reuses another's answers.
    assert s.cache != ref.lm_eval.cache


def test_a_rerun_is_answered_by_lm_evals_cache(sweep):
    cwd, env, runs, _ = sweep
    run_dir, before = runs["q2_k"]
    proc = run_evalkit(cwd, *COMMON, "model.quant=q2_k", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = RunResult.model_validate_json((run_dir / "results.json").read_text())
    s = after.lm_eval
    assert s.cached_requests == 4 * LIMIT * 4 + LIMIT and s.stats["loglikelihood_requests"] == 0
    assert {k: v.value for k, v in s.tasks.items()} == {k: v.value for k, v in before.lm_eval.tasks.items()}
    assert json.loads((run_dir / "results.json").read_text())["lm_eval"]["flips_total"]["n_flips"] == before.lm_eval.flips_total.n_flips


def test_a_bad_reference_fails_before_any_model_loads(cli):
    from conftest import assert_one_line_error

    result = cli("task=benchmarks", "task.reference=no_such_variant")
    assert_one_line_error(result, "task.reference 'no_such_variant'")
    assert not result.run_dirs()
