"""Short text answers against a human reference: normalised exact match, the answer leading with the reference,
or SQuAD-style token F1 (Dolly's closed_qa and classification rows, where the reference is a label or a span)."""

from __future__ import annotations

import re
import string
from collections import Counter

MIN_F1 = 0.5
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
ARTICLES = {"a", "an", "the"}
_PUNCTUATION = str.maketrans(string.punctuation + "\u2019\u2018\u201c\u201d", " " * (len(string.punctuation) + 4))


def tokens(text: str) -> list[str]:
    """SQuAD-style normalisation, except that punctuation becomes a space ('10,1981' is two tokens)."""
    return [t for t in (text or "").lower().translate(_PUNCTUATION).split() if t not in ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = tokens(prediction), tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_matches(answer: str | None, reference: str | None, min_f1: float = MIN_F1) -> bool | None:
    """The answer, its first line or its first sentence equals the reference (normalised), leads with it,
    or reaches min_f1 token F1 with it. Teachers put the label first and explain after ('Tope. It is a
    shark...'), so the leading part is compared as well as the whole. None when there is no reference."""
    ref = tokens(reference or "")
    if not ref:
        return None
    answer = answer or ""
    first_line = next((line for line in answer.splitlines() if line.strip()), "")
    first_sentence = SENTENCE_END.split(first_line.strip(), 1)[0]
    return any(tokens(part)[: len(ref)] == ref or token_f1(part, reference) >= min_f1
               for part in (answer, first_line, first_sentence))
