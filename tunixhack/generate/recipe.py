"""The Recipe contract: a dataset script says what to ask, how to read the reply and how to check it.

A recipe is pure: no clients, files, retries or prints. `run(recipe)` (tunixhack.generate.cli) does the rest.

    class GSM8K(Recipe):
        name, dataset, config, split, category = "gsm8k", "openai/gsm8k", "main", "train", "math"
        columns = ("question", "answer")
        def prompt(self, row): return row["question"]
        def reference(self, row): return gsm8k_gold(row["answer"])
        def check(self, row): return {"kind": "math", "gold": self.reference(row)}
"""

from __future__ import annotations

import hashlib
import json
import sys

from . import prompts
from .. import verify
from ..errors import Reject
from ..teachers.base import Reply

__all__ = ["InstructionRecipe", "Recipe", "Reject"]


class Recipe:
    name: str = "recipe"            # id prefix and default output name: data/<name>.jsonl
    dataset: str = ""               # default Hugging Face dataset id
    config: str | None = None       # default dataset config
    split: str = "train"            # default split
    splits: tuple[str, ...] = ()    # the splits the default dataset has (checked before loading)
    category: str = "general"
    version: str = "1"              # bump when prompt or parse change: it is part of the fingerprint
    columns: tuple[str, ...] = ()   # columns a source must have
    id_column: str | None = None    # the dataset's own row id, if it has one; else the row index

    # --- options -------------------------------------------------------------------------------
    def add_arguments(self, parser) -> None:
        """Add recipe-specific flags to the common ones."""

    def configure(self, args) -> None:
        """Read the recipe-specific flags (called once, before any row)."""
        self.args = args

    def describe(self) -> dict:
        """What a run states once about how this recipe checks (e.g. {"code_sandbox": "namespaces"}):
        printed at start-up and kept in the run's summary."""
        return {}

    # --- per row: pure functions ---------------------------------------------------------------
    def keep(self, row: dict) -> bool:
        """Whether to use this row (e.g. a --category filter). Applied after ids are given, so ids stay stable."""
        return True

    def prompt(self, row: dict) -> str:
        """The question as the student will see it."""
        raise NotImplementedError

    def teacher_prompt(self, row: dict) -> str:
        """What the teacher is asked; by default the student prompt. Never include the gold answer."""
        return self.prompt(row)

    def reference(self, row: dict) -> str | None:
        """The dataset's gold answer, kept in the row and never sent to the teacher."""
        return None

    def check(self, row: dict) -> dict | None:
        """How an answer to this row is checked (DESIGN.md's `check` field, read by tunixhack.verify.check in
        generation, GRPO rewards and eval alike), or None when nothing can check it. Never sent to the teacher."""
        return None

    def row_category(self, row: dict) -> str:
        return self.category

    def extra(self, row: dict) -> dict:
        """Extra fields stored with the row (e.g. shuffled options and their seed, code tests)."""
        return {}

    def parse(self, row: dict, reply: Reply) -> dict:
        """Turn a reply into the row's fields ({"reasoning", "answer", ...}); raise Reject(reason) if unusable."""
        return {"reasoning": reply.reasoning, "answer": reply.content}

    def verify(self, record: dict) -> bool | None:
        """True / False by the row's check, or None when there is nothing to check."""
        return verify.check(record, record["answer"])

    def verdict(self, record: dict) -> verify.Verdict:
        """verify() with the check's reason, what the runner reads: a code check out of time is a verify_timeout
        naming the test it ran out on. A recipe that overrides verify() alone is taken at its word."""
        if type(self).verify is not Recipe.verify:
            return verify.Verdict(self.verify(record))
        return verify.verdict(record, record["answer"], locate=True)

    def instant_verdict(self, record: dict) -> verify.Verdict | None:
        """verdict(record) where it takes microseconds (verify.instant_verdict), else None; None for a recipe with
        its own verify() or verdict(), which may take any time."""
        if type(self).verify is not Recipe.verify or type(self).verdict is not Recipe.verdict:
            return None
        return verify.instant_verdict(record, record["answer"])

    # --- identity ------------------------------------------------------------------------------
    def row_id(self, split: str, row: dict, index: int) -> str:
        native = row.get(self.id_column) if self.id_column else None
        return f"{self.name}/{split}/{index if native is None else native}"

    def template_text(self) -> str:
        """Every constant of the recipe's module (UPPER_CASE strings and numbers: prompts, thresholds):
        changing one changes the fingerprint."""
        module = sys.modules[type(self).__module__]
        constants = {k: v for k, v in vars(module).items()
                     if k.isupper() and isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        return json.dumps(constants, sort_keys=True)

    def fingerprint(self, **parts) -> str:
        blob = json.dumps(
            {"recipe": self.name, "version": self.version, "template": self.template_text(), **parts},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class InstructionRecipe(Recipe):
    """Alpaca-style rows {instruction, input, output}: `input` is the text to work on ("" for none), and
    `output` (another model's answer) is kept as the reference, never sent. Prompts are the category's
    templates in tunixhack/generate/prompts.py."""

    columns = ("instruction", "input", "output")

    def prompt(self, row):
        return prompts.question_with_context(self.category, row["instruction"], row["input"])

    def teacher_prompt(self, row):
        return prompts.instruction_for(self.category, row["instruction"], row["input"])

    def reference(self, row):
        return (row["output"] or "").strip() or None

    def template_text(self):
        return super().template_text() + prompts.template_text(self.category)
