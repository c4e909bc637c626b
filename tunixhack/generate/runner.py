"""Drive a recipe over its rows: bounded concurrency, resampling, verification, resume, progress, summary.

Rows come lazily from the plan (tunixhack/generate/rows.py) and are prepared as they are dispatched. Teacher calls are
bounded per endpoint by the router (tunixhack/teachers/router.py). A check that may be slow (code, math-verify) runs in a
thread pool beside them, so that it never holds up the event loop; one decided in microseconds runs on the loop. The
rows in progress are bounded by twice what the endpoints take at once, so memory stays flat however large the dataset is.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from ..errors import Reject, TransientError
from .progress import Progress
from .prompts import WRITTEN_FORMAT
from ..student import split_tagged
from .recipe import Recipe
from ..teachers.router import Router
from .settings import Settings
from .store import FSYNC_EVERY, TraceStore
from ..teachers.base import Reply, Sampling
from ..tokens import row_length

STOP_AFTER_FAILED_ROWS = 20  # rows in a row that end in errors before the run stops: the teacher is down
ROW_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)  # a malformed row or reply


@dataclass
class Job:
    id: str
    row: dict
    messages: list[dict]
    fields: dict        # what the recipe says of the row before any reply: prompt, reference, category...


@dataclass
class Stamp:
    """What every row of this run carries: where it came from and the fingerprint of how it was made."""
    fingerprint: str
    source: dict        # dataset, config, split


@dataclass
class Tally:
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    errors: int = 0
    resampled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # What the teacher spent, every reply counted once: {"kept" | "rejected" | "cancelled" | "errors":
    # {reason: {"replies", "prompt", "completion"}}}; a resampled reply counts under its own reason.
    spent: dict = field(default_factory=dict)
    failed_streak: int = 0
    last_error: str = ""
    wall_seconds: float = 0.0   # from the first request to the last row
    cpu_seconds: float = 0.0    # this process's CPU over the same time (all threads)

    @property
    def finished(self) -> int:
        return self.accepted + sum(self.rejected.values())

    def spend(self, outcome: str, reason: str, usage: dict) -> None:
        bucket = self.spent.setdefault(outcome, {}).setdefault(reason, {"replies": 0, "prompt": 0, "completion": 0})
        bucket["replies"] += 1
        bucket["prompt"] += usage.get("prompt_tokens") or 0
        bucket["completion"] += usage.get("completion_tokens") or 0

    def stopped(self) -> int:
        """Replies the watch cancelled on the stream (resampled ones included)."""
        return sum(b["replies"] for b in self.spent.get("cancelled", {}).values())


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


def malformed_record(key: str, row: dict, source: dict, error: Exception) -> dict:
    return {"id": key, **source, "reason": f"malformed_row: {type(error).__name__}: {error}", "row": row}


class Generation:
    def __init__(self, recipe: Recipe, settings: Settings, router: Router, store: TraceStore, stamp: Stamp,
                 judge=None):
        self.recipe, self.settings, self.router, self.store = recipe, settings, router, store
        self.sampling, self.style, self.attempts = settings.sampling, settings.style, settings.attempts
        self.fingerprint, self.source, self.judge = stamp.fingerprint, stamp.source, judge
        self.verify_pool = ThreadPoolExecutor(max_workers=settings.verify_workers, thread_name_prefix="verify")
        self.tally = Tally()
        self.progress: Progress | None = None
        self._in_progress = 0
        self._checking = 0  # rows whose answer is being checked right now (a code check may take its timeout)
        self._room = asyncio.Event()

    def describe(self) -> str:
        t = self.tally
        elapsed = max(1e-9, time.monotonic() - self.started)
        stopped = f" stopped {t.stopped()}" if t.stopped() else ""
        checking = f" checking {self._checking}" if self._checking else ""
        return (f"ok {t.accepted} rej {sum(t.rejected.values())} err {t.errors}{stopped}{checking} | "
                f"{t.completion_tokens / elapsed:,.0f} tok/s | concurrency {self.router.settled()}")

    async def run(self, plan) -> Tally:
        """Send every row the plan has left to do; malformed rows go straight to the rejects."""
        self.started = time.monotonic()
        cpu = time.process_time()
        self.progress = Progress(plan.total, plan.done, self.describe, started=self.started)
        tasks: set[asyncio.Task] = set()
        ticker = asyncio.create_task(self._every_second())
        try:
            for key, row in plan.rows():
                try:
                    job = prepare(self.recipe, key, row, self.style)
                except ROW_ERRORS as e:
                    self.store.write("rejects", malformed_record(key, row, self.source, e))
                    self.tally.rejected["malformed_row"] += 1
                    self.progress.update(1)
                    continue
                # Rows in progress: enough to keep every slot busy while others are verified and written.
                while self._in_progress >= 2 * self.router.capacity() + self.settings.verify_workers:
                    self._room.clear()
                    await self._room.wait()
                if self.tally.failed_streak >= STOP_AFTER_FAILED_ROWS:
                    raise TeacherDown(self.tally.last_error)
                self._in_progress += 1
                task = asyncio.create_task(self._row(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.wait(set(tasks))
            if self.tally.failed_streak >= STOP_AFTER_FAILED_ROWS:
                raise TeacherDown(self.tally.last_error)
        finally:
            ticker.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.verify_pool.shutdown(wait=False, cancel_futures=True)
            ended = time.monotonic()
            self.tally.wall_seconds = ended - self.started
            self.tally.cpu_seconds = time.process_time() - cpu
            self.progress.close(ended)  # the same rows and the same clock as the summary, Ctrl-C included
        return self.tally

    async def _every_second(self) -> None:
        """A row written just before a quiet spell still reaches the disk within a second; progress lines go on."""
        while True:
            await asyncio.sleep(FSYNC_EVERY)
            self.store.sync()
            self.progress.tick()

    async def _row(self, job: Job) -> None:
        try:
            await self._attempts(job)
        except Exception as e:  # a bug must not lose the row silently: it is retried on the next run
            self._error(job, f"{type(e).__name__}: {e}", 0)
            self.progress.write(f"warning: {job.id}: {type(e).__name__}: {e}")
        finally:
            self._in_progress -= 1
            self._room.set()
        self.progress.update(1)  # not for a row cut off by Ctrl-C: it is neither done nor in the summary

    async def _attempts(self, job: Job) -> None:
        timed_out = ""  # the last attempt's verify_timeout (its test), if it ran out of time
        sampling = self._sampling_for(job)
        unfit = sampling.budget.row.unfit_prompt() if sampling.budget.row is not None else None
        if unfit:
            self._over_budget_before_asking(job, unfit)
            return
        for attempt in range(1, self.attempts + 1):
            try:
                reply = await self.router.complete(job.messages, sampling)
            except TransientError as e:
                self._error(job, str(e), attempt)
                return
            self.tally.failed_streak = 0
            self.tally.prompt_tokens += reply.usage.get("prompt_tokens") or 0
            self.tally.completion_tokens += reply.usage.get("completion_tokens") or 0
            record = self._record(job, reply, attempt)
            outcome = "cancelled" if reply.stopped else "rejected"
            try:
                reason = reply.stopped or await self._check(job, reply, record)
            except TransientError as e:  # the judge's server failed after its retries
                self.tally.spend("errors", "judge", reply.usage)
                self._error(job, f"judge: {e}", attempt)
                return
            if reason is None:
                self.store.write("main", record)
                self.tally.accepted += 1
                self.tally.spend("kept", "kept", reply.usage)
                return
            self.tally.spend(outcome, reason.split(":")[0], reply.usage)
            # a reply that ran out of time twice in a row on the same test will do so again: not worth more
            again = reason.startswith("verify_timeout") and reason == timed_out
            timed_out = reason if reason.startswith("verify_timeout") else ""
            if attempt < self.attempts and not again:
                self.tally.resampled += 1
                continue
            record["reason"] = reason
            self.store.write("rejects", record)
            self.tally.rejected[reason.split(":")[0]] += 1
            return

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
            except ROW_ERRORS as e:
                raise Reject("parse_error", f"{type(e).__name__}: {e}") from None
            if not (record.get("answer") or "").strip():
                raise Reject("empty_answer")
            self._within_row_budget(record)
        except Reject as r:
            return r.reason + (f": {r.detail}" if r.detail else "")
        # A check that breaks (the sandbox cannot start, a recipe bug) is not a verdict on the answer: it
        # propagates, and the row goes to the errors file to be tried again on the next run.
        verdict = self.recipe.instant_verdict(record)  # microseconds: less than a hop to a worker thread and back
        if verdict is None:
            loop = asyncio.get_running_loop()
            self._checking += 1
            try:
                verdict = await loop.run_in_executor(self.verify_pool, self.recipe.verdict, record)
            finally:
                self._checking -= 1
        record["verified"] = verdict.ok
        if verdict.ok is False:
            return f"verify_timeout: {verdict.detail}" if verdict.reason == "timeout" else "verify_failed"
        if record["verified"] is None and self.judge is not None:
            return await self.judge.review(record)
        return None

    def _sampling_for(self, job: Job) -> Sampling:
        """With --budget-from, the stream is cut where this row's prompt leaves the budget's rest."""
        budget = self.sampling.budget
        if budget.row is None:
            return self.sampling
        row = budget.row.for_prompt(job.fields["prompt"])
        return replace(self.sampling, budget=replace(budget, row=row))

    def _over_budget_before_asking(self, job: Job, why: str) -> None:
        """The prompt alone leaves no room in the student's budget, or is over the GRPO prompt's: no reply could
        make a row the mix keeps, so the teacher is not asked (no tokens spent). Written as a reject, so a resumed
        run does not ask either."""
        record = self._record(job, Reply(content="", reasoning="", finish="cancelled", thinking_closed=False), 0)
        record["reason"] = f"too_long: {why}; the teacher was not asked"
        self.store.write("rejects", record)
        self.tally.rejected["too_long"] += 1

    def _within_row_budget(self, record: dict) -> None:
        """The exact count the mix makes, of the row as it will be written (the stream's count runs a segment
        behind, and the recipe's parse may change the text): a row over the budget is a reject, not a row for the
        mix to drop later."""
        row = self.sampling.budget.row
        if row is None:
            return
        length = row_length(record["prompt"], record.get("reasoning") or "", record["answer"], row.counter)
        if length > row.total:
            raise Reject("too_long", f"the training row is {length:,} {row.counter.unit}, over {row.total:,}")

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
