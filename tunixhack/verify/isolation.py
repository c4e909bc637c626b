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
- "uid+landlock+seccomp": as root where namespaces are refused (some containers) but Landlock is not: the
  harness switches to the slot's private uid (RLIMIT_NPROC 1 for it, rlimits), then shuts itself in with
  Landlock (reads only the system and Python files, writes only its work folder, no TCP, no signal or
  abstract socket outside) and the seccomp filter (tunixhack/verify/kernel_wall.py); afterwards what the
  uid owns in the shared temp folders is removed (tunixhack/verify/code.py), in case.
- "landlock+seccomp": the same wall without namespaces or root: the code runs as the user (Landlock ABI 6 or
  later, so that it cannot signal the user's other processes either).
- "uid+rlimits+audit" (root) and "rlimits+audit" (a user): no namespaces and no Landlock (or no libseccomp):
  the audit hook would be the only thing between the code and the machine, so checks are refused unless
  `allow_unsafe()` was called (the scripts' --unsafe-run-code).

Every level adds the seccomp filter and Landlock where the machine has them (inside namespaces, defence in
depth); the audit hook stays at every level as a tripwire.

A private uid (65000 + slot) is held machine-wide while a check runs (an abstract unix socket named after
it, tunixhack/verify/sandbox.py `hold_uid`), so two processes on one machine never run checks as the same uid.
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
from dataclasses import dataclass, replace
from functools import lru_cache

from ..errors import UserError
from . import kernel_wall

NAMESPACES, WALLED_UID, WALLED_USER = "namespaces", "uid+landlock+seccomp", "landlock+seccomp"
BARE_UID, UNSAFE = "uid+rlimits+audit", "rlimits+audit"
LEVELS = (NAMESPACES, WALLED_UID, WALLED_USER, BARE_UID, UNSAFE)  # strongest first
UNWALLED = (BARE_UID, UNSAFE)               # refused unless allow_unsafe()
USER_WALL_ABI = 6                           # as the user, Landlock must scope signals (the user's processes)
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
    drop: bool = False       # the harness switches to the slot's private uid itself (a uid level)
    preload: tuple = ()      # a uid level's fallback: modules to load before the switch

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

    @property
    def own_uid(self) -> bool:
        """Does the code run as a uid (or in a user namespace) of its own, where nothing else runs?"""
        return self.level == NAMESPACES or self.drop

    def wall(self) -> dict:
        """The kernel wall the harness builds around itself: Landlock and seccomp where the machine has
        them, reading only what the namespaces' root would show (the system and Python files)."""
        return kernel_wall.payload(_readable(self.python))


_UNSHARE, _SETPRIV = shutil.which("unshare") or "unshare", shutil.which("setpriv") or "setpriv"
_lock = threading.Lock()
_state = {"probed": None, "launches": {}, "forced": None, "unsafe_allowed": False, "why": ""}


def allow_unsafe(allowed: bool = True) -> None:
    """Let checks run with neither namespaces nor Landlock (the audit hook alone between the code and the
    machine; as a user, the code runs as you); the flag's name says it is unsafe."""
    _state["unsafe_allowed"] = allowed


def force_isolation(level: str | None) -> None:
    """Use `level` instead of the best this machine offers (tests; None goes back to the best). Only a
    level in available_levels(): a machine without namespaces cannot be made to have them."""
    if level is not None and level not in available_levels():
        raise ValueError(f"isolation level must be one of {', '.join(available_levels())} on this machine, "
                         f"got {level!r}")
    _state["forced"] = level


def available_levels() -> tuple[str, ...]:
    """The levels this machine can run, strongest first: those behind a kernel wall, then the unwalled one
    (refused unless allow_unsafe()). A private uid needs root, and root never runs the code as itself."""
    _probed()
    return tuple(_state["launches"])


def isolation() -> str:
    """The isolation level checks run at here: one of LEVELS."""
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
    """How to start a child at the current level; raises IsolationRefused at an unwalled level not allowed."""
    level = isolation()
    if level in UNWALLED and not _state["unsafe_allowed"]:
        who = "as a private uid" if level == BARE_UID else "as you"
        raise IsolationRefused(
            f"the code sandbox cannot wall model-written code in here ({why() or 'a weaker level was forced'}): "
            f"the code would run {who} behind the audit hook alone; pass --unsafe-run-code "
            "(tunixhack.verify.code.allow_unsafe()) to run it anyway")
    probed = _probed()
    return probed if level == probed.level else _state["launches"][level]


def _probed() -> Launch:
    with _lock:  # one probe per process, even when the first checks start from many threads at once
        if _state["probed"] is None:
            namespaces, why_not = _namespace_launch()
            fallback = _private_uid_launch() if os.geteuid() == 0 else Launch(UNSAFE, sys.executable)
            walled, why_no_wall = _walled_launch(fallback)
            found = [launch_ for launch_ in (namespaces, walled, fallback) if launch_ is not None]
            _state["launches"] = {launch_.level: launch_ for launch_ in found}
            _state["why"] = why_not if namespaces or walled else f"{why_not}; {why_no_wall}"
            _state["probed"] = found[0]
        return _state["probed"]


def _walled_launch(fallback: Launch) -> tuple[Launch | None, str]:
    """`fallback` (a private uid as root, else the user) inside Landlock and seccomp, or (None, why not)."""
    abi, program = kernel_wall.available()
    if fallback.level == UNSAFE and os.geteuid() == 0:
        return None, "root cannot switch to a private uid here, and never runs the code as itself"
    needed = 1 if fallback.drop else USER_WALL_ABI
    if abi < needed:
        return None, ("this kernel offers no Landlock" if abi == 0 else
                      f"Landlock ABI {abi}; running as you needs ABI {needed}+ to keep your processes out of reach")
    if program is None:
        return None, "libseccomp is not installed (apt install libseccomp2)"
    return replace(fallback, level=WALLED_UID if fallback.drop else WALLED_USER), ""


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


@lru_cache(maxsize=4)
def _readable(python: str) -> tuple[str, ...]:
    return tuple(_visible_paths(python)[1])


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
            return Launch(BARE_UID, python, drop=True)
    if setuid_possible:
        return Launch(BARE_UID, sys.executable, drop=True, preload=PRELOAD)
    return Launch(UNSAFE, sys.executable)  # root cannot switch uid here: refused unless allow_unsafe()
