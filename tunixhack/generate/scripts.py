"""Load one of the project's scripts (a recipe's generate.py, a train/ command) as a module, by its path.

Scripts are not packages: Python runs one with its own folder first on the path, so a recipe may import a
helper module that sits beside it (CreativeWriting/prompts.py). Here such helpers are loaded by path as well,
so tests and benchmarks can import a script without changing sys.path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FOLDER_HELPERS = ("prompts",)  # a recipe folder's own helper modules (never shared between folders)


def load_script(path: str | Path, name: str | None = None) -> ModuleType:
    """The module of the script at `path`, registered in sys.modules as `name` (Recipe.template_text and
    pickling look modules up there). Helpers beside it are visible only while it loads."""
    path = Path(path).resolve()
    loaded = [helper for helper in FOLDER_HELPERS if path.with_name(f"{helper}.py").exists()]
    try:
        for helper in loaded:
            _load(helper, path.with_name(f"{helper}.py"))
        return _load(name or path.stem, path)
    finally:
        for helper in loaded:
            sys.modules.pop(helper, None)


def load_recipe(path: str | Path, name: str | None = None):
    """An instance of the Recipe a recipe script defines (the one its `run(...)` line would run)."""
    from .recipe import Recipe

    module = load_script(path, name)
    defined = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, Recipe) and v.__module__ == module.__name__]
    if len(defined) != 1:
        raise ValueError(f"{path} defines {len(defined)} Recipe classes; a recipe script defines one")
    return defined[0]()


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
