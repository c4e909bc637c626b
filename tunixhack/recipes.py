"""Find the recipe scripts (<folder>/generate*.py) and load one as a module, for tools that run recipes in
process (`crap.py compare`, bench/): the recipe is the script's own Recipe subclass, its fingerprint the same
as when the script runs itself (the module's constants are the same)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from .errors import UserError
from .recipe import Recipe

ROOT = Path(__file__).resolve().parent.parent


def discover_recipes(root: Path = ROOT) -> dict[str, Path]:
    """Recipe folder name -> its generate script (every <folder>/generate*.py; Databricks names its own)."""
    found = {}
    for script in sorted(root.glob("*/generate*.py")):
        found.setdefault(script.parent.name, script)
    return found


def load_recipe_class(script: Path) -> type[Recipe]:
    """The Recipe subclass a script defines (the most derived one, when it defines a base of its own too)."""
    name = "tunixhack_recipe_" + re.sub(r"\W", "_", f"{script.parent.name}_{script.stem}")
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # Recipe.template_text reads the module's constants through sys.modules
        sys.path.insert(0, str(script.parent))  # a recipe may import files of its own folder
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(script.parent))
    classes = [c for c in vars(module).values()
               if isinstance(c, type) and issubclass(c, Recipe) and c.__module__ == name]
    leaves = [c for c in classes if not any(other is not c and issubclass(other, c) for other in classes)]
    if len(leaves) != 1:
        raise UserError(f"{script} must define one Recipe subclass, it defines {len(leaves)}")
    return leaves[0]
