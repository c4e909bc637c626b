"""tunixhack/verify/judge.py over the OpenAI-compatible backend against the fake OpenAI-compatible server, and through a
generate.py run with --judge (one fake serving both the teacher and the judge)."""

import asyncio

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.test_recipes_brainstorming import CAFETERIA, IDEAS, LIBRARY, SOURCE
from tests.test_recipes_harness import run_fake
from tunixhack.errors import TransientError, UserError
from tunixhack.verify.judge import RUBRICS, Judge, read_reason, read_score, score_batch
from tunixhack.teachers.router import Router
from tunixhack.teachers.openai_compat import OpenAITeacher

# The judge's prompt holds the answer, the teacher's does not: judge rules match on answer text and come first.
JUDGE_RULES = [
    {"match": "swap market", "reasoning": "Varied, concrete.", "content": "Score: 8\nReason: Concrete and varied ideas."},
    {"match": "Daily leftover tracking", "content": "**Score:** 3/10\nReason: Terse fragments."},
    {"match": "Ordinary Origins", "content": "Looks fine to me."},
    {"match": "Blanket fort", "content": "Score: 9", "fail": 100, "status": 503},
]


@pytest.mark.parametrize("text, score", [
    ("Score: 7\nReason: good", 7), ("**Score:** 7/10", 7), ("Score (1-10): 8", 8), ("It earns 8 out of 10.", 8),
    ("The final score is 9.", 9), ("Score: 7.5", 8), ("Score: 3/10, no, on reflection Score: 6", 6),
    ("Score: 11", None), ("Score: 0", None), ("A fine essay.", None), ("", None),
])
def test_read_score(text, score):
    assert read_score(text) == score


def test_read_reason():
    assert read_reason("Score: 7\n**Reason:** Vivid but long.") == "Vivid but long."
    assert read_reason("Score: 7\nVivid but long.") == "Vivid but long."


def record(answer, category="brainstorming", prompt=LIBRARY["instruction"]):
    return {"category": category, "prompt": prompt, "answer": answer, "reference": LIBRARY["output"]}


def review_all(url, records, min_score=6):
    async def main():
        teacher = OpenAITeacher(url, "qwen3-14b")
        try:
            judge = Judge(Router([teacher], retries=1, backoff=0.01, warn=lambda _: None), min_score=min_score)
            return await asyncio.gather(*(judge.review(r) for r in records), return_exceptions=True)
        finally:
            await teacher.close()

    return asyncio.run(main())


def test_review_accepts_rejects_and_records_the_score():
    records = [record(IDEAS), record("- Smaller plates\n- Daily leftover tracking"), record("1. Ordinary Origins"),
               record("1. Blanket fort")]
    with OpenAIFake({"rules": JUDGE_RULES}) as fake:
        results = review_all(fake.url, records)
        sent = [body["messages"][-1]["content"] for body in fake.requests]
    assert results[:3] == [None, "judge_score_below_min: 3 < 6", "judge_unreadable"]
    assert isinstance(results[3], TransientError)   # failed after retries: an error, never a verdict
    assert records[0]["judge"] == {"score": 8, "reason": "Concrete and varied ideas.", "model": "qwen3-14b", "min_score": 6}
    assert records[1]["judge"]["score"] == 3 and records[2]["judge"]["score"] is None and "judge" not in records[3]
    judged = next(text for text in sent if IDEAS in text)  # requests arrive in any order
    assert LIBRARY["instruction"] in judged and IDEAS in judged and RUBRICS["brainstorming"] in judged
    assert not any(LIBRARY["output"].splitlines()[0] in text for text in sent)   # the reference is never sent


def test_min_score_is_checked_and_a_spec_is_not_a_router():
    with pytest.raises(UserError, match="--min-score must be 1-10, got 11"):
        Judge(Router([]), min_score=11)
    with pytest.raises(TypeError, match="score_batch"):
        Judge("http://localhost:1234/v1")
    with pytest.raises(TypeError):   # min_score is keyword-only: a model name cannot slip into it
        Judge(Router([]), "qwen3-14b")


def test_score_batch_is_synchronous_and_gives_none_where_unjudged():
    items = [("brainstorming", "Ideas?", IDEAS), ("brainstorming", "Ideas?", "Daily leftover tracking"),
             ("creative_writing", "A story.", "Ordinary Origins"), ("rewriting", "Rewrite.", "Blanket fort")]
    with OpenAIFake({"rules": JUDGE_RULES}) as fake:
        assert score_batch(fake.url, "qwen3-14b", items, concurrency=2, retries=1, backoff=0.01) == [8, 3, None, None]
        assert score_batch(fake.url, "qwen3-14b", items[:1]) == [8]   # a second call: a fresh client, a fresh loop
        assert score_batch(fake.url, "qwen3-14b", []) == []
        with pytest.raises(UserError, match="not served"):
            score_batch(fake.url, "no-such-model", items)


def test_generate_with_judge_end_to_end(tmp_path):
    teacher_rules = [
        {"match": "library could attract", "content": IDEAS},
        {"match": "food waste", "content": "- Smaller plates\n- Daily leftover tracking\n- Donations to shelters\n- Compost bins in the kitchen"},
        {"match": "podcast", "content": "1. Ordinary Origins\n2. The Stuff Story\n3. Things Have Pasts\n4. Object Lessons"},
        {"match": "rainy weekend", "content": "1. Blanket fort\n2. Baking cookies together\n3. Indoor treasure hunt"},
    ]
    out = tmp_path / "brainstorming.jsonl"
    done, accepted, rejected, errors, sent = run_fake("brainstorming", SOURCE, out, JUDGE_RULES + teacher_rules,
                                                      "--judge", "FAKE", "--min-score", "5", "--retries", "1")
    judge_prompts = [text for text in sent if "Answer to grade" in text]
    assert done.returncode == 1, done.stderr   # one row failed: in the errors file, retried next run
    assert list(accepted) == ["brainstorming/train/0"]
    assert accepted["brainstorming/train/0"]["judge"]["score"] == 8 and accepted["brainstorming/train/0"]["verified"] is None
    assert {k: r["reason"] for k, r in rejected.items()} == {
        "brainstorming/train/1": "judge_score_below_min: 3 < 5", "brainstorming/train/2": "judge_unreadable"}
    assert rejected["brainstorming/train/1"]["judge"]["reason"] == "Terse fragments."
    assert [e["id"] for e in errors] == ["brainstorming/train/3"]
    assert len(judge_prompts) == 1 + 1 + 1 + 2   # the failing judge request was retried once
    assert not any(CAFETERIA["output"].splitlines()[0] in text for text in judge_prompts)
