"""task=speed on the real embedded model with tiny sizes: records, settings, memory, method.

No assertion is about how fast anything is: the machine running the tests is shared.
"""

from __future__ import annotations

import math

import pytest

from evalkit.records import RunResult

from conftest import assert_one_line_error

TINY = [
    "model=smollm2_135m",
    "task=speed",
    "task.pp=[16]",
    "task.tg=[8]",
    'task.pg=["16,8"]',
    "task.depth=[0,16]",
    "task.repetitions=2",
    "backend.n_threads=1",
    "progress=false",
]
NAMES = ["pp16", "tg8", "pp16+tg8", "pp16 @ d16", "tg8 @ d16", "pp16+tg8 @ d16"]


@pytest.fixture(scope="module")
def speed_cwd(tmp_path_factory):
    return tmp_path_factory.mktemp("speed")


@pytest.fixture(scope="module")
def speed_run(speed_cwd):
    import subprocess
    import sys

    cwd = speed_cwd
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", *TINY], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = list((cwd / "outputs").rglob("results.json"))
    return RunResult.model_validate_json(path.read_text()), proc


@pytest.mark.slow
def test_every_test_has_positive_finite_samples(speed_run):
    result, _ = speed_run
    s = result.speed
    assert result.status == "complete" and result.task_kind == "speed"
    assert [t.name for t in s.tests] == NAMES
    for t in s.tests:
        assert t.repetitions == 2 and len(t.samples_tokens_per_s) == 2 and len(t.samples_ns) == 2
        assert all(math.isfinite(x) and x > 0 for x in t.samples_tokens_per_s)
        # tokens/s is (prompt + generated tokens) / wall seconds of each repetition
        for ts, ns in zip(t.samples_tokens_per_s, t.samples_ns):
            assert ts == pytest.approx(1e9 * (t.n_prompt + t.n_gen) / ns)
        assert t.tokens_per_s_mean == pytest.approx(sum(t.samples_tokens_per_s) / 2)
        assert math.isfinite(t.tokens_per_s_sd) and t.tokens_per_s_sd >= 0
    by_name = {t.name: t for t in s.tests}
    assert (by_name["pp16+tg8 @ d16"].n_prompt, by_name["pp16+tg8 @ d16"].n_gen) == (16, 8)
    assert by_name["tg8 @ d16"].depth == 16 and by_name["tg8"].depth == 0


@pytest.mark.slow
def test_settings_that_change_speed_are_recorded(speed_run):
    result, _ = speed_run
    s = result.speed
    assert s.n_threads == 1 and s.n_threads_batch == 1
    assert s.n_batch >= 16 and 1 <= s.n_ubatch <= s.n_batch
    assert s.n_ctx >= 16 + 8 + 16  # the deepest test fits
    assert s.flash_attn is False and (s.type_k, s.type_v) == ("f16", "f16")
    assert s.n_gpu_layers == 0 and s.gpu is None and s.backend == "CPU"
    assert "llama-cpp-python" in s.build and "ggml" in s.build
    assert s.cpu and s.system_info and s.warmup is True
    assert s.model_n_params == result.model.parameter_count
    assert 0 < s.model_size_bytes <= result.model.size_bytes
    assert "Q4_1" in s.model_desc


@pytest.mark.slow
def test_memory_fields_are_numbers_on_cpu(speed_run):
    result, _ = speed_run
    m = result.memory
    assert m.file_size_bytes == result.model.size_bytes > 0
    assert 4 < m.bits_per_weight < 7
    assert m.peak_rss_bytes > m.rss_baseline_bytes > 0
    assert m.peak_rss_delta_bytes == m.peak_rss_bytes - m.rss_baseline_bytes
    # SmolLM2-135M: 30 layers x (K + V) x 3 KV heads x 64 dims x 2 bytes (f16) per cell.
    expected_kv = 30 * 2 * 3 * 64 * 2 * result.speed.n_ctx
    assert m.kv_cache_bytes == pytest.approx(expected_kv, abs=0.01 * 2**20)
    assert m.compute_buffer_bytes > 0
    assert m.gpu_memory_used_bytes is None  # present, null, on a CPU run


@pytest.mark.slow
def test_prints_a_llama_bench_table(speed_run):
    _, proc = speed_run
    header = next(ln for ln in proc.stdout.splitlines() if ln.startswith("| model"))
    for col in ("size", "params", "backend", "threads", "test", "t/s"):
        assert col in header
    assert "pp16+tg8 @ d16" in proc.stdout and " ± " in proc.stdout
    assert "KV cache" in proc.stdout


def test_speculative_backend_is_refused(any_cli):
    r = any_cli("task=speed", "backend.speculative=prompt_lookup", "task.pp=[16]", "task.tg=[]")
    assert_one_line_error(r, "speculative")


def test_bad_pg_is_one_line(any_cli):
    r = any_cli("task=speed", 'task.pg=["512"]')
    assert_one_line_error(r, "task.pg")



@pytest.mark.slow
def test_a_completed_run_is_shown_not_measured_again(speed_run, speed_cwd):
    """A re-run sweep only does what is missing; rerun=true measures again."""
    import subprocess
    import sys

    before, _ = speed_run
    (path,) = list((speed_cwd / "outputs").rglob("results.json"))

    def again(*extra: str):
        proc = subprocess.run([sys.executable, "-m", "evalkit", *TINY, *extra], cwd=speed_cwd,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc, RunResult.model_validate_json(path.read_text())

    proc, shown = again()
    assert "already complete" in proc.stdout and "rerun=true" in proc.stdout
    assert "pp16+tg8 @ d16" in proc.stdout  # the stored table is printed
    assert shown.model_dump() == before.model_dump()  # nothing measured, nothing rewritten
    proc, measured = again("rerun=true")
    assert "already complete" not in proc.stdout
    assert [t.samples_ns for t in measured.speed.tests] != [t.samples_ns for t in before.speed.tests]
    assert [t.name for t in measured.speed.tests] == NAMES
