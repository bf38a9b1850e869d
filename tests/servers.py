"""Real servers for tests, on 127.0.0.1 only: llama-cpp-python's OpenAI server and a fault proxy.

Every loop here is bounded by a deadline; every process started here is stopped by its handle.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ServerHandle:
    proc: subprocess.Popen
    port: int
    log_path: Path
    api_key: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as a crashed or OOM-killed one does."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's clean shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_until_answers(url: str, proc: subprocess.Popen, timeout: float, headers: dict | None = None) -> None:
    """Poll `url` until it answers 200 (or 401: a keyed server is up too); bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} while starting")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def start_llama_cpp_server(
    model_path: Path,
    log_dir: Path,
    *,
    port: int | None = None,
    api_key: str | None = None,
    n_ctx: int = 2048,
    extra: tuple[str, ...] = (),
    timeout: float = 120,
) -> ServerHandle:
    """`python -m llama_cpp.server` on a free loopback port, waited for until /v1/models answers.

    interrupt_requests is off: by default a new request cuts off the one streaming, which would
    make concurrent clients see empty, unfinished streams.
    """
    port = port or free_port()
    log_path = Path(log_dir) / f"llama_cpp_server-{port}-{time.monotonic_ns()}.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--interrupt_requests", "False",
        *extra,
    ]
    if api_key:
        cmd += ["--api_key", api_key]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = ServerHandle(proc, port, log_path, api_key)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/v1/models", proc, timeout)
    except BaseException:
        handle.kill()
        raise
    return handle


@dataclass
class FaultProxy:
    """A loopback HTTP proxy that injects faults into generation requests (POSTs), in order.

    Actions, consumed one per POST (then "pass"):
      "500" / "503" / "429": answer with that status (429 with Retry-After: 0);
      "stall": accept, then say nothing for `stall_s` seconds and hang up;
      "drop": hang up at once without answering;
      "cut": forward, pass the first bytes of the stream through, then hang up mid-stream;
      "pass": forward to the upstream server, streaming its answer through.
    GETs are always forwarded. `served` lists (method, path, action) for every request.
    """

    upstream_port: int
    actions: list[str] = field(default_factory=list)
    stall_s: float = 10.0
    served: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue = deque(self.actions)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self, action: str | None = None, method: str = "POST") -> int:
        return sum(1 for m, _, a in self.served if m == method and (action is None or a == action))

    def _next(self, method: str, path: str) -> str:
        with self._lock:
            action = self._queue.popleft() if method == "POST" and self._queue else "pass"
            self.served.append((method, path, action))
            return action

    def close(self) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                action = proxy._next(method, self.path)
                self.close_connection = True
                if action in ("500", "503", "429"):
                    payload = json.dumps({"error": {"message": f"injected {action}"}}).encode()
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if action == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(payload)
                elif action == "stall":
                    proxy._closing.wait(proxy.stall_s)
                elif action == "drop":
                    pass
                else:
                    self._forward(method, body, cut=action == "cut")

            def _forward(self, method: str, body: bytes | None, cut: bool) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    conn.request(method, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                            self.send_header(k, v)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    while True:
                        data = resp.read1(65536)
                        if not data:
                            break
                        end = data.find(b"\n\n")
                        if cut and end >= 0:
                            self.wfile.write(data[: end + 2])  # one whole event, then hang up
                            self.wfile.flush()
                            return
                        self.wfile.write(data)
                        self.wfile.flush()
                except (OSError, http.client.HTTPException):
                    pass  # upstream gone: the client sees a dropped connection
                finally:
                    conn.close()

        return Handler


def scan_for_secret(root: Path, secret: str) -> list[str]:
    """Every file under `root` (hidden ones too) whose bytes contain `secret`."""
    hits = []
    needle = secret.encode()
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def find_llama_server() -> Path | None:
    """The llama-server evalkit itself would start (evalkit.llama_tools: scripts/llama-tools.sh's
    build, else one on PATH), if it runs; else None."""
    from evalkit.llama_tools import find_tool

    path = find_tool("llama-server")
    if path is None:
        return None
    try:
        ok = subprocess.run([str(path), "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return path if ok else None
