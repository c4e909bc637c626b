"""Removing what a sandbox check left, within a bound: its work folder on the host (the uid levels) and what
its private uid owns in the shared temp folders. Each pass looks at or removes at most a Budget's entries
within its time, so a check that made 620,000 files still ends on time; what a pass could not finish is
reported in one line, and the uid stays out of use until a later pass finds it clean (`clean_up`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import tempfile
import threading
import time

from .sandbox import SLOTS

SWEPT = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # shared writable folders a private uid's leftovers may be in
SWEEP_ENTRIES = 20_000      # entries one pass looks at or removes (a check once left 620,000 files)
SWEEP_PASS_SECONDS = 2.0    # how long a pass after the check's own (in the background) may take
SWEEP_PASSES = 50           # background passes that remove nothing before a slot is given up
CHUNK = 1024  # entries listed from one folder at a time (a folder of 600,000 is never read whole)


logger = logging.getLogger(__name__)


class Budget:
    """How many entries one pass may look at or remove, and until when (time.monotonic())."""

    def __init__(self, entries: int, until: float):
        self.entries, self.until = entries, until
        self.spent = 0
        self.removed = 0  # entries actually removed: a pass that removed any made progress

    def spend(self) -> bool:
        """Take one entry; False once the pass is out of entries or time (the entry is then not touched)."""
        if self.spent >= self.entries or time.monotonic() >= self.until:
            return False
        self.spent += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.entries or time.monotonic() >= self.until


def clean_up(slot: int, lease, workdir: str | None, uid: int | None, until: float) -> str:
    """Remove the check's work folder and sweep its private uid in one pass bounded in entries and time; ""
    when all is gone, else the one line that says what is not. The slot is then given back, clean, or kept
    out of use (its uid's lease held) while later passes go on in the background until it is clean."""
    budget = Budget(SWEEP_ENTRIES, until)
    clean = _cleaned(workdir, uid, budget)
    SLOTS.give_back(slot, lease, clean)
    if clean:
        return ""
    threading.Thread(target=_clean_later, args=(slot, lease, workdir, uid), name="sandbox-sweep",
                     daemon=True).start()
    who = f"uid {uid}" if uid is not None else "the check"
    bound = "stopped at its bound" if budget.exhausted else "could not remove everything"
    return (f"the sweep after the check {bound} ({budget.spent} entries): what {who} left is still being "
            f"removed, and {'the uid' if uid is not None else 'its slot'} is not used again until that is done")


def _cleaned(workdir: str | None, uid: int | None, budget: Budget) -> bool:
    if workdir is not None and not remove_tree(workdir, budget):
        return False
    if uid is None:
        return True
    left, finished = sweep(uid, budget)  # the hook may not have held: what the uid owns in the shared folders
    return finished and not left


def _clean_later(slot: int, lease, workdir: str | None, uid: int | None) -> None:
    """Passes of SWEEP_ENTRIES each until the check's leftovers are gone; then the slot is used again. What
    cannot be removed at all (SWEEP_PASSES passes in a row remove nothing) keeps the slot out of use for the
    life of this process. A pass that removed something does not count: a check that left a million files
    would otherwise lose its uid for good (the uid runs nothing meanwhile, so the tree only shrinks)."""
    stuck = 0
    while stuck < SWEEP_PASSES:
        budget = Budget(SWEEP_ENTRIES, time.monotonic() + SWEEP_PASS_SECONDS)
        if _cleaned(workdir, uid, budget):
            SLOTS.quarantine_over(slot, lease)
            return
        stuck = 0 if budget.removed else stuck + 1
        time.sleep(min(0.05 * 2 ** stuck, 5.0))
    logger.warning("sandbox: what %s left could not be removed; slot %d stays out of use",
                   f"uid {uid}" if uid is not None else workdir, slot)


def remove_tree(path: str, budget: Budget) -> bool:
    """Remove `path` (a file or a whole tree) depth first, one entry of `budget` each; True once it is gone,
    False when the budget ran out first or something stays. Never raises: whatever the code left there (a
    tree deeper than PATH_MAX, dirs without permissions) ends as False, never as an exception."""
    stack = [path]
    while stack:
        top = stack[-1]
        if not budget.spend():
            return not os.path.lexists(path)
        try:
            info = os.lstat(top)
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(top)
                budget.removed += 1
                stack.pop()
                continue
            try:
                os.rmdir(top)
                budget.removed += 1
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
                budget.removed += 1
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


def sweep(uid: int, budget: Budget, max_depth: int = 16) -> tuple[list[str], bool]:
    """Remove everything `uid` owns in SWEPT and the temp folder, at any depth under world-writable folders
    (the only ones it can write in): the uid is private to the slot, held machine-wide (sandbox.hold_uid),
    and runs nothing between checks, so all of it is the last check's. Each folder listed and each entry
    removed is one of `budget`'s (other users' files cost only time). Returns (what stayed, whether the
    whole walk was done within the budget)."""
    left: list[str] = []
    tops = dict.fromkeys(os.path.realpath(path) for path in (*SWEPT, tempfile.gettempdir()))
    pending = [(top, 0) for top in tops if os.path.isdir(top)]
    while pending:
        if not budget.spend():
            return left, False
        directory, depth = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if time.monotonic() >= budget.until:
                        return left, False
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone since it was listed
                    if info.st_uid == uid:
                        if not remove_tree(entry.path, budget):
                            left.append(entry.path)
                            if budget.exhausted:
                                return left, False
                    elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH and depth < max_depth:
                        pending.append((entry.path, depth + 1))
        except OSError:
            continue
    return left, True


def _open_up(directory: str) -> None:
    if os.geteuid() != 0 and not os.path.islink(directory):  # root needs no permission bits to remove
        try:
            os.chmod(directory, 0o700)
        except OSError:
            pass
