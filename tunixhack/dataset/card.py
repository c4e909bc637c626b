"""The dataset card (README.md) of a published trace dataset: licences, size, tasks and provenance.

Everything in it is read from the rows and, for a mix, from its mix.json: the teacher, its sampling, the
prompt versions (fingerprints), counts, verification yields and the decontamination results.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

# Source dataset -> (Hub licence id, as the source states it). Rows keep their source in `dataset`.
LICENSES = {
    "openai/gsm8k": ("mit", "MIT"),
    "allenai/sciq": ("cc-by-nc-3.0", "CC BY-NC 3.0"),
    "Wanfq/Explore_Instruct_Brainstorming_10k": ("cc-by-nc-4.0", "CC BY-NC 4.0"),
    "Wanfq/Explore_Instruct_Rewriting_10k": ("cc-by-nc-4.0", "CC BY-NC 4.0"),
    "google-research-datasets/mbpp": ("cc-by-4.0", "CC BY 4.0"),
    "Muennighoff/mbpp": ("cc-by-4.0", "CC BY 4.0"),
    "databricks/databricks-dolly-15k": ("cc-by-sa-3.0", "CC BY-SA 3.0"),
    "sam-paech/essays-creative-writing-prompts": ("unknown", "not stated by the source"),
}
UNKNOWN = ("unknown", "not known: check the source before reuse")
STAGES = ("failed_verification", "duplicate", "near_duplicate", "contaminated", "too_long")
QA_CATEGORIES = {"math", "science", "open_qa", "closed_qa", "general_qa", "code"}


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def teacher_key(row: dict) -> tuple[str, str]:
    teacher = row.get("teacher")
    if not isinstance(teacher, dict):
        return ("unknown", str(teacher or "unknown"))
    return (str(teacher.get("backend") or "unknown"), str(teacher.get("model") or "unknown"))


def sampling_of(row: dict) -> str:
    teacher = row.get("teacher") if isinstance(row.get("teacher"), dict) else {}
    sampling = teacher.get("sampling")
    if sampling is None:  # the parameters may sit beside backend/model instead of under "sampling"
        sampling = {k: v for k, v in teacher.items() if k not in ("backend", "model", "endpoint")}
    return json.dumps(sampling, sort_keys=True) if sampling else "unknown"


def render_card(repo_id: str, splits: dict[str, list[dict]], mix: dict | None, rejects: dict[str, Counter],
                json_columns: list[str], split_bytes: dict[str, int] | None = None,
                data_files: str = "data/{split}.jsonl", features: list[dict] | None = None) -> str:
    """split_bytes: each split's size in memory (Arrow), for dataset_info's num_bytes; data_files: the path
    pattern of a split's files, for `configs:` (what load_dataset and the Hub's viewer read); features: their
    types as datasets writes them in YAML, for files that do not carry a schema (JSONL)."""
    rows = [r for part in splits.values() for r in part]
    sources = Counter(r.get("dataset") or "unknown" for r in rows)
    licences = {s: LICENSES.get(s, UNKNOWN) for s in sources}
    categories = sorted({r["category"] for r in rows})
    tasks = ["text-generation"] + (["question-answering"] if QA_CATEGORIES & set(categories) else [])
    data = DatasetCardData(
        license=sorted({lic for lic, _ in licences.values()}),
        task_categories=tasks,
        size_categories=[size_category(len(rows))],
        language=["en"],
        tags=["reasoning", "distillation", "synthetic"],
        pretty_name=repo_id.split("/")[-1],
        source_datasets=sorted(s for s in sources if s in LICENSES),
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": data_files.format(split=s)} for s in splits]}],
        dataset_info=dataset_info(splits, split_bytes or {}, features),
    )
    name = repo_id.split("/")[-1]
    body = [f"# {name}", "",
            f"Reasoning traces distilled from a teacher model, verified where the source has a gold answer: "
            f"{len(rows)} rows in {len(splits)} split(s). Each row's `reasoning` and `answer` render as "
            "`<reasoning>...</reasoning><answer>...</answer>`, the format the student learns.", ""]
    body += ["## Splits", ""]
    body += table(["split", "rows"], [[s, len(part)] for s, part in splits.items()] + [["total", len(rows)]])
    body += ["", "## Categories by split", ""]
    body += table(["category", *splits, "total"],
                  [[c, *(sum(r["category"] == c for r in splits[s]) for s in splits),
                    sum(r["category"] == c for r in rows)] for c in categories])
    body += ["", "## Sources and licences", "",
             "Each row keeps its source in `dataset`; the collection as a whole is bound by every licence below "
             "(the non-commercial ones included).", ""]
    body += table(["source", "licence", "rows"], [[s, licences[s][1], n] for s, n in sources.most_common()])
    body += ["", "## Provenance", "", "Teachers:", ""]
    body += table(["backend", "model", "rows"], [[b, m, n] for (b, m), n in
                                                 Counter(teacher_key(r) for r in rows).most_common()])
    body += ["", "Sampling parameters:", ""]
    body += table(["sampling", "rows"], [[f"`{s}`", n] for s, n in Counter(sampling_of(r) for r in rows).most_common()])
    body += ["", "Prompt versions (the fingerprint hashes recipe version, prompt template, model and sampling):", ""]
    versions = Counter((r.get("dataset") or "unknown", r.get("fingerprint") or "unknown") for r in rows)
    body += table(["source", "fingerprint", "rows"], [[s, f"`{f}`", n] for (s, f), n in sorted(versions.items())])
    body += ["", "## Verification", ""] + verification(rows, rejects)
    body += ["", "## Teacher tokens", ""] + teacher_tokens(rows, mix)
    body += ["", "## Decontamination", ""] + decontamination(mix)
    if mix:
        recipe = mix.get("recipe", {})
        body += ["", "## Mix recipe", "", f"Made with `crap.py mix` (seed {recipe.get('seed')}): rows that failed "
                 "verification, duplicates, near-duplicates (MinHash), rows overlapping an evaluation set and rows "
                 "over the length budget were removed, then each category was sampled to its quota and split.", ""]
        stages = ["input", *STAGES, "available", *splits]
        body += table(["category", *stages], [[c, *(n.get(s, 0) for s in stages)]
                                              for c, n in mix.get("counts", {}).items()])
        body += ["", f"Lengths in {mix.get('length_unit', '?')}. The exact recipe:", "", "```json",
                 json.dumps(recipe, indent=2), "```"]
    body += ["", "## How to load", "", "```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("{repo_id}", split="{next(iter(splits))}")', "```"]
    if data_files.endswith(".jsonl"):
        first = data_files.format(split=next(iter(splits)))
        body += ["", f"Each split is one JSON Lines file (`{first}`: one trace row a line, as generated), so it can "
                     "also be fetched by name with `huggingface_hub.hf_hub_download`."]
    if json_columns:
        body += ["", f"Columns stored as JSON strings (their values differ in type between rows): "
                     f"{', '.join(f'`{c}`' for c in json_columns)}; read them with `json.loads`."]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))


def dataset_info(splits: dict[str, list[dict]], split_bytes: dict[str, int], features: list[dict] | None) -> dict:
    """The card's `dataset_info`: the features (if given), each split's row count (and size), as the Hub's
    dataset viewer reads them."""
    info = {"features": features} if features else {}
    info["splits"] = [{"name": s, **({"num_bytes": split_bytes[s]} if s in split_bytes else {}),
                      "num_examples": len(part)} for s, part in splits.items()]
    if split_bytes:
        info["dataset_size"] = sum(split_bytes.values())
    return info


def verification(rows: list[dict], rejects: dict[str, Counter]) -> list[str]:
    lines = ["`verified`: true (checked against the source's answer), null (nothing to check against).", ""]
    counts = Counter((r["category"], r["verified"]) for r in rows)
    header = ["category", "verified", "unverifiable", "failed"]
    out = [[c, counts[c, True], counts[c, None], counts[c, False]] for c in sorted({r["category"] for r in rows})]
    lines += table(header, out)
    if rejects:
        lines += ["", "Rejected at generation (parse or verification), by reason:", ""]
        lines += table(["source file", "reason", "rows"],
                       [[f, reason, n] for f, c in rejects.items() for reason, n in c.most_common()])
    return lines


def usage_tokens(row: dict) -> int:
    usage = row.get("usage") if isinstance(row.get("usage"), dict) else {}
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def teacher_tokens(rows: list[dict], mix: dict | None) -> list[str]:
    """What the teacher spent (prompt + completion) on the published rows and, for a mix, on the rows of its
    inputs it dropped (read from the inputs where the mix found them)."""
    published = sum(usage_tokens(r) for r in rows)
    lines = table(["rows", "count", "teacher tokens", "per row"],
                  [["published", len(rows), f"{published:,}", f"{published / len(rows):,.0f}" if rows else "-"]])
    inputs = [Path(i["path"]) for i in (mix or {}).get("inputs", [])]
    if inputs and all(p.is_file() for p in inputs):
        from .traces import read_traces

        kept = {r["id"] for r in rows}
        dropped = [r for p in inputs for r in read_traces(p) if r["id"] not in kept]
        spent = sum(usage_tokens(r) for r in dropped)
        lines.append(f"| dropped by the mix | {len(dropped)} | {spent:,} | "
                     f"{spent / len(dropped):,.0f} |" if dropped else "| dropped by the mix | 0 | 0 | - |")
    elif inputs:
        lines += ["", "The mix's inputs are not where it read them: the tokens of the rows it dropped are not counted."]
    return lines + ["", "Replies rejected at generation, or stopped on the stream, are counted in each run's "
                        "summary and in `crap.py stats`."]


def decontamination(mix: dict | None) -> list[str]:
    info = (mix or {}).get("decontamination") or {}
    if not info.get("enabled"):
        return ["Not decontaminated: these rows were not passed through `crap.py mix`."]
    lines = [f"Rows sharing a {info['ngram']}-word n-gram with an evaluation set were removed (texts shorter than "
             f"{info['ngram']} words: matched whole from {info['short_text_min_words']} words), "
             f"checked in {', '.join(info['row_fields'])}.", ""]
    lines += table(["evaluation set", "source", "rows removed"],
                   [[k, v.get("dataset") or Path(v.get("file", "?")).name, v["rows_removed"]]
                    for k, v in info["eval_sets"].items()])
    return lines
