"""Check Python programs against MBPP-style asserts: the code runs in a sandbox, the verdict is decided here.

One function serves the generation filter, the GRPO code reward and the evaluation:

    >>> verify_code("```python\\ndef add(a, b):\\n    return a + b\\n```", ["assert add(1, 2) == 3"])
    True

Each test is split (tunixhack/verify/code_probes.py) into probes, the calls to the code under test, and a
check. A fresh `python -I -S -B` child (launched by tunixhack/verify/sandbox.py; sandbox_guard.py and
sandbox_child.py are its harness) runs the test imports, the code, the setup code (two tasks' setup uses
classes the solution defines), then evaluates each probe and sends its value back as plain data. The checks then run here, on those values, in a fresh
namespace: the child never sees an expected value and nothing it writes can say "passed".

The child is isolated at the best level this machine offers (tunixhack/verify/isolation.py, `isolation()`):
new user, network, PID, IPC and mount namespaces with a read-only root and a tmpfs work folder; else a
private uid (as root; held machine-wide while it runs) or the user, shut in by Landlock and a seccomp filter
(tunixhack/verify/kernel_wall.py), which every level adds where the machine has them; never, unless
`allow_unsafe()`, with neither. At every level: a wall-clock timeout and RLIMIT_CPU; RLIMIT_AS, RLIMIT_FSIZE,
RLIMIT_NOFILE and RLIMIT_NPROC; a new session, killed as a group; an environment with none of ours (no
HF_TOKEN, no API keys); a new session keyring; stdout+stderr drained with a cap; an audit hook as a tripwire.

Everything the child writes is the code's to forge. Whatever it is, a check ends in a CheckResult, never an
exception: only a sandbox that could not start raises (SandboxError), so neither verify_code nor
tunixhack.verify.check raises because of the program.

Reasons (CheckResult.reason): passed, assertion_failed, error, syntax_error, timeout, memory, exited (the
code left before every probe had a value), output_limit, unsupported_value (a value that is not plain
data, or output the parent could not read), unsplittable_test, cleanup_failed, no_tests_run, no_code,
too_long (a reply or program over MAX_CHARS); from verify_many also sandbox_error.
SandboxError is raised when the sandbox itself could not run a check (not the candidate's fault);
IsolationRefused (a UserError) when the machine cannot isolate the code and allow_unsafe() was not called.
"""

from __future__ import annotations

import ast
import marshal
import os
import re
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .code_probes import Plan, Unsplittable, judge, plan_tests
from .code_values import BadValue, OutOfTime, decode_value
from .isolation import (NAMESPACES, UID_BASE, IsolationRefused, Launch, allow_unsafe, available_levels, force_isolation,
                        isolation, launch, require_isolation, why)
from .sandbox import (FILE_BYTES, HARNESS, MEMORY_MB, OPEN_FILES, SLOTS, SPARE_PROCESSES, WRITE_OPENS, NoLease,
                      SandboxError, collect, kill_group, kill_namespace, max_parallel, set_max_parallel, wait_exit)
from .sandbox_sweep import clean_up

__all__ = ["CheckResult", "IsolationRefused", "SandboxError", "allow_unsafe", "available_levels",
           "extract_code", "force_isolation", "isolation", "max_parallel", "require_isolation", "run_tests",
           "set_max_parallel", "verify_code", "verify_many", "why"]

OUTPUT_KEEP = 4096              # characters of stdout+stderr kept in CheckResult.output
MAX_CHARS = 64 * 1024           # the longest answer (or program) checked: MBPP programs are a few hundred bytes
JUDGE_GRACE = 0.5               # seconds past the check's timeout the asserts may still take (code_judge.py)
NAMESPACE_EXIT = 0.05          # seconds a namespaces check's unshare gets to end by itself before init is killed
SWEEP_AT_LEAST = 0.1           # seconds the sweep always gets (after a judge that took its whole grace)
CLEANUP_GRACE = 0.7             # and its cleanup's first pass, after which the rest goes on in the background
_FENCE_OPEN = re.compile(r"[ \t]*```[ \t]*([\w+-]*)")    # a line that opens a ``` block, and its tag
_FENCE_CLOSE = re.compile(r"[ \t]*```[ \t]*\r?")        # a line that closes one (fullmatch)
_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*(python3?|py)?[ \t]*\r?\n", re.MULTILINE | re.IGNORECASE)
_PYTHON_TAGS = {"python", "python3", "py"}
_HARNESS_REASONS = {"error", "syntax_error", "memory", "exited", "unsupported_value"}


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    reason: str
    output: str = ""
    seconds: float = 0.0
    test: int | None = None  # a timeout's test: the first (index into tests) whose values never all came back


# --- extraction -----------------------------------------------------------------------------------------
def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) of each closed ``` block, in order, in one pass over the lines (a regex that looks for the
    end of each block from each line that opens one is quadratic in unclosed fences)."""
    blocks, tag, start, position = [], None, 0, 0
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if tag is None:
            opening = _FENCE_OPEN.match(line)
            if opening and index < len(lines) - 1:  # the opening line ends with its newline
                tag, start = opening.group(1), position + len(line) + 1
        elif _FENCE_CLOSE.fullmatch(line):
            blocks.append((tag, text[start:position]))
            tag = None
        position += len(line) + 1
    return blocks


def extract_code(text: str) -> str | None:
    """The program in a model reply: the last ```python / ```py block, else the last bare ``` block (a bare
    block after a tagged one is usually sample output), else the whole text if it parses as Python. Callers
    refuse replies over MAX_CHARS first (reason too_long)."""
    if not text or not text.strip():
        return None
    blocks = [(tag.lower(), body) for tag, body in _fenced_blocks(text) if body.strip()]
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


# --- one check ------------------------------------------------------------------------------------------
def run_tests(code: str, tests: list[str], setup: str = "", imports: list[str] | tuple = (),
              timeout: float = 10.0, *, memory_mb: int = MEMORY_MB, reference: str = "") -> CheckResult:
    """Run `code` and `setup` (after `imports`) in a sandbox, evaluate the tests' probes there, and decide
    each test here; passed only if every test holds. `reference`: the row's reference solution, whose
    imports the expected side of an assert may use (code_probes.py)."""
    if isinstance(tests, str) or isinstance(imports, str):
        raise TypeError("tests and imports must be lists of strings, not one string")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if not tests:
        return CheckResult(False, "no_tests_run")
    if len(code) > MAX_CHARS:
        return CheckResult(False, "too_long", f"[check] a program of {len(code)} characters (at most {MAX_CHARS})")
    try:
        plan = plan_tests(list(tests), setup or "", imports, program=code, reference=reference or "")
    except Unsplittable as error:
        return CheckResult(False, "unsplittable_test", f"[check] this test cannot be decided outside the "
                                                        f"sandbox, so it is not run: {error}")
    except Exception as error:  # a test import that fails here (ImportError...): the dataset's problem
        return CheckResult(False, "error", f"[check] the test imports failed: {type(error).__name__}: {error}")
    how = launch()
    SLOTS.wait_turn()  # this process's own queue: the timeout starts once the check's turn has come
    deadline = time.monotonic() + timeout
    try:
        slot, lease = SLOTS.take(deadline)
    except NoLease as error:
        return CheckResult(False, "timeout", f"[check] {error}", timeout)
    uid = UID_BASE + slot if how.drop else None
    workdir = result = None
    try:
        # namespaces: the work folder is a tmpfs in the child's own mount namespace, nothing on the host
        workdir = None if how.workdir_inside else tempfile.mkdtemp(prefix="tunixhack-sandbox-")
        if uid is not None:
            os.chown(workdir, uid, uid)
        payload = {
            "code": code, "setup": setup or "", "imports": list(imports),
            "probes": [(p.function, p.args, p.kwargs, p.wrapper, p.sent) for p in plan.probes],
            "drop": [uid] * 2 if uid is not None else None, "preload": list(how.preload),
            "wall": how.wall(),
            "limits": {"cpu_seconds": int(timeout) + 1, "memory_bytes": memory_mb * 1024 * 1024,
                       "file_bytes": FILE_BYTES, "open_files": OPEN_FILES, "write_opens": WRITE_OPENS,
                       # a uid or user namespace of its own: nothing else runs there, so no second task
                       "processes": 1 if how.own_uid else None,
                       "spare_processes": SPARE_PROCESSES},
        }
        result = _run_child(how, workdir, slot, payload, plan, deadline)
    finally:
        # until CLEANUP_GRACE past the timeout, or a moment past a judge that took its own grace
        until = max(deadline + CLEANUP_GRACE, time.monotonic() + SWEEP_AT_LEAST)
        unfinished = clean_up(slot, lease, workdir, uid, until)
        if result is not None and unfinished:
            result = CheckResult(False, "cleanup_failed", result.output + f"\n[check] {unfinished}",
                                 result.seconds, result.test)
    return result


def _run_child(how: Launch, workdir: str | None, slot: int, payload: dict, plan: Plan,
               deadline: float) -> CheckResult:
    result_read, result_write = os.pipe()
    home = how.workdir_inside or workdir
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            how.command(["-I", "-S", "-B", "-c", HARNESS, str(result_write)], slot), cwd=workdir or "/",
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(result_write,), start_new_session=True)  # no user=: that would rule out vfork
    except OSError as error:
        os.close(result_read)
        raise SandboxError(f"could not start the sandbox ({how.python}): {error}") from error
    finally:
        os.close(result_write)
    try:
        try:
            child.stdin.write(marshal.dumps(payload))  # same Python minor version: json would cost 10 ms
            child.stdin.close()
        except BrokenPipeError:
            pass  # the harness died before reading: reported below as "no READY"
        output, verdict, timed_out, flooded = collect(child, result_read, deadline)
    finally:
        if how.level == NAMESPACES and not wait_exit(child.pid, NAMESPACE_EXIT):
            kill_namespace(child)  # init by pidfd: the kernel ends every process in it, whatever its session
            # unshare reaps init, then exits: killed first, it would leave init a zombie of the host's init
            wait_exit(child.pid, NAMESPACE_EXIT * 4)
        kill_group(child)  # unshare and setpriv before the namespace exists, and the uid levels' one process
        child.wait()
        os.close(result_read)
    seconds = time.monotonic() - started
    text = output[:OUTPUT_KEEP].decode("utf-8", "replace")
    if len(output) > OUTPUT_KEEP:
        text += f"\n[... output truncated: {len(output)} bytes or more]"
    lines = verdict.decode("utf-8", "replace").splitlines()
    if "READY" not in lines:
        if timed_out:
            return CheckResult(False, "timeout", text, seconds)  # starved before it could start
        raise SandboxError(f"the sandbox harness failed before running the code (exit {child.returncode}): "
                           f"{text[-500:]}")
    if flooded:
        return CheckResult(False, "output_limit", text, seconds)
    try:
        return _verdict(plan, lines, child.returncode, timed_out, text, started, deadline)
    except Exception as error:  # noqa: BLE001 - what the code wrote is never our exception: a failed check
        return CheckResult(False, "unsupported_value", text + f"\n[check] the sandbox's answer could not be read: "
                           f"{type(error).__name__}: {error}", seconds)


def _verdict(plan: Plan, lines: list[str], returncode: int, timed_out: bool, text: str,
             started: float, deadline: float) -> CheckResult:
    """The check decided on what the child wrote (all of which the code can forge: lines, values, reasons);
    reading the values and the asserts get what is left of the timeout, and JUDGE_GRACE more."""
    values = _values(lines, [i for i, probe in enumerate(plan.probes) if probe.sent])
    if values is None:
        reason = _reason(lines, returncode, timed_out)
        test = _timed_out_test(plan, lines) if reason == "timeout" else None
        return CheckResult(False, reason, text, time.monotonic() - started, test)
    # one limit for reading the values and deciding the asserts: both run here, in the trainer's process
    until = max(deadline, time.monotonic()) + JUDGE_GRACE
    try:
        decoded = {i: decode_value(value, plan.int_bits, until) for i, value in values.items()}
    except OutOfTime as error:
        return CheckResult(False, "timeout", text + f"\n[check] timeout: {error}", time.monotonic() - started)
    except BadValue as error:
        return CheckResult(False, "unsupported_value", text + f"\n[check] {error}", time.monotonic() - started)
    reason, detail = judge(plan, decoded, until)
    if detail:
        text += f"\n[check] {reason}: {detail}"
    return CheckResult(reason == "passed", reason, text, time.monotonic() - started)


def _values(lines: list[str], wanted: list[int]) -> dict[int, str] | None:
    """The encoded value of each wanted probe (the first line given for it), or None if any is missing. The
    index is ASCII digits only ('²'.isdigit() is true, int('²') raises) and short (int() refuses 4300 digits)."""
    values: dict[int, str] = {}
    for line in lines:
        parts = line.split(" ", 2)
        if (len(parts) == 3 and parts[0] == "VALUE" and parts[1].isascii() and parts[1].isdigit()
                and len(parts[1]) <= 9):
            values.setdefault(int(parts[1]), parts[2])
    if any(i not in values for i in wanted):
        return None
    return {i: values[i] for i in wanted}


def _timed_out_test(plan: Plan, lines: list[str]) -> int | None:
    """The first test with a sent probe whose value never came back (the child sends them in order); None
    when it ran out before the tests (in the program, the imports or the setup code: no PROBING line)."""
    if "PROBING" not in lines:
        return None
    arrived = {line.split(" ", 2)[1] for line in lines if line.startswith("VALUE ")}
    for check in plan.checks:
        if any(plan.probes[i].sent and str(i) not in arrived for i in check.probes):
            return check.test
    return None


def _reason(lines: list[str], returncode: int, timed_out: bool) -> str:
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


# --- the entry points for recipes, rewards and evaluation -----------------------------------------------
def verify_code(answer: str, tests, setup: str = "", imports=(), timeout: float = 10.0,
                reference: str = "") -> bool | None:
    """True if the reply's program passes every test; False if not or no code; None if there are no tests."""
    if not tests:
        return None
    code = _program(answer)
    if not isinstance(code, str):
        return False
    return run_tests(code, list(tests), setup, imports, timeout, reference=reference).passed


def _program(answer: str) -> str | CheckResult:
    """The program to check in a reply, or the failed check when there is none (no_code, too_long)."""
    if len(answer) > MAX_CHARS:
        return CheckResult(False, "too_long", f"[check] a reply of {len(answer)} characters (at most {MAX_CHARS})")
    code = extract_code(answer)
    return CheckResult(False, "no_code") if code is None else code


def _check_item(item: dict) -> CheckResult:
    """One item of verify_many; never raises except IsolationRefused (a setting, not an item's doing)."""
    try:
        tests = item.get("tests") or ()
        if isinstance(tests, str):
            raise TypeError("tests must be a list of strings, not one string")
        tests = list(tests)
        if not tests:
            return CheckResult(False, "no_tests_run")
        code = item["code"] if "code" in item else _program(item.get("answer") or "")
        if isinstance(code, CheckResult):
            return code
        if code is None:
            return CheckResult(False, "no_code")
        return run_tests(code, tests, item.get("setup") or "", item.get("imports") or (),
                         item.get("timeout", 10.0), reference=item.get("reference") or "")
    except IsolationRefused:
        raise
    except Exception as error:  # the sandbox could not run this one (or the item is malformed)
        return CheckResult(False, "sandbox_error", f"[check] {type(error).__name__}: {error}")


def verify_many(items: list[dict], workers: int = 4) -> list[CheckResult]:
    """Check a batch in order of `items`, one result each whatever any item does. Each item: "tests", and
    "code" (a program) or "answer" (a reply to extract from); optional "setup", "imports", "timeout",
    "reference" (the row's reference solution). At most
    `workers` (and max_parallel()) at once."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(items) <= 1:
        return [_check_item(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(_check_item, items))
