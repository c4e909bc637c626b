"""Every way an answer is judged (math, choice, code, text, quality rules, the LLM judge), behind one check().
May import teachers/ (for the judge) and the shared modules; never generate/, dataset/ or train/.

How an answer is checked: one entry point shared by generation, GRPO rewards and evaluation.

Every trace row carries `check`, written by its recipe (DESIGN.md):

    {"kind": "math", "gold": "72"}                                        math.py (math-verify)
    {"kind": "choice", "options": {"A": "...", ...}, "answer": "C"}       choice.py
    {"kind": "code", "tests": [...], "setup": "", "imports": [...], "timeout": 20}    code.py (sandboxed)
    {"kind": "text_match", "reference": "...", "min_f1": 0.5}            text.py
    null                                                                  nothing can check the answer

`check(row, answer)` returns True / False, or None when nothing can check the answer (no check, or a
check that could not finish, e.g. math-verify out of time). `verdict(row, answer)` is the same answer with
its reason (a code check out of time says so, and which test it ran out on): what generation writes in a
reject; check() is its `ok`, so the two cannot differ. Rows written before the field existed get theirs
from `legacy.derive_check`, in that one place. The checks load when first used, so importing this package
loads none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("math", "choice", "code", "text_match")


def check_of(row: dict) -> dict | None:
    """The row's check: its own `check` field, or, for a row written before the field, one derived from it."""
    if "check" in row:
        return row["check"]
    from .legacy import derive_check

    return derive_check(row)


def with_check(row: dict) -> dict:
    """The row with its `check` field set (derived once for a row written before the field existed)."""
    if "check" not in row:
        row["check"] = check_of(row)
    return row


@dataclass(frozen=True)
class Verdict:
    """An answer's verdict and why: `ok` is check()'s True / False / None."""
    ok: bool | None
    reason: str = ""    # when ok is False, the check's own reason, where it has one: "timeout", "assertion_failed"...
    detail: str = ""    # for a timeout: how long, and (when located) the test it ran out on


def check(row: dict, answer: str | None) -> bool | None:
    """Is `answer` right for `row`? True / False, or None when nothing can tell."""
    return verdict(row, answer).ok


def verdict(row: dict, answer: str | None, locate: bool = False) -> Verdict:
    """check() with its reason. `locate`: for a code check out of time, name the test it ran out on (the
    first whose values never came back: code_verdict.py); generation asks, rewards and eval do not."""
    spec = check_of(row)
    if not spec:
        return Verdict(None)
    kind = spec.get("kind")
    if kind == "math":
        from .math import verify_math

        return Verdict(verify_math(answer, spec.get("gold")))
    if kind == "choice":
        from .choice import verify_choice

        return Verdict(verify_choice(answer, spec.get("answer"), spec.get("options") or {}))
    if kind == "code":
        from .code_verdict import code_verdict

        # the row's reference solution (trusted data) may bind names the asserts' expected side uses
        reference = row.get("reference") if isinstance(row.get("reference"), str) else ""
        return code_verdict(spec, answer or "", reference, locate)
    if kind == "text_match":
        from .text import MIN_F1, answer_matches

        return Verdict(answer_matches(answer, spec.get("reference"), float(spec.get("min_f1") or MIN_F1)))
    raise ValueError(f"check kind must be one of {', '.join(KINDS)}, got {kind!r}")


# The longest answer checked on the event loop: reading a number out of a reply is linear, but the unit-stripping
# regex is not on every text a model can write (many unclosed \\text{); a longer answer goes to the pool, as all did.
INSTANT_MAX_CHARS = 4096


def instant_verdict(row: dict, answer: str | None) -> Verdict | None:
    """verdict(row, answer) where it takes microseconds: no check, or a math check decided without math-verify
    (nearly all of GSM8K); None where it may take longer (math-verify, code, choice over a long reply). Generation
    checks the first kind on its event loop: a hop to a worker thread and back costs more (0.1 ms a row)."""
    spec = check_of(row)
    if not spec:
        return Verdict(None)
    if spec.get("kind") == "math" and len(answer or "") <= INSTANT_MAX_CHARS:
        from .math import verify_math_plain

        decided, ok = verify_math_plain(answer, spec.get("gold"))
        return Verdict(ok) if decided else None
    return None


def check_many(rows: list[dict], answers: list[str | None], workers: int = 4,
               sandbox_failed: bool | None | str = "raise") -> list[bool | None]:
    """check() over pairs, code checks run in parallel in the sandbox; one verdict per pair, in order.

    A sandbox that could not start (SandboxError: never caused by the program checked) raises, unless
    `sandbox_failed` is given: then that pair's verdict is `sandbox_failed` (a GRPO reward takes None: not
    computed). Generation never maps it to None, which would keep an unverified row.
    """
    from concurrent.futures import ThreadPoolExecutor

    if len(rows) != len(answers):
        raise ValueError(f"check_many needs one answer per row, got {len(answers)} answers for {len(rows)} rows")

    def one(row, answer):
        try:
            return check(row, answer)
        except Exception as e:  # noqa: BLE001 - only the sandbox's own failure is turned into a verdict
            if sandbox_failed == "raise" or type(e).__name__ != "SandboxError":
                raise
            return sandbox_failed

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, rows, answers))
