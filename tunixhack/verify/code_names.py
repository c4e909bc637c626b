"""Where the names of an assert come from: what the test imports bind, what the program and the setup code
bind, what the row's reference solution imports, and which standard-library module has a bare name
(code_probes.py decides, with these, which names are the program's)."""

from __future__ import annotations

import ast
import importlib
from functools import lru_cache

# Where a bare name on the expected side is looked up when nothing the row brings binds it, in this order.
STDLIB_HOMES = ("math", "collections", "itertools", "functools", "operator", "fractions", "decimal", "heapq",
                "string", "statistics", "re")


class Unsplittable(ValueError):
    """A test that cannot be split into probes and a check decided outside the sandbox."""


def bound_names(tree: ast.AST) -> set[str]:
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


def top_level_names(code: str) -> set[str]:
    """The names a program binds outside its functions and classes (what the asserts can call)."""
    try:
        tree = ast.parse(code.replace("\r\n", "\n"))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()  # the sandbox says syntax_error
    names, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        names |= bound_names(node) if not isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)) \
            else set()
        for field in ("body", "orelse", "finalbody", "handlers"):
            pending.extend(getattr(node, field, ()))
    return names


def parse_source(source: str, what: str) -> ast.Module:
    try:
        return ast.parse(source.replace("\r\n", "\n"))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise Unsplittable(f"{what} does not parse: {error}") from None


@lru_cache(maxsize=256)
def import_namespace(imports: tuple[str, ...]) -> dict:
    """The names the test imports bind, imported here (the dataset's `import math` and the like)."""
    namespace: dict = {}
    for line in imports:
        for node in parse_source(line, "a test import").body:
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


@lru_cache(maxsize=256)
def reference_imports(reference: str) -> dict[str, str]:
    """{name: import line} for each top-level import of the row's reference solution that works here."""
    try:
        body = ast.parse(reference.replace("\r\n", "\n")).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    found = {}
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "level", 0) == 0:
            for alias in node.names:
                if alias.name == "*":
                    continue
                line = ast.unparse(type(node)(**{**vars(node), "names": [alias]}))
                try:
                    name, = import_namespace((line,))
                except Exception:  # noqa: BLE001 - not importable here: the name stays unresolved
                    continue
                found[name] = line
    return found


@lru_cache(maxsize=1024)
def stdlib_import(name: str) -> str | None:
    """`from collections import Counter` for a bare name some module of STDLIB_HOMES has, else None."""
    if name.startswith("_"):
        return None
    for module in STDLIB_HOMES:
        if hasattr(importlib.import_module(module), name):
            return f"from {module} import {name}"
    return None


def module_roots(condition: ast.expr, candidates: set[str], modules: set[str]) -> set[str]:
    """The names among `candidates` that are modules (`modules`) and that the condition only uses as
    `name.attr` (`math.isclose(...)`): imported here. A name it calls or uses bare (a function named
    `string`, say) is not."""
    seen = [n.id for n in ast.walk(condition) if isinstance(n, ast.Name) and n.id in candidates]
    as_root = [n.value.id for n in ast.walk(condition)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in candidates]
    return {name for name in seen if name in modules and seen.count(name) == as_root.count(name)}
