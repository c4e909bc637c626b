"""The common flags every generate.py shares, and `run(recipe)`, which drives a recipe from them.

Exit codes: 0 done; 1 rows failed (in the errors file, retried next run) or the teacher went down;
2 bad input or configuration (one line, no traceback); 130 interrupted (finished rows kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .errors import UserError
from .recipe import Recipe
from .router import Router
from .runner import STOP_AFTER_FAILED_ROWS, Generation, TeacherDown, prepare
from .source import is_local, load_rows
from .store import TraceStore
from .teachers import TEACHER_FORMS, make_teacher
from .teachers.base import Sampling

DEFAULTS = Sampling()


def warn(message: str) -> None:
    """A warning on stderr that does not break the progress bar."""
    tqdm.write(message, file=sys.stderr)


def positive(kind=int):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return parse


def build_parser(recipe: Recipe) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(type(recipe).__doc__ or "").strip().splitlines()[0] if type(recipe).__doc__ else None)
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", action="append", metavar="SPEC", help=f"{TEACHER_FORMS} (repeat to spread load; default lmstudio)")
    g.add_argument("--model", default="qwen3-14b", help="model key on the server (default qwen3-14b)")
    g.add_argument("--judge", metavar="SPEC", help="optional LLM judge (same forms as --teacher) for rows with nothing to verify")
    g.add_argument("--judge-model", help="model for the judge (default: --model)")
    g.add_argument("--min-score", type=int, default=6, help="with --judge: reject answers scored below this, 1-10 (default 6)")
    g.add_argument("--style", choices=("native", "written"), default="native",
                   help="native: the teacher's own thinking is the reasoning; written: it writes <reasoning>/<answer> itself")
    g = p.add_argument_group("input")
    g.add_argument("--source", default=recipe.dataset, help=f"HF dataset id or a local .jsonl/.json/.parquet/.csv (default {recipe.dataset})")
    g.add_argument("--config", default=recipe.config, help=f"dataset config (default {recipe.config})")
    g.add_argument("--split", default=recipe.split, help=f"split (default {recipe.split})")
    g.add_argument("--limit", type=positive(), help="only the first N rows (after --shuffle)")
    g.add_argument("--shuffle", action="store_true", help="shuffle rows before --limit (seeded by --seed)")
    g.add_argument("--seed", type=int, default=0, help="seed for --shuffle (default 0)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("data") / f"{recipe.name}.jsonl", help=f"default data/{recipe.name}.jsonl")
    g.add_argument("--force", action="store_true", help="resume even though the prompt, model or sampling changed")
    g.add_argument("--dry-run", action="store_true", help="print the first prompts and call nothing")
    g = p.add_argument_group("throughput and robustness")
    g.add_argument("--concurrency", type=positive(), default=4, help="requests in flight (default 4: LM Studio's parallel slots)")
    g.add_argument("--attempts", type=positive(), default=1, help="teacher calls per row until it verifies (default 1)")
    g.add_argument("--retries", type=int, default=5, help="retries of a failed request (connection, timeout, 429, 5xx; default 5)")
    g.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds, doubled each time (default 1)")
    g.add_argument("--timeout", type=positive(float), default=DEFAULTS.timeout, help=f"seconds per request (default {DEFAULTS.timeout:g})")
    g.add_argument("--verify-workers", type=positive(), default=4, help="parallel verifications (default 4)")
    g = p.add_argument_group("sampling (Qwen3 thinking defaults; never greedy)")
    g.add_argument("--max-tokens", type=positive(), default=DEFAULTS.max_tokens)
    g.add_argument("--temperature", type=float, default=DEFAULTS.temperature)
    g.add_argument("--top-p", type=float, default=DEFAULTS.top_p)
    g.add_argument("--top-k", type=int, default=DEFAULTS.top_k)
    g.add_argument("--min-p", type=float, default=DEFAULTS.min_p)
    g = p.add_argument_group(f"recipe {recipe.name}")
    recipe.add_arguments(g)
    return p


def run(recipe: Recipe, argv: list[str] | None = None) -> None:
    """The whole command line of a generate.py. Never returns: exits with the codes above."""
    args = build_parser(recipe).parse_args(argv)
    try:
        code = asyncio.run(_main(recipe, args))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except BrokenPipeError:  # output piped into `head`: the reader has what it wanted
        sys.stderr.close()
        code = 0
    except KeyboardInterrupt:
        print("interrupted: every finished row is kept; run the same command again to continue", file=sys.stderr)
        code = 130
    sys.exit(code)


def select_rows(recipe: Recipe, args) -> list[tuple[str, dict]]:
    rows = load_rows(args.source, args.config, args.split, recipe.columns,
                     recipe.splits if args.source == recipe.dataset else ())
    keyed = [(recipe.row_id(args.split, row, i), row) for i, row in enumerate(rows)]
    keyed = [(key, row) for key, row in keyed if recipe.keep(row)]
    if args.shuffle:
        random.Random(args.seed).shuffle(keyed)
    return keyed[: args.limit] if args.limit else keyed


async def _main(recipe: Recipe, args) -> int:
    recipe.configure(args)
    for key, value in recipe.describe().items():
        print(f"{key}: {value}", file=sys.stderr)
    sampling = Sampling(args.max_tokens, args.temperature, args.top_p, args.top_k, args.min_p, args.timeout)
    fingerprint = recipe.fingerprint(model=args.model, style=args.style,
                                     sampling={k: v for k, v in sampling.as_dict().items() if k != "timeout"})
    source = {"dataset": args.source, "config": None if is_local(args.source) else args.config, "split": args.split}
    keyed = select_rows(recipe, args)
    ids = [key for key, _ in keyed]
    if len(set(ids)) != len(ids):
        raise UserError(f"row ids are not unique in {args.source}: the recipe's id column repeats")

    store = TraceStore(args.out)
    existing = store.load()
    for path in existing.torn:
        print(f"note: cut a torn last line from {path} (a crash interrupted its writing)", file=sys.stderr)
    others = {fp: n for fp, n in existing.fingerprints.items() if fp != fingerprint}
    if others and not args.force:
        raise UserError(f"{args.out} has {sum(others.values())} rows made with another prompt, model or sampling "
                        f"(fingerprint {', '.join(others)} vs {fingerprint}); use a new --out, or --force to add to it anyway")
    if others:
        print(f"warning: adding rows with fingerprint {fingerprint} to {sum(others.values())} rows made differently",
              file=sys.stderr)

    todo, malformed = [], []
    for key, row in keyed:
        if key in existing.done:
            continue
        try:
            todo.append(prepare(recipe, key, row, args.style))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            malformed.append({"id": key, **source, "reason": f"malformed_row: {type(e).__name__}: {e}", "row": row})

    if args.dry_run:
        for job in todo[:3]:
            print(json.dumps({"id": job.id, "messages": job.messages}, ensure_ascii=False, indent=2))
        print(f"dry run: {len(todo)} rows to send, {len(keyed) - len(todo) - len(malformed)} already done, "
              f"{len(malformed)} malformed; nothing sent")
        return 0

    for record in malformed:
        store.write("rejects", record)
    teachers = [make_teacher(spec, args.model) for spec in (args.teacher or ["lmstudio"])]
    router = Router(teachers, retries=args.retries, backoff=args.backoff, warn=warn)
    judge = judge_router = None
    if args.judge:
        from .judge import Judge

        judge_router = Router([make_teacher(args.judge, args.judge_model or args.model)], retries=args.retries,
                              backoff=args.backoff, warn=warn)
        judge = Judge(judge_router, min_score=args.min_score)
        teachers += [e.teacher for e in judge_router.endpoints]
    generation = Generation(recipe, router, store, sampling=sampling, style=args.style, attempts=args.attempts,
                            concurrency=args.concurrency, verify_workers=args.verify_workers,
                            fingerprint=fingerprint, source=source, judge=judge)
    started = time.monotonic()
    code, stopped = 0, None
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        if todo:
            await asyncio.gather(*(t.check() for t in teachers))
            await generation.run(todo, total=len(keyed), done_before=len(keyed) - len(todo))
    except TeacherDown as e:
        stopped, code = f"stopped: {STOP_AFTER_FAILED_ROWS} rows in a row failed, the teacher seems down; last error: {e}", 1
    except asyncio.CancelledError:
        stopped, code = "interrupted", 130
    finally:
        store.close()
        await asyncio.gather(*(t.close() for t in teachers), return_exceptions=True)
        endpoints = {**router.stats(), **{f"{k} (judge)": v for k, v in (judge_router.stats() if judge else {}).items()}}
        summary = summarise(recipe, args, generation, endpoints, existing, len(keyed), len(malformed), started,
                            fingerprint, stopped)
        store.write_summary(summary)
        print_summary(summary, store)
    if code == 130:
        raise KeyboardInterrupt
    if code == 0 and generation.tally.errors:
        code = 1
    return code


def summarise(recipe, args, generation, endpoints, existing, rows, malformed, started, fingerprint, stopped) -> dict:
    t = generation.tally
    wall = time.monotonic() - started
    rejected = dict(t.rejected)
    if malformed:
        rejected["malformed_row"] = malformed
    return {
        "recipe": recipe.name,
        "out": str(args.out),
        "fingerprint": fingerprint,
        "stopped": stopped,
        "rows": rows,
        "done_before": len(existing.done),
        "accepted": t.accepted,
        "rejected": rejected,
        "errors": t.errors,
        "resampled": t.resampled,
        "tokens": {"prompt": t.prompt_tokens, "completion": t.completion_tokens},
        "wall_seconds": round(wall, 2),
        "rows_per_second": round((t.finished + t.errors) / wall, 3) if wall else None,
        "tokens_per_second": round(t.completion_tokens / wall, 1) if wall else None,
        "endpoints": endpoints,
        **recipe.describe(),
    }


def print_summary(s: dict, store: TraceStore) -> None:
    rejected = ", ".join(f"{k} {v}" for k, v in s["rejected"].items()) or "none"
    lines = [
        f"{s['recipe']}: {s['accepted']} accepted, {sum(s['rejected'].values())} rejected ({rejected}), "
        f"{s['errors']} errors, {s['resampled']} resampled, in {s['wall_seconds']:.1f}s",
        f"  {s['tokens']['completion']:,} tokens generated, {s['tokens_per_second'] or 0:,.1f} tok/s, "
        f"{s['rows_per_second'] or 0:.2f} rows/s",
        f"  rows: {store.paths['main']}  rejects: {store.paths['rejects']}  errors: {store.paths['errors']}",
    ]
    for endpoint, stats in s["endpoints"].items():
        lines.append(f"  {endpoint}: {stats['ok']} ok, {stats['failed']} failed")
    if s["errors"]:
        lines.append(f"  {s['errors']} rows failed; run the same command again to retry them")
    if s["stopped"]:
        lines.append(f"  {s['stopped']}")
    print("\n".join(lines), file=sys.stderr)
