"""An optional LLM judge for answers with nothing to verify against (writing, brainstorming, rewriting, QA).

The judge sees the task and the answer (never the dataset's reference: it grades the answer on its own
merits, and could not leak a target to copy), scores it 1-10 against a short rubric for the category, and
gives one line of reason. Two ways in:

    judge = Judge(router, min_score=6)        # generation (--judge): the runner awaits review(record)
    reason = await judge.review(record)       # None to accept, or a reject reason; record["judge"] filled in

    score_batch("http://localhost:1234/v1", "qwen3-14b", [(category, prompt, answer), ...], concurrency=8)
                                              # GRPO reward: synchronous, a score or None per item

A judge request that still fails after the router's retries raises TransientError, like a teacher failure:
the row goes to the errors file and is retried on the next run, never accepted or rejected unjudged.
"""

from __future__ import annotations

import asyncio
import math
import re

from ..errors import TransientError, UserError
from ..teachers.router import Router
from ..teachers.base import Sampling

RUBRICS = {
    "creative_writing": "Does it do what the prompt asks, with a clear shape, vivid specific language and a "
                        "consistent voice? Penalise cliches, padding and ignored constraints.",
    "brainstorming": "Are the ideas distinct, concrete, relevant and useful? Penalise repeats, vague filler and "
                     "ideas that do not fit the request.",
    "rewriting": "Does it make exactly the requested change, keep the meaning, and read fluently? Penalise "
                 "unchanged text, lost content and additions the request did not ask for.",
    "summarization": "Is it faithful, complete on the key points and concise? Penalise anything the text does not say.",
    "open_qa": "Is it correct, direct and well explained? Penalise errors and unsupported claims.",
    "closed_qa": "Is it correct according to the reference text given in the task, and only that text?",
    "general_qa": "Is it correct, helpful and of the right level of detail?",
    "classification": "Is the classification right and the justification sound?",
    "information_extraction": "Does it extract exactly what was asked, accurately, in the requested form?",
}
DEFAULT_RUBRIC = "Is it correct, complete, clear and responsive to the task?"

JUDGE_PROMPT = """You are grading one answer for a training dataset.

Task given to the writer:
<task>
{prompt}
</task>

Answer to grade:
<answer>
{answer}
</answer>

Rubric ({category}): {rubric}
Score from 1 (useless) to 10 (excellent). Grade the answer itself; do not rewrite it.
Reply with exactly two lines:
Score: <1-10>
Reason: <one sentence>"""

SCORE = re.compile(r"\bscore\b(?:\s*\(?1\s*[-\u2013]\s*10\)?)?\W{0,4}(?:is\s*|of\s*)?(\d{1,2}(?:\.\d+)?)(?![\d\-\u2013])",
                   re.IGNORECASE)
OUT_OF_TEN = re.compile(r"(?<![\d.])(\d{1,2}(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.IGNORECASE)
REASON = re.compile(r"^\W*reason\W*\s*(.+)$", re.IGNORECASE | re.MULTILINE)
JUDGE_SAMPLING = Sampling(max_tokens=8192)   # a thinking judge needs room, but not a novel's worth
JUDGE_CONCURRENCY = 4                        # judge requests in flight (LM Studio's default parallel slots)


def judge_messages(category: str, prompt: str, answer: str) -> list[dict]:
    rubric = RUBRICS.get(category, DEFAULT_RUBRIC)
    text = JUDGE_PROMPT.format(prompt=prompt.strip(), answer=answer.strip(), category=category, rubric=rubric)
    return [{"role": "user", "content": text}]


def read_score(text: str) -> int | None:
    """The judge's score, 1-10, from 'Score: 7', '**Score:** 7/10', '8 out of 10'...; None when unreadable."""
    found = SCORE.findall(text or "") or OUT_OF_TEN.findall(text or "")
    if not found:
        return None
    score = math.floor(float(found[-1]) + 0.5)
    return score if 1 <= score <= 10 else None


def read_reason(text: str) -> str:
    """The judge's one line of reason; else its first line that is not the score."""
    found = REASON.search(text or "")
    if found:
        return found.group(1).strip()
    lines = [line.strip() for line in (text or "").splitlines() if line.strip() and not SCORE.search(line)]
    return lines[0] if lines else ""


class Judge:
    def __init__(self, router: Router, *, min_score: int = 6, sampling: Sampling = JUDGE_SAMPLING,
                 concurrency: int = JUDGE_CONCURRENCY):
        if not isinstance(router, Router):
            raise TypeError(f"Judge takes a tunixhack.teachers.router.Router, got {type(router).__name__}; "
                            f"for a server spec use score_batch(spec, model, items)")
        if not 1 <= min_score <= 10:
            raise UserError(f"--min-score must be 1-10, got {min_score}")
        self.router, self.min_score, self.sampling = router, min_score, sampling
        self.gate = asyncio.Semaphore(concurrency)

    async def score(self, category: str, prompt: str, answer: str) -> tuple[int | None, str, str]:
        """(score or None when unreadable, the judge's reason, the judge model). Raises TransientError."""
        async with self.gate:
            reply = await self.router.complete(judge_messages(category, prompt, answer), self.sampling)
        # Only the answer counts: a thinking judge weighs several scores before it settles on one.
        return read_score(reply.content), read_reason(reply.content)[:300], reply.model

    async def review(self, record: dict) -> str | None:
        """Score a record; None to accept it, or a reject reason. Fills record["judge"] either way."""
        score, reason, model = await self.score(record["category"], record["prompt"], record["answer"])
        record["judge"] = {"score": score, "reason": reason, "model": model, "min_score": self.min_score}
        if score is None:
            return "judge_unreadable"
        if score < self.min_score:
            return f"judge_score_below_min: {score} < {self.min_score}"
        return None


def score_batch(spec: str, model: str, items: list[tuple[str, str, str]], concurrency: int = 8,
                retries: int = 3, backoff: float = 1.0) -> list[int | None]:
    """Synchronous scores for [(category, prompt, answer)], for a GRPO reward: None where the judge's reply
    was unreadable or its request failed after retries (a reward must not stop training). Bad
    configuration (unknown model, unreachable server) raises UserError. Opens and closes its own client,
    so it can be called once per training step from synchronous code."""
    from ..teachers import make_teacher

    async def main() -> list[int | None]:
        teacher = make_teacher(spec, model)
        try:
            await teacher.check()
            judge = Judge(Router([teacher], retries=retries, backoff=backoff, warn=lambda _: None),
                          concurrency=concurrency)

            async def one(item):
                try:
                    return (await judge.score(*item))[0]
                except TransientError:
                    return None

            return list(await asyncio.gather(*(one(item) for item in items)))
        finally:
            await teacher.close()

    return asyncio.run(main()) if items else []
