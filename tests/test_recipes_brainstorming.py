"""brainstorming/generate.py: a JSON-array source, the reference kept and never sent, lists of at least 3 ideas."""

import json

import pytest

from tests.test_recipes_harness import FIXTURES, check_parse, load_recipe, run_fake
from tunixhack.generate.source import load_rows

SOURCE = FIXTURES / "brainstorming" / "train.json"
ROWS = json.loads(SOURCE.read_text())
LIBRARY, CAFETERIA, PODCAST, RAINY = ROWS
module = load_recipe("brainstorming")
IDEAS = "1. Run a monthly swap market for clothes.\n2. Open the school kitchen to community cooking classes.\n3. Lend tools from a shed by the car park."


@pytest.fixture
def recipe():
    return module.Brainstorming()


def test_the_engine_reads_a_json_array_file():
    assert SOURCE.read_text().lstrip().startswith("[")
    assert load_rows(str(SOURCE), None, "train", module.Brainstorming.columns) == ROWS


def test_prompt_with_and_without_input(recipe):
    assert recipe.prompt(LIBRARY) == LIBRARY["instruction"]
    assert recipe.prompt(CAFETERIA) == f"{CAFETERIA['instruction']}\n\nReference text:\n{CAFETERIA['input']}"
    assert recipe.teacher_prompt(CAFETERIA).startswith(recipe.prompt(CAFETERIA) + "\n\n")
    assert "numbered list" in recipe.teacher_prompt(LIBRARY)


def test_reference_is_kept_and_never_sent(recipe):
    for row in ROWS:
        assert recipe.reference(row) == row["output"]
        assert row["output"] not in recipe.teacher_prompt(row)
        assert not any(line in recipe.teacher_prompt(row) for line in row["output"].splitlines())
    assert recipe.reference({**LIBRARY, "output": " "}) is None


@pytest.mark.parametrize("content, expected", [
    (IDEAS, None),
    ("- a clothes swap market\n- community cooking classes\n- a tool library\n- a monthly repair cafe", None),
    ("1. Run a monthly swap market for clothes.\n2. Open the school kitchen to cooking classes.", "too_few_ideas"),
    ("A swap market, in one long paragraph about why it would work for the whole neighbourhood.", "too_few_ideas"),
    ("1. a\n2. b\n3. c", "too_short"),
    ("Here are some ideas for you:\n" + IDEAS, "meta_talk"),
    ("1. Run a swap market for clothes and books.\n" * 8, "repetition_loop"),
    ("", "empty_answer"),
])
def test_parse(recipe, content, expected):
    check_parse(recipe, LIBRARY, content, expected)


def test_generate_end_to_end(tmp_path):
    rules = [
        {"match": "library could attract", "content": IDEAS},
        {"match": "food waste", "content": "- Smaller plates\n- Daily leftover tracking\n- Donations to shelters\n- Composting what is left"},
        {"match": "podcast", "content": "1. Ordinary Origins\n2. The Stuff Story"},
        {"match": "rainy weekend", "content": "As an AI, I suggest:\n1. Blanket fort\n2. Baking\n3. Treasure hunt"},
    ]
    out = tmp_path / "brainstorming.jsonl"
    done, accepted, rejected, errors, sent = run_fake("brainstorming", SOURCE, out, rules)
    assert done.returncode == 0, done.stderr
    assert sorted(accepted) == ["brainstorming/train/0", "brainstorming/train/1"] and not errors
    assert {k: r["reason"].split(":")[0] for k, r in rejected.items()} == {
        "brainstorming/train/2": "too_few_ideas", "brainstorming/train/3": "meta_talk"}
    row = accepted["brainstorming/train/1"]
    assert row["reference"] == CAFETERIA["output"] and row["verified"] is None and row["category"] == "brainstorming"
    assert row["prompt"].endswith(CAFETERIA["input"])
    assert len(sent) == 4 and not any(r["output"].splitlines()[0] in text for r in ROWS for text in sent)
