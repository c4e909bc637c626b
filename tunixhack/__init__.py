"""TunixHack: verified reasoning traces from a local teacher, and Tunix post-training.

A dataset script is a Recipe and one line: `run(MyRecipe())`.

Only leaf modules load here: `Recipe` and `run` are imported when first used, so that importing a check
(`tunixhack.verify.math`) from a reward or an evaluation does not pull in the engine, its clients or tqdm.
"""

from .errors import Reject, UserError

__all__ = ["Recipe", "Reject", "UserError", "run"]


def __getattr__(name: str):
    if name == "run":
        from .generate.cli import run

        return run
    if name == "Recipe":
        from .generate.recipe import Recipe

        return Recipe
    raise AttributeError(f"module 'tunixhack' has no attribute {name!r}")
