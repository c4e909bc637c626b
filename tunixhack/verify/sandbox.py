"""Launching a sandbox child and cleaning up after it: slots (a private uid each, as root), draining its
output, killing its process group, removing what it left. What it runs is the harness (sandbox_guard.py and
sandbox_child.py, sent as one source); how it is isolated is isolation.py's; what its values mean is
decided in code.py, never here.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from .isolation import UID_BASE

OUTPUT_LIMIT = 4 * 1024 * 1024  # bytes a check may print (or send as values) before it is killed
MEMORY_MB = 1024                # RLIMIT_AS of a check
FILE_BYTES = 8 * 1024 * 1024    # RLIMIT_FSIZE: the largest file a check may write in its dir
WRITE_OPENS = 32                # files, directories and links a check may make (bounds disk use)
SPARE_PROCESSES = 64            # RLIMIT_NPROC above the user's own tasks, only where no uid is private
OPEN_FILES = 256                # RLIMIT_NOFILE
PIPE_BYTES = OPEN_FILES // 2 * 64 * 1024  # the most pipe buffers a check can fill: seccomp refuses F_SETPIPE_SZ
UID_SLOTS = 534                 # private uids 65000-65533
LEASE_POLL = 0.05               # seconds between tries for a private uid while other processes hold them all
# The child's harness, one source: the guards and the wall first (sandbox_child.py imports them only when
# imported itself).
HARNESS = "\n".join(Path(__file__).with_name(name).read_text(encoding="utf-8")
                     for name in ("sandbox_guard.py", "sandbox_wall.py", "sandbox_child.py"))


class SandboxError(RuntimeError):
    """The sandbox could not run a check at all (could not start, or its harness failed before the code)."""


# --- parallel slots (each gives a private uid as root) ------------------------------------------------
def hold_uid(uid: int) -> socket.socket | None:
    """Hold private uid `uid` machine-wide (all of this network namespace): an abstract unix socket named
    after it, which one process at a time can bind and which goes with the process. None if another process
    (a second trainer, another test run) holds it: two checks as one uid could touch each other's files, and
    the sweep after a check would remove the other's."""
    try:
        lease = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as error:
        raise SandboxError(f"cannot hold a private uid (no unix socket): {error}") from error
    try:
        lease.bind(f"\0tunixhack-sandbox-uid-{uid}")
    except OSError as error:
        lease.close()
        if error.errno == errno.EADDRINUSE:
            return None
        raise SandboxError(f"cannot hold private uid {uid}: {error}") from error
    return lease


class NoLease(Exception):
    """No private uid came free before the check's deadline (other processes held them all)."""


class Slots:
    """A process-wide bound on running sandboxes; each holder gets the smallest free slot number (as root,
    the smallest whose private uid no other process holds). A slot whose uid is still being swept after its
    check is out of use (and out of the count) until the sweep is done."""

    def __init__(self, limit: int):
        self._cond = threading.Condition()
        self._limit = limit
        self._busy: set[int] = set()
        self._dirty: set[int] = set()

    def resize(self, limit: int) -> None:
        if not 1 <= limit <= UID_SLOTS:
            raise ValueError(f"max parallel sandboxes must be 1..{UID_SLOTS}, got {limit}")
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def _free(self) -> tuple[int, socket.socket | None] | None:
        for slot in range(UID_SLOTS):
            if slot in self._busy or slot in self._dirty:
                continue
            if os.geteuid() != 0:
                return slot, None  # no private uids: the slot only bounds the parallel checks
            lease = hold_uid(UID_BASE + slot)
            if lease is not None:
                return slot, lease
        return None

    def wait_turn(self) -> None:
        """Wait (unbounded: a queue of this process's own checks) until fewer than the limit run."""
        with self._cond:
            while len(self._busy) >= self._limit:
                self._cond.wait()

    def take(self, deadline: float) -> tuple[int, socket.socket | None]:
        """A slot and its uid's lease. Where other processes hold every free uid (a second trainer, three
        hostile checks elsewhere), wait for one to come free until `deadline`, then raise NoLease: a lease
        that cannot be had is a check's wait, never a SandboxError (a NaN reward for an honest program)."""
        with self._cond:
            while True:
                if len(self._busy) < self._limit:
                    found = self._free()
                    if found is not None:
                        self._busy.add(found[0])
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NoLease(f"every private uid ({UID_BASE}-{UID_BASE + UID_SLOTS - 1}) was held by "
                                  "other processes until the check's timeout")
                self._cond.wait(min(remaining, LEASE_POLL))  # another process's release wakes no one here

    def give_back(self, slot: int, lease: socket.socket | None, clean: bool = True) -> None:
        """The check is over. `clean`: its uid owns nothing left; else the slot stays out of use (its lease
        held, so no other process takes the uid either) until quarantine_over()."""
        with self._cond:
            self._busy.discard(slot)
            if clean:
                if lease is not None:
                    lease.close()
            else:
                self._dirty.add(slot)
            self._cond.notify_all()

    def quarantine_over(self, slot: int, lease: socket.socket | None) -> None:
        with self._cond:
            if lease is not None:
                lease.close()
            self._dirty.discard(slot)
            self._cond.notify_all()


SLOTS = Slots(max(1, min(os.cpu_count() or 1, UID_SLOTS)))


def set_max_parallel(limit: int) -> None:
    """Bound the sandboxes running at once in this process (default: the CPU count; checks are CPU-bound)."""
    SLOTS.resize(limit)


def max_parallel() -> int:
    return SLOTS._limit


# --- one child's run and what it leaves ------------------------------------------------------------
def collect(child: subprocess.Popen, result_fd: int, deadline: float):
    """Drain output and values (each kept to OUTPUT_LIMIT) until both close, the deadline, or a flood."""
    output, verdict = bytearray(), bytearray()
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, output)
    selector.register(result_fd, selectors.EVENT_READ, verdict)
    timed_out = flooded = False
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            events = selector.select(min(remaining, 0.25))
            if not events and exited(child.pid):
                break  # the leader is gone; something it left behind still holds a pipe open
            for key, _ in events:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = key.data
                if len(buffer) + len(chunk) > OUTPUT_LIMIT:
                    flooded = True
                buffer += chunk[:OUTPUT_LIMIT - len(buffer)]
            if flooded:
                break
    finally:
        selector.close()
    return bytes(output), bytes(verdict), timed_out, flooded


def exited(pid: int) -> bool:
    """Has the child exited? (WNOWAIT: it stays a zombie, so its pid and process group id stay ours.)"""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_namespace(child: subprocess.Popen) -> bool:
    """End a namespaces check through its PID namespace's init, by pidfd: when init dies the kernel kills
    every process in the namespace, whatever session or group it moved to, and a pidfd cannot name a
    process that took a reused pid. `child` is `unshare --fork`, init's parent. True if init was signalled."""
    if exited(child.pid):
        return False  # unshare waits for init: it has ended, and the namespace with it
    for pid in _children(child.pid):
        try:
            handle = os.pidfd_open(pid)
        except OSError:
            continue  # gone already
        try:
            # checked after the pidfd is open: it then names this very process, still the namespace's init
            if pid in _children(child.pid) and _namespace_pid(pid) == 1:
                signal.pidfd_send_signal(handle, signal.SIGKILL)
                return True
        except OSError:
            pass
        finally:
            os.close(handle)
    return False


def wait_exit(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for our child `pid` to exit, without reaping it (its pid and group stay ours)."""
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return True  # gone already
    try:
        waiter = select.poll()
        waiter.register(handle, select.POLLIN)  # a pidfd is readable once its process has exited
        return bool(waiter.poll(int(seconds * 1000)))
    finally:
        os.close(handle)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (this kernel may have no /proc/PID/task/PID/children): init is
    nearly always the next pid, so those are tried before a scan of /proc."""
    def parent(of: int) -> int | None:
        try:
            with open(f"/proc/{of}/stat", "rb") as f:
                return int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
    near = [p for p in range(pid + 1, pid + 4) if parent(p) == pid]
    return near or [int(name) for name in os.listdir("/proc") if name.isdigit() and parent(int(name)) == pid]


def _namespace_pid(pid: int) -> int | None:
    """`pid` as its innermost PID namespace numbers it (NSpid's last field)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            line = next((line for line in f if line.startswith("NSpid:")), "")
        return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def kill_group(child: subprocess.Popen) -> None:
    # Before wait(): an unreaped leader keeps the group id from being reused by an unrelated process.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
