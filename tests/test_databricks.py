"""Databricks/generate_databricks.py (Dolly 15k): prompts with their passage, the human response never sent,
closed_qa/classification checked against it, the --category filter with stable ids, and one run end to end
against a real local OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script, sibling
from tunixhack.generate import prompts
from tunixhack.generate.cli import build_parser
from tunixhack.generate.rows import make_plan
from tunixhack.generate.settings import Settings
from tests.test_recipes_harness import load_recipe
from tunixhack.errors import Reject, UserError
from tunixhack.teachers.base import Reply

DOLLY = FIXTURES / "dolly" / "databricks-dolly-15k.jsonl"
ROWS = [json.loads(line) for line in DOLLY.read_text().splitlines()]


dolly = load_recipe("Databricks", "generate_databricks.py", name="generate_databricks")


def configured(*argv):
    recipe = dolly.Dolly()
    args = build_parser(recipe).parse_args(["--source", str(DOLLY), *argv])
    recipe.configure(args)
    return recipe, args


def reply(content: str) -> Reply:
    return Reply(content=content, reasoning="Let me look at the passage.", finish="stop", thinking_closed=True)


# --- prompts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 4, 5, 7, 12, 13])
def test_context_categories_carry_their_passage(index):
    row = ROWS[index]
    assert row["category"] in ("closed_qa", "information_extraction", "summarization")
    recipe = dolly.Dolly()
    passage = row["context"].replace("[1]", "").replace("[2]", "")  # older copies' citation markers go
    first_sentence = passage.split(". ")[0]
    for text in (recipe.prompt(row), recipe.teacher_prompt(row)):
        assert row["instruction"] in text and first_sentence in text and "[1]" not in text
    assert recipe.teacher_prompt(row).startswith(recipe.prompt(row))


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_teacher_prompt_is_instruction_passage_and_guidance_never_the_response(index):
    row = ROWS[index]
    recipe = dolly.Dolly()
    teacher = recipe.teacher_prompt(row)
    assert teacher == prompts.instruction_for(row["category"], row["instruction"], dolly.clean(row["context"]))
    if row["response"].strip() not in row["context"] + row["instruction"]:  # a label may be one of the options
        assert row["response"].strip() not in teacher
    assert recipe.reference(row) == dolly.clean(row["response"]) and recipe.row_category(row) == row["category"]


def test_rows_without_context_have_just_the_instruction():
    row = ROWS[2]  # open_qa
    assert dolly.Dolly().prompt(row) == row["instruction"]


def test_closed_qa_without_its_passage_is_malformed():
    with pytest.raises(ValueError, match="closed_qa.*context is empty"):
        dolly.Dolly().prompt({**ROWS[0], "context": "  "})


# --- parse: quality checks ----------------------------------------------------------------------------
PARSE_CASES = [
    ("open_qa", "Sure! Here is the answer you asked for: camels store fat.", "meta_talk"),
    ("open_qa", "Camels store fat in their humps. I hope this helps!", "meta_talk"),
    ("brainstorming", "Go hiking in good rain gear and enjoy the waterfalls at their fullest.", "too_few_ideas"),
    ("creative_writing", "Snow fell.", "too_short"),
    ("general_qa", "   ", "empty_answer"),
    ("open_qa", "the same words again " * 40, "repetition_loop"),
]


@pytest.mark.parametrize("category,content,reason", PARSE_CASES, ids=[c[2] + "-" + c[0] for c in PARSE_CASES])
def test_parse_rejects_unusable_replies(category, content, reason):
    row = next(r for r in ROWS if r["category"] == category)
    with pytest.raises(Reject) as caught:
        dolly.Dolly().parse(row, reply(content))
    assert caught.value.reason == reason


def test_parse_keeps_a_good_reply():
    row = ROWS[11]  # brainstorming
    content = "1. Hiking in rain gear.\n2. Birdwatching.\n3. Visiting waterfalls.\n4. Photography."
    assert dolly.Dolly().parse(row, reply(content)) == {"reasoning": "Let me look at the passage.", "answer": content}


# --- verify -------------------------------------------------------------------------------------------
VIRGIN = ROWS[0]["response"]
VERIFY_CASES = [
    ("closed_qa", "Virgin Australia commenced services on 31 August 2000 as Virgin Blue, with two aircraft on a single route.", VIRGIN, True),
    ("closed_qa", "Virgin Australia started operating on 31 August 2000, as Virgin Blue.", VIRGIN, True),
    ("closed_qa", "It grew after Ansett collapsed in September 2001.", VIRGIN, False),
    ("closed_qa", "Komorida was born on July 10, 1981.", "Tomoaki Komorida was born on July 10,1981.", True),
    ("closed_qa", "He was born in 1990 in Tokyo.", "Tomoaki Komorida was born on July 10,1981.", False),
    ("classification", "tope", "Tope", True),
    ("classification", "Tope. It is a small shark; a rope is a cord.", "Tope", True),
    ("classification", "**Tope** is the fish: a small shark.\n\nA rope is made of fibres.", "Tope", True),
    ("classification", "Rope is a species of fish.", "Tope", False),
    ("classification", "Gudok: string.\nCantaro: percussion.", "Gudok is string, Cantaro is percussion.", True),
    ("classification", "Both are wind instruments.", "Gudok is string, Cantaro is percussion.", False),
    ("open_qa", "Anything at all.", "Camels store fat.", None),
    ("summarization", "Something unrelated.", "Stalemate is a draw.", None),
    ("classification", "Tope", None, None),
]


@pytest.mark.parametrize("category,answer,reference,expected", VERIFY_CASES)
def test_verify(category, answer, reference, expected):
    recipe = dolly.Dolly()
    record = {"answer": answer, "check": recipe.check({"category": category, "response": reference})}
    assert recipe.verify(record) is expected


def test_min_f1_flag_tightens_the_check():
    recipe = configured("--min-f1", "0.9")[0]
    record = {"answer": VERIFY_CASES[1][1], "check": recipe.check({"category": "closed_qa", "response": VIRGIN})}
    assert record["check"]["min_f1"] == 0.9 and recipe.verify(record) is False
    with pytest.raises(UserError, match="--min-f1 must be in"):
        configured("--min-f1", "1.5")


# --- category filter ----------------------------------------------------------------------------------
def select_rows(recipe, args) -> list[tuple[str, dict]]:
    return list(make_plan(recipe, Settings.from_args(args).selection, set()).rows())


def test_category_filter_keeps_original_row_indices_as_ids():
    recipe, args = configured("--category", "closed_qa,summarization", "--category", "classification")
    ids = [key for key, _ in select_rows(recipe, args)]
    assert ids == ["dolly/train/0", "dolly/train/1", "dolly/train/4", "dolly/train/7", "dolly/train/8", "dolly/train/13"]
    everything = dict(select_rows(*configured()))
    assert len(everything) == len(ROWS) and all(everything[key] == ROWS[int(key.rsplit("/", 1)[1])] for key in ids)


def test_fingerprint_does_not_depend_on_the_filter():
    # so a run over some categories can be resumed over all of them into the same file
    assert configured("--category", "open_qa")[0].fingerprint(model="m") == configured()[0].fingerprint(model="m")


def test_unknown_category_is_one_clear_line():
    line = one_line_error(run_script("Databricks/generate_databricks.py", "--source", DOLLY, "--dry-run",
                                     "--category", "closed_qa,open-qa"))
    assert line.endswith("got 'open-qa'")  # only the unknown name is reported
    assert all(name in line for name in dolly.CATEGORIES)


# --- end to end ---------------------------------------------------------------------------------------
SCRIPT = {
    "rules": [
        {"match": "Virgin Australia start", "content": "Virgin Australia started operating on 31 August 2000, as Virgin Blue."},
        {"match": "Tope or Rope", "content": "Tope. It is a small shark, while a rope is a cord."},
        {"match": "Komorida", "content": "He was born in 1990 in Tokyo."},
        {"match": "stalemate, have I won", "content": "Sure! Here is the answer: no, a stalemate is a draw."},
        {"match": "rainy climate", "content": "1. Hiking in rain gear.\n2. Birdwatching.\n3. Waterfalls.\n4. Photography."},
        {"match": "Gudok", "content": "Gudok: string.\nCantaro: percussion.\n\nThe gudok is bowed; the cantaro is struck."},
    ],
    "default": {"reasoning": "Think it through.",
                "content": "A plain and direct answer that says what is needed, in a dozen words or so.\n\n"
                           "A second paragraph adds one more point.\n\nA third paragraph closes it."},
}


def test_end_to_end_through_a_real_openai_server(tmp_path):
    out = tmp_path / "dolly.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        result = run_script("Databricks/generate_databricks.py", "--source", DOLLY, "--split", "train",
                            "--teacher", fake.url, "--out", out, "--concurrency", "4", "--backoff", "0.01")
        sent = {body["messages"][-1]["content"] for body in fake.requests}
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in read_rows(out)}
    rejects = {r["id"]: r["reason"].split(":")[0] for r in read_rows(sibling(out, "rejects"))}
    assert len(rows) + len(rejects) == len(ROWS) == len(sent)
    assert rejects == {"dolly/train/4": "verify_failed", "dolly/train/5": "meta_talk"}
    verified = {key: row["verified"] for key, row in rows.items()}
    assert verified["dolly/train/0"] is True and verified["dolly/train/1"] is True and verified["dolly/train/8"] is True
    assert verified["dolly/train/2"] is None and verified["dolly/train/11"] is None
    for key, row in rows.items():
        source = ROWS[int(key.rsplit("/", 1)[1])]
        assert row["category"] == source["category"] and row["reference"] == dolly.clean(source["response"])
    virgin = rows["dolly/train/0"]
    assert ROWS[0]["context"] in virgin["prompt"] and virgin["prompt"] in virgin["messages"][0]["content"]
    for text in sent:
        for source in ROWS:
            if source["response"] not in source["context"] + source["instruction"]:
                assert source["response"] not in text
