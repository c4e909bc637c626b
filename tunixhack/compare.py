"""The teacher bake-off: the same N prompts, drawn seeded across the recipes, answered by every teacher.

Each (teacher, recipe) pair is one run of the recipe's own generate.py, exactly as a user runs it, with
`--shuffle --seed S --limit k`: the same seed gives every teacher the same rows. Runs go one after another, so
no teacher's speed is measured while another shares the machine. Outputs land in OUT/<teacher>/<recipe>.jsonl
(re-running the same command resumes them), then one table per teacher: lengths, speed, wall time,
verified share where the recipe can check, and reject reasons; as markdown, JSON and a PNG.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .compare_report import write_report
from .errors import UserError
from .store import read_jsonl, sibling
from .traces import reason_name, write_json

ROOT = Path(__file__).resolve().parent.parent


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


def run_child(cmd: list[str]) -> tuple[int, str]:
    """Run one generate.py, its progress shown live on stderr; return its exit code and its last words."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    tail = b""
    try:
        while chunk := proc.stdout.read1(4096):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            tail = (tail + chunk)[-4000:]
        return proc.wait(), tail.decode(errors="replace")
    except KeyboardInterrupt:
        proc.wait()  # the child got the same Ctrl-C and keeps its finished rows
        raise


def last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1].removeprefix("error:").strip()


def run_all(teachers: list[Teacher], recipes: dict[str, Path], counts: dict[str, int], out: Path, seed: int,
            sources: dict[str, str], splits: dict[str, str], passthrough: list[str]) -> None:
    """Check every recipe's input with --dry-run first (no calls), then run each teacher over each recipe."""
    def command(script: Path, recipe: str, teacher: Teacher, dry: bool) -> list[str]:
        cmd = [sys.executable, str(script), "--teacher", teacher.spec, "--model", teacher.model,
               "--out", str(out / teacher.label / f"{recipe}.jsonl"), "--shuffle", "--seed", str(seed),
               "--limit", str(counts[recipe]), *passthrough]
        cmd += ["--source", sources[recipe]] if recipe in sources else []
        cmd += ["--split", splits[recipe]] if recipe in splits else []
        return cmd + (["--dry-run"] if dry else [])

    for recipe, script in recipes.items():
        if recipe not in counts:
            continue
        result = subprocess.run(command(script, recipe, teachers[0], dry=True), capture_output=True, text=True,
                                cwd=ROOT)
        if result.returncode != 0:
            raise UserError(f"{script.relative_to(ROOT)}: {last_error(result.stderr + result.stdout)}")
    for i, teacher in enumerate(teachers, 1):
        for recipe, script in recipes.items():
            if recipe not in counts:
                continue
            print(f"[{i}/{len(teachers)}] {teacher.model} at {teacher.spec}: {recipe}, {counts[recipe]} prompts",
                  file=sys.stderr, flush=True)
            code, tail = run_child(command(script, recipe, teacher, dry=False))
            if code == 130:
                raise KeyboardInterrupt
            if code not in (0, 1):  # 1: some rows failed after retries; they are counted, not fatal
                raise UserError(f"{script.relative_to(ROOT)} with teacher {teacher.spec} ({teacher.model}) "
                                f"exited {code}: {last_error(tail)}")


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


def compare(teachers, recipes, counts, out: Path, seed: int, counter, sources, splits, passthrough) -> dict:
    run_all(teachers, recipes, counts, out, seed, sources, splits, passthrough)
    names = [r for r in recipes if r in counts]
    checkable = checkable_recipes(teachers, names, out)
    figures = [teacher_figures(t, names, out, counter, checkable) for t in teachers]
    prompts = {r: sorted(row["id"] for row in read_jsonl(out / teachers[0].label / f"{r}.jsonl")
                         + read_jsonl(sibling(out / teachers[0].label / f"{r}.jsonl", "rejects"))) for r in names}
    result = {"seed": seed, "n": sum(counts.values()), "per_recipe": counts, "length_unit": counter.unit,
              "checkable": sorted(checkable), "prompts": prompts, "teachers": figures}
    write_json(out / "compare.json", result)
    write_report(result, out)
    return result
