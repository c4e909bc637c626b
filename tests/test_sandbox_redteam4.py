"""Issue 15's second cold red team (round 4), after the private-uid leases, the bounded sweep, the namespace's
init ended by pidfd and F_SETPIPE_SZ refused: each find run through the real sandbox at every walled isolation
level this machine offers. No wrong program got a reward; these are the finds about time and leftovers."""

from __future__ import annotations

import pytest

from tests.test_sandbox import check
from tunixhack.verify import code

# A program that writes its own value lines on the result pipe (the harness's protocol, which the code can
# always forge) just before its timeout, then sleeps: every value is there, so the check is decided on them.
# The value is a million empty lists (2.9 MB, under the output cap) that ends in one item the format refuses:
# read to its end it is `unsupported_value`, after seconds of work in the trainer's own process.
LATE_VALUE = (
    "import os, sys, time\n"
    "start = time.monotonic()\n"
    "line = ('VALUE 0 [' + '[],' * 999_000 + '{{\"zz\": 1}}]\\n').encode()\n"
    "time.sleep(max(0.0, {timeout} - 0.3 - (time.monotonic() - start)))\n"
    "while line:\n"
    "    line = line[os.write(int(sys.argv[1]), line):]\n"
    "time.sleep(60)\n"
    "def f(x):\n"
    "    return x\n")


def test_a_value_sent_at_the_timeout_is_not_read_past_the_checks_limit(sandbox_level, monkeypatch):
    # Found cold: the values were decoded in the trainer's process with no time limit, and only the asserts
    # after them had one (JUDGE_GRACE from then on). A million empty lists sent 0.3 s before a 3 s timeout
    # ended the check 1.9-2.7 s past it (every unhashable item cost an exception in the collision check),
    # against the 1 s the README promises. With no grace at all, the check must end as soon as its time is
    # up: as a timeout, not after reading the whole value (which would say unsupported_value).
    monkeypatch.setattr(code, "JUDGE_GRACE", 0.0)
    result = check(LATE_VALUE.format(timeout=3.0), ["assert f(1) == 1"], timeout=3.0)
    assert (result.passed, result.reason) == (False, "timeout"), result.output[-300:]
