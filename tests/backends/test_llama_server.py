"""backend=llama_server: evalkit starts llama.cpp's own llama-server, evaluates, stops it.

Uses the binary scripts/llama-tools.sh builds (see conftest's requires_llama_server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import find_llama_server, free_port, port_open

from conftest import assert_one_line_error, requires_llama_server
from evalkit.records import RunResult, SampleRecord

pytestmark = pytest.mark.slow  # every test here runs a real model

BINARY = find_llama_server()


def server_args(*more: str) -> list[str]:
    return ["backend=llama_server", f"backend.binary={BINARY}", "backend.n_threads=1", "backend.n_ctx=1024",
            "task=constraints", *more]


def test_missing_binary_is_one_line_error(cli):
    res = cli("backend=llama_server", "backend.binary=/nonexistent/llama-server", "task=constraints")
    assert_one_line_error(res, "llama-server binary '/nonexistent/llama-server' not found", "backend.binary=")


def test_no_built_or_installed_binary_names_the_build_command(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("backend=llama_server", "task=constraints", env={"EVALKIT_LLAMA_TOOLS": str(empty), "PATH": str(empty)})
    assert_one_line_error(res, "llama-server not found", "bash scripts/llama-tools.sh", "backend.binary=")


def test_the_default_binary_is_the_built_one_then_path(tmp_path, monkeypatch):
    """evalkit.llama_tools: the installed llama-cpp-python's version first, then newest, then PATH."""
    from importlib import metadata

    from evalkit.llama_tools import find_tool

    def tool(where: Path) -> Path:
        where.mkdir(parents=True)
        (where / "llama-server").write_text("#!/bin/sh\n")
        (where / "llama-server").chmod(0o755)
        return where / "llama-server"

    on_path = tool(tmp_path / "path")
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv("EVALKIT_LLAMA_TOOLS", str(tmp_path / "tools"))
    assert find_tool("llama-server") == on_path
    other = tool(tmp_path / "tools" / "0.0.1-aaaa" / "build" / "bin")
    assert find_tool("llama-server") == other
    mine = tool(tmp_path / "tools" / f"{metadata.version('llama-cpp-python')}-bbbb" / "build" / "bin")
    os.utime(other, (time.time() + 60, time.time() + 60))  # newer, but another llama.cpp
    assert find_tool("llama-server") == mine
    assert find_tool("llama-bench") is None


@requires_llama_server
def test_llama_server_timings_and_draft_counts_are_recorded(cli, smollm2_path):
    port = free_port()
    res = cli(*server_args(
        "task.prompts=[under_fifty_words,one_sentence]", "task.sampling.max_tokens=16", f"backend.port={port}",
        # the model drafts for itself: llama-server then reports draft_n / draft_n_accepted
        f"backend.extra_args=[-md,{smollm2_path},--spec-type,draft-simple,--spec-draft-n-max,4]",
    ))
    assert res.returncode == 0, res.stderr
    assert not port_open(port), "llama-server must be stopped when the run ends"
    run_dir = res.run_dirs()[0]
    result = RunResult.model_validate_json((run_dir / "results.json").read_text())
    samples = [SampleRecord.model_validate_json(ln) for ln in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert result.status == "complete" and len(samples) == 2
    assert len(result.model.sha256) == 64 and result.model.file_type == "Q4_1"  # resolved locally
    assert result.backend.type == "llama_server" and result.backend.build.startswith("version")
    # the build flavour, from --list-devices: a GPU build that offloaded is not "cpu"
    assert result.backend.flavour is not None and (not result.backend.gpu_offload or result.backend.flavour != "cpu")
    for s in samples:
        t = s.server_timings
        assert s.model_sha256 == result.model.sha256 and s.token_counts == "usage"
        assert {"prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_per_second", "cache_n"} <= set(t)
        assert t["predicted_n"] == s.completion_tokens and t["prompt_n"] + t["cache_n"] == s.prompt_tokens
        assert s.cached_prompt_tokens == t["cache_n"]
        assert s.prompt_eval_s == pytest.approx(t["prompt_ms"] / 1000)
        assert s.drafted_tokens == t["draft_n"] and s.accepted_tokens == t["draft_n_accepted"]
        assert s.ttft_s > 0 and s.gen_tokens_per_s > 0 and s.prompt_tokens_per_s > 0
    g = result.generation
    assert g.drafted_tokens == sum(s.server_timings["draft_n"] for s in samples) > 0
    assert 0 <= g.acceptance_rate <= 1
    assert result.backend.extra["server_peak_rss_bytes"] > 50e6


@requires_llama_server
def test_a_server_that_cannot_start_is_one_line_error(cli):
    # no backend.binary: the default finds the one scripts/llama-tools.sh built
    res = cli("backend=llama_server", "backend.n_threads=1", "task=constraints", "backend.extra_args=[--no-such-flag]")
    assert_one_line_error(res, "llama-server exited with code")


@requires_llama_server
def test_sigterm_stops_the_server_and_keeps_samples(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "evalkit", *server_args("task.samples=3", "task.sampling.max_tokens=8",
           f"backend.port={port}", "progress=false")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    found = []
    while time.monotonic() < deadline and not found:
        assert proc.poll() is None, proc.communicate()[1]
        found = [p for p in (tmp_path / "outputs").rglob("samples.jsonl") if p.read_text().count("\n") >= 1]
        time.sleep(0.1)
    assert found, "no sample finished in time"
    assert port_open(port)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not port_open(port), "llama-server must be stopped on SIGTERM too"
    result = RunResult.model_validate_json((found[0].parent / "results.json").read_text())
    assert result.status == "interrupted" and result.generation.n_samples >= 1
