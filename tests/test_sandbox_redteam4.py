"""Issue 15's second cold red team (round 4), after the private-uid leases, the bounded sweep, the namespace's
init ended by pidfd and F_SETPIPE_SZ refused: each find run through the real sandbox at every walled isolation
level this machine offers. No wrong program got a reward; these are the finds about time and leftovers."""

from __future__ import annotations

import os
import time

import pytest

from tests.test_sandbox import check
from tests.test_sandbox_wall import SAY, unhooked  # noqa: F401 - fixture
from tunixhack.verify import code, sandbox_sweep
from tunixhack.verify.isolation import NAMESPACES, UID_BASE
from tunixhack.verify.sandbox import SLOTS

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


def test_a_tree_too_big_for_the_passes_is_still_removed_and_its_uid_comes_back(sandbox_level, unhooked,  # noqa: F811
                                                                                 monkeypatch):
    # Found cold: the background sweep gave a slot up after SWEEP_PASSES passes, whether or not they were
    # removing things: 50 passes of 20,000 entries, so a check that left over a million files (34,000 a
    # second here with the hook gone: a 30 s check) kept its private uid out of use for the life of the
    # trainer, and 534 such checks would leave no uid for any check (every one a timeout). Passes that remove
    # something are progress and do not count; here 3 passes of 300 entries stand for 50 of 20,000.
    if sandbox_level == NAMESPACES:
        pytest.skip("the work folder is a tmpfs that ends with the namespace: nothing is swept on the host")
    monkeypatch.setattr(sandbox_sweep, "SWEEP_ENTRIES", 300)
    monkeypatch.setattr(sandbox_sweep, "SWEEP_PASSES", 3)
    many = SAY + ("import os\nfor i in range(2000):\n    open('f%d' % i, 'w').close()\n"
                  "say('uid', os.getuid(), 'in', os.getcwd())\n"
                  "def add(a, b):\n    return a + b\n")
    result = check(many, timeout=10.0)
    assert result.reason == "cleanup_failed", result
    words = result.output.split()
    uid, workdir = int(words[words.index("uid") + 1]), words[words.index("in") + 1]
    ends = time.monotonic() + 60  # a generous bound on the background passes, not a timing
    while (uid - UID_BASE in SLOTS._dirty or os.path.exists(workdir)) and time.monotonic() < ends:
        time.sleep(0.05)
    assert not os.path.exists(workdir)
    assert uid - UID_BASE not in SLOTS._dirty  # back in use
