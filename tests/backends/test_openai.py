"""The OpenAI backend against real processes on 127.0.0.1: llama-cpp-python's server, a fault
proxy in front of it, a killed server, a key-checking server. No mocks anywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import FaultProxy, free_port, scan_for_secret, start_llama_cpp_server

from conftest import assert_one_line_error
from evalkit.records import RunResult, SampleRecord

PROMPTS = "task.prompts=[under_fifty_words,no_hedging,required_keywords]"
FAST = ["backend.max_retries=1", "backend.backoff_s=0.05"]
TWELVE = (
    "task.prompts=[three_paragraphs_no_hedge,two_paragraphs,at_least_four_paragraphs,under_fifty_words,"
    "over_two_hundred_words,exactly_three_sentences,one_sentence,no_lists,no_emphasis_no_headers,"
    "plain_text_only,no_hedging,avoid_words]"
)


def remote(url: str, *more: str) -> list[str]:
    return ["backend=openai", f"backend.base_url={url}", "task=constraints", *more]


def records(run_dir: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(ln) for ln in (run_dir / "samples.jsonl").read_text().splitlines()]


def one_run_dir(cwd: Path) -> Path:
    (path,) = list((cwd / "outputs").rglob("samples.jsonl"))
    return path.parent


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {n} lines in {timeout} s")


# ------------------------------------------------------------------ the suite through a server


@pytest.fixture(scope="module")
def remote_run(openai_server, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("remote")
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", *remote(openai_server, PROMPTS, "task.sampling.max_tokens=16")],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return one_run_dir(cwd), proc


@pytest.mark.slow
def test_remote_records_have_the_local_schema_and_plausible_values(remote_run):
    run_dir, proc = remote_run
    result = RunResult.model_validate_json((run_dir / "results.json").read_text())
    samples = records(run_dir)
    assert result.status == "complete" and len(samples) == 3
    assert {s.prompt_id for s in samples} == {"under_fifty_words", "no_hedging", "required_keywords"}
    for s in samples:
        assert s.error is None and s.backend == "openai" and s.model == "smollm2_135m"
        assert s.variant == "remote" and s.model_sha256 is None
        assert s.server_model  # what the server said it ran
        assert 0 < s.completion_tokens <= 16 and s.chars == len(s.output) > 0
        # llama-cpp-python sends no usage while streaming: counted chunks, and the record says so
        assert s.token_counts == "chunks" and s.prompt_tokens is None and s.attempts == 1
        assert s.ttft_s > 0 and s.total_s >= s.ttft_s + s.generation_s - 1e-6
        assert s.finish_reason in ("stop", "length") and s.server_timings is None
        if s.completion_tokens > 1:
            assert s.gen_tokens_per_s == pytest.approx((s.completion_tokens - 1) / s.generation_s)
        assert s.checks and s.passed_strict == all(c.passed for c in s.checks)
    g = result.generation
    assert g.n_samples == 3 and g.n_failed == 0 and g.concurrency == 1
    assert g.total_completion_tokens == sum(s.completion_tokens for s in samples)
    assert g.gen_tokens_per_s.n >= 1 and g.gen_tokens_per_s.mean > 0 and g.ttft_s.mean > 0
    assert result.model.sha256 is None and result.model.name == "smollm2_135m"
    assert result.backend.type == "openai" and result.backend.extra["token_counts"] == {"usage": 0, "chunks": 3}
    assert result.backend.extra["requests"] == 3 and result.backend.extra["retries"] == 0
    assert "under_fifty_words" in proc.stdout  # the same table as a local run


@pytest.mark.slow
def test_remote_outputs_equal_local_outputs_for_the_same_seeds(remote_run, smollm2_path):
    """Same seed, same sampling -> the server and the in-process backend write the same text.

    llama-cpp-python's server defaults are top_k 40, min_p 0.05, repeat_penalty 1.1; the suite
    asks for 64 / 0.0 / 1.0. Equal text therefore also proves those fields reach the server.
    """
    from evalkit.backends.base import GenerationRequest
    from evalkit.backends.llama_cpp import LlamaCppBackend
    from evalkit.config import LlamaCppBackendConfig, SamplingConfig
    from evalkit.suite import load_suite

    run_dir, _ = remote_run
    prompts = {p.id: p for p in load_suite("constraints").prompts}
    local = LlamaCppBackend(LlamaCppBackendConfig(n_ctx=2048, n_threads=1), str(smollm2_path))
    try:
        for s in records(run_dir):
            gen = local.generate(
                GenerationRequest(
                    messages=prompts[s.prompt_id].messages(None),
                    sampling=SamplingConfig(**s.sampling),
                    seed=s.seed,
                )
            )
            assert gen.text == s.output, s.prompt_id
            assert gen.completion_tokens == s.completion_tokens
    finally:
        local.close()


# ------------------------------------------------------------------ faults


def test_unreachable_server_is_one_line_error_after_retries(any_cli):
    port = free_port()  # nothing listens here
    t0 = time.monotonic()
    res = any_cli(*remote(f"http://127.0.0.1:{port}/v1", "backend.max_retries=2", "backend.backoff_s=0.05"))
    assert_one_line_error(res, f"http://127.0.0.1:{port}/v1", "after 3 attempt(s)", "connection refused")
    assert time.monotonic() - t0 < 60


@pytest.mark.slow
def test_retries_cover_500_429_stalls_drops_and_cut_streams(openai_server_handle, cli):
    faults = ["500", "429", "stall", "drop", "cut", "503"]
    with FaultProxy(openai_server_handle.port, actions=list(faults), stall_s=20) as proxy:
        res = cli(*remote(
            proxy.base_url, "task.prompts=[under_fifty_words,one_sentence]", "task.sampling.max_tokens=8",
            "backend.max_retries=8", "backend.backoff_s=0.05", "backend.timeout_s=3",
        ))
        assert res.returncode == 0, res.stderr
        for action in set(faults):
            assert proxy.count(action) == faults.count(action), proxy.served
    (result,) = res.results()
    samples = records(res.run_dirs()[0])
    assert result["status"] == "complete" and len(samples) == 2 and all(s.error is None for s in samples)
    # the first sample went through all six faults (the stall ended by our 3 s timeout)
    assert samples[0].attempts >= 7
    assert result["backend"]["extra"]["retries"] >= len(faults)


@pytest.mark.slow
def test_a_sample_that_keeps_failing_is_recorded_and_a_rerun_completes_it(openai_server_handle, cli, tmp_path):
    args = ["task.prompts=[under_fifty_words,one_sentence]", "task.sampling.max_tokens=8", *FAST]
    with FaultProxy(openai_server_handle.port, actions=["500", "500"]) as proxy:
        url = proxy.base_url
        first = cli(*remote(url, *args))
        assert first.returncode == 1, first.stderr
        (result,) = first.results()
        assert result["status"] == "failed" and result["message"] == "1 of 2 samples failed"
        assert result["generation"]["n_failed"] == 1 and result["generation"]["n_samples"] == 1
        failed = [s for s in records(first.run_dirs()[0]) if s.error]
        assert len(failed) == 1 and "HTTP 500: injected 500 (after 2 attempt(s))" in failed[0].error
        second = cli(*remote(url, *args))  # same command, same run directory: retries the failure
        assert second.returncode == 0, second.stderr
        assert proxy.count(method="POST") == 2 + 1 + 1  # two 500s, the good one, then the retry
    (result,) = second.results()
    assert result["status"] == "complete" and result["generation"]["n_samples"] == 2
    assert result["generation"]["n_failed"] == 0


@pytest.mark.slow
def test_server_killed_mid_run_keeps_finished_samples_and_rerun_completes(smollm2_path, tmp_path):
    port = free_port()
    server = start_llama_cpp_server(smollm2_path, tmp_path, port=port)
    cwd = tmp_path / "work"
    cwd.mkdir()
    cmd = [sys.executable, "-m", "evalkit", *remote(server.base_url, PROMPTS, "task.sampling.max_tokens=8",
           *FAST, "progress=false")]
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list((cwd / "outputs").rglob("samples.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        samples_path = next((cwd / "outputs").rglob("samples.jsonl"))
        wait_for_lines(samples_path, 1, proc)
        server.kill()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        result = RunResult.model_validate_json((samples_path.parent / "results.json").read_text())
        done = records(samples_path.parent)
        ok = [s for s in done if s.error is None]
        assert result.status == "failed" and len(ok) >= 1 and result.generation.n_failed >= 1
        assert all("connection" in s.error for s in done if s.error)
        server = start_llama_cpp_server(smollm2_path, tmp_path, port=port)  # back on the same URL
        again = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"{len(ok)} of 3 samples already done" in again.stdout
    finally:
        server.stop()
    final = records(samples_path.parent)
    ok_keys = [s.key for s in final if s.error is None]
    assert len(ok_keys) == len(set(ok_keys)) == 3  # nothing lost, nothing generated twice
    assert json.loads((samples_path.parent / "results.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_sigterm_with_concurrency_flushes_finished_samples(openai_server_handle, tmp_path):
    """SIGTERM while three requests wait on a server that never answers: out at once, nothing lost.

    The proxy answers the first request and then holds every other one open without a word (the
    way a server that queues requests does): the in-flight requests must be dropped, not waited for.
    """
    with FaultProxy(openai_server_handle.port, actions=["pass"] + ["stall"] * 40, stall_s=120) as proxy:
        cmd = [sys.executable, "-m", "evalkit", *remote(proxy.base_url, "task.samples=2", "task.sampling.max_tokens=4",
               "backend.concurrency=3", "backend.timeout_s=300", "progress=false")]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list((tmp_path / "outputs").rglob("samples.jsonl")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        samples_path = next((tmp_path / "outputs").rglob("samples.jsonl"))
        wait_for_lines(samples_path, 1, proc)
        wait_until = time.monotonic() + 30
        while proxy.count("stall") < 3 and time.monotonic() < wait_until:
            time.sleep(0.05)
        assert proxy.count("stall") >= 3, proxy.served  # three requests are hanging now
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        stop_s = time.monotonic() - t_term
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert stop_s < 15, f"took {stop_s:.1f} s to stop: in-flight requests were waited for"
    result = RunResult.model_validate_json((samples_path.parent / "results.json").read_text())
    done = records(samples_path.parent)
    assert result.status == "interrupted"
    assert len(done) == 1 and done[0].error is None, "a cancelled request is not a failure"
    assert result.generation.n_samples == 1  # the finished sample is in the summary


# ------------------------------------------------------------------ load


@pytest.mark.slow
def test_concurrency_8_over_48_requests_loses_and_duplicates_nothing(openai_server_handle, cli):
    with FaultProxy(openai_server_handle.port) as proxy:
        res = cli(*remote(proxy.base_url, TWELVE, "task.samples=4", "task.sampling.max_tokens=2", "backend.concurrency=8",
                          "progress=false", "print_table=false"))
        assert res.returncode == 0, res.stderr
        posts = proxy.count(method="POST")
    run_dir = res.run_dirs()[0]
    samples = records(run_dir)
    keys = [s.key for s in samples]
    assert len(samples) == 48 == len(set(keys)) == posts  # 12 prompts x 4, one request each
    assert len({(s.prompt_id, s.sample_index) for s in samples}) == 48
    assert all(s.error is None and 1 <= s.completion_tokens <= 2 for s in samples)
    (result,) = res.results()
    assert result["generation"]["n_samples"] == 48 and result["generation"]["concurrency"] == 8
    assert result["backend"]["settings"]["concurrency"] == 8


# ------------------------------------------------------------------ secrets


SECRET = "sk-evalkit-test-5f0e7c1d9a2b4c6e8f"


@pytest.fixture(scope="module")
def keyed_server(smollm2_path, tmp_path_factory):
    server = start_llama_cpp_server(smollm2_path, tmp_path_factory.mktemp("keyed"), api_key=SECRET)
    yield server
    server.stop()


@pytest.mark.slow
def test_api_key_is_used_but_never_written(keyed_server, cli, tmp_path):
    # OPENAI_LOG=debug turns on the client's own request logging: the worst case for a leak.
    env = {"MY_KEY": SECRET, "OPENAI_LOG": "debug"}
    args = remote(keyed_server.base_url, "task.prompts=[one_sentence]", "task.sampling.max_tokens=4",
                  "backend.api_key_env=MY_KEY")
    res = cli(*args, env=env)
    assert res.returncode == 0, res.stderr
    (result,) = res.results()
    assert result["generation"]["n_samples"] == 1 and result["backend"]["extra"]["api_key_set"] is True
    run_dir = res.run_dirs()[0]
    assert (run_dir / ".hydra" / "config.yaml").exists() and list(run_dir.glob("*.log"))
    assert scan_for_secret(tmp_path, SECRET) == []
    assert SECRET not in res.stdout + res.stderr

    wrong = cli(*args, env={"MY_KEY": SECRET[:-3] + "xyz"})
    assert_one_line_error(wrong, "rejected the API key (HTTP 401)", "$MY_KEY")
    missing = cli(*args, env={"MY_KEY": ""})
    assert_one_line_error(missing, "rejected the API key")
    assert SECRET not in wrong.stderr + wrong.stdout
    assert scan_for_secret(tmp_path, SECRET[:-3]) == []
