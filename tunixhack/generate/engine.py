"""The one entry point of generation: `await generate(recipe, settings)`.

generate.py (tunixhack/generate/cli.py), `crap.py compare` and bench/throughput.py all call it. It plans the rows
(tunixhack/generate/rows.py), checks the teachers before anything is written, runs the recipe over what is left, and
writes the summary. Bad input raises UserError before anything starts (and before any summary); once the run
has started, every way it ends (done, rows failed, teacher down, interrupted) comes back as an Outcome, with its
summary written beside the output.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field

from ..teachers.concurrency import START_UNKNOWN, AdaptiveLimit, FixedLimit
from ..errors import UserError
from .recipe import Recipe
from ..teachers.router import Router
from .rows import Plan, make_plan
from .runner import ROW_ERRORS, STOP_AFTER_FAILED_ROWS, Generation, Stamp, TeacherDown, prepare
from .settings import Settings
from .source import is_local
from .store import Existing, TraceStore
from .summary import summarise
from ..teachers import make_teacher

PREVIEW_ROWS = 3  # prompts a dry run shows


@dataclass
class Outcome:
    """How a run ended. code: 0 done; 1 some rows failed (in the errors file) or the teacher went down;
    130 interrupted. summary: what summary.json holds (None for a dry run). preview: a dry run's first jobs."""

    code: int
    summary: dict | None = None
    preview: list = field(default_factory=list)
    plan: Plan | None = None


async def generate(recipe: Recipe, settings: Settings, warn=print) -> Outcome:
    """Run `recipe` as `settings` say. `recipe.configure(args)` has been called by whoever parsed its flags."""
    fingerprint = recipe.fingerprint(model=settings.model, style=settings.style,
                                     sampling={k: v for k, v in settings.sampling.as_dict().items() if k != "timeout"})
    selection = settings.selection
    stamp = Stamp(fingerprint, {"dataset": selection.source,
                                "config": None if is_local(selection.source) else selection.config,
                                "split": selection.split})
    store = TraceStore(settings.outputs)
    existing = store.load()
    for path in existing.torn:
        warn(f"note: cut a torn last line from {path} (a crash interrupted its writing)")
    check_fingerprints(existing, fingerprint, settings, warn)
    plan = make_plan(recipe, selection, existing.done)
    if settings.dry_run:
        return Outcome(0, preview=preview(recipe, plan, settings.style), plan=plan)

    teachers, routers = await connect(settings, plan, warn)
    judge = None
    if settings.judge:
        from ..verify.judge import Judge

        judge = Judge(routers["judge"], min_score=settings.judge.min_score)
    generation = Generation(recipe, settings, routers["teacher"], store, stamp, judge)
    code, stopped = 0, "failed: see the error printed with it"  # unless the run ends one of the ways below
    started = time.monotonic()
    undo_signal = cancel_on_sigterm()
    try:
        if len(plan.todo):
            await generation.run(plan)
        stopped = None
    except TeacherDown as e:
        stopped, code = f"stopped: {STOP_AFTER_FAILED_ROWS} rows in a row failed, the teacher seems down; last error: {e}", 1
    except asyncio.CancelledError:
        stopped, code = "interrupted", 130
    finally:  # once the run has started, a summary is written however it ends
        undo_signal()
        store.close()
        await asyncio.gather(*(t.close() for t in teachers), return_exceptions=True)
        endpoints = {**routers["teacher"].stats(),
                     **{f"{k} (judge)": v for k, v in (routers["judge"].stats() if judge else {}).items()}}
        summary = summarise(recipe.name, store, generation.tally, plan, existing,
                            {"fingerprint": fingerprint, "stopped": stopped, "endpoints": endpoints,
                             "wall_seconds": time.monotonic() - started, "shard": selection.shard})
        summary.update(recipe.describe())
        store.write_summary(summary)
    if code == 0 and generation.tally.errors:
        code = 1
    return Outcome(code, summary, plan=plan)


def check_fingerprints(existing: Existing, fingerprint: str, settings: Settings, warn) -> None:
    others = {fp: n for fp, n in existing.fingerprints.items() if fp != fingerprint}
    out = settings.outputs
    if others and not settings.force:
        raise UserError(f"{out} has {sum(others.values())} rows made with another prompt, model or sampling "
                        f"(fingerprint {', '.join(map(str, others))} vs {fingerprint}); use a new --out, or --force "
                        "to add to it anyway")
    if others:
        warn(f"warning: adding rows with fingerprint {fingerprint} to {sum(others.values())} rows made differently")


def preview(recipe: Recipe, plan: Plan, style: str) -> list:
    """The first rows' jobs as they would be sent (malformed ones skipped: the run would reject them)."""
    jobs = []
    for key, row in plan.rows():
        try:
            jobs.append(prepare(recipe, key, row, style))
        except ROW_ERRORS:
            continue
        if len(jobs) == PREVIEW_ROWS:
            break
    return jobs


async def connect(settings: Settings, plan: Plan, warn) -> tuple[list, dict[str, Router]]:
    """Make and check the teachers (and the judge's) before the run: a bad setup fails in one line, with no
    summary. Nothing is contacted when every row is done already."""
    teachers = [make_teacher(spec, settings.model) for spec in settings.teachers]
    judges = [make_teacher(settings.judge.spec, settings.judge.model)] if settings.judge else []
    try:
        if len(plan.todo):
            await asyncio.gather(*(t.check() for t in teachers + judges))
        limits = [await limit_for(t, settings) for t in teachers] if len(plan.todo) else None
    except BaseException:
        await asyncio.gather(*(t.close() for t in teachers + judges), return_exceptions=True)
        raise
    routers = {"teacher": Router(teachers, settings.retries, settings.backoff, warn, limits or
                                 [FixedLimit(settings.concurrency or START_UNKNOWN) for _ in teachers]),
               "judge": Router(judges, settings.retries, settings.backoff, warn)}
    return teachers + judges, routers


async def limit_for(teacher, settings: Settings):
    """--concurrency N: N. auto: start from what the server reports, else START_UNKNOWN, and adapt; never above
    the slots a server says it has (LM Studio's parallel): requests beyond them only wait in its queue."""
    if settings.concurrency is not None:
        return FixedLimit(settings.concurrency)
    reported = await teacher.reported_parallel()
    slots = getattr(teacher, "reported_slots", None)
    return AdaptiveLimit(reported or START_UNKNOWN, min(settings.max_concurrency, slots or settings.max_concurrency))


def cancel_on_sigterm():
    """SIGTERM ends the run as Ctrl-C does: finished rows kept, summary written. Returns how to undo it."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or no signals here
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGTERM)
