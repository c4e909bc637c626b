"""Draw the curves of several training runs side by side, one column per run (from their metrics.jsonl).

    python train/plot.py runs/sft runs/grpo --out runs/curves.png
    python train/plot.py runs/sft-lr2e-4 runs/sft-lr1e-3 --out lr.png

SFT columns show the loss (and the holdout's eval_loss) and the learning rate; GRPO columns each reward's mean,
the KL to the reference and the completion length. Each run also gets its own curves.png when a stage ends.
Needs no JAX: it reads the run folders only.
"""

from __future__ import annotations

import argparse
import sys

from tunixhack.errors import UserError
from tunixhack.generate.argtypes import show_defaults
from tunixhack.train import plots, runs


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders of train/sft.py or train/grpo.py")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the chart to write")
    return show_defaults(p).parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.out.lower().endswith(".png"):
        raise UserError(f"--out must name a .png file, got {args.out!r}")
    print(f"written: {plots.side_by_side(args.runs, args.out)}", file=sys.stderr)


if __name__ == "__main__":
    runs.cli(main)
