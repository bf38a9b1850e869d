"""The real embedded model end to end through the CLI: records, checks, resume."""

import json

import pytest

from evalkit.records import RunResult, SampleRecord

pytestmark = pytest.mark.slow  # every test here runs a real model

QUICK = ["task=constraints", "task.prompts=[under_fifty_words,no_hedging,required_keywords]", "task.sampling.max_tokens=48"]


@pytest.fixture(scope="module")
def constraints_run(tmp_path_factory):
    import subprocess
    import sys

    cwd = tmp_path_factory.mktemp("e2e")
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", "model=smollm2_135m", *QUICK, "task.samples=2"],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (results,) = list((cwd / "outputs").rglob("results.json"))
    return cwd, results.parent, proc


def test_records_are_valid_and_complete(constraints_run):
    _, run_dir, proc = constraints_run
    result = RunResult.model_validate_json((run_dir / "results.json").read_text())
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    samples = [SampleRecord.model_validate_json(ln) for ln in lines]
    assert len(samples) == 6 and result.status == "complete"
    assert len({s.seed for s in samples}) == 6, "every sample gets its own seed"
    for s in samples:
        assert s.error is None and s.model_sha256 == result.model.sha256
        assert s.completion_tokens > 0 and s.prompt_tokens > 0 and s.chars == len(s.output)
        assert s.ttft_s > 0 and s.total_s >= s.ttft_s and s.prompt_tokens_per_s > 0
        assert s.finish_reason in ("stop", "length")
        if s.completion_tokens > 1:
            assert s.gen_tokens_per_s > 0 and s.chars_per_s >= 0
        assert s.checks and all(c.reason for c in s.checks)
        assert s.passed_strict == all(c.passed for c in s.checks)
    g = result.generation
    assert g.n_samples == 6 and g.n_prompts == 3 and g.n_failed == 0
    assert set(g.per_prompt) == {"under_fifty_words", "no_hedging", "required_keywords"}
    assert g.total_chars == sum(s.chars for s in samples)
    assert 0 <= g.pass_rate_strict <= g.pass_rate_loose <= 1
    assert set(g.per_check) == {"word_count", "forbidden_phrases", "required_keywords"}
    m = result.model
    assert m.file_type == "Q4_1" and m.architecture == "llama" and m.parameter_count > 100e6
    assert m.size_bytes > 50e6 and 4 < m.bits_per_weight < 7 and len(m.sha256) == 64
    assert result.memory.peak_rss_bytes > result.memory.rss_baseline_bytes > 0
    assert result.memory.kv_cache_bytes > 0 and result.memory.gpu_memory_used_bytes is None
    assert result.backend.settings["n_threads"] >= 1
    assert "under_fifty_words" in proc.stdout  # the printed table


def test_rerun_resumes_and_adds_nothing(constraints_run):
    import subprocess
    import sys

    cwd, run_dir, _ = constraints_run
    before = (run_dir / "samples.jsonl").read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", "model=smollm2_135m", *QUICK, "task.samples=2"],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "6 of 6 samples already done" in proc.stdout
    assert (run_dir / "samples.jsonl").read_text() == before


def test_more_samples_extend_the_same_run(constraints_run):
    import subprocess
    import sys

    cwd, run_dir, _ = constraints_run
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", "model=smollm2_135m", *QUICK[:2], QUICK[2], "task.samples=3", "task.prompts=[no_hedging]"],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 7  # only sample index 2 of no_hedging was new
    result = json.loads((run_dir / "results.json").read_text())
    assert result["generation"]["n_samples"] == 3
