"""code/generate.py (MBPP): the prompt shows the task and one assert, never the gold solution; replies are
checked by running their code in the sandbox; and one run end to end against a real local OpenAI server."""

from __future__ import annotations

import json

import datasets
import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, read_rows, run_script, sibling
from tests.test_recipes_harness import load_recipe
from tunixhack.errors import Reject
from tunixhack.teachers.base import Reply

FULL = FIXTURES / "mbpp" / "full.jsonl"
SANITIZED = FIXTURES / "mbpp" / "sanitized.parquet"


# code/ is a folder of scripts, not a package (code/__init__.py would shadow the stdlib module `code`).
recipe_module = load_recipe("code", name="mbpp_recipe")
RECIPE = recipe_module.MBPP()
FULL_ROWS = {r["task_id"]: r for r in (json.loads(line) for line in FULL.read_text().splitlines())}
SANITIZED_ROWS = {r["task_id"]: r for r in datasets.load_dataset("parquet", data_files=str(SANITIZED), split="train").to_list()}


def block(code: str) -> str:
    return f"Here is the function.\n\n```python\n{code}\n```\n\nIt walks the string from both ends."


def reply(content: str) -> Reply:
    return Reply(content=content, reasoning="I need one loop from each end.", finish="stop", thinking_closed=True)


def record_for(row: dict, answer: str) -> dict:
    return {"answer": answer, "check": RECIPE.check(row)}


# --- prompt -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task_id", sorted(FULL_ROWS))
def test_prompt_shows_task_and_one_assert_never_the_solution(task_id):
    row = FULL_ROWS[task_id]
    prompt, teacher = RECIPE.prompt(row), RECIPE.teacher_prompt(row)
    assert row["text"] in prompt and prompt in teacher
    assert row["test_list"][0] in prompt
    assert not any(test.strip() in teacher for test in row["test_list"][1:] + row["challenge_test_list"])
    body = [line.strip() for line in row["code"].splitlines() if len(line.strip()) > 12]
    assert not any(line in teacher for line in body), "a line of the gold solution was sent"
    assert "```python" in teacher and "```python" not in prompt  # the format ask is for the teacher only
    assert RECIPE.reference(row) == row["code"]


def test_prompt_fixes_the_function_name():
    teacher = RECIPE.teacher_prompt(FULL_ROWS[11])
    assert 'remove_Occ("hello","l") == "heo"' in teacher


def test_setup_code_is_shown_when_the_tests_need_it():
    row = FULL_ROWS[927]  # the asserts use trees the setup code builds from the solution's Node class
    prompt = RECIPE.prompt(row)
    assert "root = Node(1)" in prompt and "\r" not in prompt
    assert "setup" not in RECIPE.prompt(FULL_ROWS[17])


def test_sanitized_rows_use_prompt_and_keep_test_imports():
    row = SANITIZED_ROWS[139]
    assert RECIPE.prompt(row).startswith("Write a function to find the circumference of a circle.")
    assert RECIPE.check(row) == {"kind": "code", "tests": row["test_list"], "setup": "", "imports": ["import math"],
                                 "timeout": RECIPE.verify_timeout}


def test_row_without_task_text_is_malformed():
    row = {k: v for k, v in FULL_ROWS[17].items() if k != "text"}
    with pytest.raises(KeyError, match="'text'.*'prompt'"):
        RECIPE.prompt(row)


def test_ids_use_task_id():
    assert RECIPE.row_id("test", FULL_ROWS[927], 4) == "mbpp/test/927"


# --- parse and verify ---------------------------------------------------------------------------------
def test_reply_without_code_is_rejected():
    with pytest.raises(Reject) as caught:
        RECIPE.parse(FULL_ROWS[17], reply("The perimeter is four times the side, so multiply by 4."))
    assert caught.value.reason == "no_code"
    parsed = RECIPE.parse(FULL_ROWS[17], reply(block("def square_perimeter(a):\n    return 4 * a")))
    assert parsed["answer"].startswith("Here is") and parsed["reasoning"] == "I need one loop from each end."


VERIFY_CASES = [
    ("correct", FULL_ROWS[17], block("def square_perimeter(a):\n    return 4 * a"), True),
    ("wrong result", FULL_ROWS[17], block("def square_perimeter(a):\n    return 2 * a"), False),
    ("wrong name", FULL_ROWS[17], block("def perimeter(a):\n    return 4 * a"), False),
    ("raises", FULL_ROWS[12], block("def sort_matrix(M):\n    raise ValueError('no')"), False),
    ("passes one assert only", FULL_ROWS[11],
     block("def remove_Occ(s, ch):\n    return 'heo' if s == 'hello' else s"), False),
    ("never ends", FULL_ROWS[17], block("def square_perimeter(a):\n    while True:\n        pass"), False),
    ("class from the solution used by setup", FULL_ROWS[927], block(
        "class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n\n"
        "def max_height(node):\n    if node is None:\n        return 0\n"
        "    return 1 + max(max_height(node.left), max_height(node.right))"), True),
    ("test_imports run first", SANITIZED_ROWS[139],
     block("def circle_circumference(r):\n    return 2 * 3.1415 * r"), True),
]


@pytest.mark.parametrize("name,row,answer,expected", VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_verify(name, row, answer, expected):
    RECIPE.verify_timeout = 3.0  # the endless loop costs this much
    assert RECIPE.verify(record_for(row, answer)) is expected


@pytest.mark.parametrize("task_id", sorted(FULL_ROWS))
def test_gold_solutions_with_crlf_and_tabs_pass(task_id):
    row = FULL_ROWS[task_id]
    RECIPE.verify_timeout = 20.0
    assert RECIPE.verify(record_for(row, f"```python\n{row['code']}\n```")) is True


# --- end to end ---------------------------------------------------------------------------------------
REMOVE_OCC = ("def remove_Occ(s, ch):\n    first = s.find(ch)\n    if first < 0:\n        return s\n"
              "    s = s[:first] + s[first + 1:]\n    last = s.rfind(ch)\n    return s if last < 0 else s[:last] + s[last + 1:]")
SCRIPT = {"rules": [
    {"match": "first and last occurrence", "reasoning": "find and rfind.", "content": block(REMOVE_OCC)},
    {"match": "sum of its rows", "reasoning": "sort by max?", "content": block("def sort_matrix(M):\n    return sorted(M, key=max)")},
    {"match": "perimeter of a square", "reasoning": "4a", "content": "Multiply the side by four."},
    {"match": "woodball", "reasoning": "n * 2**n - 1", "content": block(
        "def is_woodall(x):\n\tn = 1\n\twhile n * 2 ** n - 1 <= x:\n\t\tif n * 2 ** n - 1 == x:\n\t\t\treturn True\n"
        "\t\tn += 1\n\treturn False")},
    {"match": "height of the given binary tree", "reasoning": "recurse", "content": block(VERIFY_CASES[6][2][
        VERIFY_CASES[6][2].index("class"): VERIFY_CASES[6][2].rindex("```")])},
]}


def test_end_to_end_through_a_real_openai_server(tmp_path):
    out = tmp_path / "mbpp.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        result = run_script("code/generate.py", "--source", FULL, "--split", "test", "--teacher", fake.url,
                            "--out", out, "--concurrency", "4", "--backoff", "0.01", "--verify-timeout", "15")
        sent = [m["content"] for body in fake.requests for m in body["messages"]]
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in read_rows(out)}
    rejects = {r["id"]: r["reason"].split(":")[0] for r in read_rows(sibling(out, "rejects"))}
    assert set(rows) == {"mbpp/test/11", "mbpp/test/20", "mbpp/test/927"}
    assert rejects == {"mbpp/test/12": "verify_failed", "mbpp/test/17": "no_code"}
    row = rows["mbpp/test/927"]
    assert row["verified"] is True and row["category"] == "code" and row["reference"] == FULL_ROWS[927]["code"]
    check = row["check"]
    assert check["tests"] == FULL_ROWS[927]["test_list"] and check["setup"] == FULL_ROWS[927]["test_setup_code"]
    assert check["imports"] == [] and row["reasoning"] == "recurse" and "```python" in row["answer"]
    assert len(sent) == 5
    for task in FULL_ROWS.values():  # no gold solution went out
        assert not any(task["code"].strip().splitlines()[-1].strip() in text for text in sent)


def test_bad_verify_timeout_is_refused():
    result = run_script("code/generate.py", "--source", FULL, "--verify-timeout", "0", "--dry-run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--verify-timeout: must be > 0, got '0'" in result.stderr
