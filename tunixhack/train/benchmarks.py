"""Published benchmarks as eval.py reads them: the real test split, every row, the recipe's own prompt and check.

A benchmark's rows are turned into trace-shaped rows by the dataset's own recipe (`<folder>/generate.py`):
the prompt the student would see in training and the `check` its answers are scored by, so evaluation,
generation and the GRPO rewards judge an answer the same way. Nothing is filtered for the teacher's sake.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.generate.scripts import load_recipe

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    recipe: str            # the recipe script that makes prompt and check
    dataset: str
    config: str | None
    split: str
    extraction: str        # how an answer is read off a reply (stated in eval.json)
    published: str         # what a reader may compare with, and how that figure was measured


ANSWER = "the text inside <answer></answer> (the whole reply when the tags are missing)"
BENCHMARKS = {
    "gsm8k": Benchmark(
        "gsm8k/generate.py", "openai/gsm8k", "main", "test",
        f"{ANSWER}; then its last \\boxed{{}}, else '#### x', else 'the answer is x', else its last number; equal "
        "to the gold after '####' by value (math-verify)",
        "Gemma 3 1B IT as published: GSM8K 62.8 (0-shot, Google's prompt; 22.2 under lm-eval's default 0-shot "
        "prompt); Tunix's GRPO demo: about 52-53 with its own prompt. The protocol decides the number"),
    "sciq": Benchmark(
        "SciQA/generate.py", "allenai/sciq", None, "test",
        f"{ANSWER}; then \\boxed{{X}}, 'the answer is (X)', a leading 'X.', or the text of exactly one option; "
        "options A-D in the recipe's seeded order, passage shown",
        "no Gemma 3 1B figure published"),
    "mbpp": Benchmark(
        "code/generate.py", "google-research-datasets/mbpp", "full", "test",
        f"{ANSWER}; then its first ```python block, else the whole answer as a program; pass@1: every assert of "
        "the task passes in the sandbox",
        "Gemma 3 1B IT as published: MBPP 35.2 (3-shot)"),
}


def load(name: str, source: str | None, limit: int | None, seed: int) -> tuple[list[dict], dict]:
    """(rows with id, dataset, category, prompt and check; the benchmark's part of the protocol)."""
    from tunixhack.generate.source import load_rows

    if name not in BENCHMARKS:
        raise UserError(f"--benchmark must be {'|'.join(BENCHMARKS)}, got {name!r}")
    bench = BENCHMARKS[name]
    recipe = load_recipe(ROOT / bench.recipe, f"benchmark_{name}")
    raw = load_rows(source or bench.dataset, bench.config, bench.split, recipe.columns,
                    () if source else recipe.splits)
    rows = [{"id": recipe.row_id(bench.split, row, i), "dataset": bench.dataset, "category": recipe.row_category(row),
             "prompt": recipe.prompt(row), "check": recipe.check(row)} for i, row in enumerate(raw)]
    total = len(rows)
    if limit and limit < total:
        rows = random.Random(seed).sample(rows, limit)
    protocol = {"benchmark": name, "dataset": bench.dataset, "config": bench.config,
                "split": f"{bench.split} (as copied in --source)" if source else bench.split,
                "source": source or bench.dataset, "rows_in_split": total, "n": len(rows),
                "sample": f"{len(rows)} of {total}, seeded ({seed})" if len(rows) < total else "every row",
                "shots": 0, "extraction": bench.extraction, "compare_with": bench.published}
    return rows, protocol


def wilson(correct: int, n: int, z: float = 1.96) -> list[float] | None:
    """The 95% Wilson score interval of a proportion (better than the normal one near 0 and 1 and at small n)."""
    if n == 0:
        return None
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def proportion(correct: int, n: int) -> dict:
    """An accuracy with its n and 95% interval, in one object."""
    return {"value": round(correct / n, 4) if n else None, "correct": correct, "n": n, "ci95": wilson(correct, n)}
