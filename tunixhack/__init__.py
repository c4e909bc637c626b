"""TunixHack: verified reasoning traces from a local teacher, and Tunix post-training.

A dataset script is a Recipe and one line: `run(MyRecipe())`.
"""

from .cli import run
from .errors import Reject, UserError
from .recipe import Recipe

__all__ = ["Recipe", "Reject", "UserError", "run"]
