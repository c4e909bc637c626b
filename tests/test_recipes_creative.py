"""CreativeWriting/generate.py: the variant read off the prompt, quality rejects with a reason, nothing to verify."""

import json

import pytest

from tests.test_recipes_harness import FIXTURES, check_parse, load_recipe, run_fake

SOURCE = FIXTURES / "creative" / "train.jsonl"
ROWS = [json.loads(line) for line in SOURCE.read_text().splitlines()]
NEIGHBOURHOOD_ESSAY, LIGHTHOUSE_STORY, NURSE_ESSAY, BAKERS_STORY, _ = ROWS
ESSAY = (FIXTURES / "creative" / "essay_reply.txt").read_text()
STORY = (FIXTURES / "creative" / "story_reply.txt").read_text()
module = load_recipe("CreativeWriting")


@pytest.fixture
def recipe():
    return module.CreativeWriting()


def test_prompt_is_the_single_human_turn(recipe):
    assert recipe.prompt(BAKERS_STORY) == "Write a story about two rival bakers in a mountain village who are snowed in together for a week."


@pytest.mark.parametrize("turns", [[], [{"from": "gpt", "value": "hi"}], [{"from": "human", "value": "  "}],
                                   [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]])
def test_malformed_conversations(recipe, turns):
    with pytest.raises(ValueError):
        recipe.prompt({"conversations": turns})


@pytest.mark.parametrize("row, variant, guidance", [
    (NEIGHBOURHOOD_ESSAY, "essay", "Do not mention the summary"),
    (NURSE_ESSAY, "essay", "Do not mention the summary"),
    (LIGHTHOUSE_STORY, "story", "Write the complete story"),
    (BAKERS_STORY, "story", "Write the complete story"),
])
def test_variant_and_teacher_prompt(recipe, row, variant, guidance):
    assert recipe.extra(row) == {"variant": variant}
    teacher = recipe.teacher_prompt(row)
    assert teacher.startswith(recipe.prompt(row) + "\n\n") and guidance in teacher and "no preface" in teacher


@pytest.mark.parametrize("row, content, expected", [
    (NEIGHBOURHOOD_ESSAY, ESSAY, None),
    (BAKERS_STORY, STORY, None),
    (NEIGHBOURHOOD_ESSAY, STORY, "too_short"),            # 214 words is a story, not a reconstructed essay
    (BAKERS_STORY, "The snow fell. They baked. The end.", "too_short"),
    (BAKERS_STORY, "Sure! Here is the story you asked for:\n\n" + STORY, "meta_talk"),
    (BAKERS_STORY, STORY + "\n\nI hope you enjoy this story!", "meta_talk"),
    (BAKERS_STORY, STORY + " The snow kept falling on the bakery roof." * 9, "repetition_loop"),
    (BAKERS_STORY, "   ", "empty_answer"),
])
def test_parse(recipe, row, content, expected):
    result = check_parse(recipe, row, content, expected)
    if expected is None:
        assert result == {"reasoning": "Let me think this through.", "answer": content.strip()}
    else:
        assert result.detail or expected == "empty_answer"  # a reject says why


def test_fingerprint_covers_the_folder_variants(recipe, monkeypatch):
    before = recipe.fingerprint(model="m")
    monkeypatch.setitem(module.GUIDANCE, "story", "Write a short story.")
    assert recipe.fingerprint(model="m") != before


def test_generate_end_to_end(tmp_path):
    rules = [
        {"match": "small towns lose", "reasoning": "Plan: thesis, cost, proposal.", "content": ESSAY},
        {"match": "lighthouse keeper", "content": STORY},
        {"match": "night-shift nurse", "content": "As an AI, I have never worked a night shift. " + ESSAY},
        {"match": "rival bakers", "content": "Two bakers. Snow. Bread."},
    ]
    out = tmp_path / "creative.jsonl"
    done, accepted, rejected, errors, _ = run_fake("CreativeWriting", SOURCE, out, rules)
    assert done.returncode == 0, done.stderr
    assert sorted(accepted) == ["creative_writing/train/0", "creative_writing/train/1", "creative_writing/train/4"]
    assert {k: r["reason"].split(":")[0] for k, r in rejected.items()} == {
        "creative_writing/train/2": "meta_talk", "creative_writing/train/3": "too_short"}
    essay = accepted["creative_writing/train/0"]
    assert essay["answer"] == ESSAY.strip() and essay["reasoning"] == "Plan: thesis, cost, proposal."
    assert essay["verified"] is None and essay["reference"] is None and essay["variant"] == "essay"
    assert essay["category"] == "creative_writing" and not errors
