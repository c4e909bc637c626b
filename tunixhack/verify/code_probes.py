"""Split MBPP-style tests so that the verdict is decided here, never inside the sandbox.

A test such as `assert math.isclose(circle_area(2), 12.566, rel_tol=0.001)` becomes

    probe  circle_area(2)                                        called in the sandbox, on the code
    check  math.isclose(__probe_0__, 12.566, rel_tol=0.001)      evaluated here (code_judge.py)

A probe carries only a call into a name the program (or the test's setup code) binds, with arguments
evaluated here: plain values, or references to what the sandbox holds (a setup object such as `root`, the
result of another probe: `max_chain_length([Pair(5, 24), Pair(15, 25)], 2)` sends `Pair(5, 24)` and
`Pair(15, 25)` as probes whose values stay there). Its value comes back as plain data
(tunixhack/verify/code_values.py); everything else the assert does with it (a method call, an operator, a
subscript, a comparison) is evaluated here on that rebuilt builtin value. A probe may sit in one
conversion (`set(f(x))`, `sorted(f(x))`...; `bool(f(x))` in a truth test), applied in the sandbox by the
harness's own builtins, so a generator or a Counter still compares as MBPP meant.

Which names are the program's. Each assert has a subject, the part under test: in a comparison the first
operand that uses a name the test does not bind (MBPP's `assert f(x) == expected`), else the whole
condition. In the subject, every name that is not a builtin, not bound by the test imports and not a
standard-library module used only as `module.attr` is the program's. Everything else is the expected side,
and its names are never the program's: they resolve from the test imports, the reference solution's own
imports (when the row has one: trusted data), and the standard library (`Counter`, `pi`, `OrderedDict`).
A builtin stays the real builtin, unless the assert uses no name of the program's and the program defines
a function of that name that the subject calls (MBPP task 126 names its function `sum`).
An assert that cannot be judged this way fails the check as `unsplittable_test`, its shape named: a
candidate value inside a comprehension or lambda, an argument computed from a value of the program's, an
expected side that needs a name nothing trusted binds, an assert that never touches the code.

`test_setup_code` runs in the sandbox after the code (two MBPP tasks build trees from the solution's `Node`
class there); the names it binds are the sandbox's, usable as arguments of a probe only.
"""

from __future__ import annotations

import ast
import builtins
import marshal
import sys
import time
from dataclasses import dataclass
from types import CodeType

from .code_judge import decide
from .code_names import (Unsplittable, bound_names, import_namespace, module_roots, parse_source,
                         reference_imports, stdlib_import, top_level_names)
from .code_values import int_bits_for

__all__ = ["Check", "Plan", "Probe", "Unsplittable", "import_namespace", "judge", "plan_tests"]

# Conversions a probe may sit in; the sandbox applies them to the value before sending it (only these,
# only with the probe as their single argument: none of them can carry an expected value to the sandbox).
WRAPPERS = frozenset({"bool", "list", "tuple", "set", "frozenset", "sorted", "str", "dict"})
PLACEHOLDER = "__probe_{}__"
PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes)
PLAIN = (*PLAIN_TYPES, list, tuple, set, frozenset, dict)
BUILTINS = frozenset(dir(builtins))
CONTAINERS = {ast.List: "l", ast.Tuple: "t", ast.Set: "s"}
# Builtin types a test may pass as an argument (MBPP 533: `remove_datatype((4, 5, 4, 7.7, 1.2), int)`): sent by
# name, and the sandbox hands the function its own real type (sandbox_child.BUILTIN_TYPES).
BUILTIN_TYPES = frozenset({"int", "float", "complex", "str", "bytes", "bool", "list", "tuple", "set", "frozenset",
                           "dict"})


@dataclass(frozen=True)
class Probe:
    function: str            # a name the program or the setup code binds, looked up in the sandbox
    args: tuple | None       # argument nodes (see sandbox_child.argument), or None: the name's value itself
    kwargs: tuple = ()       # (keyword, argument node) pairs
    wrapper: str | None = None  # one of WRAPPERS, applied in the sandbox
    sent: bool = True        # False: an argument of a later probe; its value stays in the sandbox

    @property
    def source(self) -> str:
        """The call as Python source, for messages and tests: `min_cost([[1, 2]], 1, 1)`."""
        if self.args is None:
            return self.function
        parts = [_node_source(a) for a in self.args] + [f"{k}={_node_source(v)}" for k, v in self.kwargs]
        return f"{self.function}({', '.join(parts)})"


def _node_source(node: tuple) -> str:
    tag, body = node
    if tag == "v":
        return repr(body)
    if tag in ("n", "b", "p"):
        return str(body) if tag == "n" else PLACEHOLDER.format(body)
    if tag == "d":
        return "{" + ", ".join(f"{_node_source(k)}: {_node_source(v)}" for k, v in body) + "}"
    items = ", ".join(_node_source(item) for item in body)
    return {"l": "[{}]", "s": "{{{}}}", "t": "({},)" if len(body) == 1 else "({})"}[tag].format(items)


@dataclass(frozen=True)
class Check:
    source: str              # the test as the dataset wrote it
    code: CodeType           # its condition with probes replaced by placeholders (mode "eval")
    test: int = 0            # which of the tests it comes from (a test may hold several asserts)
    probes: range = range(0)  # the probes it made, in the order the sandbox runs them


@dataclass(frozen=True)
class Plan:
    probes: tuple[Probe, ...]
    checks: tuple[Check, ...]
    imports: tuple[str, ...]  # run where the checks are decided (never in the sandbox): the test's and ours
    int_bits: int             # the largest int a probe may return (code_values.int_bits_for)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _plain(value, depth: int = 0) -> bool:
    """Exactly the builtin types the sandbox's encode sends back (so marshal sends them as they are)."""
    if depth > 100:
        return False
    if type(value) in PLAIN_TYPES:
        return True
    if type(value) in (list, tuple, set, frozenset):
        return all(_plain(item, depth + 1) for item in value)
    return type(value) is dict and all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())


# --- splitting -----------------------------------------------------------------------------------------
class _Splitter:
    """Replace each probe of one assert's condition by a placeholder and record it."""

    def __init__(self, plan: _PlanBuilder, program: set[str], test: str):
        self.plan = plan
        self.program = program  # the names that are the program's in this assert's subject
        self.test = test

    def split(self, node: ast.expr, truth: bool = True) -> ast.expr:
        """The assert's condition: `not` and `and`/`or` keep each part's own subject and expected side."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            node.operand = self.split(node.operand)
        elif isinstance(node, ast.BoolOp):
            node.values = [self.split(value) for value in node.values]
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            first = next((i for i, op in enumerate(operands) if _names(op) & self.program), None)
            operands = [self.subject(op) if i == first else self.expected(op) for i, op in enumerate(operands)]
            node.left, node.comparators = operands[0], operands[1:]
        else:
            return self.subject(node, truth)
        return node

    def subject(self, node: ast.AST, truth: bool = False) -> ast.AST:
        if not _names(node) & self.program:
            return node
        if self.is_call(node):
            return self.placeholder(node, "bool" if truth else None)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WRAPPERS
                and len(node.args) == 1 and not node.keywords and self.is_call(node.args[0])):
            return self.placeholder(node.args[0], node.func.id)
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            # its value may depend on names bound inside it, and it may call the code any number of times
            raise Unsplittable(f"the code under test is called inside a comprehension or lambda: {self.test}")
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.AST):
                setattr(node, field, self.subject(value))
            elif isinstance(value, list):
                setattr(node, field, [self.subject(v) if isinstance(v, ast.AST) else v for v in value])
        return node

    def expected(self, node: ast.expr) -> ast.expr:
        """The expected side: evaluated here, each name from something trusted, never from the program."""
        for name in sorted(_names(node) - self.plan.trusted):
            if name in self.plan.setup_names:
                raise Unsplittable(f"the expected side uses {name}, which the setup code binds in the sandbox: "
                                   f"{self.test}")
            line = self.plan.reference.get(name) or stdlib_import(name)
            if line is None:
                raise Unsplittable(f"the expected side uses {name}, which neither the test imports, the "
                                   f"reference solution nor the standard library binds: {self.test}")
            self.plan.add_import(line)
        return node

    def is_call(self, node: ast.AST) -> bool:
        """A name of the program's, or a call of one: what a probe carries."""
        if isinstance(node, ast.Call):
            node = node.func
        return isinstance(node, ast.Name) and node.id in self.program

    def placeholder(self, node: ast.expr, wrapper: str | None) -> ast.Name:
        index = self.probe(node, wrapper, sent=True)
        return ast.copy_location(ast.Name(PLACEHOLDER.format(index), ast.Load()), node)

    def probe(self, node: ast.expr, wrapper: str | None, sent: bool) -> int:
        if isinstance(node, ast.Name):
            return self.plan.add(Probe(node.id, None, (), wrapper, sent))
        args, kwargs = [], []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                args.extend(("v", item) for item in self.evaluate(arg.value, "an argument list"))
            else:
                args.append(self.argument(arg))
        for keyword in node.keywords:
            if keyword.arg is None:
                kwargs.extend((k, ("v", v)) for k, v in self.evaluate(keyword.value, "a keyword dict").items())
            else:
                kwargs.append((keyword.arg, self.argument(keyword.value)))
        return self.plan.add(Probe(node.func.id, tuple(args), tuple(kwargs), wrapper, sent))

    def argument(self, node: ast.expr) -> tuple:
        """An argument node: ("v", value evaluated here), ("n", name) or ("p", probe) of the sandbox's, or a
        list/tuple/set/dict display of these."""
        if isinstance(node, ast.Name) and node.id in BUILTIN_TYPES and node.id not in self.program:
            return "b", node.id
        if not _names(node) & self.program:
            return "v", self.evaluate(node, "an argument")
        if self.is_call(node):
            return ("n", node.id) if isinstance(node, ast.Name) else ("p", self.probe(node, None, sent=False))
        if type(node) in CONTAINERS and not any(isinstance(e, ast.Starred) for e in node.elts):
            return CONTAINERS[type(node)], [self.argument(e) for e in node.elts]
        if isinstance(node, ast.Dict) and None not in node.keys:
            return "d", [(self.argument(k), self.argument(v)) for k, v in zip(node.keys, node.values)]
        raise Unsplittable(f"an argument computes on a value of the code under test ({ast.unparse(node)}): "
                           f"{self.test}")

    def evaluate(self, node: ast.expr, what: str):
        """A part of the test that uses no name of the program's, evaluated here with the test imports."""
        try:
            value = eval(compile(ast.Expression(node), "<argument>", "eval"),  # noqa: S307 - the dataset's
                         {"__builtins__": builtins, **self.plan.namespace})
        except Exception as error:  # noqa: BLE001 - the test's own fault
            raise Unsplittable(f"{what} could not be evaluated: {type(error).__name__}: {error}: {self.test}") \
                from None
        allowed = {"an argument": PLAIN, "an argument list": (list, tuple), "a keyword dict": (dict,)}[what]
        if type(value) not in allowed or not _plain(value):
            raise Unsplittable(f"{what} of type {type(value).__name__} cannot be sent to the sandbox: {self.test}")
        if what == "a keyword dict" and not all(type(k) is str for k in value):
            raise Unsplittable(f"a keyword dict with keys that are not strings: {self.test}")
        self.plan.int_bits = max(self.plan.int_bits, 2 * _int_bits(value))
        return value


def _int_bits(value) -> int:
    if type(value) is int:
        return value.bit_length()
    if type(value) in (list, tuple, set, frozenset):
        return max(map(_int_bits, value), default=0)
    if type(value) is dict:
        return max(map(_int_bits, [*value, *value.values()]), default=0)
    return 0


class _PlanBuilder:
    def __init__(self, tests: list[str], setup: str, imports: tuple[str, ...], reference: str):
        self.probes: list[Probe] = []
        self.imports = list(imports)
        self.namespace = dict(import_namespace(imports))
        self.setup_names = bound_names(parse_source(setup or "", "the test setup code"))
        self.trusted = (BUILTINS | set(self.namespace)) - self.setup_names
        self.reference = reference_imports(reference) if reference else {}
        self.int_bits = int_bits_for(tests)

    def add(self, probe: Probe) -> int:
        self.probes.append(probe)
        return len(self.probes) - 1

    def add_import(self, line: str) -> None:
        if line not in self.imports:
            bound = import_namespace((line,))
            self.imports.append(line)
            self.namespace.update(bound)
            self.trusted |= set(bound) - self.setup_names


def plan_tests(tests, setup: str = "", imports=(), program: str = "", reference: str = "") -> Plan:
    """Split every test; raises Unsplittable (with the reason) if any one cannot be split. `program`: the
    candidate's code (which builtins it redefines); `reference`: the row's reference solution, if any."""
    tests = list(tests)
    plan = _PlanBuilder(tests, setup, tuple(imports), reference or "")
    defined = top_level_names(program) if program else set()
    checks: list[Check] = []
    for number, test in enumerate(tests):
        module = parse_source(test, f"test {test!r}")
        if not module.body:
            raise Unsplittable(f"empty test {test!r}")
        for statement in module.body:
            if not isinstance(statement, ast.Assert):
                raise Unsplittable(f"only assert statements can be checked outside the sandbox, got {test.strip()!r}")
            checks.append(_plan_assert(plan, statement.test, test.strip(), defined, number))
    if not checks:
        raise Unsplittable("no tests")
    return Plan(tuple(plan.probes), tuple(checks), tuple(plan.imports), plan.int_bits)


def _plan_assert(plan: _PlanBuilder, condition: ast.expr, test: str, defined: set[str],
                 number: int = 0) -> Check:
    names = _names(condition)
    # `assert math.isclose(area(2), 12.566, rel_tol=0.001)` with no test imports (MBPP full): `math` is
    # the standard library's (or the module the reference solution imports), never the program's
    free = names - plan.trusted - plan.setup_names
    reference_modules = {name for name, line in plan.reference.items() if line.startswith("import ")}
    for name in sorted(module_roots(condition, free, set(sys.stdlib_module_names) | reference_modules)):
        line = plan.reference.get(name) or f"import {name}"
        try:
            plan.add_import(line)
        except Exception as error:  # noqa: BLE001 - not importable here: decided nowhere
            raise Unsplittable(f"the test uses module {name}, which cannot be imported here: "
                               f"{type(error).__name__}: {error}") from None
        free.discard(name)
    program = free | (names & plan.setup_names)
    if not free:
        # MBPP task 126 names its function `sum`: with no other name of the program's, a builtin the
        # program redefines and the assert calls is the function under test (in the subject only)
        program |= {n.func.id for n in ast.walk(condition) if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Name) and n.func.id in defined and n.func.id in BUILTINS}
    before = len(plan.probes)
    condition = _Splitter(plan, program, test).split(condition)
    if not any(probe.sent for probe in plan.probes[before:]):
        raise Unsplittable(f"the assert never uses the code under test: {test!r}")
    expression = ast.fix_missing_locations(ast.Expression(condition))
    return Check(test, compile(expression, "<check>", "eval"), number, range(before, len(plan.probes)))


# --- the verdict ---------------------------------------------------------------------------------------
def judge(plan: Plan, values: dict[int, object], deadline: float | None = None) -> tuple[str, str]:
    """(reason, detail): "passed", or the first check that fails ("assertion_failed"), raises ("error") or
    runs past `deadline` (time.monotonic(); "timeout"), each evaluated by code_judge.py on the probes'
    values (probe index -> value) with the plan's imports."""
    values = {PLACEHOLDER.format(i): value for i, value in values.items()}
    marshal.dumps(values)  # plain data only: a ValueError here, not in the worker
    checks = [(check.code, check.source) for check in plan.checks]
    return decide(plan.imports, checks, values, time.monotonic() + 60 if deadline is None else deadline)
