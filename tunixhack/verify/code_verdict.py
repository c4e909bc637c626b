"""A code check's verdict with its reason; for a check out of time, the test it ran out on.

The test matters to generation: a reject should name it, and a reply that runs out on the same test twice in
a row is not worth a third sample (tunixhack/generate/runner.py). The sandbox sends each probe's value as it
comes, in order, so the test a check ran out on is exact: the first whose values never all came back
(code.py's CheckResult.test). A check that ran out before any test (in the program or the setup code) or
while its asserts were decided says so instead.

    >>> code_verdict({"tests": ["assert f(1) == 1"], "timeout": 3}, "def f(x):\\n    while True: pass", "", True)
    Verdict(ok=False, reason='timeout', detail='ran past 3 s on test 1 of 1: assert f(1) == 1')
"""

from __future__ import annotations

from . import Verdict


def code_verdict(spec: dict, answer: str, reference: str, locate: bool) -> Verdict:
    """The reply's program against the check's tests, as code.verify_code decides it, with the reason;
    `locate`: name the test a timeout ran out on (generation; rewards and eval need only the reason)."""
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
    return Verdict(False, "timeout", f"ran past {timeout:g} s" + (ran_out(tests, result) if locate else ""))


def ran_out(tests: list[str], result) -> str:
    """Where a check that ran out of time ran out: ' on test N of M: <the assert>', or before the tests."""
    if result.test is None:
        if "[check] timeout:" in result.output:  # every value came back; deciding the asserts took too long
            return f" deciding the asserts of the {len(tests)} tests"
        return " before the first test (in the program or the setup code)"
    source = " ".join(line.strip() for line in tests[result.test].strip().splitlines())
    return f" on test {result.test + 1} of {len(tests)}: {source}"
