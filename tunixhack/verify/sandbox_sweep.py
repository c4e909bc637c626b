"""Removing what a sandbox check left, within a bound: its work folder on the host (the uid levels) and what
its private uid owns in the shared temp folders. Each pass looks at or removes at most a Budget's entries
within its time, so a check that made 620,000 files still ends on time; what a pass could not finish is
reported by the caller, and the uid stays out of use until a later pass finds it clean (code.py `_Cleanup`).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import tempfile
import time

SWEPT = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # shared writable folders a private uid's leftovers may be in
CHUNK = 1024  # entries listed from one folder at a time (a folder of 600,000 is never read whole)


class Budget:
    """How many entries one pass may look at or remove, and until when (time.monotonic())."""

    def __init__(self, entries: int, until: float):
        self.entries, self.until = entries, until
        self.spent = 0

    def spend(self) -> bool:
        """Take one entry; False once the pass is out of entries or time (the entry is then not touched)."""
        if self.spent >= self.entries or time.monotonic() >= self.until:
            return False
        self.spent += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.entries or time.monotonic() >= self.until


def remove_tree(path: str, budget: Budget) -> bool:
    """Remove `path` (a file or a whole tree) depth first, one entry of `budget` each; True once it is gone,
    False when the budget ran out first or something stays. Never raises: whatever the code left there (a
    tree deeper than PATH_MAX, dirs without permissions) ends as False, never as an exception."""
    stack = [path]
    while stack:
        top = stack[-1]
        if not budget.spend():
            return False
        try:
            info = os.lstat(top)
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(top)
                stack.pop()
                continue
            try:
                os.rmdir(top)
                stack.pop()
                continue
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EACCES, errno.EPERM):
                    raise
            _open_up(top)  # the code may have taken the permissions off its own dirs: give them back
            with os.scandir(top) as entries:
                children = [entry.path for _, entry in zip(range(CHUNK), entries)]
            if not children:
                os.rmdir(top)  # raises if it still cannot go: the whole tree is then left
                stack.pop()
            stack.extend(children)
        except FileNotFoundError:
            stack.pop()  # gone since it was listed
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:  # past PATH_MAX: rm walks by descriptor, in what time is left
                _rm_rf(path, budget.until - time.monotonic())
            return not os.path.lexists(path)
    return True


def _rm_rf(path: str, seconds: float) -> None:
    if seconds > 0:
        try:
            subprocess.run(["rm", "-rf", "--one-file-system", "--", path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=seconds)
        except (OSError, subprocess.SubprocessError):
            pass


def sweep(uid: int, budget: Budget, max_depth: int = 16) -> list[str]:
    """Remove everything `uid` owns in SWEPT and the temp folder, at any depth under world-writable folders
    (the only ones it can write in): the uid is private to the slot, held machine-wide (sandbox.hold_uid),
    and runs nothing between checks, so all of it is the last check's. Returns what stayed (with the
    budget exhausted, what is left may be more than that: see budget.exhausted)."""
    left: list[str] = []
    tops = dict.fromkeys(os.path.realpath(path) for path in (*SWEPT, tempfile.gettempdir()))
    pending = [(top, 0) for top in tops if os.path.isdir(top)]
    while pending and not budget.exhausted:
        directory, depth = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if not budget.spend():
                        break
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone since it was listed
                    if info.st_uid == uid:
                        if not remove_tree(entry.path, budget) and os.path.lexists(entry.path):
                            left.append(entry.path)
                    elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH and depth < max_depth:
                        pending.append((entry.path, depth + 1))
        except OSError:
            continue
    return left


def _open_up(directory: str) -> None:
    if os.geteuid() != 0 and not os.path.islink(directory):  # root needs no permission bits to remove
        try:
            os.chmod(directory, 0o700)
        except OSError:
            pass
