"""Shared test options. Tests under tests/live/ need a real LM Studio or an accelerator: run with --live."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# A real llama.cpp server on the Gemma 3 270M GGUF, and a factory for more (tests/real/fixtures.py).
from tests.real.fixtures import gemma_270m_gguf, llama_server, llama_server_factory  # noqa: F401

# Scripts run as subprocesses import `tunixhack` from this checkout, whatever the environment's editable install
# points at (another worktree's, say): the tests test the code beside them.
ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])

# A shell hands a command it starts in the background (`.ci/run &` from a script) SIGINT ignored, and every script a
# test starts inherits that: the Ctrl-C tests then see a run go on after its Ctrl-C (two CI runs started so failed,
# one run finishing with exit 0, one hanging). The scripts are tested as a user's terminal starts them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser):
    parser.addoption("--live", action="store_true", help="run tests/live/ (real LM Studio or accelerator)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--live"):
        return
    skip = pytest.mark.skip(reason="needs --live (a real LM Studio or an accelerator)")
    for item in items:
        if "/live/" in str(item.fspath) or item.get_closest_marker("live"):
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    """`sandbox_level`: run the test once per isolation level this machine offers behind a kernel wall
    (tunixhack.verify.code; an unwalled level is refused by default, and its refusal is tested by itself)."""
    if "sandbox_level" in metafunc.fixturenames:
        from tunixhack.verify.code import available_levels
        from tunixhack.verify.isolation import UNWALLED

        levels = [level for level in available_levels() if level not in UNWALLED]
        metafunc.parametrize("sandbox_level", levels, indirect=True)


@pytest.fixture
def sandbox_level(request):
    from tunixhack.verify.code import force_isolation

    force_isolation(request.param)
    yield request.param
    force_isolation(None)


@pytest.fixture
def without_user_namespace(monkeypatch):
    """Checks run at the `namespaces` level's variant without a user namespace (root, where only user
    namespaces are refused): its launch, or a skip where the other namespaces are refused too."""
    from tunixhack.verify import isolation

    if os.geteuid() != 0:
        pytest.skip("namespaces without a user namespace are root's")
    launch, why = isolation._namespace_launch((False,))
    if launch is None:
        pytest.skip(f"mount, network and PID namespaces are refused here too: {why}")
    monkeypatch.setitem(isolation._state, "probed", launch)
    monkeypatch.setitem(isolation._state, "forced", None)
    return launch


def planted(folder_mode: int, name: str):
    """A root-owned 0666 file holding "original\n" in a fresh folder of `folder_mode`; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tunixhack-decoy-"))
    folder.chmod(folder_mode)
    path = folder / name
    path.write_text("original\n")
    path.chmod(0o666)
    yield path
    shutil.rmtree(folder)


@pytest.fixture
def decoy():
    """A world-writable file in a world-writable folder: where a sandboxed program could write, were it not
    held (the private uid of the fallback can write there; namespaces do not show it)."""
    yield from planted(0o777, "bashrc")


@pytest.fixture
def shared_decoy():
    """The same in a 1777 folder, as /tmp is: where a private uid appended, before Landlock (issue 15)."""
    yield from planted(0o1777, "profile")
