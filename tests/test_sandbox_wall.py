"""The kernel wall (Landlock + seccomp, tunixhack/verify/kernel_wall.py and sandbox_wall.py) holds with the audit
hook gone: issue 15's findings, each run through the real sandbox at every walled level this machine offers,
with the harness's hook and builtin guard taken out (as a subinterpreter, which has no hook, would see it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.test_sandbox import ADD_TESTS, check, listening
from tests.test_sandbox_attacks import DATASET, FULL, LOOKUP, READ_DATASET, guarded, token  # noqa: F401 - fixture
from tunixhack.verify import code, isolation, kernel_wall, sandbox_guard
from tunixhack.verify.code import IsolationRefused, allow_unsafe, available_levels, run_tests, why

ADD = "def add(a, b):\n    return a + b\n"
HOOK_LINES = ("    guard_builtin_modules()\n",
              '    sys.addaudithook(make_audit_hook(root, payload["limits"]["write_opens"]))\n')
# A subinterpreter made through a NUL-named extension (the loader stops at the NUL, a hook comparing the whole
# name does not): it has no audit hook at all, only the kernel's wall around the process.
SUBINTERPRETER = ("import _imp\nfrom importlib.machinery import ModuleSpec, PathFinder\n"
                  "origin = PathFinder.find_spec('_xxsubinterpreters').origin\n"
                  "sub = _imp.create_dynamic(ModuleSpec('_xxsubinterpreters\\x00x', None, origin=origin))\n"
                  "sub.run_string(sub.create(), INSIDE)\n")


@pytest.fixture
def unhooked(monkeypatch):
    """The harness without its audit hook and create_builtin guard: what is left is the kernel's."""
    harness = code.HARNESS
    for line in HOOK_LINES:
        assert harness.count(line) == 1, f"the harness no longer has {line.strip()!r}: update HOOK_LINES"
        harness = harness.replace(line, "    pass\n")
    monkeypatch.setattr(code, "HARNESS", harness)


SAY = "import os\ndef say(*words):\n    os.write(1, (' '.join(map(str, words)) + '\\n').encode())\n"


def attacks(port: int, token: Path, decoy: Path) -> list[str]:
    """Issue 15's sections 1 and 3, each a few statements that say `got:` only if they did harm."""
    return [f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nsay('got: a connection')",
            f"say('got:', open({str(token)!r}).read())",
            f"say('got:', len(open({str(DATASET)!r}).read()), 'bytes of MBPP')",
            f"open({str(decoy)!r}, 'a').write('pwned')\nsay('got: appended')",
            # memory RLIMIT_AS does not count (256 of these held 2 GiB): the first is refused, at every level
            "os.write(os.memfd_create('x'), b'x' * (8 << 20))\nsay('got: 8 MiB of memfd')",
            f"import signal\nos.kill({os.getpid()}, signal.SIGTERM)\nsay('got: a signal to the parent')",
            # the private uids' leases are abstract unix sockets: three checks once held them all
            "import socket\na, b = socket.socketpair()\na.bind(b'\\0tunixhack-sandbox-uid-65533')\nsay('got: a lease')",
            # a new process group or session is out of reach of the kill of the check's group
            "os.setpgid(0, 0)\nsay('got: a process group of its own')", "os.setsid()\nsay('got: a session')"]


@pytest.mark.parametrize("where", ["process", "subinterpreter"])
def test_the_wall_holds_without_the_audit_hook(where, unhooked, token, shared_decoy, sandbox_level):
    token, secret = token
    with listening() as listener:
        steps = attacks(listener.getsockname()[1], token, shared_decoy)
        if where == "process":
            program = SAY + "".join(guarded(step).replace("def add", f"def attack{i}") for i, step in enumerate(steps))
            tests = [f"assert attack{i}(1, 2) == 3" for i in range(len(steps))]
        else:  # every step inside one subinterpreter: its failures are said there, its own sys.stdout unused
            inside = SAY + "".join("try:\n" + "".join(f"    {line}\n" for line in step.splitlines())
                                   + "except BaseException as error:\n    say('stopped:', type(error).__name__, error)\n"
                                   for step in steps)
            program = f"INSIDE = {inside!r}\n" + guarded(SUBINTERPRETER)
            tests = ["assert add(1, 2) == 3"]
        result = check(program, tests, timeout=20.0)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.passed, result.output
    assert "got:" not in result.output and secret not in result.output, result.output
    assert result.output.count("stopped:") == len(steps), result.output  # each step ran, and each was stopped
    assert shared_decoy.read_text() == "original\n" and os.listdir(shared_decoy.parent) == ["profile"]


def test_the_dataset_on_disk_is_no_oracle_without_the_hook(unhooked, sandbox_level):
    # With the hook gone (a subinterpreter), programs with no logic of their own looked their answers up in
    # the MBPP file and got reward 1.0: Landlock keeps every file outside the system and Python ones unread.
    row = next(r for r in FULL if r["task_id"] == 17)
    result = check(READ_DATASET + LOOKUP, row["test_list"])
    assert not result.passed and "refused" in result.output, result.output


def test_the_harness_still_runs_honest_code_without_the_hook(unhooked, sandbox_level):
    # the unhooked fixture takes out only the tripwire: the same honest program still passes
    assert check(ADD).passed
    assert check("def add(a, b):\n    return a * b\n").reason == "assertion_failed"


@pytest.mark.parametrize("load", [
    "_imp.create_dynamic(ModuleSpec('_xxsubinterpreters\\x00x', None, origin=find('_xxsubinterpreters')))",
    "_imp.create_dynamic(ModuleSpec('readline\\x00x', None, origin=find('readline')))",
    "_imp.create_dynamic(ModuleSpec('xxlimited', None, origin=find('xxlimited')))",  # not on the allow list
    "_imp.create_builtin(ModuleSpec('xxsubtype', None))",
    "_imp.create_builtin(ModuleSpec('posix\\x00', None))",
])
def test_extension_names_off_the_allow_list_or_with_a_nul_are_refused(load, sandbox_level):
    program = ("import _imp\nfrom importlib.machinery import ModuleSpec, PathFinder\n"
               "def find(name):\n    spec = PathFinder.find_spec(name)\n"
               "    if spec is None:\n        raise PermissionError('not there')\n    return spec.origin\n"
               + guarded(f"{load}\nprint('loaded')"))
    result = check(program)
    assert result.passed and "loaded" not in result.output, result.output
    assert "stopped: PermissionError" in result.output, result.output
    # what MBPP code imports still loads, on either interpreter (math is built in on Debian's, a file on others)
    assert check("import math, array, heapq, bisect, collections, re\n" + ADD).passed


def test_the_hook_refuses_a_subinterpreter():
    hook = sandbox_guard.make_audit_hook(tempfile.gettempdir(), 32)
    with pytest.raises(PermissionError, match="PyInterpreterState_New"):
        hook("cpython.PyInterpreterState_New", ())
    with pytest.raises(PermissionError, match="NUL"):
        hook("import", ("math\0x", None, None, None, None))


SECCOMP_CHILD = """
import os, socket, sys, threading
sys.path.insert(0, sys.argv[1])
from tunixhack.verify import kernel_wall, sandbox_wall
sandbox_wall.load_seccomp(kernel_wall.seccomp_program())
for name, call in [("memfd", lambda: os.memfd_create("x")), ("socket", lambda: socket.socket()),
                   ("unix socket", lambda: socket.socket(socket.AF_UNIX)), ("socketpair", socket.socketpair), ("fork", os.fork),
                   ("exec", lambda: os.execv("/bin/true", ["true"])), ("mknod", lambda: os.mkfifo("/tmp/x" + sys.argv[2]))]:
    try:
        call()
        print(name, "allowed")
    except PermissionError:
        print(name, "refused")
seen = []
thread = threading.Thread(target=seen.append, args=(1,))
thread.start()
thread.join()
print("thread", "ran" if seen else "failed")
"""


@pytest.mark.skipif(kernel_wall.seccomp_program() is None, reason="libseccomp is not installed")
def test_the_seccomp_filter_refuses_its_calls_and_keeps_threads():
    done = subprocess.run([sys.executable, "-c", SECCOMP_CHILD, str(Path(__file__).parent.parent), uuid.uuid4().hex],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == ["memfd refused", "socket refused", "unix socket refused",
                                            "socketpair refused", "fork refused",
                                            "exec refused", "mknod refused", "thread ran"], done.stdout


@pytest.fixture
def reprobe(monkeypatch):
    """Probe the isolation afresh under this test's patches; the real probe's results come back after it."""
    for key in ("probed", "launches", "why", "forced", "unsafe_allowed"):
        monkeypatch.setitem(isolation._state, key, isolation._state[key])
    isolation._state.update(probed=None, forced=None, unsafe_allowed=False)
    monkeypatch.setattr(isolation, "_namespace_launch", lambda *args: (None, "user namespaces are refused"))
    return monkeypatch


@pytest.mark.parametrize("offered,missing", [((0, b"program"), "no Landlock"), ((7, None), "libseccomp")])
def test_neither_namespaces_nor_a_wall_refuses_to_run_code_unless_allowed(offered, missing, reprobe):
    reprobe.setattr(kernel_wall, "available", lambda: offered)
    unwalled = "uid+rlimits+audit" if os.geteuid() == 0 else "rlimits+audit"
    assert available_levels() == (unwalled,) and missing in why()
    with pytest.raises(IsolationRefused, match="--unsafe-run-code"):
        run_tests(ADD, ADD_TESTS)
    allow_unsafe()
    assert run_tests(ADD, ADD_TESTS).passed


@pytest.mark.skipif(kernel_wall.landlock_abi() == 0 or kernel_wall.seccomp_program() is None,
                    reason="this machine has no Landlock or no libseccomp")
def test_without_namespaces_the_fallback_is_walled_and_named_so(reprobe):
    walled = "uid+landlock+seccomp" if os.geteuid() == 0 else "landlock+seccomp"
    assert available_levels()[0] == walled and code.isolation() == walled
    assert code.require_isolation() == walled  # what the start-up line, the summary and run.json show
    assert run_tests(ADD, ADD_TESTS).passed


def test_the_harness_carries_the_wall():
    # one source for the child: the guards, the wall and the child, in that order
    assert code.HARNESS.index("def build_wall") < code.HARNESS.index("def main")
