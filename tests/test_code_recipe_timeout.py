"""code/generate.py when a reply's code runs out of time (issue 16, item 7): the reject says verify_timeout and
names the test, the progress line shows the rows being checked, and `--attempts` stops resampling a reply that
ran out twice in a row on the same test, so a looping reply costs two check timeouts, not one per attempt.
One real run: the real script, the real sandbox, a real local OpenAI server."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, read_rows, run_script, sibling
from tunixhack.verify import Verdict, check, verdict

TIMEOUT = 5  # --verify-timeout: long enough that a plain progress line (every 10 s) falls inside a check


def block(code: str) -> str:
    return f"Here is the function.\n\n```python\n{code}\n```"


LOOPS = block("def square_perimeter(a):\n    while True:\n        pass")
SORT = "def sort_matrix(M):\n    {}\n    return sorted(M, key=sum)"
REMOVE_OCC = ("def remove_Occ(s, ch):\n    first = s.find(ch)\n    if first < 0:\n        return s\n"
              "    s = s[:first] + s[first + 1:]\n    last = s.rfind(ch)\n    return s if last < 0 else s[:last] + s[last + 1:]")
SCRIPT = {"rules": [
    {"match": "perimeter of a square", "content": LOOPS},  # every sample loops on the first test
    {"match": "sum of its rows", "contents": [  # loops on test 1, then on test 2, then is right
        block(SORT.format("while M[1] == [2, 4, 5]:\n        pass")),
        block(SORT.format("while M[1] == [-2, 4, -5]:\n        pass")),
        block(SORT.format("pass"))]},
    {"match": "first and last occurrence", "content": block(REMOVE_OCC)},
]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("timeout") / "mbpp.jsonl"
    with OpenAIFake(SCRIPT) as fake:  # --limit 3: tasks 11, 12 and 17 of the fixture
        result = run_script("code/generate.py", "--source", FIXTURES / "mbpp" / "full.jsonl", "--split", "test",
                            "--limit", "3", "--teacher", fake.url, "--out", out, "--attempts", "4",
                            "--verify-timeout", TIMEOUT, "--concurrency", "4", "--backoff", "0.01")
        prompts = [m["content"] for body in fake.requests for m in body["messages"] if m["role"] == "user"]
    assert result.returncode == 0, result.stderr
    return out, result.stderr, prompts


def asked(prompts: list[str], text: str) -> int:
    return sum(text in prompt for prompt in prompts)


def test_a_looping_reply_is_a_verify_timeout_naming_its_test_after_two_samples(run):
    out, _, prompts = run
    (reject,) = read_rows(sibling(out, "rejects"))
    assert reject["id"] == "mbpp/test/17" and reject["attempt"] == 2 and reject["verified"] is False
    assert reject["reason"] == f"verify_timeout: ran past {TIMEOUT} s on test 1 of 3: assert square_perimeter(10)==40"
    assert asked(prompts, "perimeter of a square") == 2  # not 4: the third sample would loop again
    assert read_rows(sibling(out, "errors")) == []
    summary = json.loads(out.with_name("mbpp.summary.json").read_text())
    assert summary["rejected"] == {"verify_timeout": 1}  # a timeout is not a wrong answer
    assert summary["spent"]["rejected"]["verify_timeout"]["replies"] == 4  # two of 17's, two of 12's
    assert "verify_failed" not in summary["spent"].get("rejected", {})


def test_a_reply_that_ran_out_on_another_test_is_resampled(run):
    out, _, prompts = run
    rows = {r["id"]: r for r in read_rows(out)}
    assert set(rows) == {"mbpp/test/11", "mbpp/test/12"}
    assert rows["mbpp/test/12"]["attempt"] == 3 and rows["mbpp/test/12"]["verified"] is True
    assert asked(prompts, "sum of its rows") == 3 and asked(prompts, "first and last occurrence") == 1


def test_the_progress_line_shows_rows_being_checked(run):
    _, stderr, _ = run
    lines = [line for line in stderr.splitlines() if line.startswith("progress:")]
    assert len(lines) >= 2, stderr  # one at 10 s, while both tasks' second checks run, and the last one
    assert any(" checking 1 |" in line or " checking 2 |" in line for line in lines[:-1]), lines
    assert lines[-1].startswith("progress: 3/3 rows (100.0%) | ok 2 rej 1 err 0 |")  # none left in checking


def test_rewards_and_eval_get_the_same_verdict_without_locating():
    row = {"check": {"kind": "code", "tests": ["assert f(1) == 1", "assert f(2) == 2"], "timeout": 1}}
    looping = block("def f(x):\n    while x == 2:\n        pass\n    return x")
    assert check(row, looping) is False  # what the GRPO code reward and eval read: unchanged
    assert verdict(row, looping) == Verdict(False, "timeout", "ran past 1 s")
    assert verdict(row, looping, locate=True) == Verdict(
        False, "timeout", "ran past 1 s on test 2 of 2: assert f(2) == 2")
    # the test is the first whose value never came back, not a guess from running each alone: here every
    # test ends alone, but the second only after the first has run (state the program keeps between calls)
    stateful = block("calls = []\ndef f(x):\n    calls.append(x)\n    while len(calls) > 1:\n"
                     "        pass\n    return x")
    assert verdict(row, stateful, locate=True) == Verdict(
        False, "timeout", "ran past 1 s on test 2 of 2: assert f(2) == 2")
    setup_loops = block("while True:\n    pass\ndef f(x):\n    return x")
    assert verdict(row, setup_loops, locate=True) == Verdict(
        False, "timeout", "ran past 1 s before the first test (in the program or the setup code)")
    assert verdict(row, block("def f(x):\n    return -x")) == Verdict(False, "assertion_failed")
    assert verdict(row, "No code here.") == Verdict(False, "no_code")
    assert verdict({"check": {**row["check"], "tests": []}}, looping) == Verdict(None)


def test_a_recipe_with_its_own_verify_is_taken_at_its_word():
    from tunixhack import Recipe

    class Strict(Recipe):
        def verify(self, record):
            return False

    record = {"answer": block("def f(x):\n    return x"), "check": {"kind": "code", "tests": ["assert f(1) == 1"]}}
    assert Recipe().verdict(record) == Verdict(True)
    assert Strict().verdict(record) == Verdict(False)  # what the runner reads: the override's word, no reason
