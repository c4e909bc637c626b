"""The training mix: seeded and reproducible, from trace files to sft.jsonl, rl.jsonl, eval.jsonl and mix.json.

Stages, in order (each removal is written to removed.jsonl with its reason):
  1. failed_verification: rows with verified false (rows that cannot be checked, verified null, stay)
  2. duplicate / near_duplicate: the same prompt, or a MinHash-similar one (tunixhack.dataset.dedup)
  3. contaminated: an n-gram shared with an evaluation set (tunixhack.dataset.decontam)
  4. too_long: the training example (chat prompt + completion) over the budget, in student tokens (or words)
  5. quotas per category (a seeded sample), then per category: eval share, then SFT share of the rest
     (the original project: 20% SFT, 80% GRPO), the rest to RL.
The same inputs and seed give byte-identical outputs: no clock, no hash order, no unseeded randomness.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .decontam import ROW_FIELDS, SHORT_MIN, build_index, decontaminate
from .dedup import MINHASH_SEED, NUM_PERM, SHINGLE, deduplicate, removal
from ..errors import UserError
from ..tokens import MAX_PROMPT_TOKENS, completion_length, prompt_length
from .traces import file_fingerprint, read_traces, write_json, write_jsonl
from ..verify import with_check

OUTPUTS = ("sft.jsonl", "rl.jsonl", "eval.jsonl", "removed.jsonl", "mix.json")


@dataclass
class MixRecipe:
    seed: int = 0
    quotas: dict[str, int] = field(default_factory=dict)  # category -> most rows; absent: all; 0: none
    sft_share: float = 0.2
    eval_share: float = 0.05
    max_tokens: int = 1024        # whole SFT example (train/sft.py --max-len), in the counter's unit
    max_prompt_tokens: int = MAX_PROMPT_TOKENS  # chat prompt with <bos> (train/grpo.py --max-prompt-len): any row may go to RL
    ngram: int = 13
    near_dup_threshold: float = 0.8
    decontaminate: bool = True

    def check(self) -> None:
        for name in ("sft_share", "eval_share"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise UserError(f"{name} must be between 0 and 1, got {value}")
        for name in ("max_tokens", "max_prompt_tokens", "ngram"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.near_dup_threshold <= 1:
            raise UserError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        for category, n in self.quotas.items():
            if not isinstance(n, int) or n < 0:
                raise UserError(f"quota for {category!r} must be a whole number >= 0, got {n!r}")


def parse_quotas(items: list[str]) -> dict[str, int]:
    """--quota CATEGORY=N, repeatable."""
    quotas = {}
    for item in items or []:
        category, sep, n = item.partition("=")
        if not sep or not category or not n.strip().isdigit():
            raise UserError(f"--quota must be CATEGORY=N with N a whole number, got {item!r}")
        quotas[category] = int(n)
    return quotas


def load_config(path: str | None) -> dict:
    """A small JSON or TOML file with MixRecipe's fields, e.g. `seed = 1` and a `[quotas]` table."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise UserError(f"mix config not found: {path}")
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"mix config {path} is not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {e}")
    known = {f.name for f in fields(MixRecipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"mix config {path}: unknown key {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    return data


def make_recipe(config: dict, overrides: dict) -> MixRecipe:
    """Defaults, then the config file, then the flags that were given (None: not given)."""
    values = {**config, **{k: v for k, v in overrides.items() if v is not None}}
    if "quotas" in config and "quotas" in overrides and overrides["quotas"]:
        values["quotas"] = {**config["quotas"], **overrides["quotas"]}
    recipe = MixRecipe(**values)
    recipe.check()
    return recipe


def build_mix(files: list[Path], recipe: MixRecipe, counter, eval_files: dict[str, str], out: Path,
              overwrite: bool = False) -> dict:
    """Run every stage and write the outputs; return mix.json's content."""
    if (out / "mix.json").exists() and not overwrite:
        raise UserError(f"{out} already holds a mix; give another --out or --overwrite")
    rows, inputs = [], []
    for path in files:
        file_rows = [with_check(r) for r in read_traces(path)]  # every row in the mix says how it is checked
        rows.extend(file_rows)
        inputs.append({"path": str(path), "sha256": file_fingerprint(path) if path.exists() else None,
                       "rows": len(file_rows),
                       "fingerprints": dict(sorted(Counter(str(r.get("fingerprint")) for r in file_rows).items()))})
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        counts[row["category"]]["input"] += 1
    unknown = sorted(set(recipe.quotas) - set(counts))
    if unknown:
        raise UserError(f"quota for unknown category {', '.join(unknown)}; the inputs have {', '.join(sorted(counts))}")

    removed = [removal(r, "failed_verification", {}) for r in rows if r["verified"] is False]
    rows = [r for r in rows if r["verified"] is not False]
    rows, dups = deduplicate(rows, recipe.near_dup_threshold)
    removed += dups
    decontam = {"enabled": recipe.decontaminate}
    if recipe.decontaminate:
        index, origins = build_index(recipe.ngram, eval_files)
        rows, dirty = decontaminate(rows, index)
        removed += dirty
        by_set = Counter(r["detail"]["eval_set"] for r in dirty)
        decontam.update(ngram=recipe.ngram, short_text_min_words=SHORT_MIN, row_fields=list(ROW_FIELDS),
                        eval_sets={k: {**v, "rows_removed": by_set[k]} for k, v in origins.items()})
    rows, long_ = length_filter(rows, recipe.max_tokens, recipe.max_prompt_tokens, counter)
    removed += long_
    for r in removed:
        counts[r["category"]][r["stage"]] += 1

    splits = {"sft": [], "rl": [], "eval": []}
    by_category = defaultdict(list)
    for row in rows:
        by_category[row["category"]].append(row)
    for category in sorted(by_category):
        pool = by_category[category]
        counts[category]["available"] = len(pool)
        rng = random.Random(f"{recipe.seed}/{category}")  # str seeds hash with sha512: stable across runs
        drawn = rng.sample(pool, min(len(pool), recipe.quotas.get(category, len(pool))))
        n_eval = round(len(drawn) * recipe.eval_share)
        n_sft = round((len(drawn) - n_eval) * recipe.sft_share)
        parts = {"eval": drawn[:n_eval], "sft": drawn[n_eval : n_eval + n_sft], "rl": drawn[n_eval + n_sft :]}
        for name, part in parts.items():
            splits[name].extend(part)
            counts[category][name] = len(part)
    if not any(splits.values()):
        stages = Counter(r["stage"] for r in removed)
        raise UserError(f"the mix is empty after filtering: {sum(i['rows'] for i in inputs)} rows in, none left "
                        f"({', '.join(f'{k} {v}' for k, v in sorted(stages.items())) or 'quotas 0'})")

    out.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for name, part in splits.items():
        random.Random(f"{recipe.seed}/shuffle/{name}").shuffle(part)
        path = out / f"{name}.jsonl"
        write_jsonl(path, part)
        outputs[name] = {"file": path.name, "rows": len(part), "sha256": file_fingerprint(path)}
    write_jsonl(out / "removed.jsonl", removed)
    summary = {
        "recipe": asdict(recipe),
        "length_unit": counter.unit,
        "inputs": inputs,
        "counts": {c: dict(counts[c]) for c in sorted(counts)},
        "removed": dict(sorted(Counter(r["stage"] for r in removed).items())),
        "deduplication": {"on": "prompt", "shingle_chars": SHINGLE, "num_perm": NUM_PERM, "minhash_seed": MINHASH_SEED,
                          "threshold": recipe.near_dup_threshold},
        "decontamination": decontam,
        "outputs": outputs,
    }
    write_json(out / "mix.json", summary)
    return summary


def length_filter(rows: list[dict], budget: int, prompt_budget: int, counter) -> tuple[list[dict], list[dict]]:
    """Keep the rows the trainers keep: the whole SFT example (chat prompt, completion and, in tokens, <bos> and
    <end_of_turn>) within budget, and the GRPO prompt (chat prompt and <bos>) within prompt_budget."""
    kept, removed = [], []
    for row in rows:
        prompt = prompt_length(row["prompt"], counter)
        whole = prompt + completion_length(row.get("reasoning") or "", row.get("answer") or "", counter)
        if whole > budget:
            removed.append(removal(row, "too_long", {"length": whole, "budget": budget, "unit": counter.unit}))
        elif prompt > prompt_budget:
            removed.append(removal(row, "too_long", {"prompt_length": prompt, "prompt_budget": prompt_budget,
                                                     "unit": counter.unit}))
        else:
            kept.append(row)
    return kept, removed


def summary_table(summary: dict) -> str:
    """A plain-text table of counts per category, for the terminal."""
    columns = ["input", "failed_verification", "duplicate", "near_duplicate", "contaminated", "too_long",
               "available", "sft", "rl", "eval"]
    counts = summary["counts"]
    first = max([len("category"), *map(len, counts)]) + 1
    widths = [max([len(k), *(len(str(c.get(k, 0))) for c in counts.values())]) + 2 for k in columns]
    lines = ["category".ljust(first) + "".join(k.rjust(w) for k, w in zip(columns, widths))]
    for category, c in counts.items():  # whole names: a cut one ("near_duplica") reads as another
        lines.append(category.ljust(first) + "".join(str(c.get(k, 0)).rjust(w) for k, w in zip(columns, widths)))
    return "\n".join(lines)
