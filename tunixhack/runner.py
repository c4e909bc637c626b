"""Drive a recipe over its rows: bounded concurrency, resampling, verification, resume, progress, summary.

Teacher calls are bounded by --concurrency; verification runs in a thread pool beside them (so a slow
check never holds a teacher slot), and the number of rows in progress is bounded, so memory stays flat
however large the dataset is.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tqdm import tqdm

from .errors import Reject, TransientError
from .prompts import WRITTEN_FORMAT
from .student import split_tagged
from .recipe import Recipe
from .router import Router
from .store import FSYNC_EVERY, TraceStore
from .teachers.base import Reply, Sampling

STOP_AFTER_FAILED_ROWS = 20  # rows in a row that end in errors before the run stops: the teacher is down


@dataclass
class Job:
    id: str
    row: dict
    messages: list[dict]
    fields: dict        # what the recipe says of the row before any reply: prompt, reference, category...


@dataclass
class Tally:
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    errors: int = 0
    resampled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed_streak: int = 0
    last_error: str = ""

    @property
    def finished(self) -> int:
        return self.accepted + sum(self.rejected.values())


class TeacherDown(Exception):
    """Many rows in a row failed after all retries: stop instead of marking the whole dataset failed."""


def teacher_messages(recipe: Recipe, row: dict, style: str) -> list[dict]:
    user = {"role": "user", "content": recipe.teacher_prompt(row)}
    if style == "written":
        return [{"role": "system", "content": WRITTEN_FORMAT}, user]
    return [user]


def prepare(recipe: Recipe, key: str, row: dict, style: str) -> Job:
    """Everything the recipe says of a row before the teacher answers; raises on a malformed row."""
    fields = {
        "category": recipe.row_category(row),
        "prompt": recipe.prompt(row),
        "reference": recipe.reference(row),
        "check": recipe.check(row),
        "extra": recipe.extra(row),
    }
    return Job(key, row, teacher_messages(recipe, row, style), fields)


class Generation:
    def __init__(self, recipe: Recipe, router: Router, store: TraceStore, *, sampling: Sampling, style: str,
                 attempts: int, concurrency: int, verify_workers: int, fingerprint: str, source: dict,
                 judge=None):
        self.recipe, self.router, self.store = recipe, router, store
        self.sampling, self.style, self.attempts = sampling, style, attempts
        self.fingerprint, self.source, self.judge = fingerprint, source, judge
        self.slots = asyncio.Semaphore(concurrency)
        self.window = asyncio.Semaphore(2 * concurrency + verify_workers)
        self.verify_pool = ThreadPoolExecutor(max_workers=verify_workers, thread_name_prefix="verify")
        self.tally = Tally()
        self.bar: tqdm | None = None

    async def run(self, jobs: list[Job], total: int, done_before: int) -> Tally:
        self.bar = tqdm(total=total, initial=done_before, unit="row", dynamic_ncols=True, smoothing=0.05)
        self.started = time.monotonic()
        tasks: set[asyncio.Task] = set()
        syncer = asyncio.create_task(self._sync_every_second())
        try:
            for job in jobs:
                await self.window.acquire()
                if self.tally.failed_streak >= STOP_AFTER_FAILED_ROWS:
                    raise TeacherDown(self.tally.last_error)
                task = asyncio.create_task(self._row(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.wait(set(tasks))
            if self.tally.failed_streak >= STOP_AFTER_FAILED_ROWS:
                raise TeacherDown(self.tally.last_error)
        finally:
            syncer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.verify_pool.shutdown(wait=False, cancel_futures=True)
            self.bar.close()
        return self.tally

    async def _sync_every_second(self) -> None:
        """A row written just before a quiet spell still reaches the disk within a second."""
        while True:
            await asyncio.sleep(FSYNC_EVERY)
            self.store.sync()

    async def _row(self, job: Job) -> None:
        try:
            await self._attempts(job)
        except Exception as e:  # a bug must not lose the row silently: it is retried on the next run
            self._error(job, f"{type(e).__name__}: {e}", 0)
            tqdm.write(f"warning: {job.id}: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            self.window.release()
            self.bar.update(1)
            self._postfix()

    async def _attempts(self, job: Job) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.slots:
                    reply = await self.router.complete(job.messages, self.sampling)
            except TransientError as e:
                self._error(job, str(e), attempt)
                return
            self.tally.failed_streak = 0
            self.tally.prompt_tokens += reply.usage.get("prompt_tokens") or 0
            self.tally.completion_tokens += reply.usage.get("completion_tokens") or 0
            record = self._record(job, reply, attempt)
            try:
                reason = await self._check(job, reply, record)
            except TransientError as e:  # the judge's server failed after its retries
                self._error(job, f"judge: {e}", attempt)
                return
            if reason is None:
                self.store.write("main", record)
                self.tally.accepted += 1
                return
            if attempt < self.attempts:
                self.tally.resampled += 1
                continue
            record["reason"] = reason
            self.store.write("rejects", record)
            self.tally.rejected[reason.split(":")[0]] += 1

    async def _check(self, job: Job, reply: Reply, record: dict) -> str | None:
        """Fill in the parsed and verified fields; return the reject reason, or None to accept."""
        try:
            if not reply.thinking_closed:
                raise Reject("thinking_not_closed")
            if reply.finish == "length":
                raise Reject("truncated")
            if self.style == "written":
                tagged = split_tagged(reply.content)
                if tagged is None:
                    raise Reject("missing_tags")
                record["thinking"] = reply.reasoning
                reply = Reply(**{**reply.__dict__, "reasoning": tagged[0], "content": tagged[1]})
            try:
                record.update(self.recipe.parse(job.row, reply))
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                raise Reject("parse_error", f"{type(e).__name__}: {e}") from None
            if not (record.get("answer") or "").strip():
                raise Reject("empty_answer")
        except Reject as r:
            return r.reason + (f": {r.detail}" if r.detail else "")
        # A check that breaks (the sandbox cannot start, a recipe bug) is not a verdict on the answer: it
        # propagates, and the row goes to the errors file to be tried again on the next run.
        loop = asyncio.get_running_loop()
        record["verified"] = await loop.run_in_executor(self.verify_pool, self.recipe.verify, record)
        if record["verified"] is False:
            return "verify_failed"
        if record["verified"] is None and self.judge is not None:
            return await self.judge.review(record)
        return None

    def _record(self, job: Job, reply: Reply, attempt: int) -> dict:
        fields = job.fields
        return {
            "id": job.id,
            **self.source,
            "category": fields["category"],
            "prompt": fields["prompt"],
            "messages": job.messages,
            "reasoning": reply.reasoning,
            "answer": reply.content,
            "reference": fields["reference"],
            "check": fields["check"],
            "verified": None,
            "finish": reply.finish,
            "thinking_closed": reply.thinking_closed,
            "teacher": {"backend": reply.backend, "model": reply.model, "endpoint": reply.endpoint,
                        **{k: v for k, v in self.sampling.as_dict().items() if k != "timeout"}},
            "usage": reply.usage,
            "attempt": attempt,
            "fingerprint": self.fingerprint,
            **fields["extra"],
        }

    def _error(self, job: Job, message: str, attempt: int) -> None:
        self.store.write("errors", {"id": job.id, "error": message, "attempt": attempt,
                                    "fingerprint": self.fingerprint, "time": time.time()})
        self.tally.errors += 1
        self.tally.failed_streak += 1
        self.tally.last_error = message

    def _postfix(self) -> None:
        t = self.tally
        elapsed = max(1e-9, time.monotonic() - self.started)
        self.bar.set_postfix_str(
            f"ok {t.accepted} rej {sum(t.rejected.values())} err {t.errors} | {t.completion_tokens / elapsed:,.0f} tok/s",
            refresh=False,
        )
