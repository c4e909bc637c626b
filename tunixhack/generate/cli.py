"""The common flags every generate.py shares, and `run(recipe)`, which drives a recipe from them.

The flags become one Settings object (tunixhack/generate/settings.py), handed to the engine (tunixhack/generate/engine.py).
Exit codes: 0 done; 1 rows failed (in the errors file, retried next run) or the teacher went down;
2 bad input or configuration (one line, no traceback); 130 interrupted (finished rows kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .argtypes import concurrency, positive, shard, show_defaults
from .engine import generate
from ..errors import UserError
from ..tokens import MAX_PROMPT_TOKENS
from .recipe import Recipe
from .settings import DEFAULT_MAX_CONCURRENCY, Settings, budget_lines
from .summary import print_summary
from ..teachers import TEACHER_FORMS
from ..teachers.base import Sampling

DEFAULTS = Sampling()


def warn(message: str) -> None:
    """A warning on stderr that does not break the progress bar."""
    tqdm.write(message, file=sys.stderr)


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
    g.add_argument("--shard", type=shard, metavar="K/N",
                   help="this machine's share: the rows whose id hashes to K of N (writes <stem>.shardKofN.jsonl)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("data") / f"{recipe.name}.jsonl", help=f"default data/{recipe.name}.jsonl")
    g.add_argument("--force", action="store_true", help="resume even though the prompt, model or sampling changed")
    g.add_argument("--dry-run", action="store_true", help="print the first prompts and call nothing")
    g = p.add_argument_group("throughput and robustness")
    g.add_argument("--concurrency", type=concurrency, default=None, metavar="N|auto",
                   help="requests in flight per server; auto (default) starts from what the server reports "
                        "(LM Studio's parallel, vLLM) and adapts to its throughput")
    g.add_argument("--max-concurrency", type=positive(), default=None,
                   help=f"ceiling for auto (default {DEFAULT_MAX_CONCURRENCY})")
    g.add_argument("--attempts", type=positive(), default=1, help="teacher calls per row until it verifies (default 1)")
    g.add_argument("--retries", type=int, default=5, help="retries of a failed request (connection, timeout, 429, 5xx; default 5)")
    g.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds, doubled each time (default 1)")
    g.add_argument("--timeout", type=positive(float), default=DEFAULTS.timeout, help=f"seconds per request (default {DEFAULTS.timeout:g})")
    g.add_argument("--verify-workers", type=positive(), default=4, help="parallel verifications (default 4)")
    g = p.add_argument_group("stopping on the stream (a repetition loop is always stopped; no other cut unless set)")
    g.add_argument("--max-reasoning-tokens", type=positive(), metavar="N",
                   help="cancel a reply whose thinking passes N tokens, as too_long (default: no cut)")
    g.add_argument("--max-answer-tokens", type=positive(), metavar="N",
                   help="cancel a reply whose answer passes N tokens, as too_long (default: no cut)")
    g.add_argument("--budget-from", metavar="MIX_SETTINGS|N",
                   help="the student's budget (crap.py mix's max_tokens, SFT's --max-len): a number, a mix folder, "
                        "mix.json or a mix config; cancel a reply once the training row (prompt, thinking and answer, "
                        "counted as the mix counts them) passes it, as too_long: the mix would drop it; from mix "
                        f"settings, a row whose prompt is over their max_prompt_tokens (default {MAX_PROMPT_TOKENS}) is rejected before "
                        "the teacher is asked; a number N sets no prompt cut (default: no cut)")
    g.add_argument("--tokenizer", metavar="PATH",
                   help="with --budget-from: the student's SentencePiece .model or HF tokenizer folder (default: "
                        "Gemma3's from the Hugging Face cache, else words, said so), as crap.py mix --tokenizer")
    g = p.add_argument_group("sampling (Qwen3 thinking defaults; never greedy)")
    g.add_argument("--max-tokens", type=positive(), default=DEFAULTS.max_tokens)
    g.add_argument("--temperature", type=float, default=DEFAULTS.temperature)
    g.add_argument("--top-p", type=float, default=DEFAULTS.top_p)
    g.add_argument("--top-k", type=int, default=DEFAULTS.top_k)
    g.add_argument("--min-p", type=float, default=DEFAULTS.min_p)
    g = p.add_argument_group(f"recipe {recipe.name}")
    recipe.add_arguments(g)
    return show_defaults(p)


def run(recipe: Recipe, argv: list[str] | None = None) -> None:
    """The whole command line of a generate.py. Never returns: exits with the codes above."""
    args = build_parser(recipe).parse_args(argv)
    try:
        recipe.configure(args)
        for key, value in recipe.describe().items():  # named once, at start-up (e.g. the code sandbox)
            print(f"{key}: {value}", file=sys.stderr)
        settings = Settings.from_args(args)
        for line in budget_lines(args, settings.sampling.budget):
            print(line, file=sys.stderr)
        outcome = asyncio.run(generate(recipe, settings, warn=warn))
        code = report(outcome, settings)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except BrokenPipeError:  # output piped into `head`: the reader has what it wanted
        sys.stderr.close()
        code = 0
    except KeyboardInterrupt:
        code = 130
    if code == 130:
        print("interrupted: every finished row is kept; run the same command again to continue", file=sys.stderr)
    sys.exit(code)


def report(outcome, settings: Settings) -> int:
    """Print what the run did: a dry run's first prompts and counts, else the summary."""
    plan = outcome.plan
    if settings.dry_run:
        for job in outcome.preview:
            print(json.dumps({"id": job.id, "messages": job.messages}, ensure_ascii=False, indent=2))
        shard = f" (shard {settings.selection.shard[0]}/{settings.selection.shard[1]})" if settings.selection.shard else ""
        print(f"dry run: {plan.total} rows selected{shard}: {len(plan.todo)} to send, {plan.done} already done "
              f"(malformed rows are rejected when the run reaches them); nothing sent")
        return outcome.code
    print_summary(outcome.summary)
    row = settings.sampling.budget.row
    if row:
        print(f"--budget-from counted lengths in {row.counter.unit}: rows over {row.total:,} rejected as too_long",
              file=sys.stderr)
    return outcome.code
