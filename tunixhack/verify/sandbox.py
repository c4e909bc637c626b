"""Launching a sandbox child and cleaning up after it: slots (a private uid each, as root), draining its
output, killing its process group, removing what it left. What it runs is the harness (sandbox_guard.py and
sandbox_child.py, sent as one source); how it is isolated is isolation.py's; what its values mean is
decided in code.py, never here.
"""

from __future__ import annotations

import errno
import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .isolation import UID_BASE

OUTPUT_LIMIT = 4 * 1024 * 1024  # bytes a check may print (or send as values) before it is killed
MEMORY_MB = 1024                # RLIMIT_AS of a check
FILE_BYTES = 8 * 1024 * 1024    # RLIMIT_FSIZE: the largest file a check may write in its dir
WRITE_OPENS = 32                # files, directories and links a check may make (bounds disk use)
SPARE_PROCESSES = 64            # RLIMIT_NPROC above the user's own tasks, only where no uid is private
OPEN_FILES = 256                # RLIMIT_NOFILE
UID_SLOTS = 534                 # private uids 65000-65533
# The child's harness, one source: the guards and the wall first (sandbox_child.py imports them only when
# imported itself).
HARNESS = "\n".join(Path(__file__).with_name(name).read_text(encoding="utf-8")
                     for name in ("sandbox_guard.py", "sandbox_wall.py", "sandbox_child.py"))
SWEPT = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # shared writable folders a private uid's leftovers may be in


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


class Slots:
    """A process-wide bound on running sandboxes; each holder gets the smallest free slot number (as root,
    the smallest whose private uid no other process holds)."""

    def __init__(self, limit: int):
        self._cond = threading.Condition()
        self._limit = limit
        self._busy: set[int] = set()

    def resize(self, limit: int) -> None:
        if not 1 <= limit <= UID_SLOTS:
            raise ValueError(f"max parallel sandboxes must be 1..{UID_SLOTS}, got {limit}")
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def _free(self) -> tuple[int, socket.socket | None]:
        for slot in range(UID_SLOTS):
            if slot in self._busy:
                continue
            if os.geteuid() != 0:
                return slot, None  # no private uids: the slot only bounds the parallel checks
            lease = hold_uid(UID_BASE + slot)
            if lease is not None:
                return slot, lease
        raise SandboxError(f"every private uid ({UID_BASE}-{UID_BASE + UID_SLOTS - 1}) is held by another process")

    @contextmanager
    def take(self):
        with self._cond:
            while len(self._busy) >= self._limit:
                self._cond.wait()
            slot, lease = self._free()
            self._busy.add(slot)
        try:
            yield slot
        finally:
            if lease is not None:
                lease.close()
            with self._cond:
                self._busy.discard(slot)
                self._cond.notify()


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


def kill_group(child: subprocess.Popen) -> None:
    # Before wait(): an unreaped leader keeps the group id from being reused by an unrelated process.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def remove_tree(path: str) -> bool:
    """Remove a check's folder; True when it is gone. Never raises: whatever the code left there (a tree
    deeper than the recursion limit, dirs without permissions) ends with `rm -rf`, and a folder that still
    stays is the check's failure (cleanup_failed), never an exception."""
    try:
        if os.geteuid() != 0:
            open_up(path)  # the code may have taken the permissions off its own dirs: give them back
            for root, names, _ in os.walk(path):  # top-down and lazy: each dir is opened before it is listed
                for name in names:
                    open_up(os.path.join(root, name))
        shutil.rmtree(path)
    except Exception:  # RecursionError on a deep tree, OSError: the shell tools have no recursion limit
        for command in (["chmod", "-R", "u+rwx", "--", path], ["rm", "-rf", "--one-file-system", "--", path]):
            try:
                subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
            except (OSError, subprocess.SubprocessError):
                pass
    return not os.path.lexists(path)


def sweep(uid: int, max_depth: int = 16) -> list[str]:
    """Remove everything `uid` owns in SWEPT and the temp folder, at any depth under world-writable folders
    (the only ones it can write in): the uid is private to the slot, held machine-wide (hold_uid), and runs
    nothing between checks, so all of it is the last check's. Returns what stayed."""
    left: list[str] = []
    tops = dict.fromkeys(os.path.realpath(path) for path in (*SWEPT, tempfile.gettempdir()))
    pending = [(top, 0) for top in tops if os.path.isdir(top)]
    while pending:
        directory, depth = pending.pop()
        found = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        found.append((entry.path, entry.stat(follow_symlinks=False)))
                    except OSError:
                        continue  # gone since it was listed
        except OSError:
            continue
        for path, info in found:
            if info.st_uid == uid:
                if stat.S_ISDIR(info.st_mode):
                    remove_tree(path)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                if os.path.lexists(path):
                    left.append(path)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH and depth < max_depth:
                pending.append((path, depth + 1))
    return left


def open_up(directory: str) -> None:
    if not os.path.islink(directory):
        try:
            os.chmod(directory, 0o700)
        except OSError:
            pass
