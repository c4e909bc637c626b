"""How many MBPP reference solutions pass the code check (tunixhack/verify/code.py), and why the others fail.

The check splits each assert into calls run in the sandbox and a comparison made outside it, on values that
must be plain data: this measures what that costs on the real dataset (test_list and challenge_test_list,
the setup code and the sanitized config's test_imports).

    .venv/bin/python bench/mbpp_references.py                                  # the Hub: full, all splits
    .venv/bin/python bench/mbpp_references.py --source mbpp.jsonl --source sanitized-mbpp.json
"""

from __future__ import annotations

import argparse
import ast
import os
import time
from collections import Counter

from tunixhack.generate.source import load_rows
from tunixhack.verify.code import available_levels, force_isolation, isolation, set_max_parallel, verify_many
from tunixhack.verify.code_names import import_namespace, reference_imports
from tunixhack.verify.code_probes import BUILTINS, Unsplittable, plan_tests
from tunixhack.verify.code_values import MIN_INT_BITS

SPLITS = ("train", "test", "validation", "prompt")


def rows_of(source: str, config: str) -> list[dict]:
    if os.path.exists(source):
        return load_rows(source, None, "train")
    return [row for split in SPLITS for row in load_rows(source, config, split)]


RULES = {  # what each judge rule (tunixhack/verify/code_probes.py) does to an assert, in the table's order
    "unsplittable_test": "cannot be split: fails the check",
    "builtin kept real": "calls a builtin outside its probes (`set(...)`, `abs(...)`), the real one",
    "builtin under test": "a builtin name the program defines is the function under test (MBPP 126)",
    "name from test imports": "a name the row's test_imports bind",
    "stdlib module": "`math.isclose` and the like with no test import: imported from the standard library",
    "stdlib name": "a bare name (`Counter`, `pi`) from the standard library",
    "name from the reference": "an import of the row's reference solution",
    "conversion in sandbox": "a probe inside set()/sorted()/list()...: applied in the sandbox",
    "probe as argument": "another call's value passed as an argument (`f([Pair(5, 24)])`), kept there",
    "builtin type argument": "a builtin type passed as an argument (MBPP 533's `int`)",
    "int cap above floor": f"the test's literals raise the int cap past {MIN_INT_BITS} bits",
}


def rules_touched(row: dict, test: str) -> set[str]:
    """The judge rules one assert of `row` touches, planned as a check would plan it (no sandbox)."""
    imports = tuple(row.get("test_imports") or ())
    try:
        plan = plan_tests([test], row.get("test_setup_code") or "", imports, program=row["code"],
                          reference=row["code"])
    except Unsplittable:
        return {"unsplittable_test"}
    touched = set()
    condition = ast.parse(test.strip()).body[0].test
    probed = {probe.function for probe in plan.probes}
    called = {n.func.id for n in ast.walk(condition) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    if (called & BUILTINS) - probed - {p.wrapper for p in plan.probes}:
        touched.add("builtin kept real")
    if probed & BUILTINS:
        touched.add("builtin under test")
    if {n.id for n in ast.walk(condition) if isinstance(n, ast.Name)} & set(import_namespace(imports)):
        touched.add("name from test imports")
    from_reference = set(reference_imports(row["code"]).values())
    for line in plan.imports[len(imports):]:
        touched.add("name from the reference" if line in from_reference else
                    "stdlib module" if line.startswith("import ") else "stdlib name")
    if any(p.wrapper for p in plan.probes):
        touched.add("conversion in sandbox")
    if any(not p.sent for p in plan.probes):
        touched.add("probe as argument")
    if any(tag == "b" for p in plan.probes for tag, _ in _nodes(p.args or ())):
        touched.add("builtin type argument")
    if plan.int_bits > MIN_INT_BITS:
        touched.add("int cap above floor")
    return touched


def _nodes(nodes):
    for tag, body in nodes:
        yield tag, body
        if tag in ("l", "t", "s"):
            yield from _nodes(body)
        elif tag == "d":
            yield from _nodes([n for pair in body for n in pair])


def rule_table(rows: list[dict]) -> Counter:
    counts = Counter()
    for row in rows:
        for test in list(row["test_list"]) + list(row.get("challenge_test_list") or []):
            counts["asserts"] += 1
            counts.update(rules_touched(row, test))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", help="HF dataset id or local file (repeatable; default "
                        "google-research-datasets/mbpp)")
    parser.add_argument("--config", default="full", help="config of a Hub dataset (default full)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--isolation", choices=available_levels(), help="a weaker level than the machine's best")
    parser.add_argument("--rules-only", action="store_true", help="only count the asserts each rule touches")
    args = parser.parse_args()
    force_isolation(args.isolation)
    set_max_parallel(args.workers)
    print(f"isolation {isolation()}, {args.workers} workers, {os.cpu_count()} CPUs")
    for source in args.source or ["google-research-datasets/mbpp"]:
        rows = rows_of(source, args.config)
        counts = rule_table(rows)
        print(f"{source}: {counts['asserts']} asserts; how many each judge rule touches:")
        for rule, what in RULES.items():
            print(f"  {counts[rule]:>5}  {rule}: {what}")
        if args.rules_only:
            continue
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
