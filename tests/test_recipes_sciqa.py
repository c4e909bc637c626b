"""SciQA/generate.py: options shuffled per row and shown once each, the gold never sent, letter-or-text verify."""

import argparse
import json
import random

import pytest

from tests.test_recipes_harness import FIXTURES, load_recipe, reply, run_fake
from tunixhack.errors import Reject
from tunixhack.verify.choice import extract_choice, verify_choice

SOURCE = FIXTURES / "sciq" / "train.jsonl"
ROWS = [json.loads(line) for line in SOURCE.read_text().splitlines()]
MESOPHILES, CORIOLIS, ORDERED, DECAY, PLANTS = ROWS
module = load_recipe("SciQA")


@pytest.fixture
def recipe():
    return module.SciQ()


def letter_of(recipe, row, text):
    return next(k for k, v in recipe.extra(row)["options"].items() if v == text)


def test_options_are_shuffled_stably_from_the_seed_kept_in_the_row(recipe):
    extra = recipe.extra(MESOPHILES)
    assert extra == recipe.extra(dict(MESOPHILES))
    texts = sorted(extra["options"].values())
    random.Random(extra["option_seed"]).shuffle(texts)
    assert list(extra["options"]) == ["A", "B", "C", "D"] and list(extra["options"].values()) == texts
    orders = {tuple(recipe.extra(row)["options"].values()).index(row["correct_answer"]) for row in ROWS}
    assert len(orders) > 1  # the correct option is not always in the same place


def test_options_share_one_case_and_a_repeated_correct_answer_is_shown_once(recipe):
    assert sorted(recipe.extra(DECAY)["options"].values()) == ["alpha decay", "beta decay", "gamma decay", "zeta decay"]
    options = recipe.extra(PLANTS)["options"]
    assert sorted(options.values()) == ["carbon dioxide", "nitrogen", "oxygen"] and list(options) == ["A", "B", "C"]
    assert "D." not in recipe.prompt(PLANTS)


def test_the_teacher_cannot_tell_which_option_is_gold(recipe):
    swapped = {**DECAY, "correct_answer": "gamma decay", "distractor3": "alpha decay"}
    assert recipe.teacher_prompt(swapped) == recipe.teacher_prompt(DECAY)
    assert recipe.reference(swapped) != recipe.reference(DECAY)
    assert "correct" not in recipe.prompt(DECAY).lower()


def test_prompt_shows_support_unless_no_support(recipe):
    prompt = recipe.prompt(MESOPHILES)
    assert prompt.startswith("Mesophiles grow best") and "Question: What type of organism" in prompt
    assert recipe.prompt(ORDERED).startswith("Question: Changes from")  # empty support: no blank passage
    recipe.configure(argparse.Namespace(no_support=True))
    assert recipe.prompt(MESOPHILES).startswith("Question: What type of organism")
    assert recipe.teacher_prompt(MESOPHILES).endswith("its letter in \\boxed{}.")


def test_no_support_changes_the_fingerprint(recipe):
    before = recipe.fingerprint(model="m")
    recipe.configure(argparse.Namespace(no_support=True))
    assert recipe.fingerprint(model="m") != before


def test_reference_is_the_correct_letter_and_text(recipe):
    letter = letter_of(recipe, CORIOLIS, "coriolis effect")
    assert recipe.reference(CORIOLIS) == f"{letter}. coriolis effect"


@pytest.mark.parametrize("row", [{**ORDERED, "correct_answer": ""},
                                 {**ORDERED, "distractor1": "exothermic", "distractor2": "", "distractor3": " "}])
def test_a_row_without_two_distinct_options_is_malformed(recipe, row):
    with pytest.raises(ValueError):
        recipe.extra(row)


@pytest.mark.parametrize("content, pick", [
    ("The passage says so.\n\n\\boxed{{{gold}}}", "gold"),
    ("The answer is ({gold}).", "gold"),
    ("**{gold}. coriolis effect**", "gold"),
    ("coriolis effect", "gold"),                          # the option's text alone
    ("\\boxed{{{other}}}", "other"),
    ("It is the Coriolis effect, not the centrifugal effect: \\boxed{{{gold}}}", "gold"),
])
def test_parse_and_verify(recipe, content, pick):
    gold = letter_of(recipe, CORIOLIS, "coriolis effect")
    other = letter_of(recipe, CORIOLIS, "muon effect")
    record = {"check": recipe.check(CORIOLIS)}
    record.update(recipe.parse(CORIOLIS, reply(content.format(gold=gold, other=other))))
    assert record["choice"] == {"gold": gold, "other": other}[pick]
    assert recipe.verify(record) is (pick == "gold")


def test_parse_rejects_an_answer_that_names_no_option(recipe):
    with pytest.raises(Reject) as info:
        recipe.parse(CORIOLIS, reply("I am not sure; it depends on the wind."))
    assert info.value.reason == "no_choice"


@pytest.mark.parametrize("text, correct, expected", [
    ("\\boxed{B}", "B", True),
    ("\\boxed{B}", "B. carbon dioxide", True),          # the reference form: letter and text
    ("\\boxed{A}", "B. carbon dioxide", False),
    ("the answer is a gas", "A", False),                # a lowercase word is not the letter A
    ("Answer: (d)", "d. water", True),
    ("carbon dioxide", "carbon dioxide", True),         # not "carbon", which it contains
    ("\\boxed{B}", "X. nothing", None),                 # a reference that is not an option: cannot check
])
def test_verify_choice(text, correct, expected):
    options = {"A": "carbon", "B": "carbon dioxide", "C": "oxygen", "D": "water"}
    assert verify_choice(text, correct, options) is expected


def test_extract_choice_needs_a_letter_or_one_option():
    assert extract_choice("either carbon or oxygen", {"A": "carbon", "B": "oxygen"}) is None


def test_generate_end_to_end(tmp_path):
    recipe = module.SciQ()
    gold = {row["question"][:40]: letter_of(recipe, row, row["correct_answer"]) for row in ROWS}
    wrong = {q: "A" if g != "A" else "B" for q, g in gold.items()}
    rules = [
        {"match": MESOPHILES["question"][:40], "content": f"Mesophiles make cheese. \\boxed{{{gold[MESOPHILES['question'][:40]]}}}"},
        {"match": CORIOLIS["question"][:40], "content": f"\\boxed{{{wrong[CORIOLIS['question'][:40]]}}}"},
        {"match": ORDERED["question"][:40], "content": "Ordering releases heat, so it is exothermic."},
        {"match": DECAY["question"][:40], "content": "I cannot decide."},
        {"match": PLANTS["question"][:40], "content": f"\\boxed{{{gold[PLANTS['question'][:40]]}}}"},
    ]
    out = tmp_path / "sciq.jsonl"
    done, accepted, rejected, errors, sent = run_fake("SciQA", SOURCE, out, rules)
    assert done.returncode == 0, done.stderr
    assert sorted(accepted) == ["sciq/train/0", "sciq/train/2", "sciq/train/4"] and not errors
    assert {k: r["reason"] for k, r in rejected.items()} == {"sciq/train/1": "verify_failed", "sciq/train/3": "no_choice: the answer names no option"}
    row = accepted["sciq/train/4"]
    assert row["category"] == "science" and row["verified"] is True and len(row["options"]) == 3
    assert row["reference"] == f"{row['choice']}. carbon dioxide" and row["option_seed"] == recipe.extra(PLANTS)["option_seed"]
    assert row["messages"] == [{"role": "user", "content": recipe.teacher_prompt(PLANTS)}]
    assert sorted(sent) == sorted(recipe.teacher_prompt(row) for row in ROWS)   # nothing but the prompts
