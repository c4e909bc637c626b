"""Issue 15's findings about the judge (sections 2, 4 and 5), each run through the real sandbox at every
isolation level this machine offers: the verdict is bounded in time, and the expected side of an assert is
never the program's."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.test_sandbox import check
from tests.test_sandbox_attacks import FULL, SANITIZED, YES, guarded
from tunixhack.verify import check as check_row
from tunixhack.verify.code import run_tests, verify_many


# MBPP (full) task 126's reference solution, as the dataset stores it
TASK_126 = ("def sum(a,b): \r\n    sum = 0\r\n    for i in range (1,min(a,b)): \r\n        if (a % i == 0 and "
            "b % i == 0): \r\n            sum += i \r\n    return sum")


def holders(marker: str) -> list[int]:
    """Live processes with a file open whose path contains `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(marker in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")):
                found.append(int(pid))
        except OSError:
            continue
    return found


def gone(marker: str, within: float = 10.0) -> bool:
    """No process holds `marker` open, once SIGKILL had time to land."""
    ends = time.monotonic() + within
    while holders(marker) and time.monotonic() < ends:
        time.sleep(0.1)
    return holders(marker) == []


# --- section 4: the judge and the cleanup are bounded -----------------------------------------------
def test_a_huge_int_is_refused_before_any_operator_runs(sandbox_level):
    # `f(4) ** 2` on a 15-million-bit int took 8.4 s here against a 5 s timeout. unsupported_value says the
    # value was refused when decoded, before `** 2` could run (no wall-clock bound: that would read the load).
    result = check("def f(x):\n    return 1 << 15_000_000\n", ["assert f(4) ** 2 == 16"], timeout=5.0)
    assert (result.passed, result.reason) == (False, "unsupported_value"), result.output
    assert "bits" in result.output


def test_a_slow_assert_ends_as_a_timeout(sandbox_level):
    # two small ints the caps let through, and `3 ** 10 ** 8` (158 million bits) to compute here. Unbounded,
    # it would finish, unequal, as `failed`; `timeout` says the parent's limit ended it (the overrun past the
    # timeout is measured in bench/sandbox.py --overrun, not asserted in seconds here).
    result = check("def f(x):\n    return 3 if x == 4 else 10 ** 8\n", ["assert f(4) ** f(5) == 16"], timeout=2.0)
    assert (result.passed, result.reason) == (False, "timeout"), result.output
    assert check("def f(x):\n    return 2\n", ["assert f(4) ** f(5) == 4"]).passed  # the next check is judged


def test_files_made_past_the_hook_cost_the_check_no_time(sandbox_level):
    # A fresh `posix` from the create_builtin guard's closure makes files with mknod, no audit event: 620,000
    # of them turned a 10 s check into 30.7 s of sweeping. The check ends on time; the sweep goes on, holding
    # the uid, until they are gone.
    prefix = f"tunixhack-mknod-{uuid.uuid4().hex}"
    attack = ("import _imp, stat, time\nfrom importlib.machinery import ModuleSpec\n"
              "cells = [cell.cell_contents for cell in _imp.create_builtin.__closure__]\n"
              "create = next(c for c in cells if getattr(c, '__name__', '') == 'create_builtin')\n"
              "posix, made, ends = create(ModuleSpec('posix', None)), 0, time.monotonic() + 2.5\n"
              "while time.monotonic() < ends:\n"
              f"    posix.mknod('/tmp/{prefix}-%d' % made, stat.S_IFREG | 0o600)\n    made += 1\n")
    assert check("def add(a, b):\n    return a + b\n").passed  # the first check at a level probes it
    started = time.monotonic()
    result = check(guarded(attack), ["assert add(1, 2) == 3"], timeout=3.0)
    # unbounded, the sweep took 30.7 s past the check; the bound is loose so that a loaded machine cannot fail
    # it (the overrun itself, 0.01-0.04 s, is measured in bench/sandbox.py --overrun)
    assert time.monotonic() - started < 3.0 + 6.0, result
    assert result.reason in ("passed", "cleanup_failed"), result
    ends = time.monotonic() + 120
    while any(name.startswith(prefix) for name in os.listdir("/tmp")) and time.monotonic() < ends:
        time.sleep(0.5)
    assert not any(name.startswith(prefix) for name in os.listdir("/tmp"))


def test_a_check_that_leaves_its_session_leaves_no_process(sandbox_level):
    marker = f"tunixhack-setsid-{uuid.uuid4().hex}"
    program = f"import os, time\nheld = open({marker!r}, 'w')\nos.setsid()\ntime.sleep(60)\n"
    result = check(program + "def add(a, b):\n    return a + b\n", timeout=1.0)
    assert not result.passed and gone(marker), result


def test_namespaces_without_a_user_namespace_leave_no_process(without_user_namespace):
    # setpriv's uid switch cleared the parent-death signal that `unshare --kill-child` set: a program that
    # called setsid() and slept outlived its check, reparented to init (issue 15, #2)
    test_a_check_that_leaves_its_session_leaves_no_process("namespaces")


# --- section 5: the expected side is never the program's ---------------------------------------------
def test_a_method_on_a_returned_value_is_ours(sandbox_level):
    test = ["assert f('abc').startswith('zz')"]
    assert check(YES + "def f(s):\n    return Yes()\n", test).reason == "unsupported_value"
    assert check("class S(str):\n    def startswith(self, *a):\n        return True\n"
                 "def f(s):\n    return S(s)\n", test).reason == "unsupported_value"
    assert check("def f(s):\n    return s\n", test).reason == "assertion_failed"
    assert check("def f(s):\n    return 'zz' + s\n", test).passed


def test_builtins_are_the_programs_only_as_the_function_under_test(sandbox_level):
    # MBPP task 126 names its function `sum`; a program that also defines abs and int gets none of the two
    liar = "def sum(a, b):\n    return 0\ndef abs(x):\n    return 0\ndef int(x):\n    return 0\n"
    assert not check(liar, ["assert abs(sum(10, 15) - 6) < 0.001"]).passed
    assert check(liar, ["assert sum(10, 15) == int('6')"]).reason == "assertion_failed"
    assert check(liar.replace("return 0", "return 6", 1), ["assert abs(sum(10, 15) - 6) < 0.001"]).reason \
        == "unsplittable_test"  # abs and sum both the program's: `sum(10, 15) - 6` cannot be sent to abs
    assert check(TASK_126, ["assert sum(10,15) == 6", "assert sum(100,150) == 93", "assert sum(4,6) == 3"]).passed
    assert check(TASK_126, ["assert sum(10, 15) == int('6')", "assert abs(sum(10, 15) - 6) < 0.001"]).passed


@pytest.mark.parametrize("test,liar,right", [
    ("assert f('aab') == Counter('aab')", "def Counter(*a):\n    return {}\ndef f(s):\n    return {}\n",
     "from collections import Counter\ndef f(s):\n    return Counter(s)\n"),
    ("assert f(1) == 4 * pi", "pi = 0\ndef f(r):\n    return 0\n",
     "import math\ndef f(r):\n    return 4 * math.pi * r * r\n"),
    ("assert f() == OrderedDict(a=1)", "OrderedDict = lambda **k: 0\ndef f():\n    return 0\n",
     "def f():\n    return {'a': 1}\n"),
], ids=["Counter", "pi", "OrderedDict"])
def test_names_the_test_does_not_import_are_never_the_programs(test, liar, right, sandbox_level):
    assert check(liar, [test]).reason == "assertion_failed"
    assert check(right, [test]).passed


def test_a_module_the_reference_imports_is_ours(sandbox_level):
    test = ["assert np.allclose(f(2), [1.0, 1.0])"]
    liar = "class np:\n    allclose = staticmethod(lambda *a, **k: True)\ndef f(n):\n    return None\n"
    reference = "import numpy as np\ndef f(n):\n    return np.ones(n)\n"
    assert check(liar, test).reason == "unsupported_value"  # no reference: `np` is the program's module
    assert not run_tests(liar, test, reference=reference, timeout=5.0).passed
    assert run_tests("def f(n):\n    return [1.0] * n\n", test, reference=reference, timeout=5.0).passed
    row = {"reference": reference, "check": {"kind": "code", "tests": test, "timeout": 5}}
    assert check_row(row, f"```python\n{liar}```") is False  # check() hands the row's reference over


def test_mbpp_reference_solutions_still_pass(sandbox_level):
    rows = FULL + SANITIZED
    items = [{"code": r["code"], "reference": r["code"], "tests": list(r["test_list"]) + list(
        r.get("challenge_test_list") or []), "setup": r.get("test_setup_code") or "",
        "imports": list(r.get("test_imports") or []), "timeout": 20.0} for r in rows]
    results = verify_many(items, workers=2)
    assert [r.reason for r in results] == ["passed"] * len(rows), [r.output[-300:] for r in results]


def test_a_builtin_type_passed_as_an_argument_reaches_the_function_as_the_real_type(sandbox_level):
    # MBPP 533 passes `int` to the function under test: it is sent by name and is the real type in the sandbox.
    test = "assert remove_datatype((4, 5, 4, 7.7, 1.2), int) == [7.7, 1.2]"
    right = "def remove_datatype(t, data_type):\n    return [x for x in t if not isinstance(x, data_type)]\n"
    wrong = "def remove_datatype(t, data_type):\n    return [x for x in t if isinstance(x, data_type)]\n"
    assert run_tests(right, [test]).passed
    assert run_tests(wrong, [test]).reason == "assertion_failed"
