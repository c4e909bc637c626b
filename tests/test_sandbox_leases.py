"""Issue 15, round 3's leftovers: a private uid that cannot be had is waited for, the sweep after a check is
bounded and a uid it could not finish is not reused, no process outlives a check, and pipe buffers (memory
RLIMIT_AS does not count) are bounded. Each runs the real sandbox at every walled level this machine offers,
most with the audit hook taken out (`unhooked`): what is tested is the kernel's part and the parent's."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import pytest

from tests.test_sandbox import ADD_TESTS, check
from tests.test_sandbox_wall import SAY, unhooked  # noqa: F401 - fixture
from tunixhack.verify import code, sandbox, sandbox_sweep
from tunixhack.verify.isolation import NAMESPACES, UID_BASE

ADD = "def add(a, b):\n    return a + b\n"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="private uids are root's")


@contextmanager
def every_uid_held(but_one: bool = True):
    """Hold every private uid's lease as other processes would (a second trainer, hostile checks elsewhere),
    but the first one free now if `but_one`; yields that uid (None when all are held)."""
    leases, spare = [], None
    try:
        for slot in range(sandbox.UID_SLOTS):
            lease = sandbox.hold_uid(UID_BASE + slot)
            if lease is None:
                continue  # another process of this machine holds it already
            if but_one and spare is None:
                lease.close()
                spare = UID_BASE + slot
            else:
                leases.append(lease)
        yield spare
    finally:
        for lease in leases:
            lease.close()


def processes_of(uid: int) -> list[str]:
    """Every process on the machine whose real uid is `uid`, by /proc (its pid, state and command line): no
    sleeping, no guessing."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ").decode(errors="replace")[:80]
            except OSError:
                continue  # ended while we looked
            if int(status["Uid"].split()[0]) == uid:
                found.append(f"{name} {status['State'].strip()} {command} (parent {status['PPid'].strip()})")
    return found


@contextmanager
def lease_kept(monkeypatch):
    """Run checks whose uid's lease this test keeps when the check gives it back: nothing else (another test
    run on this machine) can start as that uid before the test has looked. Yields the uids taken."""
    kept: dict[int, object] = {}
    give_back = sandbox.SLOTS.give_back

    def keep(slot, lease, clean=True):
        kept[UID_BASE + slot] = lease
        give_back(slot, None, clean)
    monkeypatch.setattr(sandbox.SLOTS, "give_back", keep)
    try:
        yield kept
    finally:
        monkeypatch.undo()
        for lease in kept.values():
            if lease is not None:
                lease.close()


@pytest.fixture
def two_at_once():
    before = code.max_parallel()
    code.set_max_parallel(2)
    yield
    code.set_max_parallel(before)


# --- 1. a lease that cannot be had is waited for ------------------------------------------------------------
@root_only
def test_an_honest_check_waits_for_the_last_uid_a_slow_hostile_check_holds(sandbox_level, two_at_once):
    with every_uid_held() as spare:
        assert spare is not None, "every private uid is held by other processes on this machine"
        hostile = {}
        runner = threading.Thread(target=lambda: hostile.update(result=check(
            "def add(a, b):\n    while True:\n        pass\n", timeout=2.0)))
        runner.start()
        while not sandbox.SLOTS._busy and runner.is_alive():  # the hostile check has the last uid
            time.sleep(0.01)
        honest = check(ADD, timeout=10.0)
        runner.join()
    assert hostile["result"].reason == "timeout", hostile["result"]
    assert (honest.passed, honest.reason) == (True, "passed"), honest.output  # never SandboxError (a NaN reward)


@root_only
def test_a_check_no_uid_comes_free_for_ends_as_a_timeout_not_an_error(sandbox_level):
    with every_uid_held(but_one=False):
        result = check(ADD, timeout=0.5)
    assert (result.passed, result.reason) == (False, "timeout")
    assert "held by other processes" in result.output


# --- 2. the sweep is bounded, and a uid it could not finish waits until it is clean -------------------------
@root_only
def test_a_check_that_leaves_more_files_than_a_sweep_pass_keeps_its_uid_out_of_use(unhooked, monkeypatch):
    if "uid+landlock+seccomp" not in code.available_levels():
        pytest.skip("no uid level here: the work folder is not on the host")
    code.force_isolation("uid+landlock+seccomp")
    monkeypatch.setattr(sandbox_sweep, "SWEEP_ENTRIES", 300)  # a pass's bound, hit by 2,000 files
    try:
        # plain open() in the work folder: what Landlock and seccomp allow once the hook is gone
        many = SAY + ("import os\nfor i in range(2000):\n    open('f%d' % i, 'w').close()\n"
                      "say('uid', os.getuid(), 'in', os.getcwd())\n" + ADD)
        result = check(many, timeout=10.0)
        assert result.reason == "cleanup_failed", result
        words = result.output.split()
        uid, workdir = int(words[words.index("uid") + 1]), words[words.index("in") + 1]
        assert UID_BASE <= uid < UID_BASE + sandbox.UID_SLOTS and os.path.isdir(workdir)
        assert "stopped at its bound (300 entries)" in result.output and "not used again" in result.output
        assert result.output.count("[check]") == 1  # one line says it
        assert sandbox.hold_uid(uid) is None  # still held (by us): no process, this one included, reuses it
        again = check(SAY + "import os\nsay('uid', os.getuid())\n" + ADD)
        assert again.passed and f"uid {uid}\n" not in again.output, again.output
        ends = time.monotonic() + 60  # the background passes: 300 entries each, until it is clean
        while os.path.exists(workdir) and time.monotonic() < ends:
            time.sleep(0.05)
        assert not os.path.exists(workdir)
        while uid - UID_BASE in sandbox.SLOTS._dirty and time.monotonic() < ends:
            time.sleep(0.05)
        lease = sandbox.hold_uid(uid)  # clean again: given back
        assert lease is not None
        lease.close()
    finally:
        code.force_isolation(None)


# --- 3. no process outlives a check ---------------------------------------------------------------------------
ESCAPES = SAY + """import os, threading, _thread, time
def add(a, b):
    for name, attempt in [("setsid", os.setsid), ("setpgid", lambda: os.setpgid(0, 0)), ("fork", os.fork),
                          ("thread", lambda: threading.Thread(target=time.sleep, args=(60,)).start()),
                          ("_thread", lambda: _thread.start_new_thread(time.sleep, (60,))),
                          ("spawn", lambda: os.posix_spawn("/bin/sleep", ["sleep", "60"], {}))]:
        try:
            pid = attempt()
            if pid == 0:
                time.sleep(60)
            say("got:", name)
        except BaseException as error:
            say("stopped:", name, type(error).__name__)
    time.sleep(60)
"""


@root_only
def test_a_program_that_tries_to_outlive_its_check_leaves_no_process(unhooked, sandbox_level, monkeypatch):
    with lease_kept(monkeypatch) as kept:
        result = check(ESCAPES, timeout=5.0)  # six tries, each at once; time to spare on a loaded machine
        assert result.reason == "timeout", result
        assert "got:" not in result.output and result.output.count("stopped:") == 6, result.output
        (uid,) = kept
        assert processes_of(uid) == []


@root_only
@pytest.mark.parametrize("variant", ["user namespace", "no user namespace"])
def test_a_namespace_check_is_ended_through_its_init_by_pidfd(variant, monkeypatch, request):
    if variant == "no user namespace":
        request.getfixturevalue("without_user_namespace")
    elif NAMESPACES not in code.available_levels():
        pytest.skip("no namespaces here")
    code.force_isolation(NAMESPACES)
    monkeypatch.setattr(code, "kill_group", lambda child: None)  # the pidfd alone must end it all
    try:
        with lease_kept(monkeypatch) as kept:
            result = check("import time\ntime.sleep(30)\n" + ADD, timeout=1.0)
            assert result.reason == "timeout", result
            (uid,) = kept
            assert processes_of(uid) == []
    finally:
        code.force_isolation(None)


# --- 4. pipe buffers: kernel memory RLIMIT_AS does not count ---------------------------------------------------
PIPES = SAY + """import os, fcntl
def add(a, b):
    pipes = []
    try:
        while True:
            pipes.append(os.pipe())
    except OSError:
        pass
    try:
        fcntl.fcntl(pipes[0][1], 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MiB a pipe
        say("got: a bigger pipe")
    except OSError as error:
        say("refused:", error.errno)
    held = 0
    for _, end in pipes:
        os.set_blocking(end, False)
        try:
            while True:
                held += os.write(end, b"x" * 65536)
        except BlockingIOError:
            pass
    say("held", held, "in", len(pipes), "pipes")
    for pipe in pipes:  # the harness needs a descriptor or two to go on
        os.close(pipe[0]), os.close(pipe[1])
    return a + b
"""


def test_pipe_buffers_stay_within_the_stated_bound(unhooked, sandbox_level):
    result = check(PIPES, ADD_TESTS, timeout=10.0)
    assert result.passed, result.output
    assert "refused: 1" in result.output and "got:" not in result.output, result.output  # EPERM
    words = result.output.split()
    held = int(words[words.index("held") + 1])
    assert 0 < held <= sandbox.PIPE_BYTES, result.output  # 8 MiB at most; 64 MiB before
