"""Splitting MBPP's asserts into probes (run in the sandbox) and checks (run here), and the plain-data format
the values travel in: table tests over the real shapes of MBPP's asserts, no sandbox needed."""

from __future__ import annotations

import json
import math
import time
from collections import Counter, OrderedDict, defaultdict

import pytest

from tunixhack.verify import sandbox_child
from tunixhack.verify.code_probes import Unsplittable, judge, plan_tests
from tunixhack.verify.code_values import MAX_CHARS, MAX_ITEMS, MIN_INT_BITS, BadValue, decode_value, int_bits_for

SPLITS = [  # (test, setup, imports, program, the probes the sandbox gets: (call, conversion, value sent back))
    ("assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8", "", [], "",
     [("min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2)", None, True)]),
    ("assert math.isclose(circle_circumference(10), 62.830000000000005, rel_tol=0.001)", "", ["import math"], "",
     [("circle_circumference(10)", None, True)]),
    ("assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))", "", [], "",
     [("similar_elements((3, 4, 5, 6), (5, 7, 4, 10))", "set", True)]),
    ("assert similar_elements((3, 4), (4, 10))==(4,)", "", [], "", [("similar_elements((3, 4), (4, 10))", None, True)]),
    ("assert not is_perfect_square(10)", "", [], "", [("is_perfect_square(10)", "bool", True)]),
    ("assert check_str('annie')", "", [], "", [("check_str('annie')", "bool", True)]),
    ("assert (max_height(root)) == 3", "root = Node(1)\r\nroot.left = Node(2)", [], "",
     [("max_height(root)", None, True)]),
    # task 126 names its function `sum`: the program's only where it defines one and the subject calls it
    ("assert sum(10,15) == 6", "", [], "def sum(a, b):\n    pass\n", [("sum(10, 15)", None, True)]),
    ("assert sum(10, 15) == int('6')", "", [], "def sum(a, b):\n    pass\nint = str\n",
     [("sum(10, 15)", None, True)]),
    ("assert f(x)[0] + 1 == 3 and g() is None", "x = [1]", [], "", [("f(x)", None, True), ("g()", None, True)]),
    ("assert sorted(f([3, 1])) == [1, 3]", "", [], "", [("f([3, 1])", "sorted", True)]),
    ("assert f(1 + 2, key=len('ab'), *[4]) == 3", "", [], "", [("f(3, 4, key=2)", None, True)]),  # evaluated here
    # MBPP 601: the program's class in the arguments is a probe whose value stays in the sandbox
    ("assert max_chain_length([Pair(5, 24), Pair(15, 25)], 2) == 1", "", [], "",
     [("Pair(5, 24)", None, False), ("Pair(15, 25)", None, False),
      ("max_chain_length([__probe_0__, __probe_1__], 2)", None, True)]),
    # method calls and operators on a returned value are ours, on the plain value
    ("assert f('abc').startswith('zz')", "", [], "", [("f('abc')", None, True)]),
    ("assert started == 0", "", [], "started = 0\n", [("started", None, True)]),
    # a module the row does not import (MBPP full): imported here, never the root of a probe (issue 11, #6)
    ("assert math.isclose(area(2), 12.566, rel_tol=0.001)", "", [], "", [("area(2)", None, True)]),
    ("assert abs(area(1) - math.pi) < 1e-9", "", [], "", [("area(1)", None, True)]),
    ("assert string('a') == 'a'", "", [], "", [("string('a')", None, True)]),  # a function named like a module
    ("assert 3 == f(1)", "", [], "", [("f(1)", None, True)]),
]


@pytest.mark.parametrize("test,setup,imports,program,probes", SPLITS, ids=[s[0][7:40] for s in SPLITS])
def test_asserts_split_into_probes_without_their_expected_values(test, setup, imports, program, probes):
    plan = plan_tests([test], setup, imports, program=program)
    assert [(p.source, p.wrapper, p.sent) for p in plan.probes] == probes
    assert [check.source for check in plan.checks] == [test]


@pytest.mark.parametrize("test,why", [
    ("assert all(f(i) == i for i in range(3))", "comprehension or lambda"),
    ("assert list(map(lambda v: f(v), [1])) == [1]", "comprehension or lambda"),
    ("x = f(1)", "only assert statements"),
    ("assert math.pi > 3", "never uses the code under test"),
    ("assert f(1) ==", "does not parse"),
    ("assert f(g(1) + 1) == 2", r"an argument computes on a value of the code under test \(g\(1\) \+ 1\)"),
    ("assert f(1) == g(2)", "the expected side uses g, which neither the test imports"),
    ("assert f(1) == R", "the expected side uses R"),
    ("assert f(1) == root", "the expected side uses root, which the setup code binds"),
    ("assert f(iter([1])) == 1", "an argument of type list_iterator cannot be sent"),
    ("assert f(1 / 0) == 1", "an argument could not be evaluated: ZeroDivisionError"),
])
def test_what_cannot_be_split_says_why(test, why):
    with pytest.raises(Unsplittable, match=why):
        plan_tests([test], "root = 1", ["import math"])


def test_builtins_stay_real_unless_the_program_defines_the_function_under_test():
    # the program defines abs and sum: only the subject's own calls can be its, and an operator between
    # two of them cannot be sent as an argument
    with pytest.raises(Unsplittable, match="an argument computes"):
        plan_tests(["assert abs(sum(10, 15) - 6) < 0.001"], program="def sum(a, b):\n    return 6\nabs = sum\n")
    plan = plan_tests(["assert abs(sum(10, 15) - 6) < 0.001"], program="def sum(a, b):\n    return 6\n")
    assert [p.source for p in plan.probes] == ["sum(10, 15)"]  # abs is the real one, here
    # a name of the program's in the assert: every builtin is the real one, whatever the program defines
    plan = plan_tests(["assert len(f(10)) == 3"], program="len = lambda *a: 3\ndef f(x):\n    return x\n")
    assert [p.source for p in plan.probes] == ["f(10)"]
    with pytest.raises(Unsplittable, match="never uses the code"):  # a builtin it does not define
        plan_tests(["assert sum([1, 2]) == 3"], program="def add(a, b):\n    return a + b\n")


def test_the_expected_side_resolves_from_the_reference_then_the_standard_library():
    assert plan_tests(["assert f(4) == 4 * pi"]).imports == ("from math import pi",)
    assert plan_tests(["assert f(1) == OrderedDict(a=1)"]).imports == ("from collections import OrderedDict",)
    reference = "import numpy as np\nfrom math import pi\ndef f(x):\n    return np.ones(x)\n"
    plan = plan_tests(["assert np.allclose(f(2), [1, 1])", "assert f(4) == 4 * pi"], reference=reference)
    assert plan.imports == ("import numpy as np", "from math import pi")
    assert [p.source for p in plan.probes] == ["f(2)", "f(4)"]


def test_a_test_import_that_is_not_an_import_is_refused():
    with pytest.raises(Unsplittable, match="must be an import statement"):
        plan_tests(["assert f(1) == 1"], "", ["print('hi')"])


def test_the_check_runs_in_a_fresh_namespace_of_ours():
    plan = plan_tests(["assert math.isclose(area(2), 12.566, rel_tol=0.001)", "assert set(f(1)) == {1, 2}"],
                      "", ["import math"])
    assert judge(plan, {0: 12.5664, 1: {2, 1}}) == ("passed", "")
    assert judge(plan, {0: 12.0, 1: {1, 2}}) == ("assertion_failed",
                                                 "assert math.isclose(area(2), 12.566, rel_tol=0.001)")
    reason, detail = judge(plan, {0: "12.566", 1: {1, 2}})
    assert reason == "error" and "TypeError" in detail


def test_a_module_the_row_does_not_import_is_ours_in_the_check():
    plan = plan_tests(["assert math.isclose(area(2), 12.566, rel_tol=0.001)"])
    assert judge(plan, {0: 12.5664}) == ("passed", "")
    assert judge(plan, {0: 0}) == ("assertion_failed", "assert math.isclose(area(2), 12.566, rel_tol=0.001)")
    with pytest.raises(Unsplittable, match="module msvcrt, which cannot be imported here"):
        plan_tests(["assert msvcrt.getch(f(1)) == 1"])  # a standard-library module of another system


def test_the_asserts_are_decided_under_a_time_limit():
    plan = plan_tests(["assert f(4) ** f(5) == 16"])
    started = time.monotonic()
    assert judge(plan, {0: 3, 1: 10 ** 8}, started + 0.5)[0] == "timeout"  # 3 ** 10 ** 8: 158 million bits
    assert time.monotonic() - started < 1.5
    assert judge(plan, {0: 4, 1: 2}) == ("passed", "")  # a new worker after the one that ran over


def round_trip(value):
    text = sandbox_child.encode(value)
    assert text.isascii() and "\n" not in text  # one line of the harness's report
    return decode_value(text, int_bits=20_000)


PLAIN = [
    None, True, False, 0, -7, 10 ** 5000, -(10 ** 5000), 1.5, -0.0, math.inf, -math.inf, "héllo\n\"x\"", b"\x00\xff",
    1 + 2j, [], (), set(), frozenset(), {}, [1, (2, 3), {4, 5}, frozenset({6})], {(1, 2): [3], None: {"a": b"b"}},
    ("pink", 6), [[1, 2, 3], [2, 4, 5]], {True: 1.0},
]


@pytest.mark.parametrize("value", PLAIN, ids=[f"{type(v).__name__}{i}" for i, v in enumerate(PLAIN)])
def test_plain_values_round_trip_with_their_exact_types(value):
    back = round_trip(value)
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)
    if isinstance(value, (list, tuple)):
        assert [type(v) for v in back] == [type(v) for v in value]


def test_nan_round_trips_and_equal_items_may_share_a_hash():
    assert math.isnan(round_trip(math.nan))
    assert round_trip([0] * 1000 + [math.nan] * 100)[:1000] == [0] * 1000


def test_counter_and_defaultdict_travel_as_dicts_and_nothing_else_is_plain():
    assert round_trip(Counter("aab")) == {"a": 2, "b": 1} and type(round_trip(Counter("a"))) is dict
    assert type(round_trip(defaultdict(int, a=1))) is dict

    class Yes(int):
        def __eq__(self, other):
            return True

    nested = []
    nested.append(nested)
    for value in (Yes(1), OrderedDict(a=1), [object()], {"k": Yes(2)}, type("S", (str,), {})("x"), bytearray(b"x"),
                  iter([1]), nested, range(3)):
        with pytest.raises(sandbox_child.Unsupported):
            sandbox_child.encode(value)


@pytest.mark.parametrize("text", [
    '{"t": [1], "s": [2]}', '{"z": 1}', '{"s": [[1]]}', '{"d": [[[1], 2]]}', '{"d": [[1]]}', '{"b": "zz"}',
    '{"c": ["1", 2]}', '[' * 200 + ']' * 200, 'nope', '1' * 5000, '{"x": "not hex"}', '{"t": 5}',
    json.dumps({"s": [k * (2 ** 61 - 1) for k in range(1, 100)]}),  # one hash: quadratic to put in a set
    json.dumps([k * (2 ** 61 - 1) for k in range(1, 100)]),         # the same, for a check's Counter(...)
    '{"c":[' + '9' * 400 + ',0]}',  # complex(10**400, 0) raises OverflowError (issue 11, #1)
])
def test_anything_else_from_the_sandbox_is_refused(text):
    with pytest.raises(BadValue):
        decode_value(text)


def test_values_over_a_cap_are_refused():
    # an int: twice the bits of the test's largest literal, or of a power of two literals, at least 4096
    assert int_bits_for(["assert f(1) == 3"]) == MIN_INT_BITS
    assert int_bits_for(["assert f(1) == 2 ** 5000", "assert f(2) == 7"]) == 2 * 2 * 5000
    assert decode_value(sandbox_child.encode(1 << 4095)) == 1 << 4095
    for text in (sandbox_child.encode(1 << 4096), sandbox_child.encode(-(1 << 15_000_000)),
                 '{"c":[%d,0]}' % (1 << 5000), sandbox_child.encode("x" * (MAX_CHARS + 1)),
                 sandbox_child.encode(b"x" * (MAX_CHARS + 1)), sandbox_child.encode([[0]] * (MAX_ITEMS // 2 + 1))):
        with pytest.raises(BadValue, match="bits|characters|bytes|values in one"):
            decode_value(text)
    assert decode_value(sandbox_child.encode(1 << 9000), int_bits=int_bits_for(["assert f(1) == 2 ** 5000"]))
