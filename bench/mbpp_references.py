"""How many MBPP reference solutions pass the code check (tunixhack/verify/code.py), and why the others fail.

The check splits each assert into calls run in the sandbox and a comparison made outside it, on values that
must be plain data: this measures what that costs on the real dataset (test_list and challenge_test_list,
the setup code and the sanitized config's test_imports).

    .venv/bin/python bench/mbpp_references.py                                  # the Hub: full, all splits
    .venv/bin/python bench/mbpp_references.py --source mbpp.jsonl --source sanitized-mbpp.json
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

from tunixhack.generate.source import load_rows
from tunixhack.verify.code import available_levels, force_isolation, isolation, set_max_parallel, verify_many

SPLITS = ("train", "test", "validation", "prompt")


def rows_of(source: str, config: str) -> list[dict]:
    if os.path.exists(source):
        return load_rows(source, None, "train")
    return [row for split in SPLITS for row in load_rows(source, config, split)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", help="HF dataset id or local file (repeatable; default "
                        "google-research-datasets/mbpp)")
    parser.add_argument("--config", default="full", help="config of a Hub dataset (default full)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--isolation", choices=available_levels(), help="a weaker level than the machine's best")
    args = parser.parse_args()
    force_isolation(args.isolation)
    set_max_parallel(args.workers)
    print(f"isolation {isolation()}, {args.workers} workers, {os.cpu_count()} CPUs")
    for source in args.source or ["google-research-datasets/mbpp"]:
        rows = rows_of(source, args.config)
        items = [{"code": row["code"], "tests": list(row["test_list"]) + list(row.get("challenge_test_list") or []),
                  "setup": row.get("test_setup_code") or "", "imports": list(row.get("test_imports") or []),
                  "reference": row["code"],
                  "timeout": 20.0} for row in rows]
        started = time.perf_counter()
        results = verify_many(items, workers=args.workers)
        wall = time.perf_counter() - started
        passed = sum(r.passed for r in results)
        print(f"{source}: {passed}/{len(rows)} pass ({passed / len(rows):.1%}) in {wall:.1f}s; "
              f"{dict(Counter(r.reason for r in results))}")
        for row, result in zip(rows, results):
            if not result.passed:
                last = result.output.strip().splitlines()[-1:] or [""]
                print(f"  task {row['task_id']}: {result.reason}: {last[0][:160]}")


if __name__ == "__main__":
    main()
