"""Databricks Dolly 15k: human-written instructions over eight task categories, some with a passage.

Source: https://huggingface.co/datasets/databricks/databricks-dolly-15k (one split, train, 15,011 rows;
CC BY-SA 3.0). Example row:
    {"instruction": "When did Virgin Australia start operating?",
     "context": "Virgin Australia, the trading name of Virgin Australia Airlines Pty Ltd, is an ...",
     "response": "Virgin Australia commenced services on 31 August 2000 as Virgin Blue, ...",
     "category": "closed_qa"}

The student sees the instruction and its passage (when there is one); the teacher also gets the category's
guidance from tunixhack/generate/prompts.py. The human `response` is never sent: it is kept as `reference`, and for
closed_qa and classification the answer must match it (check kind text_match, tunixhack/verify/text.py:
normalised exact match, leading with it, or token F1 of at least --min-f1). Other categories have nothing to check; tunixhack/verify/quality.py rejects empty,
looping or chatty replies. Ids are the row index in the split, so `--category` keeps them stable.
    python Databricks/generate_databricks.py --category closed_qa,classification --limit 200
"""

import re

from tunixhack import Recipe, UserError, run

from tunixhack.generate import prompts
from tunixhack.verify.quality import check_answer
from tunixhack.verify.text import MIN_F1

CATEGORIES = ("open_qa", "general_qa", "classification", "closed_qa", "brainstorming",
              "information_extraction", "summarization", "creative_writing")
NEEDS_CONTEXT = ("closed_qa", "information_extraction")  # their guidance says: answer from the reference text
CHECKED = ("closed_qa", "classification")                # the human response is a checkable label there
QUALITY = {  # per category, beyond check_answer's defaults (no meta-talk, no loops, not empty)
    "brainstorming": {"minimum_words": 8, "minimum_ideas": 3},
    "creative_writing": {"minimum_words": 10},
    "summarization": {"minimum_words": 8},
}
CITATION = re.compile(r"\[\d+\]")  # Wikipedia markers that older copies of the dataset still carry


class Dolly(Recipe):
    name = "dolly"
    dataset = "databricks/databricks-dolly-15k"
    split = "train"
    splits = ("train",)
    category = "general_qa"
    version = "1"
    columns = ("instruction", "context", "response", "category")
    categories: frozenset[str] | None = None   # --category; None keeps every row
    min_f1 = MIN_F1                            # --min-f1

    def add_arguments(self, group):
        group.add_argument("--category", action="append", metavar="NAME[,NAME]",
                           help=f"only these categories (repeat or comma-separate): {', '.join(CATEGORIES)}")
        group.add_argument("--min-f1", type=float, default=self.min_f1,
                           help=f"closed_qa/classification: token F1 with the reference to pass (default {self.min_f1})")

    def configure(self, args):
        super().configure(args)
        self.categories = parse_categories(args.category)
        if not 0 < args.min_f1 <= 1:
            raise UserError(f"--min-f1 must be in (0, 1], got {args.min_f1}")
        self.min_f1 = args.min_f1

    def template_text(self):
        # The templates live in tunixhack/generate/prompts.py: editing one there must change the fingerprint too.
        # All eight categories, whatever --category says, so a filtered run can be resumed without it.
        return super().template_text() + "".join(prompts.template_text(c) for c in CATEGORIES)

    def keep(self, row):
        return self.categories is None or row["category"] in self.categories

    def row_category(self, row):
        return row["category"]

    def _parts(self, row) -> tuple[str, str, str]:
        category, context = row["category"], clean(row["context"])
        if category in NEEDS_CONTEXT and not context:
            raise ValueError(f"a {category} row needs its reference text, and its context is empty")
        return category, row["instruction"], context

    def prompt(self, row):
        return prompts.question_with_context(*self._parts(row))

    def teacher_prompt(self, row):
        return prompts.instruction_for(*self._parts(row))

    def reference(self, row):
        return clean(row["response"]) or None

    def parse(self, row, reply):
        answer = check_answer(reply.content, **QUALITY.get(row["category"], {}))
        return {"reasoning": reply.reasoning, "answer": answer}

    def check(self, row):
        reference = self.reference(row)
        if row["category"] not in CHECKED or not reference:
            return None
        return {"kind": "text_match", "reference": reference, "min_f1": self.min_f1}


def parse_categories(values: list[str] | None) -> frozenset[str] | None:
    if not values:
        return None
    chosen = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = sorted(chosen - set(CATEGORIES))
    if unknown or not chosen:
        raise UserError(f"--category must be among {'|'.join(CATEGORIES)}, got {', '.join(map(repr, unknown)) or 'nothing'}")
    return frozenset(chosen)


def clean(text: str | None) -> str:
    return CITATION.sub("", text or "").strip()


if __name__ == "__main__":
    run(Dolly())
