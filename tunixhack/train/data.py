"""Trace rows (DESIGN.md) as Gemma chat, for SFT and for GRPO.

A row becomes
    <bos><start_of_turn>user\\n{prompt}\\n\\n{FORMAT_INSTRUCTION}<end_of_turn>\\n<start_of_turn>model\\n
    <reasoning>{reasoning}</reasoning><answer>{answer}</answer><end_of_turn>
and the loss counts only the model turn: prompt and padding are masked out. Rows longer than --max-len
are dropped and counted, never cut (a cut trace would teach the model to stop mid-answer).

SFT's stream: --max-epochs passes over its split, each shuffled anew, then (with a time budget that allows
more) rows of a fill split taken once each in a seeded order; the ids it took are written down so that
GRPO never trains on a prompt SFT has already answered.

GRPO gets the prompt text (no <bos>: the sampler adds it) with the columns the rewards read: id, question,
category and the row's `check` (JSON), one check per row, as generation and eval read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter

import numpy as np

from tunixhack.errors import UserError
from tunixhack.student import render_completion, render_prompt
from tunixhack.train.sources import Provenance, read_split
from tunixhack.verify import check_of

REWARD_COLUMNS = ("id", "question", "category", "check")


@dataclasses.dataclass
class Loaded:
    examples: list            # SFT: {"tokens", "mask"} arrays; GRPO: column dicts
    counts: Counter           # what was kept and what was dropped, and why

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


def read_rows(data: str, split: str) -> tuple[list[dict], Provenance]:
    return read_split(data, split)


def is_holdout(row: dict, fraction: float, seed: int) -> bool:
    """A row's place in the holdout depends on its id only, so it stays put when the file grows."""
    return _rank(row["id"], seed) < fraction


def _rank(row_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def seeded_order(rows: list[dict], seed: int) -> list[dict]:
    """Rows in an order that depends on their ids and the seed only (not on file order)."""
    return sorted(rows, key=lambda r: (_rank(r["id"], seed), r["id"]))


# --- SFT -----------------------------------------------------------------------------------------------
def encode_sft(row: dict, tok, ids: dict, max_len: int) -> dict | str:
    """{"tokens", "mask"} padded to max_len, or the reason the row is not trained on."""
    if row.get("verified") is False or not (row.get("answer") or "").strip():
        return "skipped (unverified or empty answer)"
    prompt = [ids["bos"], *tok.encode(render_prompt(row["prompt"]))]
    completion = [*tok.encode(render_completion(row)), ids["end_of_turn"]]
    length = len(prompt) + len(completion)
    if length > max_len:
        return f"dropped (longer than --max-len {max_len})"
    tokens = np.full(max_len, ids["pad"], np.int32)
    tokens[:length] = prompt + completion
    mask = np.zeros(max_len, np.int32)
    mask[len(prompt):length] = 1  # the loss counts the model turn only
    return {"tokens": tokens, "mask": mask, "id": row["id"]}


def tokenize_sft(rows: list[dict], tok, ids: dict, max_len: int) -> Loaded:
    counts: Counter = Counter()
    examples = []
    for row in rows:
        example = encode_sft(row, tok, ids, max_len)
        if isinstance(example, str):
            counts[example] += 1
        else:
            examples.append(example)
            counts["kept"] += 1
    return Loaded(examples, counts)


class SftStream:
    """The SFT examples in training order: `epochs` seeded shuffles of `examples`, then the `fill` rows (encoded
    as they come, too long ones skipped) once each, in the order given (sft.py gives them in seeded_order).
    Iterating yields TrainingInput batches."""

    def __init__(self, examples: list[dict], batch: int, seed: int, epochs: int, fill=None, encode=None):
        if len(examples) < batch:
            raise UserError(f"only {len(examples)} training examples, fewer than --batch {batch}")
        self.examples, self.batch, self.seed, self.epochs = examples, batch, seed, epochs
        self.fill, self.encode = fill or [], encode

    @property
    def epoch_examples(self) -> int:
        return self.epochs * len(self.examples)

    def _ordered(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.epochs):
            for i in rng.permutation(len(self.examples)):
                yield self.examples[i]
        for row in self.fill:
            example = self.encode(row)
            if not isinstance(example, str):
                yield example

    def __iter__(self):
        from tunix.sft.peft_trainer import TrainingInput

        chunk = []
        for example in self._ordered():
            chunk.append(example)
            if len(chunk) == self.batch:
                yield TrainingInput(input_tokens=np.stack([e["tokens"] for e in chunk]),
                                    input_mask=np.stack([e["mask"] for e in chunk]))
                chunk = []

    def fill_ids_used(self, examples_used: int) -> list[str]:
        """The ids of the fill rows among the first `examples_used` examples of the stream."""
        wanted = max(0, examples_used - self.epoch_examples)
        used = []
        for row in self.fill:
            if len(used) >= wanted:
                break
            if not isinstance(self.encode(row), str):
                used.append(row["id"])
        return used


def holdout_batches(examples: list[dict], batch: int) -> list:
    """The holdout as fixed batches (a holdout smaller than one batch still gives one full batch)."""
    from tunix.sft.peft_trainer import TrainingInput

    if len(examples) < batch:
        examples = [examples[i % len(examples)] for i in range(batch)]
    return [TrainingInput(input_tokens=np.stack([e["tokens"] for e in examples[s:s + batch]]),
                          input_mask=np.stack([e["mask"] for e in examples[s:s + batch]]))
            for s in range(0, len(examples) - batch + 1, batch)]


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
    return {"id": str(row["id"]), "question": str(row["prompt"]), "category": str(row.get("category") or ""),
            "check": json.dumps(check_of(row))}


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
    if len(examples) < batch:
        raise UserError(f"only {len(examples)} prompts, fewer than --batch {batch}")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(examples))
        for start in range(0, len(order) - batch + 1, batch):
            chunk = [examples[i] for i in order[start:start + batch]]
            yield {key: np.asarray([e[key] for e in chunk]) for key in chunk[0]}
