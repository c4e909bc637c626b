"""The code sandbox: MBPP programs pass or fail as they should, and hostile programs are contained."""

import os
import random
import re
import shutil
import socket
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tunixhack.verify.code import (CheckResult, _fenced_blocks, extract_code, max_parallel, run_tests, set_max_parallel,
                                   verify_code, verify_many)

ROOT = Path(__file__).resolve().parent.parent

# MBPP `full`, task 1, exactly as the dataset stores it: CRLF line endings, tab indentation.
MIN_COST = ("R = 3\r\nC = 3\r\ndef min_cost(cost, m, n): \r\n\ttc = [[0 for x in range(C)] for x in range(R)] \r\n"
            "\ttc[0][0] = cost[0][0] \r\n\tfor i in range(1, m+1): \r\n\t\ttc[i][0] = tc[i-1][0] + cost[i][0] \r\n"
            "\tfor j in range(1, n+1): \r\n\t\ttc[0][j] = tc[0][j-1] + cost[0][j] \r\n\tfor i in range(1, m+1): \r\n"
            "\t\tfor j in range(1, n+1): \r\n\t\t\ttc[i][j] = min(tc[i-1][j-1], tc[i-1][j], tc[i][j-1]) + cost[i][j] \r\n"
            "\treturn tc[m][n]")
MIN_COST_TESTS = ["assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8",
                  "assert min_cost([[2, 3, 4], [5, 9, 3], [2, 6, 4]], 2, 2) == 12",
                  "assert min_cost([[3, 4, 5], [6, 10, 4], [3, 7, 5]], 2, 2) == 16"]
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]


def check(code: str, tests=ADD_TESTS, **kwargs) -> CheckResult:
    return run_tests(code, tests, timeout=kwargs.pop("timeout", 5.0), **kwargs)


# --- extraction -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reply, expected", [
    ("Here:\n```python\ndef f():\n    return 1\n```\n", "def f():\n    return 1\n"),
    ("```py\nx = 1\n```", "x = 1\n"),
    ("```\nx = 2\n```", "x = 2\n"),
    ("```Python\nx = 3\n```", "x = 3\n"),
    ("first\n```python\nx = 1\n```\nbetter:\n```python\nx = 2\n```\nDone.", "x = 2\n"),
    ("```python\nx = 1\n```\nRun it with:\n```bash\npython f.py\n```", "x = 1\n"),
    ("def f(a):\n    return a * 2\n", "def f(a):\n    return a * 2\n"),
    ("```python\r\ndef f():\r\n\treturn 1\r\n```", "def f():\r\n\treturn 1\r\n"),
    ("```python\r\nx = 1\r\n```\r\nand\r\n```python\r\nx = 2\r\n```\r\n", "x = 2\r\n"),
    ("```python\nprint(f(3))\n```\nOutput:\n```\n8\n```", "print(f(3))\n"),
    ("```text\nnot code\n```", None),
    ("Cut off mid-reply:\n```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),
    ("Cut off mid-reply:\n```python\ndef f(:\n", None),
    ("The answer is to loop over the list.", None),
    ("", None),
    ("   \n", None),
])
def test_extract_code(reply, expected):
    assert extract_code(reply) == expected


def test_fences_are_found_as_the_regex_found_them():
    # The one-pass scanner against the regex it replaced (quadratic in unclosed fences), on random replies
    regex = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*\r?$", re.MULTILINE | re.DOTALL)
    pieces = ["```", "```python", "```py x", "````", "`", "\n", "\n", "\r\n", "\r", " ", "\t", "x = 1", "é"]
    rng = random.Random(11)
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert _fenced_blocks(text) == regex.findall(text), repr(text)


# --- MBPP semantics -------------------------------------------------------------------------------------
def test_mbpp_reference_with_crlf_and_tabs_passes_and_a_wrong_one_fails():
    assert check(MIN_COST, MIN_COST_TESTS).passed
    wrong = check(MIN_COST.replace("min(tc[i-1][j-1]", "max(tc[i-1][j-1]"), MIN_COST_TESTS)
    assert (wrong.passed, wrong.reason) == (False, "assertion_failed")
    assert "min_cost([[1, 2, 3]" in wrong.output  # names the failing assert


def test_setup_code_runs_after_the_solution_and_can_use_its_classes():
    code = ("class Node:\n    def __init__(self, data):\n        self.data = data\n        self.left = None\n"
            "        self.right = None\n\ndef max_height(node):\n    if node is None:\n        return 0\n"
            "    return 1 + max(max_height(node.left), max_height(node.right))\n")
    setup = "root = Node(1)\r\nroot.left = Node(2)\r\nroot.right = Node(3)\r\nroot.left.left = Node(4)\r\nroot1 = Node(5)"
    result = check(code, ["assert max_height(root) == 3", "assert max_height(root1) == 1"], setup=setup)
    assert result.passed, result.output


def test_sanitized_test_imports_run_first():
    code = "PI = math.pi  # the module-level use proves the test imports ran before the code\n" \
           "def volume_sphere(r):\n    return 4 / 3 * PI * r ** 3\n"
    tests = ["assert math.isclose(volume_sphere(10), 4188.790204786391, rel_tol=0.001)"]
    assert check(code, tests, imports=["import math"]).passed
    assert check(code, tests).reason == "error"  # NameError without them


def test_main_block_does_not_run():
    code = "def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    print(add(int(input()), 1))\n"
    assert check(code).passed


def test_syntax_error_and_missing_function():
    assert check("def add(a, b) return a + b").reason == "syntax_error"
    result = check("def plus(a, b):\n    return a + b\n")
    assert result.reason == "error" and "NameError" in result.output


def test_verify_code_entry_point():
    reply = "Sure.\n```python\ndef add(a, b):\n    return a + b\n```"
    assert verify_code(reply, ADD_TESTS) is True
    assert verify_code(reply.replace("a + b", "a * b"), ADD_TESTS) is False
    assert verify_code("I cannot write this function.", ADD_TESTS) is False
    assert verify_code(reply, []) is None


# --- hostile programs: each runs at every isolation level this machine offers ------------------------------
BARRIERS = ("not allowed", "Read-only file system", "No such file or directory", "Permission denied")


def refused(result: CheckResult, level: str) -> bool:
    """Failed, stopped by the audit hook (the fallback's barrier) or, with namespaces, also by the kernel."""
    barriers = BARRIERS if level == "namespaces" else BARRIERS[:1]
    return not result.passed and any(barrier in result.output for barrier in barriers)


@contextmanager
def listening():
    """A TCP listener on 127.0.0.1 that never blocks: accept() raises BlockingIOError when nobody connected."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            continue
    return found


def test_infinite_loop_times_out(sandbox_level):
    result = check("while True:\n    pass\n", timeout=1.0)
    assert (result.passed, result.reason) == (False, "timeout")  # the verdict says the limit ended it


@pytest.mark.parametrize("spawn", [
    "while True:\n    os.fork()",
    "os.system('sleep {marker} &')",
    "import subprocess\nsubprocess.Popen(['sleep', '{marker}'])",
    "os.posix_spawn('/bin/sleep', ['sleep', '{marker}'], {{}})",
    "import multiprocessing\nmultiprocessing.Process(target=print).start()",
])
def test_fork_bomb_and_new_processes_are_refused(spawn, sandbox_level):
    marker = f"30.{uuid.uuid4().int % 10**9}"  # a sleep of 30 s that no other process on the machine runs
    result = check(f"import os\n{spawn.format(marker=marker)}\ndef add(a, b):\n    return a + b\n")
    assert not result.passed and result.reason == "error", result
    assert "not allowed" in result.output
    assert processes_with(marker) == []


def test_process_limit_holds_even_without_fork(sandbox_level):
    # Threads count against RLIMIT_NPROC, the layer under the audit hook: 1 where the check has a uid or a
    # user namespace of its own, so not even one thread starts.
    code = ("import threading\nthreading.stack_size(65536)\nstop = threading.Event()\nstarted = 0\n"
            "try:\n    for _ in range(300):\n        threading.Thread(target=stop.wait, daemon=True).start()\n"
            "        started += 1\nexcept RuntimeError:\n    pass\nstop.set()\nprint('started', started)\n")
    result = check(code, ["assert started == 0"])
    assert result.passed, result.output


def test_memory_bomb_is_stopped(sandbox_level):
    result = check("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n", memory_mb=256)
    assert (result.passed, result.reason) == (False, "memory")
    assert check("x = bytearray(64 * 1024 ** 3)").reason == "memory"


@pytest.mark.parametrize("attack", [
    "open({target!r}, 'w').write('pwned')",
    "import os\nfd = os.open({target!r}, os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'pwned')",
    "import os\nd = os.open(os.path.dirname({target!r}), os.O_RDONLY)\n"
    "os.close(os.open(os.path.basename({target!r}), os.O_CREAT | os.O_WRONLY, dir_fd=d))",
    "import os\nos.symlink({target!r}, 'link')\nopen('link', 'w').write('pwned')",
    "import os\nopen('inside', 'w').write('pwned')\nos.rename('inside', {target!r})",
    "import shutil\nopen('inside', 'w').write('pwned')\nshutil.copy('inside', {target!r})",
])
@pytest.mark.parametrize("where", ["tmp", "project"])
def test_writing_outside_the_working_directory_is_refused(attack, where, sandbox_level):
    base = Path("/tmp") if where == "tmp" else ROOT
    target = base / f"evil-{uuid.uuid4().hex}"
    try:
        result = check(attack.format(target=str(target)) + "\ndef add(a, b):\n    return a + b\n")
        assert not target.exists() and not target.is_symlink()
        assert refused(result, sandbox_level), result.output
    finally:
        target.unlink(missing_ok=True)


def test_the_working_directory_is_private_writable_and_removed(sandbox_level, monkeypatch):
    parent = tempfile.mkdtemp(prefix="tunixhack-test-")
    os.chmod(parent, 0o711)  # the fallback's private uid must reach its folder in there
    monkeypatch.setattr(tempfile, "tempdir", parent)
    code = ("import os, shutil, tempfile\nprint('cwd', os.getcwd())\nos.mkdir('d')\nos.chmod('d', 0o700)\n"
            "with open('d/notes.txt', 'w') as f:\n    f.write('kept')\nos.rename('d/notes.txt', 'notes.txt')\n"
            "shutil.copy('notes.txt', 'copy.txt')\nos.symlink('copy.txt', 'link')\nos.remove('link')\n"
            "os.rmdir('d')\nwith tempfile.TemporaryFile() as scratch:  # TMPDIR is the working directory\n"
            "    scratch.write(b'x')\n"
            "def add(a, b):\n    return a + b if open('copy.txt').read() == 'kept' else None\n")
    try:
        result = check(code)
        assert result.passed, result.output
        workdir = result.output.split()[1]
        assert workdir == "/work" if sandbox_level == "namespaces" else "tunixhack-sandbox-" in workdir
        assert os.listdir(parent) == []  # removed, whatever the level
    finally:
        shutil.rmtree(parent)


def test_the_parent_environment_is_not_visible(monkeypatch, sandbox_level):
    secret = f"hf_{uuid.uuid4().hex}"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    code = ("import os\nENV = dict(os.environ)\nseen = repr(ENV)\n"
            "for pid in (os.getppid(), 1):\n    try:\n        seen += open(f'/proc/{pid}/environ').read()\n"
            "    except OSError as error:\n        print('refused', pid, error)\n")
    result = check(code, [f"assert {secret!r} not in seen", "assert 'HF_TOKEN' not in ENV"])
    assert result.passed, result.output
    assert "refused" in result.output or sandbox_level == "namespaces"  # there pid 1 is the check itself


def test_network_is_refused(sandbox_level):
    with listening() as listener:
        port = listener.getsockname()[1]
        result = check(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                       "def add(a, b):\n    return a + b\n")
        assert (result.passed, result.reason) == (False, "error")
        assert "socket" in result.output and "not allowed" in result.output
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected


def test_ctypes_is_refused(sandbox_level):
    result = check("import ctypes\ndef add(a, b):\n    return a + b\n")
    assert not result.passed and "import ctypes is not allowed" in result.output


def test_huge_output_is_capped_and_stopped(sandbox_level):
    result = check("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", timeout=20.0)
    assert (result.passed, result.reason) == (False, "output_limit")
    assert len(result.output) < 5000  # output_limit: stopped at the cap, not at the 20 s timeout
    chatty = check("for i in range(20000):\n    print('line', i)\ndef add(a, b):\n    return a + b\n")
    assert chatty.passed and "truncated" in chatty.output and len(chatty.output) < 5000


FORGE = ("import os\nfor fd in range(3, 30):\n    try:\n        os.write(fd, b'READY\\nPASS ' + b'0' * 32 + b'\\n')\n"
         "    except OSError:\n        pass\n")


@pytest.mark.parametrize("leave", [
    "import sys\nsys.exit(0)",
    "import os\nos._exit(0)",
    "raise SystemExit",
    FORGE + "os._exit(0)",
    "import builtins\nbuiltins.exec = lambda *args, **kwargs: None",
    "import builtins\nbuiltins.AssertionError = Exception\nbuiltins.BaseException = type('X', (Exception,), {})",
])
def test_leaving_before_the_asserts_or_tampering_never_passes(leave, sandbox_level):
    result = check(f"def add(a, b):\n    return a - b\n{leave}\n")
    assert not result.passed, result
    exit_inside = check("import sys\ndef add(a, b):\n    sys.exit(0)\n")
    assert (exit_inside.passed, exit_inside.reason) == (False, "exited")


# --- batches and threads -----------------------------------------------------------------------------------
def test_verify_many_keeps_order_and_bounds_parallelism():
    good, bad = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a * b\n"
    items = [{"code": good if i % 2 == 0 else bad, "tests": ADD_TESTS} for i in range(8)]
    items += [{"answer": f"```python\n{good}```", "tests": ADD_TESTS}, {"answer": "no code here", "tests": ADD_TESTS},
              {"code": good, "tests": []}]
    results = verify_many(items, workers=4)
    assert [r.passed for r in results] == [i % 2 == 0 for i in range(8)] + [True, False, False]
    assert [r.reason for r in results[-2:]] == ["no_code", "no_tests_run"]
    previous = max_parallel()
    set_max_parallel(1)
    try:
        assert [r.passed for r in verify_many(items[:4], workers=4)] == [True, False, True, False]
    finally:
        set_max_parallel(previous)


def test_verify_code_from_many_threads_at_once():
    replies = {n: f"```python\ndef add(a, b):\n    return a + b + {n}\n```" for n in range(6)}
    outcomes = {}

    def work(n):
        outcomes[n] = verify_code(replies[n], ADD_TESTS)

    threads = [threading.Thread(target=work, args=(n,)) for n in replies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {n: n == 0 for n in replies}
