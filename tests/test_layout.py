"""The package's folders are its pipeline: errors/student/tokens < teachers < verify < generate < dataset < train.

A module imports only its own folder and lower ones, and there are no import cycles (DESIGN.md, "Layout").
Read with `ast` over the source, so nothing is imported and the [train] extra is not needed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tunixhack"
ORDER = ["", "teachers", "verify", "generate", "dataset", "train"]  # "" is the package root: errors, student, tokens
SHARED = {"__init__", "errors", "student", "tokens"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every tunixhack module this one imports, at any depth in the file (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from x import y`: y may be a module of x, or a name in it.
            targets = [f"{target}.{alias.name}" for alias in node.names] + [target]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def folder_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ORDER) else ""


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_folders_are_the_pipeline():
    mods = modules()
    top = {name.split(".")[1] for name in mods if name.count(".") >= 1}
    assert top <= set(ORDER[1:]) | SHARED, f"modules outside the stage folders: {sorted(top - set(ORDER[1:]) - SHARED)}"


def test_no_import_from_a_lower_folder_to_a_higher_one():
    upward = []
    for name, targets in graph().items():
        if name == "tunixhack":  # the public face: `from tunixhack import Recipe, run` loads them when first asked
            continue
        for target in targets:
            if target == "tunixhack":
                continue
            if ORDER.index(folder_of(target)) > ORDER.index(folder_of(name)):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports from a lower folder to a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    # A package __init__ that imports its own submodules is not a cycle of modules; drop those edges.
    cycles = [c for c in cycles if not _through_own_init(c)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _through_own_init(cycle: str) -> bool:
    steps = cycle.split(" -> ")
    return any(b.startswith(a + ".") for a, b in zip(steps, steps[1:]))


@pytest.mark.parametrize("folder", ORDER[1:])
def test_each_folder_says_what_it_owns_and_must_not_import(folder):
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
    assert "import" in doc.split("\n\n")[0], f"tunixhack/{folder}/__init__.py: its first lines must say what it may import"


def test_no_module_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The layout test itself can fail: a verify module importing generate/ is reported."""
    fake = tmp_path / "tunixhack"
    for folder in ORDER[1:]:
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text('"""x. May import nothing."""\n')
    (fake / "__init__.py").write_text("")
    (fake / "generate" / "engine.py").write_text("from ..verify import check\n")
    (fake / "verify" / "check.py").write_text("from ..generate.engine import generate\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match="verify.check -> tunixhack.generate.engine"):
        test_no_import_from_a_lower_folder_to_a_higher_one()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
