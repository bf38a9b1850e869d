"""llama.cpp's own `llama-server`, started by evalkit (as llama-swap does) and evaluated over HTTP.

The model file is resolved locally like the in-process backend's (same hash, same records), the
binary the user names is started on a loopback port with it, evalkit waits for /health, runs the
task through the OpenAI path (which parses llama-server's `timings`), and stops the server when
the run ends, on Ctrl-C too. If evalkit itself is killed, the kernel stops the server
(PR_SET_PDEATHSIG), so no orphan keeps the port and the memory.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from evalkit.backends.base import BackendInfo, Capability, DraftStats
from evalkit.backends.openai import OpenAIBackend
from evalkit.config import LlamaServerBackendConfig
from evalkit.errors import BackendError
from evalkit.hardware import cpu_name, physical_cores
from evalkit.llama_build import flavour_from_names
from evalkit.llama_tools import find_tool, not_found_message

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def find_binary(name: str | None) -> str:
    """The binary the user named (a path or a name on PATH); None: the one scripts/llama-tools.sh
    built, else llama-server on PATH."""
    if name is None:
        found_default = find_tool("llama-server")
        if found_default is None:
            raise BackendError(not_found_message("llama-server", "set backend.binary=/path/to/llama-server"))
        return str(found_default)
    path = Path(name).expanduser()
    if path.is_file() and os.access(path, os.X_OK):
        return str(path.resolve())
    found = shutil.which(name)
    if not found:
        raise BackendError(
            f"llama-server binary '{name}' not found; set backend.binary=/path/to/llama-server"
        )
    return found


def _ask(binary: str, flag: str, timeout: float) -> subprocess.CompletedProcess | None:
    """`binary flag` run to its end; None when it cannot start or does not answer in time."""
    try:
        return subprocess.run([binary, flag], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def binary_version(binary: str) -> str | None:
    out = _ask(binary, "--version", 30)
    if out is None:
        return None
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("version")]
    return lines[0] if lines else None


_HELP_CACHE: dict[tuple[str, float], str] = {}


def server_help(binary: str) -> str:
    """`llama-server --help`, once per binary file (flag names changed between builds)."""
    try:
        key = (binary, Path(binary).stat().st_mtime)
    except OSError:
        key = (binary, 0.0)
    if key not in _HELP_CACHE:
        out = _ask(binary, "--help", 60)
        _HELP_CACHE[key] = "" if out is None else out.stdout + out.stderr
    return _HELP_CACHE[key]


def _has_flag(help_text: str, flag: str) -> bool:
    return re.search(rf"(?:^|[\s,]){re.escape(flag)}(?=[\s,=]|$)", help_text, re.M) is not None


def spec_types(help_text: str) -> list[str]:
    """The speculative types `--spec-type` accepts, as the help lists them ([] if no such flag)."""
    m = re.search(r"--spec-type\s+\[?([A-Za-z0-9_,|\-]+)", help_text)
    return [x for x in re.split(r"[,|]", m.group(1)) if x] if m else []


def speculative_args(help_text: str, method: str, draft_path: str, n_max: int, label: str) -> list[str]:
    """llama-server flags for `method` (mtp | draft), named as this build names them.

    Current llama.cpp: `--spec-type draft-mtp --spec-draft-model F --spec-draft-n-max N`; builds
    from before the 2026 renames said `mtp` / `draft` and `--model-draft` / `--draft-max`.
    """
    types = spec_types(help_text)
    if method == "mtp":
        kind = next((k for k in ("draft-mtp", "mtp") if k in types), None)
        if kind is None:
            listed = ", ".join(types) if types else "no --spec-type flag at all"
            raise BackendError(
                f"{label} cannot do MTP speculative decoding: its --help offers no draft-mtp/mtp "
                f"type ({listed}); use a llama.cpp with Gemma 4 MTP (bash scripts/llama-tools.sh)"
            )
        args = ["--spec-type", kind]
    else:
        kind = next((k for k in ("draft-simple", "draft") if k in types), None)
        args = ["--spec-type", kind] if kind else []  # older builds: a draft model is enough
    model_flag = next(
        (f for f in ("--spec-draft-model", "--model-draft") if _has_flag(help_text, f)), "-md"
    )
    args += [model_flag, draft_path]
    n_flag = next((f for f in ("--spec-draft-n-max", "--draft-max") if _has_flag(help_text, f)), None)
    if n_flag:
        args += [n_flag, str(n_max)]
    return args


def binary_flavour(binary: str) -> str | None:
    """"cpu", "cuda", ...: the devices the binary's llama.cpp build can use (--list-devices)."""
    out = _ask(binary, "--list-devices", 60)
    return flavour_from_names(out.stdout + out.stderr) if out is not None and out.returncode == 0 else None


class ServerProcess:
    """A llama-server child process with its log in a temporary file."""

    def __init__(self, cmd: list[str], host: str, port: int):
        self.cmd = cmd
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._logdir = tempfile.TemporaryDirectory(prefix="evalkit-llama-server-")
        self.log_path = Path(self._logdir.name) / "llama-server.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches evalkit, which stops the server in order
            preexec_fn=_die_with_parent,
        )

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def last_log_line(self) -> str:
        lines = [ln.strip() for ln in self.log_text().splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
        return (errors or lines or ["(no output)"])[-1][:300]

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.proc.poll()
            if code is not None:
                raise BackendError(
                    f"llama-server exited with code {code} while starting: {self.last_log_line()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            if time.monotonic() > deadline:
                self.stop()
                raise BackendError(
                    f"llama-server did not become healthy within {timeout_s:g} s "
                    f"(backend.startup_timeout_s); last log line: {self.last_log_line()}"
                )
            time.sleep(0.2)

    def peak_rss_bytes(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        self._logdir.cleanup()


class LlamaServerBackend(OpenAIBackend):
    """The OpenAI path against a llama-server evalkit owns: start, evaluate, stop."""

    type = "llama_server"
    capabilities = OpenAIBackend.capabilities | {Capability.MEMORY_FACTS}

    def __init__(
        self,
        cfg: LlamaServerBackendConfig,
        model_path: str,
        n_ctx: int | None = None,
        draft: tuple[str, str] | None = None,  # (config name, file) for speculative decoding
    ):
        self.binary = find_binary(cfg.binary)
        self.draft_name = draft[0] if draft else None
        self.version = binary_version(self.binary)
        self.flavour = binary_flavour(self.binary)
        self.n_threads = cfg.n_threads or physical_cores()
        self.n_ctx = n_ctx or cfg.n_ctx
        port = cfg.port or free_port(cfg.host)
        cmd = [
            self.binary,
            "--model", model_path,
            "--host", cfg.host,
            "--port", str(port),
            # One slot per concurrent request, each with the full context.
            "--ctx-size", str(self.n_ctx * cfg.concurrency),
            "--parallel", str(cfg.concurrency),
            "--threads", str(self.n_threads),
        ]
        if cfg.n_gpu_layers is not None:
            cmd += ["--n-gpu-layers", str(cfg.n_gpu_layers)]
        if cfg.speculative != "none" and draft is not None:
            label = f"llama-server {self.binary} ({self.version or 'unknown version'})"
            cmd += speculative_args(server_help(self.binary), cfg.speculative, draft[1], cfg.num_pred_tokens, label)
        cmd += list(cfg.extra_args)
        self.server = ServerProcess(cmd, cfg.host, port)
        try:
            self.server.wait_healthy(cfg.startup_timeout_s)
        except BaseException:
            self.server.stop()
            raise
        # Our own server on loopback: no key is sent (an OPENAI_API_KEY in the env stays unused).
        super().__init__(cfg, api_key=None, base_url=f"{self.server.url}/v1")
        from evalkit.backends.llama_cpp import parse_load_log

        self.load_facts = parse_load_log(self.server.log_text())

    def memory_facts(self) -> dict[str, int | None]:
        """The server's own KV cache and compute buffers, from its load log."""
        return self.load_facts.memory_fields()

    def info(self) -> BackendInfo:
        base = super().info()
        cfg: LlamaServerBackendConfig = self.cfg  # type: ignore[assignment]
        log = self.server.log_text()
        offloaded = _offloaded_layers(log)
        base.build = self.version
        base.device = cpu_name() if not offloaded else _gpu_label()
        base.gpu_offload = bool(offloaded)
        base.flavour = self.flavour
        base.settings.update(
            binary=self.binary,
            n_ctx=self.n_ctx,
            n_parallel=cfg.concurrency,
            n_threads=self.n_threads,
            n_gpu_layers=cfg.n_gpu_layers,
            extra_args=cfg.extra_args,
            speculative=cfg.speculative,
            num_pred_tokens=cfg.num_pred_tokens if cfg.speculative != "none" else None,
            draft_model=self.draft_name if cfg.speculative != "none" else None,
        )
        base.output_settings.update(n_ctx=self.n_ctx, extra_args=cfg.extra_args)
        base.chat_template = "server (gguf)" if cfg.mode == "chat" else "none"
        base.extra.update(
            command=self.server.cmd,
            server_peak_rss_bytes=self.server.peak_rss_bytes(),
            offloaded_layers=offloaded,
        )
        return base

    def generate(self, request):
        gen = super().generate(request)
        cfg: LlamaServerBackendConfig = self.cfg  # type: ignore[assignment]
        # llama-server leaves draft_n out of its timings when nothing was drafted: that is 0 of 0.
        if cfg.speculative != "none" and gen.draft is None and gen.server_timings is not None:
            gen.draft = DraftStats()
        return gen

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.stop()


def _offloaded_layers(log: str) -> str | None:
    import re

    m = re.findall(r"offloaded (\d+)/(\d+) layers to GPU", log)
    if not m or m[-1][0] == "0":
        return None
    return f"{m[-1][0]}/{m[-1][1]}"


def _gpu_label() -> str:
    from evalkit.hardware import gpu_names

    names = gpu_names()
    return names[0] if names else "GPU"


def _draft_file(run_cfg, resolved) -> tuple[str, str]:
    """(config name, local file) of the drafter: backend.draft_model, or for mtp the model's own."""
    from evalkit.backends.llama_cpp import mtp_drafter_name, refuse_mtp_only
    from evalkit.models import load_model_config, resolve_model

    bcfg = run_cfg.backend
    refuse_mtp_only(run_cfg.model.name, resolved.gguf.architecture, "model")
    name = mtp_drafter_name(run_cfg) if bcfg.speculative == "mtp" else bcfg.draft_model
    draft = resolve_model(load_model_config(name))
    if bcfg.speculative == "draft":
        refuse_mtp_only(name, draft.gguf.architecture, "speculative=draft model")
    target, mine = resolved.gguf.vocab_sha256, draft.gguf.vocab_sha256
    if bcfg.speculative == "draft" and target and mine and mine != target:
        raise BackendError(
            f"draft model {name} has a different vocabulary from the target; "
            "speculative decoding needs the same tokenizer"
        )
    return name, str(draft.path)


BACKEND = LlamaServerBackend


def open_backend(run_cfg, **overrides):
    """Resolve the model file locally (same hash as in-process), start llama-server on it."""
    from evalkit.backends import OpenedBackend
    from evalkit.models import resolve_model

    unknown = set(overrides) - {"n_ctx"}
    if unknown:
        raise BackendError(f"the llama_server backend cannot apply {', '.join(sorted(unknown))}")
    resolved = resolve_model(run_cfg.model)
    draft = _draft_file(run_cfg, resolved) if run_cfg.backend.speculative != "none" else None
    backend = LlamaServerBackend(run_cfg.backend, str(resolved.path), n_ctx=overrides.get("n_ctx"), draft=draft)
    try:
        backend.check_reachable()
    except BaseException:
        backend.close()
        raise
    return OpenedBackend(backend=backend, model=resolved.record(), resolved=resolved)
