"""Split MBPP-style tests so that the verdict is decided here, never inside the sandbox.

A test such as `assert math.isclose(circle_area(2), 12.566, rel_tol=0.001)` becomes

    probe  circle_area(2)                                        evaluated in the sandbox, against the code
    check  math.isclose(__probe_0__, 12.566, rel_tol=0.001)      evaluated here, in a fresh namespace

The sandbox sees only the probes (calls to the code under test with the test's inputs), never an expected
value, and sends back each value as plain data (tagged JSON, see `decode_value`): exact builtin types only
(a Counter or defaultdict travels as the plain dict of its items, which compares with a dict exactly as it
does; four MBPP reference solutions return one).
The check then runs here with those values substituted, the real builtins and the test imports, so nothing
the program does (a permissive `__eq__`, a patched `math.isclose`, a forged verdict) can make it pass.

What counts as "needing the code": every name that is not a builtin and not bound by the test imports (the
function under test, setup objects such as `root`, constants the solution defines). A probe is the longest
chain that starts at such a name (`f(x)`, `f(x)[0]`, `root.left.data`), optionally inside one conversion
(`list(f(x))`, `set(f(x))`, `sorted(f(x))`...: applied in the sandbox, so a generator or a Counter still
compares as MBPP meant). In a truth test (`assert f(x)`, `assert not f(x)`) the probe is `bool(f(x))`.
A standard-library module name the test imports do not bind but that the assert only uses as `name.attr`
(`math.isclose(...)` in MBPP full, which has no test imports) is not the code's either: it is imported here
and the check uses ours (else the whole assert, expected value included, would be one probe, answered by
whatever the code calls `math`); a module not importable here makes the test unsplittable. A name it calls
or uses bare (a function named `string`) stays the code's.
An assert that uses no such name takes the builtins it calls as the code's (MBPP task 126 names its
function `sum`). A test this cannot split (a candidate value inside a comprehension or lambda, an assert that never touches
the code) fails the check with reason `unsplittable_test`; it is never run the old way.

`test_setup_code` runs in the sandbox after the code (two MBPP tasks build trees from the solution's `Node`
class there); every name it binds belongs to the sandbox's side, so a test comparing a call with such a
name compares two values the program controls (no MBPP test does).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType

# Conversions a probe may sit in; the sandbox applies them to the value before sending it (only these,
# only with the probe as their single argument: none of them can carry an expected value to the sandbox).
WRAPPERS = frozenset({"bool", "list", "tuple", "set", "frozenset", "sorted", "str", "dict"})
PLACEHOLDER = "__probe_{}__"
MAX_DEPTH = 100        # nesting of a returned value
MAX_SAME_HASH = 32     # unequal items of one container that may share a hash


class Unsplittable(ValueError):
    """A test that cannot be split into probes and a check decided outside the sandbox."""


class BadValue(ValueError):
    """A value from the sandbox that is not plain data in the agreed format."""


@dataclass(frozen=True)
class Probe:
    expression: str          # Python source, evaluated in the candidate's namespace
    wrapper: str | None      # one of WRAPPERS, applied in the sandbox, or None


@dataclass(frozen=True)
class Check:
    source: str              # the test as the dataset wrote it
    code: CodeType           # its condition with probes replaced by placeholders (mode "eval")


@dataclass(frozen=True)
class Plan:
    probes: tuple[Probe, ...]
    checks: tuple[Check, ...]
    imports: tuple[str, ...]


# --- names ---------------------------------------------------------------------------------------------
def _bound_names(tree: ast.AST) -> set[str]:
    """Every name a piece of code binds anywhere (assignments, defs, imports, loop and with targets)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _parse(source: str, what: str) -> ast.Module:
    try:
        return ast.parse(source.replace("\r\n", "\n"))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise Unsplittable(f"{what} does not parse: {error}") from None


@lru_cache(maxsize=256)
def import_namespace(imports: tuple[str, ...]) -> dict:
    """The names the test imports bind, imported here (the dataset's `import math` and the like)."""
    namespace: dict = {}
    for line in imports:
        for node in _parse(line, "a test import").body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module = importlib.import_module(alias.name)
                    if alias.asname:
                        namespace[alias.asname] = module
                    else:
                        top = alias.name.split(".")[0]
                        namespace[top] = importlib.import_module(top)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if alias.name == "*":
                        raise Unsplittable(f"a star import cannot be checked outside the sandbox: {line!r}")
                    namespace[alias.asname or alias.name] = getattr(module, alias.name)
            else:
                raise Unsplittable(f"a test import must be an import statement, got {line!r}")
    return namespace


# --- splitting -----------------------------------------------------------------------------------------
class _Splitter:
    """Replace each probe of one assert's condition by a placeholder and record it."""

    def __init__(self, sandbox_names: set[str], probes: list[Probe]):
        self.sandbox_names = sandbox_names
        self.probes = probes

    def needs_code(self, node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id in self.sandbox_names for n in ast.walk(node))

    def is_chain(self, node: ast.AST) -> bool:
        """A name of the sandbox's side followed by calls, attributes and subscripts: `f(x)[0].y`."""
        while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return isinstance(node, ast.Name) and node.id in self.sandbox_names

    def probe(self, node: ast.expr, wrapper: str | None) -> ast.Name:
        self.probes.append(Probe(ast.unparse(node), wrapper))
        return ast.copy_location(ast.Name(PLACEHOLDER.format(len(self.probes) - 1), ast.Load()), node)

    def split(self, node: ast.expr, truth: bool = False) -> ast.expr:
        """`truth`: only the truth of this node matters (assert condition, operand of `not`...)."""
        if not self.needs_code(node):
            return node
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            # its value may depend on names bound inside it, and it may call the code any number of times
            raise Unsplittable("the code under test is called inside a comprehension or lambda")
        if self.is_chain(node):
            return self.probe(node, "bool" if truth else None)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WRAPPERS
                and node.func.id not in self.sandbox_names and len(node.args) == 1 and not node.keywords
                and not isinstance(node.args[0], ast.Starred) and self.is_chain(node.args[0])):
            return self.probe(node.args[0], node.func.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            node.operand = self.split(node.operand, truth=True)
        elif isinstance(node, ast.BoolOp):
            node.values = [self.split(value, truth) for value in node.values]
        elif isinstance(node, ast.IfExp):
            node.test = self.split(node.test, truth=True)
            node.body, node.orelse = self.split(node.body, truth), self.split(node.orelse, truth)
        else:
            self.split_children(node)
        return node

    def split_children(self, node: ast.AST) -> ast.AST:
        """Split the expressions under `node`, including those in keywords and slices."""
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(node, field, self.split(value))
            elif isinstance(value, ast.AST):
                self.split_children(value)
            elif isinstance(value, list):
                setattr(node, field, [self.split(v) if isinstance(v, ast.expr)
                                      else self.split_children(v) if isinstance(v, ast.AST) else v for v in value])
        return node


def _module_roots(condition: ast.expr, candidates: set[str]) -> set[str]:
    """The standard-library module names among `candidates` that the condition only uses as `name.attr`
    (`math.isclose(...)`): modules, imported here. A name it calls or uses bare (a function named `string`,
    say) is the code's."""
    seen = [n.id for n in ast.walk(condition) if isinstance(n, ast.Name) and n.id in candidates]
    as_root = [n.value.id for n in ast.walk(condition)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in candidates]
    return {name for name in seen if name in sys.stdlib_module_names and seen.count(name) == as_root.count(name)}


def plan_tests(tests, setup: str = "", imports=()) -> Plan:
    """Split every test; raises Unsplittable (with the reason) if any one cannot be split."""
    imports = tuple(imports)
    trusted = set(dir(builtins)) | set(import_namespace(imports))
    setup_names = _bound_names(_parse(setup or "", "the test setup code"))
    trusted -= setup_names
    probes: list[Probe] = []
    checks: list[Check] = []
    modules: list[str] = []  # modules the tests use without importing them: imported here, never the code's
    for test in tests:
        module = _parse(test, f"test {test!r}")
        if not module.body:
            raise Unsplittable(f"empty test {test!r}")
        for statement in module.body:
            if not isinstance(statement, ast.Assert):
                raise Unsplittable(f"only assert statements can be checked outside the sandbox, got {test.strip()!r}")
            condition = statement.test
            sandbox_names = {n.id for n in ast.walk(condition) if isinstance(n, ast.Name)} - trusted
            # `assert math.isclose(area(2), 12.566, rel_tol=0.001)` with no test imports (MBPP full): `math`
            # as the code's would send the whole test, expected value included, to the sandbox as one probe
            for name in sorted(_module_roots(condition, sandbox_names - setup_names)):
                try:
                    importlib.import_module(name)
                except Exception as error:  # noqa: BLE001 - not importable here: decided nowhere
                    raise Unsplittable(f"the test uses module {name}, which cannot be imported here: "
                                       f"{type(error).__name__}: {error}") from None
                sandbox_names.discard(name)
                if name not in modules:
                    modules.append(name)
            if not sandbox_names:
                # MBPP task 126 names its function `sum`: with no other name, the builtins it calls are the code's
                called = {n.func.id for n in ast.walk(condition)
                          if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                sandbox_names = called - set(import_namespace(imports))
            if not sandbox_names:
                raise Unsplittable(f"the assert never uses the code under test: {test.strip()!r}")
            before = len(probes)
            splitter = _Splitter(sandbox_names, probes)
            condition = splitter.split(condition, truth=True)
            if len(probes) == before:
                raise Unsplittable(f"no call to the code under test could be isolated in {test.strip()!r}")
            expression = ast.fix_missing_locations(ast.Expression(condition))
            checks.append(Check(test.strip(), compile(expression, "<check>", "eval")))
    if not checks:
        raise Unsplittable("no tests")
    return Plan(tuple(probes), tuple(checks), imports + tuple(f"import {name}" for name in modules))


# --- the verdict ---------------------------------------------------------------------------------------
def decode_value(text: str):
    """One value from the sandbox. The format (the child's `encode` writes it) is JSON where a list is a
    list, a JSON object is always a one-key tag: {"t": [...]} tuple, {"s": [...]} set, {"f": [...]}
    frozenset, {"d": [[k, v], ...]} dict, {"b": "hex"} bytes, {"c": [re, im]} complex, {"x": "hex"} a big
    int; floats may be NaN/Infinity. Anything else raises BadValue."""
    try:
        raw = json.loads(text, parse_constant=_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError; so is a 5000-digit int
        raise BadValue(f"not a value: {error}") from None
    try:
        return _rebuild(raw, 0)
    except BadValue:
        raise
    except Exception as error:  # noqa: BLE001 - complex(10**400, 0) raises OverflowError, say: still a bad value
        raise BadValue(f"not a value: {type(error).__name__}: {error}") from None


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def _rebuild(raw, depth: int):
    if depth > MAX_DEPTH:
        raise BadValue(f"nested deeper than {MAX_DEPTH}")
    kind = type(raw)
    if raw is None or kind in (bool, int, float, str):
        return raw
    if kind is list:
        return _few_collisions([_rebuild(item, depth + 1) for item in raw])
    if kind is not dict or len(raw) != 1:
        raise BadValue(f"unexpected {kind.__name__}")
    (tag, body), = raw.items()
    try:
        if tag in ("t", "s", "f") and type(body) is list:
            items = _few_collisions([_rebuild(item, depth + 1) for item in body])
            return tuple(items) if tag == "t" else set(items) if tag == "s" else frozenset(items)
        if tag == "d" and type(body) is list and all(type(p) is list and len(p) == 2 for p in body):
            keys = _few_collisions([_rebuild(k, depth + 1) for k, _ in body])
            return dict(zip(keys, (_rebuild(v, depth + 1) for _, v in body)))
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "x" and type(body) is str:
            return int(body, 16)
        if tag == "c" and type(body) is list and len(body) == 2 and all(type(p) in (int, float) for p in body):
            return complex(*body)
    except (TypeError, ValueError) as error:  # an unhashable set member or dict key; bad hex
        raise BadValue(f"bad {tag!r} value: {error}") from None
    raise BadValue(f"unknown tag {tag!r}")


def _few_collisions(items: list) -> list:
    """Refuse many unequal items with one hash (ints that are equal modulo 2**61 - 1, say): putting them in
    a set or dict, here or in a check's Counter(...), would take quadratic time and stall the trainer."""
    if len(items) > MAX_SAME_HASH:
        seen: dict[int, list] = {}  # hash -> [first item, unequal items with that hash]
        for item in items:
            try:
                group = seen.setdefault(hash(item), [item, 0])
            except TypeError:
                continue  # unhashable: nothing will hash it
            if item is not group[0] and item != group[0]:
                group[1] += 1
                if group[1] > MAX_SAME_HASH:
                    raise BadValue(f"more than {MAX_SAME_HASH} unequal items share one hash")
    return items


def judge(plan: Plan, values: list) -> tuple[str, str]:
    """(reason, detail): "passed", or the first check that fails ("assertion_failed") or raises ("error"),
    each evaluated in a fresh namespace of ours with the probes' values substituted."""
    base = {"__builtins__": builtins, **import_namespace(plan.imports)}
    placeholders = {PLACEHOLDER.format(i): value for i, value in enumerate(values)}
    for check in plan.checks:
        try:
            if not eval(check.code, {**base, **placeholders}):  # noqa: S307 - the dataset's own test
                return "assertion_failed", check.source
        except Exception as error:  # a TypeError comparing what came back, say
            return "error", f"{check.source}: {type(error).__name__}: {error}"
    return "passed", ""
