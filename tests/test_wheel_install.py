"""`pip install .` as a user does it, not editable: the wheel carries conf/ and tasks/.

The wheel is built from a copy of the repository and installed into a fresh venv; its
dependencies come from the project venv (a .pth line, so nothing is downloaded or compiled),
while evalkit itself must be the installed copy: every command runs from a temporary directory
with no source tree anywhere near it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here runs a real model

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "evalkit", "conf", "tasks")
PROMPT = "one_sentence"
USER_TASK = """\
name: my_task
sampling: {temperature: 0.0, max_tokens: 8}
prompts:
  - id: say_hi
    category: words
    prompt: Say hi.
    checks:
      - word_count: {max: 50}
"""

def run(cmd: list, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(the fresh venv's bin dir, an env for it): evalkit's wheel installed there."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_INPUT"] = "1"
    wheels = tmp / "wheels"
    # --no-build-isolation: the project venv's setuptools builds it, offline
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, src], tmp, env)
    (wheel,) = wheels.glob("evalkit-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    purelib = Path(run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       tmp, env).stdout.strip())  # fmt: skip
    # the project venv's packages (and pip), after the fresh venv's own site-packages
    (purelib / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv, env


@pytest.mark.slow
def test_the_installed_wheel_runs_from_any_directory(installed, tmp_path):
    venv, env = installed
    where = run([venv / "bin" / "python", "-c", "import evalkit, evalkit.paths as p; print(evalkit.__file__); print(p.CONF_DIR); print(p.TASKS_DIR)"],
                tmp_path, env).stdout.split()  # fmt: skip
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    assert [Path(w) for w in where] == [site / "evalkit" / "__init__.py", site / "evalkit" / "_data" / "conf",
                                        site / "evalkit" / "_data" / "tasks"]  # fmt: skip
    assert (site / "evalkit" / "_data" / "tasks" / "lm_eval" / "facts_mc.jsonl").is_file()
    shipped = {f.name for f in (site / "evalkit" / "backends" / "llama_cpp").glob("*.py")}
    assert shipped == {"__init__.py", "backend.py", "drafters.py", "mtp.py", "native.py", "ggml.py", "log.py"}

    res = run([venv / "bin" / "evalkit", "model=smollm2_135m", "task=constraints", f"task.prompts=[{PROMPT}]",
               "backend.n_threads=1", "task.sampling.max_tokens=16", "progress=false"], tmp_path, env)  # fmt: skip
    (results,) = list((tmp_path / "outputs").rglob("results.json"))
    result = json.loads(results.read_text())
    assert result["status"] == "complete" and result["generation"]["n_samples"] == 1, res.stderr
    from evalkit.llama_build import llama_cpp_flavour

    assert result["backend"]["flavour"] == llama_cpp_flavour()  # the build flavour is in the record
    assert "GGML_AVAILABLE_BACKENDS" in result["backend"]["extra"]["build_options"]

    board = run([venv / "bin" / "evalkit-leaderboard", "outputs/"], tmp_path, {**env, "COLUMNS": "300"})
    assert "smollm2_135m" in board.stdout and "Q4_1" in board.stdout and "of 1 variant(s)" in board.stdout


@pytest.mark.slow
def test_user_configs_and_task_files_work_with_the_installed_wheel(installed, tmp_path):
    venv, env = installed
    user = tmp_path / "my_conf"
    (user / "model").mkdir(parents=True)
    shipped = venv.glob("lib/python*/site-packages/evalkit/_data/conf/model/smollm2_135m.yaml")
    shutil.copy(next(shipped), user / "model" / "my_smol.yaml")
    task_file = tmp_path / "my_task.yaml"
    task_file.write_text(USER_TASK)
    common = ["task=constraints", f"task.file={task_file}", "backend.n_threads=1", "progress=false"]
    for cwd, adds in (("a", ["--config-dir", user]), ("b", [f"hydra.searchpath=[file://{user}]"])):
        (tmp_path / cwd).mkdir()
        run([venv / "bin" / "evalkit", *adds, "model=my_smol", *common], tmp_path / cwd, env)
        (path,) = list((tmp_path / cwd / "outputs").rglob("results.json"))
        r = json.loads(path.read_text())
        assert r["status"] == "complete" and r["generation"]["n_samples"] == 1
        assert r["task_file"] == str(task_file)
        (sample,) = [json.loads(ln) for ln in (path.parent / "samples.jsonl").read_text().splitlines()]
        assert sample["prompt_id"] == "say_hi" and sample["sampling"]["max_tokens"] == 8
