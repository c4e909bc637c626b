"""Issue 15's cold red team, after round 3's fixes: each attempt run through the real sandbox (and the GRPO code
reward) at every walled isolation level this machine offers. The wrong programs below are the ones that tried
to pass by the judge misreading a value or by steering the expected side; the kernel wall's finds are run with
the audit hook taken out (as a subinterpreter would see it)."""

from __future__ import annotations

import json
import platform

import pytest

from tests.test_sandbox import check
from tests.test_sandbox_wall import SAY, unhooked  # noqa: F401 - fixture
from tunixhack.train.rewards import code_reward

# (program, assert, test imports): each function returns a value that does not hold. Plain Python passes some
# of them anyway (through the program's own __eq__ or its patches to math, re, builtins): the check must not.
WRONG = [
    # the judge must not read a value by a method the program overrides
    ("class I(int):\n    def __int__(self): return 3\n    __index__ = __int__\n"
     "    def __repr__(self): return '3'\n    def __eq__(self, other): return True\n"
     "    def __hash__(self): return 3\ndef f():\n    return I(7)\n", "assert f() == 3", []),
    ("class L(list):\n    def __iter__(self): return iter([1, 2, 3])\n    def __len__(self): return 3\n"
     "    def __reduce_ex__(self, protocol): return (list, ([1, 2, 3],))\ndef f():\n    return L([9])\n",
     "assert f() == [1, 2, 3]", []),
    ("class D(dict):\n    def items(self): return [('a', 1)]\n    def __iter__(self): return iter(['a'])\n"
     "def f():\n    return D(b=2)\n", "assert f() == {'a': 1}", []),
    ("class S(str):\n    def __str__(self): return 'abc'\n    def __iter__(self): return iter('abc')\n"
     "def f():\n    return S('xyz')\n", "assert f() == 'abc'", []),
    # types that compare unequal in Python must not come back as each other
    ("def f():\n    return (1, 2)\n", "assert f() == [1, 2]", []),
    ("def f():\n    return b'ab'\n", "assert f() == 'ab'", []),
    ("def f():\n    return {'1': 'a'}\n", "assert f() == {1: 'a'}", []),
    ("def f():\n    return [1, 2]\n", "assert f() == {1, 2}", []),
    ("def f():\n    return 1e16 + 1\n", "assert f() == 10000000000000001", []),
    ("def f():\n    return '\\r\\n'\n", "assert f() == '\\n'", []),
    # the expected side and the operators around the probe are never the program's
    ("import math\nmath.isclose = lambda *a, **k: True\ndef f(x):\n    return 99\n",
     "assert math.isclose(f(3), 6, rel_tol=0.001)", ["import math"]),
    ("class M:\n    def __getattr__(self, name):\n        return lambda *a, **k: True\nmath = M()\n"
     "def f(x):\n    return 99\n", "assert math.isclose(f(3), 6, rel_tol=0.001)", []),
    ("import builtins\nbuiltins.abs = lambda x: 0\ndef f(x):\n    return 99\n", "assert abs(f(3) - 6) < 0.001", []),
    ("def abs(x):\n    return 0\ndef f(x):\n    return 99\n", "assert abs(f(3) - 6) < 0.001", []),
    ("def len(x):\n    return 3\ndef f(x):\n    return [9]\n", "assert len(f(3)) == 3", []),
    ("def isinstance(a, b):\n    return True\ndef f(x):\n    return 'no'\n", "assert isinstance(f(3), int)", []),
    ("import re\nre.match = lambda *a, **k: True\ndef f(x):\n    return 'zz'\n", "assert re.match('a+', f(3))",
     ["import re"]),
    ("class np:\n    @staticmethod\n    def allclose(*a, **k):\n        return True\ndef f(x):\n    return [9]\n",
     "assert np.allclose(f(3), [1, 2])", []),
    ("def g(x):\n    return 99\ndef f(x):\n    return 99\n", "assert f(4) == g(4)", []),
    ("def f(x):\n    return 'zz'\n", "assert f('abc').startswith('a')", []),
]


@pytest.mark.parametrize("program, test, imports", WRONG)
def test_a_wrong_program_gets_no_reward(program, test, imports, sandbox_level):
    result = check(program, [test], imports=imports)
    assert not result.passed, result.output
    spec = json.dumps({"kind": "code", "tests": [test], "setup": "", "imports": imports, "timeout": 5})
    reply = f"<reasoning>r</reasoning>\n<answer>\n```python\n{program}```\n</answer>"
    assert code_reward(["p"], [reply], [spec]) == [0.0]


# io_setup's system call number (x86_64, aarch64's generic table)
IO_SETUP = {"x86_64": 206, "aarch64": 0}


@pytest.mark.skipif(platform.machine() not in IO_SETUP, reason="io_setup's number is known for x86_64 and aarch64")
def test_linux_aio_is_refused_without_the_hook(unhooked, sandbox_level):  # noqa: F811 - the fixture
    # Found cold: seccomp let io_setup through, so with the hook gone one check took all of the machine's
    # aio-max-nr (65536 events by default) for as long as it ran, and every other program's io_setup failed.
    program = SAY + (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\ndef add(a, b):\n"
        "    context = ctypes.c_ulong(0)\n"
        f"    if libc.syscall({IO_SETUP[platform.machine()]}, 4096, ctypes.byref(context)) == 0:\n"
        "        say('got: the machine-wide aio events')\n"
        "    else:\n        say('stopped: errno', ctypes.get_errno())\n"
        "    return a + b\n")
    result = check(program)
    assert result.passed, result.output
    assert "got:" not in result.output and "stopped: errno 1" in result.output, result.output
