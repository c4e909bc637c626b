"""Check Python programs against MBPP-style asserts in a locked-down child process.

One function serves the generation filter, the GRPO code reward and the evaluation:

    >>> verify_code("```python\\ndef add(a, b):\\n    return a + b\\n```", ["assert add(1, 2) == 3"])
    True

Order of execution (MBPP): sanitized `test_imports`, the candidate code, `test_setup_code` (two tasks' setup
uses classes the solution defines), then each assert, all in one namespace.

Each check is a fresh `python -I -S -B` process (tunixhack/verify/sandbox_child.py is its harness) with:
a wall-clock timeout and RLIMIT_CPU; RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_NPROC; a new session,
killed as a group; a fresh private temp dir as cwd, removed afterwards; an environment with none of ours
(no HF_TOKEN, no API keys); stdout+stderr drained with a cap; an audit hook refusing sockets, processes and
writes outside its dir. When we run as root (where RLIMIT_NPROC is not enforced) the harness switches to a
private unprivileged uid per parallel slot (65000 + slot) before the code runs, so process counts of
concurrent checks never collide; the interpreter is one that uid can run (sys.executable, else the system
python of the same version).
A pass is proved by a random nonce the harness writes only after the last assert.

Reasons (CheckResult.reason): passed, assertion_failed, error, syntax_error, timeout, memory, exited (the
code left before the asserts finished), output_limit, no_tests_run, no_code.
SandboxError is raised when the sandbox itself could not run a check (not the candidate's fault).
"""

from __future__ import annotations

import ast
import errno
import marshal
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["CheckResult", "SandboxError", "extract_code", "run_tests", "verify_code", "verify_many",
           "set_max_parallel", "max_parallel"]

OUTPUT_KEEP = 4096              # characters of stdout+stderr kept in CheckResult.output
OUTPUT_LIMIT = 4 * 1024 * 1024  # bytes a check may print before it is killed (reason output_limit)
MEMORY_MB = 1024                # RLIMIT_AS of a check
FILE_BYTES = 8 * 1024 * 1024    # RLIMIT_FSIZE: the largest file a check may write in its dir
WRITE_OPENS = 32                # files a check may open for writing (bounds disk use with FILE_BYTES)
PROCESSES = 64                  # RLIMIT_NPROC (tasks, threads included) above what the uid already runs
OPEN_FILES = 256                # RLIMIT_NOFILE
UID_BASE = 65000                # Debian reserves 65000-65533: private uids, one per parallel slot
UID_SLOTS = 534
# Modules an MBPP solution commonly imports: preloaded (before the uid switch) only in the fallback where
# no interpreter is runnable by the private uid, e.g. root's pyenv under /root (other imports then fail).
PRELOAD = ("re", "math", "cmath", "collections", "itertools", "functools", "heapq", "bisect", "string",
           "operator", "copy", "array", "fractions", "decimal", "statistics", "datetime", "calendar",
           "random", "typing", "dataclasses", "enum", "json", "textwrap", "unicodedata", "struct", "traceback")
HARNESS = (Path(__file__).with_name("sandbox_child.py")).read_text(encoding="utf-8")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*\r?$", re.MULTILINE | re.DOTALL)
_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*(python3?|py)?[ \t]*\r?\n", re.MULTILINE | re.IGNORECASE)
_PYTHON_TAGS = {"python", "python3", "py"}
_HARNESS_REASONS = {"assertion_failed", "error", "syntax_error", "memory", "exited"}


class SandboxError(RuntimeError):
    """The sandbox could not run a check at all (could not start, or its harness failed before the code)."""


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    reason: str
    output: str = ""
    seconds: float = 0.0


# --- extraction -----------------------------------------------------------------------------------------
def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def extract_code(text: str) -> str | None:
    """The program in a model reply: the last ```python / ```py block, else the last bare ``` block (a bare
    block after a tagged one is usually sample output), else the whole text if it parses as Python."""
    if not text or not text.strip():
        return None
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text) if body.strip()]
    tagged = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    bare = [body for tag, body in blocks if not tag]
    if tagged or bare:
        return (tagged or bare)[-1]
    if "```" in text:
        # a reply cut off inside its code block: keep the open block if it is a whole program
        opens = list(_OPEN_FENCE.finditer(text))
        if opens and "```" not in text[opens[-1].end():]:
            tail = text[opens[-1].end():]
            return tail if tail.strip() and _parses(tail) else None
        return None
    return text if _parses(text) else None


# --- parallel slots and identities ----------------------------------------------------------------------
class _Slots:
    """A process-wide bound on running sandboxes; each holder gets the smallest free slot number."""

    def __init__(self, limit: int):
        self._cond = threading.Condition()
        self._limit = limit
        self._busy: set[int] = set()

    def resize(self, limit: int) -> None:
        if not 1 <= limit <= UID_SLOTS:
            raise ValueError(f"max parallel sandboxes must be 1..{UID_SLOTS}, got {limit}")
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    @contextmanager
    def take(self):
        with self._cond:
            while len(self._busy) >= self._limit:
                self._cond.wait()
            slot = next(i for i in range(UID_SLOTS) if i not in self._busy)
            self._busy.add(slot)
        try:
            yield slot
        finally:
            with self._cond:
                self._busy.discard(slot)
                self._cond.notify()


_SLOTS = _Slots(max(1, min(os.cpu_count() or 1, UID_SLOTS)))


def set_max_parallel(limit: int) -> None:
    """Bound the sandboxes running at once in this process (default: the CPU count; checks are CPU-bound)."""
    _SLOTS.resize(limit)


def max_parallel() -> int:
    return _SLOTS._limit


@dataclass(frozen=True)
class _Plan:
    python: str
    drop: bool            # we are root: the harness switches to the slot's private uid before the code runs
    preload: tuple = ()   # fallback: no interpreter's stdlib is readable by that uid, so load these first


@lru_cache(maxsize=1)  # lru_cache is thread-safe enough here: a racing first call probes twice, same answer
def _plan() -> _Plan:
    """How to start children: as root, find an interpreter the private uid can run (probe once)."""
    if os.geteuid() != 0:
        return _Plan(sys.executable, False)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = dict.fromkeys([sys.executable, getattr(sys, "_base_executable", sys.executable),
                                os.path.realpath(sys.executable), f"/usr/bin/python{version}",
                                f"/usr/local/bin/python{version}"])
    setuid_possible = False
    for python in candidates:
        try:
            probe = subprocess.run([python, "-I", "-S", "-B", "-c", "import math, re, collections"],
                                   user=UID_BASE, group=UID_BASE, extra_groups=[], env={}, cwd="/",
                                   capture_output=True, timeout=30)
        except OSError as error:
            # EACCES/ENOENT: the uid switch worked, the exec of this interpreter did not; EPERM: no switch
            setuid_possible |= error.errno in (errno.EACCES, errno.ENOENT)
            continue
        except subprocess.SubprocessError:
            continue
        setuid_possible = True
        if probe.returncode == 0:
            return _Plan(python, True)
    if setuid_possible:
        return _Plan(sys.executable, True, PRELOAD)
    warnings.warn("running as root but cannot switch to an unprivileged uid: the code sandbox relies on "
                  "its audit hook and rlimits only (RLIMIT_NPROC is not enforced for root)", stacklevel=2)
    return _Plan(sys.executable, False)


# --- one check ------------------------------------------------------------------------------------------
def run_tests(code: str, tests: list[str], setup: str = "", imports: list[str] | tuple = (),
              timeout: float = 10.0, *, memory_mb: int = MEMORY_MB) -> CheckResult:
    """Run `code`, then `setup`, then each assert (after `imports`) in a sandbox; passed only if all ran."""
    if isinstance(tests, str) or isinstance(imports, str):
        raise TypeError("tests and imports must be lists of strings, not one string")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if not tests:
        return CheckResult(False, "no_tests_run")
    plan = _plan()
    with _SLOTS.take() as slot:
        uid = UID_BASE + slot
        workdir = tempfile.mkdtemp(prefix="tunixhack-sandbox-")
        try:
            if plan.drop:
                os.chown(workdir, uid, uid)
            nonce = secrets.token_hex(16)
            payload = {
                "code": code, "setup": setup or "", "imports": list(imports), "tests": list(tests),
                "nonce": nonce,
                "drop": [uid, uid] if plan.drop else None, "preload": list(plan.preload),
                "limits": {"cpu_seconds": int(timeout) + 1, "memory_bytes": memory_mb * 1024 * 1024,
                           "file_bytes": FILE_BYTES, "open_files": OPEN_FILES, "processes": PROCESSES,
                           "write_opens": WRITE_OPENS, "private_uid": plan.drop},
            }
            return _run_child(plan, workdir, payload, nonce, timeout)
        finally:
            _remove_tree(workdir)


def _run_child(plan: _Plan, workdir: str, payload: dict, nonce: str, timeout: float) -> CheckResult:
    result_read, result_write = os.pipe()
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            [plan.python, "-I", "-S", "-B", "-c", HARNESS, str(result_write)], cwd=workdir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(result_write,), start_new_session=True)  # no user=: that would rule out vfork
    except OSError as error:
        os.close(result_read)
        raise SandboxError(f"could not start the sandbox ({plan.python}): {error}") from error
    finally:
        os.close(result_write)
    try:
        try:
            child.stdin.write(marshal.dumps(payload))  # same Python minor version: json would cost 10 ms
            child.stdin.close()
        except BrokenPipeError:
            pass  # the harness died before reading: reported below as "no READY"
        output, verdict, timed_out, flooded = _collect(child, result_read, started + timeout)
    finally:
        _kill_group(child)
        child.wait()
        os.close(result_read)
    seconds = time.monotonic() - started
    text = output[:OUTPUT_KEEP].decode("utf-8", "replace")
    if len(output) > OUTPUT_KEEP:
        text += f"\n[... output truncated: {len(output)} bytes or more]"
    lines = verdict.decode("utf-8", "replace").splitlines()
    if f"PASS {nonce}" in lines:
        return CheckResult(True, "passed", text, seconds)
    if "READY" not in lines:
        if timed_out:
            return CheckResult(False, "timeout", text, seconds)  # starved before it could start
        raise SandboxError(f"the sandbox harness failed before running the code (exit {child.returncode}): "
                           f"{text[-500:]}")
    return CheckResult(False, _reason(lines, child.returncode, timed_out, flooded), text, seconds)


def _reason(lines: list[str], returncode: int, timed_out: bool, flooded: bool) -> str:
    if flooded:
        return "output_limit"
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    # the code can write FAIL lines too: only the harness's own reasons are taken
    fails = [line.split()[1] for line in lines if line.startswith("FAIL ") and len(line.split()) >= 2
             and line.split()[1] in _HARNESS_REASONS]
    if fails:
        return fails[-1]
    if returncode == -signal.SIGKILL:
        return "memory"  # killed by someone other than us: the kernel's OOM killer
    return "exited" if returncode >= 0 else "error"


def _collect(child: subprocess.Popen, result_fd: int, deadline: float):
    """Drain output (keeping at most OUTPUT_LIMIT) and verdict until both close, the deadline, or a flood."""
    output, verdict = bytearray(), bytearray()
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, output)
    selector.register(result_fd, selectors.EVENT_READ, verdict)
    timed_out = flooded = False
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            events = selector.select(min(remaining, 0.25))
            if not events and _exited(child.pid):
                break  # the leader is gone; something it left behind still holds a pipe open
            for key, _ in events:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = key.data
                if len(buffer) < OUTPUT_LIMIT:
                    buffer += chunk[:OUTPUT_LIMIT - len(buffer)]
                elif buffer is output:
                    flooded = True
            if flooded:
                break
    finally:
        selector.close()
    return bytes(output), bytes(verdict), timed_out, flooded


def _exited(pid: int) -> bool:
    """Has the child exited? (WNOWAIT: it stays a zombie, so its pid and process group id stay ours.)"""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(child: subprocess.Popen) -> None:
    # Before wait(): an unreaped leader keeps the group id from being reused by an unrelated process.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_tree(path: str) -> None:
    if os.geteuid() != 0:
        # The code may have taken the permissions off its own dirs: give them back. os.walk is top-down and
        # lazy, so each dir is opened up here before the walk lists it. Root needs none of this.
        _open_up(path)
        for root, names, _ in os.walk(path):
            for name in names:
                _open_up(os.path.join(root, name))
    shutil.rmtree(path, ignore_errors=True)


def _open_up(directory: str) -> None:
    if not os.path.islink(directory):
        try:
            os.chmod(directory, 0o700)
        except OSError:
            pass


# --- the entry points for recipes, rewards and evaluation -----------------------------------------------
def verify_code(answer: str, tests, setup: str = "", imports=(), timeout: float = 10.0) -> bool | None:
    """True if the reply's program passes every test; False if not or no code; None if there are no tests."""
    if not tests:
        return None
    code = extract_code(answer)
    if code is None:
        return False
    return run_tests(code, list(tests), setup, imports, timeout).passed


def _check_item(item: dict) -> CheckResult:
    tests = list(item.get("tests") or ())
    if not tests:
        return CheckResult(False, "no_tests_run")
    code = item["code"] if "code" in item else extract_code(item.get("answer") or "")
    if code is None:
        return CheckResult(False, "no_code")
    return run_tests(code, tests, item.get("setup") or "", item.get("imports") or (),
                     item.get("timeout", 10.0))


def verify_many(items: list[dict], workers: int = 4) -> list[CheckResult]:
    """Check a batch in order of `items`. Each item: "tests", and "code" (a program) or "answer" (a reply
    to extract from); optional "setup", "imports", "timeout". At most `workers` (and max_parallel()) at once."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(items) <= 1:
        return [_check_item(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(_check_item, items))
