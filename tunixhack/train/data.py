"""Trace rows (DESIGN.md) as Gemma chat, for SFT and for GRPO.

A row becomes
    <bos><start_of_turn>user\\n{prompt}\\n\\n{FORMAT_INSTRUCTION}<end_of_turn>\\n<start_of_turn>model\\n
    <reasoning>{reasoning}</reasoning><answer>{answer}</answer><end_of_turn>
and the loss counts only the model turn: prompt and padding are masked out. Rows longer than --max-len
are dropped and counted, never cut (a cut trace would teach the model to stop mid-answer).

GRPO gets the prompt text (no <bos>: the sampler adds it) with the columns the rewards read: category,
reference, options (JSON), tests / test_setup / test_imports (JSON) for code rows, id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from tunixhack.errors import UserError
from tunixhack.student import render_completion, render_prompt
from tunixhack.traces import read_traces

REWARD_COLUMNS = ("id", "question", "category", "reference", "options", "tests", "test_setup", "test_imports")


def _in_memory():
    """grain's reading options for data already in memory: no reader threads (grain's own advice; its default
    16 threads and 500-batch prefetch fight the training loop for the CPU and the GIL)."""
    import grain

    return grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


@dataclasses.dataclass
class Loaded:
    examples: list            # SFT: {"tokens", "mask"} arrays; GRPO: column dicts
    counts: Counter           # what was kept and what was dropped, and why

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


def read_rows(path: str) -> list[dict]:
    if not Path(path).is_file():
        raise UserError(f"--data {path}: no such file (a trace .jsonl file, e.g. crap.py mix's sft.jsonl)")
    rows = read_traces(Path(path))
    if not rows:
        raise UserError(f"--data {path} has no rows")
    return rows


def is_holdout(row: dict, fraction: float, seed: int) -> bool:
    """A row's place in the holdout depends on its id only, so it stays put when the file grows."""
    digest = hashlib.sha256(f"{seed}:{row['id']}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


# --- SFT -----------------------------------------------------------------------------------------------
def tokenize_sft(rows: list[dict], tok, ids: dict, max_len: int) -> Loaded:
    counts: Counter = Counter()
    examples = []
    for row in rows:
        if row.get("verified") is False or not (row.get("answer") or "").strip():
            counts["skipped (unverified or empty answer)"] += 1
            continue
        prompt = [ids["bos"], *tok.encode(render_prompt(row["prompt"]))]
        completion = [*tok.encode(render_completion(row)), ids["end_of_turn"]]
        length = len(prompt) + len(completion)
        if length > max_len:
            counts[f"dropped (longer than --max-len {max_len})"] += 1
            continue
        tokens = np.full(max_len, ids["pad"], np.int32)
        tokens[:length] = prompt + completion
        mask = np.zeros(max_len, np.int32)
        mask[len(prompt):length] = 1  # the loss counts the model turn only
        examples.append({"tokens": tokens, "mask": mask})
        counts["kept"] += 1
    return Loaded(examples, counts)


def sft_dataset(examples: list, batch: int, seed: int, repeat: bool = True):
    """A seeded grain pipeline of TrainingInput batches: shuffled anew each epoch, endless when repeat."""
    import grain
    from tunix.sft.peft_trainer import TrainingInput

    if len(examples) < batch:
        if not repeat:  # a holdout smaller than one batch still gives one full batch
            examples = [examples[i % len(examples)] for i in range(batch)]
        else:
            raise UserError(f"only {len(examples)} training examples, fewer than --batch {batch}")
    ds = grain.MapDataset.source(examples)
    ds = ds.shuffle(seed=seed).repeat(None) if repeat else ds
    ds = ds.batch(batch, drop_remainder=True)
    ds = ds.map(lambda b: TrainingInput(input_tokens=b["tokens"], input_mask=b["mask"]))
    return ds.to_iter_dataset(_in_memory())


def model_inputs(pad_id: int):
    """PeftTrainer's gen_model_input_fn: positions and a causal attention mask over the non-pad tokens."""
    from tunix.sft import utils

    def build(x):
        real = x.input_tokens != pad_id
        return {"input_tokens": x.input_tokens, "input_mask": x.input_mask,
                "positions": utils.build_positions_from_mask(real),
                "attention_mask": utils.make_causal_attn_mask(real)}

    return build


# --- GRPO ----------------------------------------------------------------------------------------------
def reward_columns(row: dict) -> dict:
    """The columns every reward may read, as strings (Tunix repeats them per generation with numpy)."""
    def as_json(value):
        return json.dumps(value if value is not None else None)

    return {
        "id": str(row["id"]),
        "question": str(row["prompt"]),
        "category": str(row.get("category") or ""),
        "reference": "" if row.get("reference") is None else str(row["reference"]),
        "options": as_json(row.get("options")),
        "tests": as_json(row.get("tests")),
        "test_setup": str(row.get("test_setup") or ""),
        "test_imports": as_json(row.get("test_imports")),
    }


def grpo_prompts(rows: list[dict], tok, max_prompt_len: int) -> Loaded:
    """Prompts plus reward columns; prompts longer than max_prompt_len tokens (with <bos>) are dropped."""
    counts: Counter = Counter()
    examples = []
    for row in rows:
        text = render_prompt(row["prompt"])
        if len(tok.encode(text)) + 1 > max_prompt_len:
            counts[f"dropped (prompt longer than --max-prompt-len {max_prompt_len})"] += 1
            continue
        examples.append({"prompts": text, **reward_columns(row)})
        counts["kept"] += 1
    return Loaded(examples, counts)


def grpo_dataset(examples: list, batch: int, seed: int):
    """Endless seeded batches of {"prompts": [...], column: [...]}, each a numpy array of strings."""
    import grain

    if len(examples) < batch:
        raise UserError(f"only {len(examples)} prompts, fewer than --batch {batch}")
    ds = grain.MapDataset.source(examples).shuffle(seed=seed).repeat(None)
    return ds.batch(batch, drop_remainder=True).to_iter_dataset(_in_memory())


def decode_json(value):
    """A JSON column back to its value (numpy strings included); None when absent or unreadable."""
    try:
        return json.loads(str(value)) if value is not None else None
    except json.JSONDecodeError:
        return None
