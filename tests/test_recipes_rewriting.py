"""rewriting/generate.py: the text to rewrite in the prompt, the reference never sent, unchanged/length rejects."""

import json

import pytest

from tests.test_recipes_harness import FIXTURES, check_parse, load_recipe, reply, run_fake
from tunixhack.errors import Reject

SOURCE = FIXTURES / "rewriting" / "train.json"
ROWS = json.loads(SOURCE.read_text())
EMAIL, SIMPLER, SUMMARY, PASSIVE, INLINE = ROWS
module = load_recipe("rewriting")
FORMAL = ("Dear team, I am unable to come in tomorrow, as my child is unwell. Would someone be able to cover "
          "my shift at the front desk? Thank you very much.")


@pytest.fixture
def recipe():
    return module.Rewriting()


def test_prompt_holds_the_text_to_rewrite(recipe):
    assert recipe.prompt(EMAIL) == f"{EMAIL['instruction']}\n\nText to rewrite:\n{EMAIL['input']}"
    assert recipe.prompt(INLINE) == INLINE["instruction"]
    assert recipe.teacher_prompt(EMAIL).startswith(recipe.prompt(EMAIL) + "\n\n")
    for row in ROWS:
        assert row["output"] not in recipe.teacher_prompt(row) and recipe.reference(row) == row["output"]


@pytest.mark.parametrize("row, content, expected", [
    (EMAIL, FORMAL, None),
    (EMAIL, "  " + EMAIL["input"].replace(" ", "\n  ") + " ", "unchanged"),
    (EMAIL, "I am ill.", "length_off"),                                  # 3 words for 22: under 0.2x
    (EMAIL, " ".join([FORMAL, SIMPLER["input"], SUMMARY["input"], PASSIVE["output"]]), "length_off"),  # over 5x
    (SUMMARY, "The council funded a park but delayed the skate park.", None),   # "summarize": short is fine
    (SIMPLER, "Plants use sunlight to make food from air and water, and they give off oxygen.", None),
    (PASSIVE, PASSIVE["input"].upper(), "unchanged"),
    (PASSIVE, "Here's a rewritten version:\n" + PASSIVE["output"], "meta_talk"),
    (INLINE, "Get ready: the meeting starts at 3 pm!", None),               # no input to compare with
    (INLINE, "", "empty_answer"),
])
def test_parse(recipe, row, content, expected):
    check_parse(recipe, row, content, expected)


def test_an_instruction_to_expand_lifts_the_upper_bound(recipe):
    expand = {**PASSIVE, "instruction": "Expand this sentence into a detailed paragraph."}
    long = " ".join(f"The committee met on day {i} and argued at length about roads and schools." for i in range(6))
    with pytest.raises(Reject):
        recipe.parse(PASSIVE, reply(long))
    assert recipe.parse(expand, reply(long))["answer"] == long


def test_generate_end_to_end(tmp_path):
    rules = [
        {"match": "more formal", "content": FORMAL},
        {"match": "ten-year-old", "content": SIMPLER["input"]},
        {"match": "one sentence", "content": "The council funded most of the park and will ask residents about the skate park."},
        {"match": "passive voice", "content": "Approved."},
        {"match": "enthusiastic", "content": "Get ready: the meeting starts at 3 pm!"},
    ]
    out = tmp_path / "rewriting.jsonl"
    done, accepted, rejected, errors, _ = run_fake("rewriting", SOURCE, out, rules)
    assert done.returncode == 0, done.stderr
    assert sorted(accepted) == ["rewriting/train/0", "rewriting/train/2", "rewriting/train/4"] and not errors
    assert {k: r["reason"].split(":")[0] for k, r in rejected.items()} == {
        "rewriting/train/1": "unchanged", "rewriting/train/3": "length_off"}
    row = accepted["rewriting/train/0"]
    assert row["answer"] == FORMAL and row["reference"] == EMAIL["output"] and row["category"] == "rewriting"
    assert EMAIL["input"] in row["messages"][0]["content"] and EMAIL["output"] not in row["messages"][0]["content"]
