"""Splitting MBPP's asserts into probes (run in the sandbox) and checks (run here), and the plain-data format
the values travel in: table tests over the real shapes of MBPP's asserts, no sandbox needed."""

from __future__ import annotations

import json
import math
from collections import Counter, OrderedDict, defaultdict

import pytest

from tunixhack.verify import sandbox_child
from tunixhack.verify.code_probes import BadValue, Probe, Unsplittable, decode_value, judge, plan_tests

SPLITS = [  # (test, setup, imports, the probes the sandbox gets)
    ("assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8", "", [],
     [Probe("min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2)", None)]),
    ("assert math.isclose(circle_circumference(10), 62.830000000000005, rel_tol=0.001)", "", ["import math"],
     [Probe("circle_circumference(10)", None)]),
    ("assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))", "", [],
     [Probe("similar_elements((3, 4, 5, 6), (5, 7, 4, 10))", "set")]),
    ("assert similar_elements((3, 4), (4, 10))==(4,)", "", [], [Probe("similar_elements((3, 4), (4, 10))", None)]),
    ("assert f(1) == f(2)", "", [], [Probe("f(1)", None), Probe("f(2)", None)]),
    ("assert not is_perfect_square(10)", "", [], [Probe("is_perfect_square(10)", "bool")]),
    ("assert check_str('annie')", "", [], [Probe("check_str('annie')", "bool")]),
    ("assert (max_height(root)) == 3", "root = Node(1)\r\nroot.left = Node(2)", [],
     [Probe("max_height(root)", None)]),
    ("assert sum(10,15) == 6", "", [], [Probe("sum(10, 15)", None)]),  # task 126 names its function `sum`
    ("assert f(x)[0] + 1 == 3 and g() is None", "x = [1]", [], [Probe("f(x)[0]", None), Probe("g()", None)]),
    ("assert sorted(f([3, 1])) == [1, 3]", "", [], [Probe("f([3, 1])", "sorted")]),
    # a module the row does not import (MBPP full): imported here, never the root of a probe (issue 11, #6)
    ("assert math.isclose(area(2), 12.566, rel_tol=0.001)", "", [], [Probe("area(2)", None)]),
    ("assert abs(area(1) - math.pi) < 1e-9", "", [], [Probe("area(1)", None)]),
    ("assert string('a') == 'a'", "", [], [Probe("string('a')", None)]),  # a function named like a module
    ("assert random.choice(f()) == 1", "random = Pick()", [], [Probe("random.choice(f())", None)]),  # setup's
]


@pytest.mark.parametrize("test,setup,imports,probes", SPLITS, ids=[s[0][7:40] for s in SPLITS])
def test_asserts_split_into_probes_without_their_expected_values(test, setup, imports, probes):
    plan = plan_tests([test], setup, imports)
    assert list(plan.probes) == probes
    assert [check.source for check in plan.checks] == [test]


@pytest.mark.parametrize("test,why", [
    ("assert all(f(i) == i for i in range(3))", "comprehension or lambda"),
    ("assert list(map(lambda v: f(v), [1])) == [1]", "comprehension or lambda"),
    ("x = f(1)", "only assert statements"),
    ("assert math.pi > 3", "never uses the code under test"),
    ("assert f(1) ==", "does not parse"),
])
def test_what_cannot_be_split_says_why(test, why):
    with pytest.raises(Unsplittable, match=why):
        plan_tests([test], "", ["import math"])


def test_a_test_import_that_is_not_an_import_is_refused():
    with pytest.raises(Unsplittable, match="must be an import statement"):
        plan_tests(["assert f(1) == 1"], "", ["print('hi')"])


def test_the_check_runs_in_a_fresh_namespace_of_ours():
    plan = plan_tests(["assert math.isclose(area(2), 12.566, rel_tol=0.001)", "assert set(f(1)) == {1, 2}"],
                      "", ["import math"])
    assert judge(plan, [12.5664, {2, 1}]) == ("passed", "")
    assert judge(plan, [12.0, {1, 2}]) == ("assertion_failed", "assert math.isclose(area(2), 12.566, rel_tol=0.001)")
    reason, detail = judge(plan, ["12.566", {1, 2}])
    assert reason == "error" and "TypeError" in detail


def test_a_module_the_row_does_not_import_is_ours_in_the_check():
    plan = plan_tests(["assert math.isclose(area(2), 12.566, rel_tol=0.001)"])
    assert judge(plan, [12.5664]) == ("passed", "")
    assert judge(plan, [0]) == ("assertion_failed", "assert math.isclose(area(2), 12.566, rel_tol=0.001)")
    with pytest.raises(Unsplittable, match="module msvcrt, which cannot be imported here"):
        plan_tests(["assert msvcrt.getch(f(1)) == 1"])  # a standard-library module of another system


def round_trip(value):
    text = sandbox_child.encode(value)
    assert text.isascii() and "\n" not in text  # one line of the harness's report
    return decode_value(text)


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
