"""A code check's verdict with its reason; for a check out of time, the test it ran out on.

code.py says a check ran out of time ("timeout") but not in which test: its child is killed mid-probe. The
test matters to generation: a reject should name it, and a reply that runs out on the same test twice in a
row is not worth a third sample (tunixhack/generate/runner.py). So, for generation only (`locate`), each
test then runs alone, in order, for at most LOCATE_SECONDS: the first that does not end is the one named.
That costs a few seconds on a reply that already cost the whole timeout, and nothing on any other; rewards
and eval never locate.

    >>> code_verdict({"tests": ["assert f(1) == 1"], "timeout": 3}, "def f(x):\\n    while True: pass", "", True)
    Verdict(ok=False, reason='timeout', detail='ran past 3 s on test 1 of 1 (it does not end within 2 s alone):
    assert f(1) == 1')
"""

from __future__ import annotations

from . import Verdict

LOCATE_SECONDS = 2.0  # how long each test runs alone when locating a timeout


def code_verdict(spec: dict, answer: str, reference: str, locate: bool) -> Verdict:
    """The reply's program against the check's tests, as code.verify_code decides it, with the reason."""
    from .code import MAX_CHARS, extract_code, run_tests

    tests = list(spec.get("tests") or [])
    if not tests:
        return Verdict(None)
    if len(answer) > MAX_CHARS:
        return Verdict(False, "too_long")
    program = extract_code(answer)
    if program is None:
        return Verdict(False, "no_code")
    setup, imports = spec.get("setup") or "", tuple(spec.get("imports") or ())
    timeout = float(spec.get("timeout") or 20.0)
    result = run_tests(program, tests, setup, imports, timeout, reference=reference)
    if result.reason != "timeout":
        return Verdict(result.passed, "" if result.passed else result.reason)
    where = ran_out(program, tests, setup, imports, timeout, reference) if locate else ""
    return Verdict(False, "timeout", f"ran past {timeout:g} s" + where)


def ran_out(program: str, tests: list[str], setup: str, imports: tuple, timeout: float, reference: str) -> str:
    """Where a check that ran out of time ran out: ' on test N of M (...): <the assert>', or, when every
    test ends alone, ' with the M tests together'."""
    from .code import run_tests

    alone = min(timeout, LOCATE_SECONDS)
    for number, test in enumerate(tests, 1):
        if run_tests(program, [test], setup, imports, alone, reference=reference).reason == "timeout":
            source = " ".join(line.strip() for line in test.strip().splitlines())
            return f" on test {number} of {len(tests)} (it does not end within {alone:g} s alone): {source}"
    return f" with the {len(tests)} tests together (each alone ends within {alone:g} s)"
