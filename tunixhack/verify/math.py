"""Math answers: extract the final answer from a reply and compare it with the gold through math-verify.

Plain numbers (nearly all of GSM8K) are compared directly; anything else goes to math-verify, whose own
time limit uses signal.alarm and so only works on the main thread. Here the comparison runs in a worker
thread with our own limit, so it works from the runner's thread pool and from reward functions alike.
"""

from __future__ import annotations

import logging
import re
import threading
from fractions import Fraction

TIME_LIMIT = 5.0  # seconds for one math-verify comparison; past that the answer counts as uncheckable

BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
BRACES = re.compile(r"[{}]")
HASHES = re.compile(r"####\s*([^\n]+)")
ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+")
NOT_THE_NUMBER = re.compile(r"\\text\{[^}]*\}|\\[,!;]|\\\$|[$%\s]|\\%")  # units, LaTeX spaces, $ and %
WRAPPING_PARENS = re.compile(r"^\\?\(|\\?\)$")


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} whose braces close, braces balanced. One pass over the braces: a
    reply of many unclosed \\boxed{ (a model can write one) costs linear time, not a rescan from each."""
    boxed = {m.end() for m in BOXED.finditer(text)}  # where each \\boxed{'s content starts
    if not boxed:
        return None
    opened, last = [], None
    for brace in BRACES.finditer(text):
        if brace.group() == "{":
            opened.append(brace.end())
        elif opened:
            start = opened.pop()
            if start in boxed and (last is None or start > last[0]):
                last = (start, brace.start())
    return text[last[0]:last[1]].strip() if last else None


def extract_answer(text: str | None) -> str | None:
    """The final answer of a reply: \\boxed{}, then '#### x', then 'the answer is x', then the last number."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for pattern in (HASHES, ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return found[-1].strip().rstrip(".").strip()
    numbers = NUMBER.findall(text)
    return numbers[-1] if numbers else None


def gsm8k_gold(solution: str) -> str:
    """GSM8K's final answer: the text after '####', thousands separators removed."""
    return solution.split("####")[-1].strip().replace(",", "")


def as_number(text: str) -> Fraction | None:
    """'1,234', '$5', '12.50', '-3', '3/4', '45%' and '\\text{...}' units are numbers; other text is not."""
    cleaned = NOT_THE_NUMBER.sub("", text).replace(",", "").rstrip(".")
    cleaned = WRAPPING_PARENS.sub("", cleaned)
    if not PLAIN_NUMBER.fullmatch(cleaned):
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def math_equal(pred: str, gold: str, time_limit: float | None = None) -> bool | None:
    """True when pred and gold are the same value; None when the comparison ran out of time (TIME_LIMIT)."""
    a, b = as_number(pred), as_number(gold)
    if a is not None and b is not None:
        return a == b
    return _with_time_limit(_math_verify_equal, time_limit or TIME_LIMIT, pred, gold)


def verify_math(text: str | None, gold: str | None) -> bool | None:
    """Check a reply against a gold answer. None when there is no gold; False when the reply has no answer."""
    decided, ok = verify_math_plain(text, gold)
    return ok if decided else math_equal(extract_answer(text), str(gold))


def verify_math_plain(text: str | None, gold: str | None) -> tuple[bool, bool | None]:
    """verify_math without math-verify: (True, its result) when there is no gold, no answer, or an answer and a
    gold that are both plain numbers (microseconds: nearly all of GSM8K); (False, None) when math-verify must
    decide (milliseconds or more, in a thread of its own)."""
    if gold is None or str(gold).strip() == "":
        return True, None
    pred = extract_answer(text)
    if pred is None:
        return True, False
    a, b = as_number(pred), as_number(str(gold))
    if a is not None and b is not None:
        return True, a == b
    return False, None


def _math_verify_equal(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    # It warns on every call that its signal-based timeout is off: ours replaces it.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # Wrapping both in \boxed{} makes math-verify read them as final answers, LaTeX or plain.
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return pred.strip() == gold.strip()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _with_time_limit(fn, seconds: float, *args):
    """Run fn in a daemon thread; None if it does not finish in time (the thread is left to end alone)."""
    result: list = []

    def target():
        try:
            result.append(fn(*args))
        except Exception:  # a parse failure means the answer cannot be read: not equal
            result.append(False)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    return result[0] if result else None
