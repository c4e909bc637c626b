"""One check per row: every recipe writes `check`, and the generation filter, the GRPO rewards and the evaluation
give the same verdict on the same answer, because all three call tunixhack.verify.check on the row's check."""

import json

import numpy as np
import pytest

from tests.test_recipes_harness import load_recipe
from tunixhack.generate.source import load_rows
from tunixhack.student import answer_of
from tunixhack.train import rewards
from tunixhack.verify import Verdict, check_many, check_of
from tunixhack.verify.legacy import derive_check

FIXTURES = "tests/fixtures"
REWARD_OF_KIND = {"math": rewards.math_reward, "choice": rewards.choice_reward, "code": rewards.code_reward,
                  "text_match": rewards.text_reward}


def first_row(folder, script, source, split="train", **where):
    module = load_recipe(folder, script)
    recipe = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__
                  and hasattr(v, "check") and v.__name__ != "Recipe")()
    rows = load_rows(f"{FIXTURES}/{source}", recipe.config, split, recipe.columns)
    return recipe, next(r for r in rows if all(r.get(k) == v for k, v in where.items()))


def sciq_letter(recipe, row, text):
    return next(k for k, v in recipe.extra(row)["options"].items() if v == text)


CASES = [  # (recipe folder, script, fixture, row filter, right answer, wrong answer)
    ("gsm8k", "generate.py", "gsm8k/test.jsonl", {}, "GOLD", "\\boxed{-1}"),
    ("SciQA", "generate.py", "sciq/train.jsonl", {}, "LETTER:mesophilic organisms", "LETTER:viruses"),
    ("code", "generate.py", "mbpp/full.jsonl", {"task_id": 17},
     "```python\ndef square_perimeter(a):\n    return 4 * a\n```", "```python\ndef square_perimeter(a):\n    return a\n```"),
    ("Databricks", "generate_databricks.py", "dolly/databricks-dolly-15k.jsonl", {"category": "classification"},
     "REFERENCE", "Both of them are fish."),
    ("Databricks", "generate_databricks.py", "dolly/databricks-dolly-15k.jsonl", {"category": "closed_qa"},
     "REFERENCE", "It was founded in 1850."),
    ("Databricks", "generate_databricks.py", "dolly/databricks-dolly-15k.jsonl", {"category": "open_qa"},
     "Anything.", None),
    ("brainstorming", "generate.py", "brainstorming/train.json", {}, "1. a\n2. b\n3. c", None),
    ("rewriting", "generate.py", "rewriting/train.json", {}, "A rewritten text.", None),
    ("CreativeWriting", "generate.py", "creative/train.jsonl", {}, "Once upon a time.", None),
]


@pytest.mark.parametrize("folder, script, source, where, right, wrong", CASES,
                         ids=[f"{c[0]}-{c[3].get('category', '')}" for c in CASES])
def test_generation_rewards_and_eval_agree(folder, script, source, where, right, wrong):
    recipe, row = first_row(folder, script, source, **where)
    check = recipe.check(row)
    assert check is None or check["kind"] in REWARD_OF_KIND
    if right.startswith("LETTER:"):
        right = f"The answer is \\boxed{{{sciq_letter(recipe, row, right[7:])}}}."
        wrong = f"The answer is \\boxed{{{sciq_letter(recipe, row, wrong[7:])}}}."
    if right == "REFERENCE":
        right = recipe.reference(row)
    if right == "GOLD":
        right = f"So the total is \\boxed{{{recipe.reference(row)}}}."
    for answer, expected in ((right, True), (wrong, False)):
        if answer is None:
            continue
        expected = expected if check else None
        generation = recipe.verdict({"check": check, "answer": answer}).ok  # what the runner calls on a reply
        assert recipe.verify({"check": check, "answer": answer}) is generation
        completion = f"<reasoning>Thinking.</reasoning><answer>{answer}</answer>"
        columns = {"check": np.array([json.dumps(check)]), "question": np.array(["q"]), "category": np.array(["c"])}
        reward = REWARD_OF_KIND[check["kind"]](["p"], [completion], **columns)[0] if check else None
        evaluated = check_many([{"check": check}], [answer_of(completion)])[0]  # what eval.py scores a reply with
        assert generation is expected and evaluated is expected, (answer, generation, evaluated)
        assert reward == (None if expected is None else float(expected))


def test_every_kind_of_row_written_before_check_existed_gets_the_same_check():
    """Rows from before the field: the check derived from their stored fields is the recipe's own."""
    cases = [
        ({"id": "gsm8k/test/0", "category": "math", "reference": "72"}, {"kind": "math", "gold": "72"}),
        ({"id": "sciq/train/0", "category": "science", "reference": "B. carbon dioxide",
          "options": {"A": "oxygen", "B": "carbon dioxide"}},
         {"kind": "choice", "options": {"A": "oxygen", "B": "carbon dioxide"}, "answer": "B. carbon dioxide"}),
        ({"id": "mbpp/test/17", "category": "code", "reference": "def f(): pass", "tests": ["assert f() is None"],
          "test_setup": "", "test_imports": []},
         {"kind": "code", "tests": ["assert f() is None"], "setup": "", "imports": [], "timeout": 20.0}),
        ({"id": "dolly/train/3", "category": "classification", "reference": "Tope"},
         {"kind": "text_match", "reference": "Tope", "min_f1": 0.5}),
        ({"id": "dolly/train/4", "category": "open_qa", "reference": "Camels store fat."}, None),
        ({"id": "brainstorming/train/1", "category": "brainstorming", "reference": "1. x"}, None),
    ]
    for row, expected in cases:
        assert derive_check(row) == expected and check_of(row) == expected
        assert check_of({**row, "check": None}) is None  # a row that says it has no check has none


def test_importing_a_check_loads_no_engine():
    """A reward or an evaluation imports a check without the CLI, the runner, their clients or tqdm."""
    import subprocess
    import sys

    code = ("import sys, tunixhack.verify.math, tunixhack.verify; "
            "loaded = [m for m in ('tqdm', 'tunixhack.generate.cli', 'tunixhack.generate.runner', 'tunixhack.generate.engine', 'aiohttp') "
            "if m in sys.modules]; print(loaded); assert not loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


MATH = {"kind": "math", "gold": "0.5"}
CHOICE = {"kind": "choice", "options": {"A": "carbon", "B": "oxygen"}, "answer": "A"}


@pytest.mark.parametrize("check, answer, instant, ok", [
    (MATH, "So \\boxed{0.5}.", True, True),              # plain numbers: decided without math-verify
    (MATH, "It is \\boxed{1/2}", True, True),
    (MATH, "It is \\boxed{0.25}", True, False),
    (MATH, "I cannot tell.", True, False),                # no answer at all
    ({"kind": "math", "gold": ""}, "\\boxed{3}", True, None),
    (MATH, "It is \\boxed{\\frac{1}{2}}", False, True),   # LaTeX: math-verify, which may take seconds
    ({"kind": "math", "gold": "\\sqrt{2}"}, "\\boxed{1.41}", False, False),
    (CHOICE, "\\boxed{A}", False, True),                  # only math and no check are taken as instant
    (None, "anything", True, None),
    (MATH, "\\text{" * 2000 + " #### 0.5", False, True),  # long: the pool, where a slow regex stalls no stream
])
def test_generation_checks_on_its_event_loop_only_what_needs_no_math_verify(check, answer, instant, ok):
    """The runner checks an instant verdict on its event loop instead of a worker thread: a check that may take
    seconds (math-verify, code, choice over long replies) must never be taken as instant. The verdict is the same."""
    from tunixhack import Recipe

    class OwnVerify(Recipe):
        def verify(self, record):
            return True

    class OwnVerdict(Recipe):
        def verdict(self, record):
            return Verdict(True)

    record = {"check": check, "answer": answer}
    assert Recipe().verdict(record).ok is ok
    assert Recipe().instant_verdict(record) == (Verdict(ok) if instant else None)
    # an overridden verify() or verdict() may be slow: a worker runs it
    assert OwnVerify().instant_verdict(record) is None and OwnVerdict().instant_verdict(record) is None


def rescanned_last_boxed(text: str) -> str | None:
    """last_boxed as it was: from each \\boxed{, last first, scan forward until its braces balance."""
    from tunixhack.verify.math import BOXED

    for start in reversed([m.end() for m in BOXED.finditer(text)]):
        depth = 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start:i].strip()
    return None


def test_the_last_boxed_answer_is_read_in_one_pass_as_the_rescan_read_it():
    """A model can write thousands of unclosed \\boxed{ (each rescanned to the end made it quadratic: 5 s for
    21 KB on the event loop); the one pass must read every text as the rescan did."""
    import random

    from tunixhack.verify.math import last_boxed

    pieces = ["\\boxed{", "\\fbox {", "{", "}", "7", "x", " ", "\\{", "\\frac{1}{2}"]
    rng = random.Random(0)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30))) for _ in range(3000)]
    texts += ["\\boxed{5} \\boxed{", "}} \\boxed{a{b}c}", "\\boxed{}", "\\boxed{\\boxed{1}} \\boxed{2"]
    assert sum(rescanned_last_boxed(t) is not None for t in texts) > 500  # the cases that find one are many
    for text in texts:
        assert last_boxed(text) == rescanned_last_boxed(text), text
    assert last_boxed("\\boxed{" * 20000 + "\n#### 5") is None  # one pass: returns at once
