"""Exact and near-duplicate removal over prompts (MinHash LSH from datasketch).

Two rows are duplicates when they ask the same question: the prompt is what the student sees, and the same
prompt with two teacher answers teaches it twice. The first row (in input order) is kept, so the result
depends only on the inputs, not on hashing order.
"""

from __future__ import annotations

import re

from datasketch import MinHash, MinHashLSH

WORD = re.compile(r"\w+")
NUM_PERM = 128
MINHASH_SEED = 1  # fixed: the same inputs always give the same signatures
SHINGLE = 5       # characters


def words(text: str) -> list[str]:
    """Lowercased word tokens: punctuation, case and spacing do not make two texts different."""
    return WORD.findall((text or "").lower())


def shingles(tokens: list[str], size: int) -> set[bytes]:
    """Character shingles of the normalised text: prompts are short, and one changed word moves a
    character-shingle Jaccard far less than a word-shingle one (5 changed of ~100, not 5 of ~15)."""
    text = " ".join(tokens)
    if len(text) <= size:
        return {text.encode()}
    return {text[i : i + size].encode() for i in range(len(text) - size + 1)}


def deduplicate(rows: list[dict], threshold: float = 0.8, shingle: int = SHINGLE) -> tuple[list[dict], list[dict]]:
    """Return (kept rows, removals). A removal is {"id", "category", "stage", "detail"} with stage
    duplicate (same id, or the same prompt up to case and punctuation) or near_duplicate (estimated
    Jaccard similarity of the prompts' character shingles >= threshold)."""
    kept: list[dict] = []
    removed: list[dict] = []
    first_by_key: dict[str, str] = {}
    first_by_id: set[str] = set()
    exact_kept: list[tuple[dict, list[str]]] = []
    for row in rows:
        tokens = words(row["prompt"])
        key = " ".join(tokens)
        if row["id"] in first_by_id:
            removed.append(removal(row, "duplicate", {"reason": "id seen before"}))
        elif key in first_by_key:
            removed.append(removal(row, "duplicate", {"duplicate_of": first_by_key[key]}))
        else:
            first_by_id.add(row["id"])
            first_by_key[key] = row["id"]
            exact_kept.append((row, tokens))

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    signatures = MinHash.bulk(
        (shingles(tokens, shingle) for _, tokens in exact_kept), num_perm=NUM_PERM, seed=MINHASH_SEED
    )
    kept_signatures: dict[int, MinHash] = {}
    for index, ((row, _), signature) in enumerate(zip(exact_kept, signatures)):
        # LSH gives candidates; the estimated Jaccard decides, and the earliest match is named.
        matches = sorted(
            i for i in lsh.query(signature) if kept_signatures[i].jaccard(signature) >= threshold
        )
        if matches:
            first = exact_kept[matches[0]][0]
            similarity = round(kept_signatures[matches[0]].jaccard(signature), 3)
            removed.append(removal(row, "near_duplicate", {"duplicate_of": first["id"], "jaccard": similarity}))
            continue
        lsh.insert(index, signature)
        kept_signatures[index] = signature
        kept.append(row)
    return kept, removed


def removal(row: dict, stage: str, detail: dict) -> dict:
    return {"id": row["id"], "category": row["category"], "stage": stage, "detail": detail}
