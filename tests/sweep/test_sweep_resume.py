"""A real sweep on the embedded ladder, killed with SIGKILL mid-run, resumed, then reported.

The resumed sweep must complete only the missing samples: every sample that was on disk before
the kill stays byte-identical, nothing is generated twice, and the leaderboard gets one row per
variant.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from conftest import CliResult

pytestmark = pytest.mark.slow  # every test here runs a real model

PROMPTS = "task.prompts=[under_fifty_words,no_hedging,one_sentence]"
SWEEP = [
    "-m", "model=smollm2_135m", "model.quant=q8_0,q4_0", "task=constraints", PROMPTS,
    "task.samples=3", "task.sampling.max_tokens=8", "backend.n_threads=1", "backend.n_ctx=512",
    "print_table=false", "progress=false",
]  # fmt: skip
PER_RUN = 9  # 3 prompts x 3 samples


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _sample_files(cwd: Path) -> list[Path]:
    return sorted((cwd / "outputs" / "constraints").glob("*/*/samples.jsonl"))


def _leaderboard(*args) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "evalkit.leaderboard", *map(str, args)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr, Path.cwd())


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sweep")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", *SWEEP], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(_lines(p) for p in _sample_files(cwd)):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the sweep ended before it could be killed:\n" + proc.stdout.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the whole process group, mid-sweep
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    before = {p: _lines(p) for p in _sample_files(cwd)}
    assert before and sum(len(v) for v in before.values()) < 2 * PER_RUN
    no_summary = [p.parent for p in before if not (p.parent / "results.json").exists()]
    assert no_summary, "the kill landed before any run had written its summary"

    # The killed tree: the run without a summary is named, and nothing is shown silently wrong.
    report_killed = _leaderboard(cwd / "outputs", "--quiet")
    # A writer killed mid-line leaves a fragment; add one in any case so the resume must cope.
    cut = no_summary[0] / "samples.jsonl"
    with cut.open("a") as fh:
        fh.write('{"schema_version": 1, "key": "cut-off-by-the-ki')

    resumed = subprocess.run([sys.executable, "-m", "evalkit", *SWEEP], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    return cwd, before, no_summary, report_killed, resumed


def test_resume_completes_only_the_missing_samples(killed_and_resumed):
    cwd, before, _, _, resumed = killed_and_resumed
    assert resumed.returncode == 0, resumed.stderr
    files = _sample_files(cwd)
    assert len(files) == 2
    for path in files:
        lines = _lines(path)
        keys = [json.loads(ln)["key"] for ln in lines]
        assert len(lines) == PER_RUN and len(set(keys)) == PER_RUN, "each sample exactly once"
        kept = [ln for ln in before.get(path, []) if ln.endswith("}")]
        assert lines[: len(kept)] == kept, "samples finished before the kill are kept byte for byte"
        pairs = {(json.loads(ln)["prompt_id"], json.loads(ln)["sample_index"]) for ln in lines}
        assert len(pairs) == PER_RUN
        result = json.loads((path.parent / "results.json").read_text())
        assert result["status"] == "complete" and result["generation"]["n_samples"] == PER_RUN
    for path, lines in before.items():
        done = len([ln for ln in lines if ln.endswith("}")])
        if 0 < done < PER_RUN:
            assert f"resuming: {done} of {PER_RUN} samples already done" in resumed.stdout
    assert "dropped 1 broken line(s)" in resumed.stdout


def test_killed_tree_names_the_unfinished_run(killed_and_resumed):
    _, _, no_summary, report, _ = killed_and_resumed
    assert "Traceback" not in report.stderr
    for d in no_summary:
        assert f"skipped {d}: samples.jsonl but no results.json" in report.stderr
    if report.returncode != 0:  # nothing complete yet: one error line after the warnings
        assert report.stderr.strip().splitlines()[-1].startswith("evalkit: error: no complete runs")


def test_a_third_run_changes_nothing(killed_and_resumed):
    cwd, *_ = killed_and_resumed
    snapshot = {p: p.read_text() for p in _sample_files(cwd)}
    again = subprocess.run([sys.executable, "-m", "evalkit", *SWEEP], cwd=cwd, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(f"{PER_RUN} of {PER_RUN} samples already done") == 2
    assert {p: p.read_text() for p in _sample_files(cwd)} == snapshot


def test_leaderboard_of_the_real_sweep(killed_and_resumed, tmp_path):
    cwd, *_ = killed_and_resumed
    r = _leaderboard(cwd / "outputs", "--csv", tmp_path / "lb.csv", "--html", tmp_path / "r.html",
                     "--pair", "smollm2_135m:q4_0=smollm2_135m:q8_0", "--bootstrap", "500")  # fmt: skip
    assert r.returncode == 0, r.stderr
    df = pl.read_csv(tmp_path / "lb.csv")
    assert sorted(df["variant"]) == ["q4_0", "q8_0"]
    q8 = df.filter(pl.col("variant") == "q8_0").to_dicts()[0]
    q4 = df.filter(pl.col("variant") == "q4_0").to_dicts()[0]
    assert q8["file_type"] == "Q8_0" and q4["file_type"] == "Q4_0"
    assert q8["bits_per_weight"] > q4["bits_per_weight"] > 4 and q8["size_gb"] > q4["size_gb"]
    for row in (q8, q4):
        assert row["gen_samples"] == PER_RUN and row["gen_tasks"] == "constraints(3p x3)"
        assert row["pass_n"] == PER_RUN and 0 <= row["pass_strict"] <= row["pass_loose"] <= 1
        assert row["gen_tokens_per_s"] > 0 and row["chars_per_s"] > 0 and row["ttft_s"] > 0
        assert row["peak_rss_gb"] > row["rss_delta_gb"] > row["size_gb"] and row["quality_metric"] == "pass_strict"
        assert row["memory_gb"] == row["rss_delta_gb"] and row["gpu_memory_gb"] is None
        assert row["speed_metric"] == "gen_tokens_per_s" and row["pareto_speed"] is not None
        assert "max_tokens=8" in row["sampling"] and row["run_dirs"].startswith("constraints/")
    assert df["recommended"].sum() == 1
    text = " ".join(r.stdout.split())
    assert "factor: quantization (q4_0 vs q8_0)" in text and "A saves" in text
    assert "truncated outputs" in text  # 8-token cap: flagged, since it caps time and volume


def test_submitit_launcher_runs_jobs_in_their_own_processes(tmp_path):
    """hydra/launcher=submitit_local: the same launcher code path SLURM uses, on this machine."""
    args = ["-m", "hydra/launcher=submitit_local", "model=smollm2_135m", "model.quant=q8_0,q4_0", "task=constraints",
            "task.prompts=[one_sentence]", "task.sampling.max_tokens=4", "backend.n_threads=1", "backend.n_ctx=512",
            "print_table=false", "progress=false"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = sorted((tmp_path / "outputs").rglob("results.json"))
    assert len(results) == 2 and all(json.loads(p.read_text())["status"] == "complete" for p in results)
    assert list((tmp_path / "outputs" / ".submitit").glob("*/*_result.pkl")), "jobs ran through submitit"
    r = _leaderboard(tmp_path / "outputs", "--quiet", "--csv", tmp_path / "lb.csv")
    assert r.returncode == 0 and len(pl.read_csv(tmp_path / "lb.csv")) == 2

    bad_args = [a if not a.startswith("model.quant=") else "model.quant=q8_0" for a in args]
    bad = subprocess.run([sys.executable, "-m", "evalkit", *bad_args, f"model.path={tmp_path}/missing.gguf"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert bad.returncode == 1
    assert "evalkit: error: model file not found" in bad.stderr and "Traceback" not in bad.stderr
