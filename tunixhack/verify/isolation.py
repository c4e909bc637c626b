"""How the code sandbox is isolated on this machine: probed once, named by `isolation()`, refused when unsafe.

Levels, strongest first:

- "namespaces": each check runs in new user, network, PID, IPC and mount namespaces (util-linux `unshare`
  and `setpriv`, no extra install): no network at all, its own /proc where it is PID 1, no capabilities,
  one process (RLIMIT_NPROC 1 in its own user namespace: no fork, no thread), and a root of its own that
  shows only /usr, the system library links and the Python install, read-only, plus /work: a tmpfs of
  WORK_BYTES and WORK_INODES (an empty skeleton made once per process, filled by one `mount -a` in each
  check's mount namespace). As root the check runs as a private uid (65000 + slot) outside its user
  namespace; otherwise as the user, who must be allowed unprivileged user namespaces. As root where user
  namespaces are refused but the others are not (user.max_user_namespaces=0, say), the same root, network,
  PID, IPC and mount namespaces without a user namespace: made as root, then `setpriv` becomes the private
  uid with no capabilities (the probe is the same; the level keeps its name, for it stops the same things).
- "uid+rlimits+audit": where namespaces are refused (some containers) but we are root: the harness switches
  to the slot's private uid, RLIMIT_NPROC 1 for that uid, rlimits, and the audit hook; afterwards what the
  uid owns in the shared temp folders is removed (tunixhack/verify/code.py). It does not stop a program that
  gets past the hook from reaching the network or world-readable files: sandbox_child.py says what it does
  and does not stop.

A private uid (65000 + slot) is held machine-wide while a check runs (an abstract unix socket named after
it, tunixhack/verify/code.py `_lease`), so two processes on one machine never run checks as the same uid.
- "rlimits+audit": neither namespaces nor root. The code would run as the user, able to read what the user
  can read; checks are refused unless `allow_unsafe()` was called (the scripts' --unsafe-run-code).
"""

from __future__ import annotations

import atexit
import errno
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache

from ..errors import UserError

NAMESPACES, PRIVATE_UID, UNSAFE = "namespaces", "uid+rlimits+audit", "rlimits+audit"
LEVELS = (NAMESPACES, PRIVATE_UID, UNSAFE)  # strongest first
UID_BASE = 65000                            # Debian reserves 65000-65533: private uids, one per parallel slot
WORK_BYTES = 32 * 1024 * 1024               # the namespaced work folder (tmpfs): size and inodes
WORK_INODES = 1024
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr, or dirs
# Modules an MBPP solution commonly imports: preloaded (before the uid switch) only in the fallback where
# no interpreter is runnable by the private uid, e.g. root's pyenv under /root (other imports then fail).
PRELOAD = ("re", "math", "cmath", "collections", "itertools", "functools", "heapq", "bisect", "string",
           "operator", "copy", "array", "fractions", "decimal", "statistics", "datetime", "calendar",
           "random", "typing", "dataclasses", "enum", "json", "textwrap", "unicodedata", "struct", "traceback")
# What the probe child checks about its own confinement; it prints "confined" only if all hold.
PROBE = """
import os, resource, socket, threading
assert os.getcwd() == "/work" and os.listdir("/proc") and [p for p in os.listdir("/proc") if p.isdigit()] == ["1"]
inside, outside = map(int, open("/proc/self/uid_map").read().split()[:2])
assert outside + os.getuid() - inside == int(os.environ["OUTER_UID"])  # the uid we meant, never root
assert "CapEff:\t0000000000000000" in open("/proc/self/status").read().splitlines()
open("/work/probe", "w").close()
for path in ("/probe", "/usr/probe"):
    try:
        open(path, "w")
        raise SystemExit("writable: " + path)
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", 9), timeout=1)
    raise SystemExit("network reachable")
except OSError:
    pass
resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
try:
    threading.Thread(target=print).start()
    raise SystemExit("a thread started")
except RuntimeError:
    pass
print("confined")
"""


class IsolationRefused(UserError):
    """Model-written code would run unisolated and the user has not allowed it."""


@dataclass(frozen=True)
class Launch:
    """How to start one sandbox child at a given isolation level."""
    level: str
    python: str              # the interpreter the child runs
    wrapper: str = ""        # namespaces: the shell script that builds the namespaces (see _wrapper_script)
    drop: bool = False       # the harness switches to the slot's private uid itself (PRIVATE_UID)
    preload: tuple = ()      # PRIVATE_UID fallback: modules to load before the switch

    def command(self, python_args: list[str], slot: int) -> list[str]:
        if self.level != NAMESPACES:
            return [self.python, *python_args]
        uid = UID_BASE + slot if os.geteuid() == 0 else 0  # 0: the user, seen from the outer namespace
        outer = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
        return [_UNSHARE, *outer, "--propagation", "private", "/bin/sh", "-c", self.wrapper, "sandbox",
                str(uid), self.python, *python_args]

    @property
    def workdir_inside(self) -> str | None:
        """The work folder as the child sees it, where it is not a host folder (namespaces: /work)."""
        return "/work" if self.level == NAMESPACES else None


_UNSHARE, _SETPRIV = shutil.which("unshare") or "unshare", shutil.which("setpriv") or "setpriv"
_lock = threading.Lock()
_state = {"probed": None, "forced": None, "unsafe_allowed": False, "why": ""}


def allow_unsafe(allowed: bool = True) -> None:
    """Let checks run at the "rlimits+audit" level (the code runs as you); the flag's name says it is unsafe."""
    _state["unsafe_allowed"] = allowed


def force_isolation(level: str | None) -> None:
    """Use `level` instead of the best this machine offers (tests; None goes back to the best). Only a
    level in available_levels(): a machine without namespaces cannot be made to have them."""
    if level is not None and level not in available_levels():
        raise ValueError(f"isolation level must be one of {', '.join(available_levels())} on this machine, "
                         f"got {level!r}")
    _state["forced"] = level


def available_levels() -> tuple[str, ...]:
    """The levels this machine can run, strongest first: a private uid needs root, and root never runs
    the code as itself."""
    best = _probed().level
    mine = (PRIVATE_UID,) if os.geteuid() == 0 else (UNSAFE,)
    return tuple(level for level in LEVELS[LEVELS.index(best):] if level == best or level in mine)


def isolation() -> str:
    """The isolation level checks run at here: "namespaces", "uid+rlimits+audit" or "rlimits+audit"."""
    return _state["forced"] or _probed().level


def why() -> str:
    """Why the best level is not "namespaces" ("" when it is)."""
    _probed()
    return _state["why"]


def require_isolation() -> str:
    """The level checks will run at; raises IsolationRefused now (at start-up) rather than at the first check."""
    launch()
    return isolation()


def launch() -> Launch:
    """How to start a child at the current level; raises IsolationRefused at an unsafe level not allowed."""
    level = isolation()
    if level == UNSAFE and not _state["unsafe_allowed"]:
        raise IsolationRefused(
            "the code sandbox cannot isolate model-written code here: user namespaces are refused "
            f"({why() or 'a weaker level was forced'}) and we are not root, so the code would run as you; pass "
            "--unsafe-run-code (tunixhack.verify.code.allow_unsafe()) to run it anyway")
    probed = _probed()
    if level == probed.level:
        return probed
    return _private_uid_launch() if level == PRIVATE_UID else Launch(UNSAFE, sys.executable)


def _probed() -> Launch:
    with _lock:  # one probe per process, even when the first checks start from many threads at once
        if _state["probed"] is None:
            launch_, _state["why"] = _namespace_launch()
            if launch_ is None:
                launch_ = _private_uid_launch() if os.geteuid() == 0 else Launch(UNSAFE, sys.executable)
            _state["probed"] = launch_
        return _state["probed"]


# --- namespaces ------------------------------------------------------------------------------------------
def _visible_paths(python: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(symlinks to recreate as (path, target), directories to bind read-only) for the child's root."""
    links, binds = [], ["/usr"]
    for path in SYSTEM_LINKS:
        if os.path.islink(path):
            links.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            binds.append(path)
    for path in (os.path.realpath(sys.base_prefix), os.path.dirname(python)):
        if not any(path == b or path.startswith(b.rstrip("/") + "/") for b in binds):
            binds.append(path)
    return links, binds


def _skeleton(python: str) -> tuple[str, str]:
    """Made once per process: an empty root for the children (mount points and the system links) and the
    fstab that fills it, read-only, in each child's own mount namespace. Returns (root, fstab)."""
    base = tempfile.mkdtemp(prefix="tunixhack-sandbox-root-")
    creator = os.getpid()
    # only by this process: a forked child that exits normally runs the atexit handlers it inherited
    atexit.register(lambda: os.getpid() == creator and shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)  # the private uid chroots into base/root
    root = os.path.join(base, "root")
    links, binds = _visible_paths(python)
    for path in ["/proc", "/work", *binds]:
        os.makedirs(root + path, mode=0o755)
    for path, target in links:
        os.symlink(target, root + path)
    os.chmod(root, 0o755)
    entries = [(root, root, "none", "bind,ro,nosuid,nodev")]
    entries += [(b, root + b, "none", "bind,ro,nosuid,nodev") for b in binds]
    entries.append(("tunixhack-work", root + "/work", "tmpfs",
                    f"size={WORK_BYTES},nr_inodes={WORK_INODES},mode=0777,nosuid,nodev"))
    if any(any(c.isspace() or c == "\\" for c in field) for entry in entries for field in entry):
        raise OSError(f"a path with blanks cannot go in an fstab: {entries}")
    fstab = os.path.join(base, "fstab")
    with open(fstab, "w", encoding="utf-8") as f:
        f.writelines(" ".join(entry) + " 0 0\n" for entry in entries)
    return root, fstab


def _wrapper_script(root: str, fstab: str, user_namespace: bool = True) -> str:
    """The shell script (run by `unshare --mount` as root, or as root of a new user namespace) that mounts
    the child's root and starts the child, as uid $1 outside, in its own user, network, PID, IPC and mount
    namespaces, chrooted there, with no capabilities.

    The mounts are made in the outer mount namespace, so inside the child's user namespace they are locked:
    read-only stays read-only. The work folder is a tmpfs, gone with the namespace.

    `user_namespace=False` (root only, where user namespaces are refused but the others are not): the same
    namespaces and root but the user's; the chroot and /proc are made as root, then setpriv becomes the
    private uid with no capabilities, so the read-only mounts stay read-only (no CAP_SYS_ADMIN to remount)."""
    q = shlex.quote
    namespaces = (f"{q(_UNSHARE)} {'--user --map-root-user ' if user_namespace else ''}--net --pid --ipc --fork "
                  f"--kill-child --root={q(root)} --wd=/work --mount-proc=/proc")
    drop = "--bounding-set=-all --inh-caps=-all --no-new-privs"
    become = '--reuid="$U" --regid="$U" --clear-groups'
    if not user_namespace:
        # the uid switch clears the parent-death signal `unshare --kill-child` set: set it again after it,
        # else a check that calls setsid() outlives its check (issue 15, #2)
        return "\n".join(["set -e", "U=$1", "shift", f"mount -a -T {q(fstab)}",
                          f'exec {namespaces} {q(_SETPRIV)} {become} --pdeathsig KILL {drop} "$@"'])
    return "\n".join([
        "set -e", "U=$1", "shift",
        f"mount -a -T {q(fstab)}",
        f'set -- {namespaces} {q(_SETPRIV)} {drop} "$@"',
        # as root: become the private uid before the user namespace, so it maps to that uid, not to root
        f'[ "$U" = 0 ] || set -- {q(_SETPRIV)} {become} "$@"',
        'exec "$@"'])


def _namespace_launch(user_namespaces: tuple[bool, ...] = (True, False)) -> tuple[Launch | None, str]:
    """A Launch at the namespaces level if a probe child shows it confined, else (None, why not). With a
    user namespace first; as root, then without one (user namespaces off, mount and network ones not)."""
    python = os.path.realpath(sys.executable)
    if not (os.path.isabs(_UNSHARE) and os.path.isabs(_SETPRIV)):
        return None, "unshare or setpriv (util-linux) not found"
    if not _SETPRIV.startswith("/usr/"):
        return None, f"setpriv at {_SETPRIV} would not be visible in the sandbox"
    failures = []
    try:
        skeleton = _skeleton(python)
    except OSError as error:
        return None, f"{type(error).__name__}: {error}"
    for user_namespace in user_namespaces if os.geteuid() == 0 else user_namespaces[:1]:
        candidate = Launch(NAMESPACES, python, _wrapper_script(*skeleton, user_namespace))
        # the probe's uid as the wrapper's namespace sees it: as root, the private uid of slot 0; as a user,
        # 0 in the user namespace the wrapper runs in, which is the user (uid_map shows one level up only)
        outer_uid = UID_BASE if os.geteuid() == 0 else 0
        try:
            done = subprocess.run(candidate.command(["-I", "-S", "-B", "-c", PROBE], 0), cwd="/",
                                  env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OUTER_UID": str(outer_uid)},
                                  capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as error:
            failures.append(f"{type(error).__name__}: {error}")
            continue
        if done.returncode == 0 and done.stdout.strip() == b"confined":
            return candidate, ""
        detail = [line.strip() for line in (done.stderr or done.stdout).decode("utf-8", "replace").splitlines()]
        first = next((line for line in detail if line), "no output")  # unshare's or mount's own message
        failures.append(f"the namespace probe failed (exit {done.returncode}): {first}")
    return None, failures[0] if failures else "no namespace variant to try"


# --- the fallback: a private uid ---------------------------------------------------------------------------
@lru_cache(maxsize=1)  # thread-safe enough: a racing first call probes twice and gets the same answer
def _private_uid_launch() -> Launch:
    """As root without namespaces: find an interpreter the private uid can run (probe once)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = dict.fromkeys([sys.executable, getattr(sys, "_base_executable", sys.executable),
                                os.path.realpath(sys.executable), f"/usr/bin/python{version}",
                                f"/usr/local/bin/python{version}"])
    setuid_possible = False
    for python in candidates:
        try:
            probe = subprocess.run([python, "-I", "-S", "-B", "-c", "import math, re, collections, json"],
                                   user=UID_BASE, group=UID_BASE, extra_groups=[], env={}, cwd="/",
                                   capture_output=True, timeout=30)
        except OSError as error:
            # EACCES/ENOENT: the uid switch worked, the exec of this interpreter did not; EPERM: no switch
            setuid_possible |= error.errno in (errno.EACCES, errno.ENOENT)
            continue
        except subprocess.SubprocessError:
            continue
        setuid_possible = True
        if probe.returncode == 0:
            return Launch(PRIVATE_UID, python, drop=True)
    if setuid_possible:
        return Launch(PRIVATE_UID, sys.executable, drop=True, preload=PRELOAD)
    warnings.warn("running as root but cannot switch to an unprivileged uid: the code sandbox relies on "
                  "its audit hook and rlimits only (RLIMIT_NPROC is not enforced for root)", stacklevel=2)
    return Launch(UNSAFE, sys.executable)
