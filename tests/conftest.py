"""Shared fixtures: the real embedded model, a CLI runner that works in a temp directory."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Real tools a test needs. On a user's machine a missing one skips the test with the one command
# that provides it; with CI set it fails the test, so CI can never skip them silently.
# --------------------------------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@functools.cache
def _llama_server() -> Path | None:
    from servers import find_llama_server

    return find_llama_server()


# marker -> (what is missing, how to get it, finder)
REQUIREMENTS = {
    "requires_llama_server": ("llama-server", "bash scripts/llama-tools.sh", _llama_server),
    "requires_chromium": ("chromium", "sudo apt-get install -y chromium", find_chromium),
}

requires_llama_server = pytest.mark.requires_llama_server
requires_chromium = pytest.mark.requires_chromium


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (what, command, finder) in REQUIREMENTS.items():
        if item.get_closest_marker(marker) is None or finder() is not None:
            continue
        if in_ci():
            pytest.fail(f"{what} is missing and CI is set: CI must run this test (`{command}`)", pytrace=False)
        pytest.skip(f"{what} not found; enable with: {command}")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from evalkit.models.embedded import embedded_path

    return embedded_path("smollm2_135m")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def run_dirs(self, task: str | None = None) -> list[Path]:
        base = self.cwd / "outputs"
        return sorted(p.parent for p in base.rglob("results.json") if task is None or task in p.parts)

    def results(self, task: str | None = None) -> list[dict]:
        return [json.loads((d / "results.json").read_text()) for d in self.run_dirs(task)]


@pytest.fixture
def cli(tmp_path):
    """Run `python -m evalkit ...` as a user would, from a temp working directory."""

    def run(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None) -> CliResult:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        where = cwd or tmp_path
        proc = subprocess.run(
            [sys.executable, "-m", "evalkit", *args],
            cwd=where,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr, where)

    return run


@pytest.fixture
def cli_in_process(tmp_path, capfd):
    """`evalkit.__main__.main()` in this process, as `python -m evalkit` runs it, without the
    interpreter and import start-up (1-4 s a call): argv, cwd, environment, signal and logging
    state are set for the call and put back after. Output is captured at the file descriptors.
    An environment variable a library reads when first imported (HF_HUB_OFFLINE, HF_HOME) needs
    the subprocess `cli`: here that library may be imported already."""
    import logging
    import signal

    import evalkit.__main__ as entry

    def run(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None) -> CliResult:
        where = cwd or tmp_path
        saved_env = {k: os.environ.get(k) for k in env or {}}
        saved = (sys.argv, os.getcwd(), signal.getsignal(signal.SIGTERM), _logging_state(logging))
        os.environ.update(env or {})
        sys.argv = ["evalkit", *args]
        os.chdir(where)
        entry._EXIT_CODES.clear()
        capfd.readouterr()  # only this call's output
        try:
            entry.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            out, err = capfd.readouterr()
            sys.argv, cwd_before, sigterm, logs = saved
            os.chdir(cwd_before)
            signal.signal(signal.SIGTERM, sigterm)
            _restore_logging(logging, logs)
            entry._EXIT_CODES.clear()
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return CliResult(code, out, err, where)

    return run


@pytest.fixture(params=["in_process", pytest.param("subprocess", marks=pytest.mark.slow)])
def any_cli(request):
    """The same CLI both ways: in this process for the fast tier, as a real `python -m evalkit`
    subprocess in the full suite (marked slow)."""
    return request.getfixturevalue("cli_in_process" if request.param == "in_process" else "cli")


def _logging_state(logging) -> dict:
    """Hydra configures logging for each job (handlers on the root logger, a log file): an
    in-process run must not leave them behind."""
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    return {lg: (list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers}


def _restore_logging(logging, state: dict) -> None:
    current = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    for lg in current:
        handlers, level, propagate, disabled = state.get(lg, ([], logging.NOTSET, True, False))
        for h in lg.handlers:
            if h not in handlers:
                h.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="session")
def openai_server_handle(smollm2_path, tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server with the embedded model, one per session."""
    from servers import start_llama_cpp_server

    handle = start_llama_cpp_server(smollm2_path, tmp_path_factory.mktemp("openai_server"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def openai_server(openai_server_handle) -> str:
    """Base URL (http://127.0.0.1:<port>/v1) of the session's real OpenAI-compatible server."""
    return openai_server_handle.base_url


# --------------------------------------------------------------------------------------------
# Test tiers. `pytest -m "not slow"` is the fast tier: pure logic and the fake backend, no model.
# A test not marked slow that loads a model (in this process or in a process it starts) fails
# with "mark it slow": tests/tier/sitecustomize.py does the refusing.
# --------------------------------------------------------------------------------------------

_TIER_DIR = Path(__file__).resolve().parent / "tier"
_tier_spec = importlib.util.spec_from_file_location("evalkit_test_tier_guard", _TIER_DIR / "sitecustomize.py")
tier_guard = importlib.util.module_from_spec(_tier_spec)  # type: ignore[arg-type]
_tier_spec.loader.exec_module(tier_guard)  # type: ignore[union-attr]
tier_guard.install()  # inert unless EVALKIT_FAST_TIER is set (below, per test)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    if item.get_closest_marker("slow") is not None:
        yield
        return
    keys = (tier_guard.ENV, tier_guard.LOG_ENV, "PYTHONPATH")
    saved = {k: os.environ.get(k) for k in keys}
    fd, log = tempfile.mkstemp(prefix="evalkit-tier-", suffix=".log")
    os.close(fd)
    os.environ[tier_guard.ENV] = item.nodeid
    os.environ[tier_guard.LOG_ENV] = log
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_TIER_DIR), saved["PYTHONPATH"]) if p)
    item.stash[_TIER_LOG] = log
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.unlink(log)


_TIER_LOG = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    log = item.stash.get(_TIER_LOG, None)
    if log and report.when == "call" and os.path.exists(log):
        said = Path(log).read_text().strip()
        if said:
            report.outcome = "failed"
            report.longrepr = f"{said.splitlines()[0]} [{item.nodeid}]"
