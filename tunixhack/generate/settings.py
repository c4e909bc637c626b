"""A run's settings: one object, built once from the command line (or by a tool), passed to the engine.

    settings = Settings.from_args(args)            # generate.py's common flags (tunixhack/generate/cli.py)
    outcome = await generate(recipe, settings)     # tunixhack/generate/engine.py; crap.py compare and bench/ call it too
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import UserError
from .store import shard_path
from ..teachers.base import Sampling
from ..teachers.watch import Budget, RowBudget
from ..tokens import MAX_PROMPT_TOKENS, student_counter

DEFAULT_MAX_CONCURRENCY = 256  # vLLM's default batch; LM Studio and small servers settle far below


@dataclass(frozen=True)
class Selection:
    """Which rows: the split, then --shuffle/--seed, then --limit, then this machine's --shard."""

    source: str
    config: str | None = None
    split: str = "train"
    limit: int | None = None
    shuffle: bool = False
    seed: int = 0
    shard: tuple[int, int] | None = None   # (K, N): rows whose id hashes to K of N


@dataclass(frozen=True)
class JudgeSettings:
    spec: str
    model: str
    min_score: int = 6


@dataclass(frozen=True)
class Settings:
    selection: Selection
    out: Path = Path("data/out.jsonl")       # as given; with --shard the files are named per shard (outputs)
    teachers: tuple[str, ...] = ("lmstudio",)
    model: str = "qwen3-14b"
    sampling: Sampling = field(default_factory=Sampling)
    style: str = "native"
    attempts: int = 1
    concurrency: int | None = None           # per endpoint; None: auto
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retries: int = 5
    backoff: float = 1.0
    verify_workers: int = 4
    judge: JudgeSettings | None = None
    force: bool = False
    dry_run: bool = False

    @property
    def outputs(self) -> Path:
        """The main output file of this run: --out, or for shard K of N <stem>.shardKofN.jsonl beside it, so
        that every machine's files can be copied into one folder."""
        return shard_path(self.out, self.selection.shard)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_args(cls, args) -> "Settings":
        """From generate.py's parsed flags (tunixhack/generate/cli.py: build_parser)."""
        if args.concurrency is not None and args.max_concurrency is not None and args.concurrency > args.max_concurrency:
            raise UserError(f"--concurrency {args.concurrency} is above --max-concurrency {args.max_concurrency}; "
                            "give one or the other")
        judge = JudgeSettings(args.judge, args.judge_model or args.model, args.min_score) if args.judge else None
        return cls(
            selection=Selection(args.source, args.config, args.split, args.limit, args.shuffle, args.seed, args.shard),
            out=Path(args.out), teachers=tuple(args.teacher or ["lmstudio"]), model=args.model,
            sampling=Sampling(args.max_tokens, args.temperature, args.top_p, args.top_k, args.min_p, args.timeout,
                              budget=budget_of(args)),
            style=args.style, attempts=args.attempts, concurrency=args.concurrency,
            max_concurrency=args.max_concurrency or DEFAULT_MAX_CONCURRENCY, retries=args.retries,
            backoff=args.backoff, verify_workers=args.verify_workers, judge=judge, force=args.force,
            dry_run=args.dry_run,
        )


def budget_of(args) -> Budget:
    """--max-reasoning-tokens, --max-answer-tokens (the teacher's tokens) and --budget-from (the student's unit,
    counted by --tokenizer's counter, as crap.py mix counts it) as one Budget (None where not given)."""
    row = None
    if args.budget_from:
        student = student_budget(args.budget_from)
        row = RowBudget(student.total, student_counter(args.tokenizer),
                        ("answer",) if args.style == "written" else ("reasoning", "answer"), prompt_total=student.prompt)
    return Budget(args.max_reasoning_tokens, args.max_answer_tokens, row)


def budget_lines(args, budget: Budget) -> list[str]:
    """What a run with --budget-from says at start-up: the unit it counts in, and whether the mix counted in another."""
    row = budget.row
    if row is None:
        return []
    lines = [f"budget: the training row (prompt, thinking and answer) within {row.total:,} {row.counter.unit}, "
             "as crap.py mix counts it; --max-reasoning-tokens/--max-answer-tokens count the teacher's tokens"]
    if row.prompt_total is not None:
        lines.append(f"budget: a row whose prompt is over {row.prompt_total:,} {row.counter.unit} (the mix's "
                     "max_prompt_tokens) is rejected as too_long before the teacher is asked")
    if row.counter.note:
        lines.append(row.counter.note)
    mix_unit = student_budget(args.budget_from).unit
    if mix_unit and mix_unit != row.counter.unit:
        lines.append(f"warning: the mix counted lengths in {mix_unit}, this run counts in {row.counter.unit}: rows cut "
                     "or kept here may not be the mix's; give --tokenizer the mix's tokenizer")
    return lines


class StudentBudget(NamedTuple):
    total: int            # the whole training row: the mix's max_tokens, SFT's --max-len
    prompt: int | None    # the GRPO prompt: the mix's max_prompt_tokens (None for a number: no prompt cut)
    unit: str | None      # the unit the mix counted lengths in, where it says


def student_budget(text: str) -> StudentBudget:
    """--budget-from: a number, or the mix settings it comes from: a mix folder or its mix.json (the recipe's
    max_tokens and max_prompt_tokens, and the length_unit the mix counted in), or a mix config file (.json or
    .toml with max_tokens), as `crap.py mix --config` reads. A file without max_prompt_tokens gets the mix's
    default, as `crap.py mix` does (mix.json writes every setting of its recipe, so there it is always given)."""
    if text.strip().isdigit() and int(text) > 0:
        return StudentBudget(int(text), None, None)
    path = Path(text)
    if path.is_dir():
        path = path / "mix.json"
    allowed = "a number > 0, a mix folder, its mix.json, or a mix config (.json/.toml) with max_tokens"
    if not path.is_file():
        raise UserError(f"--budget-from must be {allowed}; {text!r} is none of these")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--budget-from {text}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({e})")
    data = data if isinstance(data, dict) else {}
    recipe = data.get("recipe") or data
    budget, prompt = recipe.get("max_tokens"), recipe.get("max_prompt_tokens", MAX_PROMPT_TOKENS)
    if not isinstance(budget, int) or budget <= 0:
        raise UserError(f"--budget-from {text}: no max_tokens (a whole number > 0) in it; give {allowed}")
    if not isinstance(prompt, int) or prompt <= 0:
        raise UserError(f"--budget-from {text}: max_prompt_tokens must be a whole number > 0, got {prompt!r}")
    return StudentBudget(budget, prompt, data.get("length_unit"))
