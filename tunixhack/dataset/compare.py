"""The teacher bake-off: the same N prompts, drawn seeded across the recipes, answered by every teacher.

Each (teacher, recipe) pair is one run of the recipe through the generation engine, with the recipe script's
own flags, exactly as `generate.py --shuffle --seed S --limit k` runs it: the same seed gives every teacher
the same rows. Runs go one after another, so no teacher's speed is measured while another shares the machine.
Outputs land in OUT/<teacher>/<recipe>.jsonl (re-running the same command resumes them), then one table per
teacher: lengths, speed, wall time, verified share where the recipe can check, and reject reasons; as
markdown, JSON and a PNG.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compare_report import write_report
from ..errors import UserError
from ..generate.offline import HubUnreachable, all_unreachable
from ..generate.scripts import load_recipe
from ..generate.store import read_jsonl, sibling
from .traces import reason_name, write_json


ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Teacher:
    spec: str
    model: str

    @property
    def label(self) -> str:
        """A folder name that stays the same between runs, so a re-run resumes instead of starting over."""
        where = re.sub(r"^[a-z]+://", "", self.spec).rstrip("/")
        return re.sub(r"[^\w.@-]+", "_", f"{self.model}@{where}")


def discover_recipes(root: Path = ROOT) -> dict[str, Path]:
    """Recipe folder name -> its generate script (every <folder>/generate*.py; Databricks names its own)."""
    found = {}
    for script in sorted(root.glob("*/generate*.py")):
        found.setdefault(script.parent.name, script)
    return found


def pick_recipes(names: list[str] | None, available: dict[str, Path]) -> dict[str, Path]:
    if not names:
        return available
    by_lower = {k.lower(): k for k in available}
    chosen = {}
    for name in names:
        key = by_lower.get(name.lower())
        if key is None:
            raise UserError(f"--recipe must be one of {', '.join(available)}, got {name!r}")
        chosen[key] = available[key]
    return chosen


def pair_teachers(specs: list[str], models: list[str] | None) -> list[Teacher]:
    if not specs or len(specs) < 2:
        raise UserError("compare needs at least two --teacher (the same server twice with two --model is fine)")
    models = models or ["qwen3-14b"]
    if len(models) == 1:
        models = models * len(specs)
    if len(models) != len(specs):
        raise UserError(f"give one --model for all teachers or one per --teacher: {len(specs)} teachers, "
                        f"{len(models)} models")
    teachers = [Teacher(s, m) for s, m in zip(specs, models)]
    if len({t.label for t in teachers}) != len(teachers):
        raise UserError("two --teacher with the same server and model: nothing to compare")
    return teachers


def shares(n: int, recipes: list[str]) -> dict[str, int]:
    """N prompts spread evenly over the recipes (the first ones take the remainder); none gets zero if N allows."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    base, extra = divmod(n, len(recipes))
    return {r: base + (i < extra) for i, r in enumerate(recipes) if base + (i < extra) > 0}


def parse_keyed(items: list[str] | None, flag: str, recipes: dict[str, Path]) -> dict[str, str]:
    """--source RECIPE=VALUE (repeatable)."""
    out = {}
    by_lower = {k.lower(): k for k in recipes}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or name.lower() not in by_lower:
            raise UserError(f"{flag} must be RECIPE=VALUE with RECIPE in {', '.join(recipes)}, got {item!r}")
        out[by_lower[name.lower()]] = value
    return out


def run_recipe(script: Path, argv: list[str]):
    """One recipe run in this process, through the engine, from the recipe script's own command line."""
    from ..generate.cli import build_parser, report, warn
    from ..generate.engine import generate
    from ..generate.settings import Settings

    recipe = load_recipe(script, "tunixhack_recipe_" + re.sub(r"\W", "_", f"{script.parent.name}_{script.stem}"))
    args = build_parser(recipe).parse_args(argv)
    recipe.configure(args)
    settings = Settings.from_args(args)
    outcome = asyncio.run(generate(recipe, settings, warn=warn))
    if not settings.dry_run:
        report(outcome, settings)
    return outcome


@dataclass
class Bakeoff:
    """One bake-off: who answers, which recipes with how many prompts each, and how every recipe is run."""

    teachers: list[Teacher]
    recipes: dict[str, Path]
    counts: dict[str, int]              # prompts per recipe (a recipe without any is not run)
    out: Path
    seed: int = 0
    inputs: dict = field(default_factory=dict)        # {"source": {recipe: id or path}, "split": {recipe: split}}
    passthrough: list[str] = field(default_factory=list)  # flags for every recipe: ["--concurrency", "8"]


def run_all(b: Bakeoff) -> None:
    """Check every recipe's input with a dry run first (no calls), then run each teacher over each recipe."""
    teachers, recipes, counts, out = b.teachers, b.recipes, b.counts, b.out

    def argv(recipe: str, teacher: Teacher, dry: bool) -> list[str]:
        flags = ["--teacher", teacher.spec, "--model", teacher.model,
                 "--out", str(out / teacher.label / f"{recipe}.jsonl"), "--shuffle", "--seed", str(b.seed),
                 "--limit", str(counts[recipe]), *b.passthrough]
        for flag, chosen in b.inputs.items():
            flags += [f"--{flag}", chosen[recipe]] if recipe in chosen else []
        return flags + (["--dry-run"] if dry else [])

    chosen = {recipe: script for recipe, script in recipes.items() if recipe in counts}
    unreachable = []
    for recipe, script in chosen.items():
        try:
            run_recipe(script, argv(recipe, teachers[0], dry=True))
        except HubUnreachable as e:  # go on: one error names every recipe that needs a local copy
            unreachable.append((recipe, e))
        except UserError as e:
            raise UserError(f"{script.relative_to(ROOT)}: {e}") from None
    if unreachable:
        raise all_unreachable([e for _, e in unreachable], [f"--source {recipe}=PATH" for recipe, _ in unreachable])
    for i, teacher in enumerate(teachers, 1):
        for recipe, script in chosen.items():
            print(f"[{i}/{len(teachers)}] {teacher.model} at {teacher.spec}: {recipe}, {counts[recipe]} prompts",
                  file=sys.stderr, flush=True)
            try:
                outcome = run_recipe(script, argv(recipe, teacher, dry=False))
            except UserError as e:
                raise UserError(f"{script.relative_to(ROOT)} with teacher {teacher.spec} ({teacher.model}): {e}") from None
            if outcome.code == 130:
                raise KeyboardInterrupt
            # code 1: some rows failed after retries; they are counted, not fatal


def teacher_figures(teacher: Teacher, recipes: list[str], out: Path, counter, checkable: set[str]) -> dict:
    rows, rejects, errors, wall, reasoning, answer, completion, speeds = [], [], 0, 0.0, [], [], [], []
    by_recipe = {}
    for recipe in recipes:
        path = out / teacher.label / f"{recipe}.jsonl"
        main, bad = read_jsonl(path), read_jsonl(sibling(path, "rejects"))
        failed = {r.get("id") for r in read_jsonl(sibling(path, "errors"))} - {r.get("id") for r in main + bad}
        summary_path = sibling(path, "summary")
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        rows += main
        rejects += bad
        errors += len(failed)
        wall += summary.get("wall_seconds") or 0
        for r in main + bad:
            usage = r.get("usage") or {}
            if usage.get("tokens_per_second"):
                speeds.append(usage["tokens_per_second"])
            if usage.get("completion_tokens"):
                completion.append(usage["completion_tokens"])
        reasoning += [counter.count(r.get("reasoning") or "") for r in main]
        answer += [counter.count(r.get("answer") or "") for r in main]
        answered = len(main) + len(bad)
        by_recipe[recipe] = {"rows": len(main), "rejects": len(bad), "errors": len(failed),
                             "verified_rows": sum(r.get("verified") is True for r in main), "answered": answered,
                             "verified": (sum(r.get("verified") is True for r in main) / answered
                                          if recipe in checkable and answered else None),
                             "wall_seconds": summary.get("wall_seconds")}
    checked = [v for k, v in by_recipe.items() if k in checkable]
    answered_checkable = sum(v["answered"] for v in checked)
    verified = sum(v["verified_rows"] for v in checked)
    return {
        "teacher": teacher.spec, "model": teacher.model, "label": teacher.label,
        "rows": len(rows), "rejects": len(rejects), "errors": errors,
        "reasoning_mean": mean(reasoning), "reasoning_median": median(reasoning),
        "answer_mean": mean(answer), "answer_median": median(answer),
        "completion_tokens_mean": mean(completion), "tokens_per_second_median": median(speeds),
        "wall_seconds": round(wall, 1),
        "verified_share": verified / answered_checkable if answered_checkable else None,
        "reject_reasons": dict(Counter(reason_name(r) for r in rejects).most_common()),
        "by_recipe": by_recipe,
    }


def mean(values) -> float | None:
    return round(float(np.mean(values)), 1) if values else None


def median(values) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def checkable_recipes(teachers: list[Teacher], recipes: list[str], out: Path) -> set[str]:
    """Recipes whose rows can be checked: some teacher's row was verified true or false."""
    found = set()
    for teacher in teachers:
        for recipe in recipes:
            path = out / teacher.label / f"{recipe}.jsonl"
            if any(r.get("verified") is not None for r in read_jsonl(path) + read_jsonl(sibling(path, "rejects"))):
                found.add(recipe)
    return found


def compare(b: Bakeoff, counter) -> dict:
    run_all(b)
    teachers, recipes, counts, out, seed = b.teachers, b.recipes, b.counts, b.out, b.seed
    names = [r for r in recipes if r in counts]
    checkable = checkable_recipes(teachers, names, out)
    figures = [teacher_figures(t, names, out, counter, checkable) for t in teachers]
    prompts = {r: sorted(row["id"] for row in read_jsonl(out / teachers[0].label / f"{r}.jsonl")
                         + read_jsonl(sibling(out / teachers[0].label / f"{r}.jsonl", "rejects"))) for r in names}
    # what each teacher really got: a small source gives fewer prompts than --n asked for
    result = {"seed": seed, "n": sum(map(len, prompts.values())), "asked": sum(counts.values()),
              "per_recipe": {r: len(prompts[r]) for r in names}, "length_unit": counter.unit,
              "checkable": sorted(checkable), "prompts": prompts, "teachers": figures}
    write_json(out / "compare.json", result)
    write_report(result, out)
    return result
