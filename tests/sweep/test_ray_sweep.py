"""hydra/launcher=ray_cluster on a real, private local Ray instance: a 2-job sweep.

hydra-ray-launcher pins cloudpickle<3; the only package in evalkit's venv that wants
cloudpickle>=3 is joblib 1.6 (older joblib vendors its own), so evalkit[ray] pins joblib<1.6
and Ray installs into the same venv as everything else (pyproject.toml).
"""

import json
import subprocess
import sys

import polars as pl
import pytest

pytestmark = pytest.mark.slow  # every test here runs a real model


@pytest.mark.slow
def test_a_two_job_sweep_runs_on_a_local_ray_instance(tmp_path):
    args = [
        "-m", "hydra/launcher=ray_cluster",
        # the shipped cluster config, pointed at a private local instance with one CPU
        "hydra.launcher.ray.init.address=null", "+hydra.launcher.ray.init.num_cpus=1",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "hydra.launcher.ray.remote.num_gpus=0", "hydra.launcher.ray.remote.num_cpus=1",
        "model=smollm2_135m", "model.quant=q8_0,q4_0", "task=constraints", "task.prompts=[one_sentence]",
        "task.sampling.max_tokens=4", "backend.n_threads=1", "backend.n_ctx=512", "print_table=false", "progress=false",
    ]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "Ray Launcher is launching 2 jobs" in log and "Started a local Ray instance" in log
    results = sorted((tmp_path / "outputs").rglob("results.json"))
    records = [json.loads(p.read_text()) for p in results]
    assert len(records) == 2 and all(r["status"] == "complete" for r in records)
    assert sorted(r["model"]["file_type"] for r in records) == ["Q4_0", "Q8_0"]
    board = subprocess.run([sys.executable, "-m", "evalkit.leaderboard", "outputs", "--quiet", "--csv", "lb.csv"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert board.returncode == 0, board.stderr
    assert len(pl.read_csv(tmp_path / "lb.csv")) == 2
