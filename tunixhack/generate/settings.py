"""A run's settings: one object, built once from the command line (or by a tool), passed to the engine.

    settings = Settings.from_args(args)            # generate.py's common flags (tunixhack/generate/cli.py)
    outcome = await generate(recipe, settings)     # tunixhack/generate/engine.py; crap.py compare and bench/ call it too
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .store import shard_path
from ..teachers.base import Sampling

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
            sampling=Sampling(args.max_tokens, args.temperature, args.top_p, args.top_k, args.min_p, args.timeout),
            style=args.style, attempts=args.attempts, concurrency=args.concurrency,
            max_concurrency=args.max_concurrency or DEFAULT_MAX_CONCURRENCY, retries=args.retries,
            backoff=args.backoff, verify_workers=args.verify_workers, judge=judge, force=args.force,
            dry_run=args.dry_run,
        )
