"""The kernel wall around a sandbox child: Landlock and a seccomp filter, built here in the parent and applied
by the child's harness (sandbox_wall.py) just before the code runs, at every isolation level that has them.

- Landlock (Linux 5.13+, unprivileged, allowed in containers that refuse user namespaces): the child may read
  only the system and Python files (and a few devices), write only in its work folder (ABI 1+), cannot bind or
  connect TCP (ABI 4+), and cannot signal or reach an abstract unix socket outside its own domain (ABI 6+).
- seccomp: system calls no check needs, each a way around the rest, fail with EPERM (DENIED). The filter is
  compiled by libseccomp (pyseccomp), which knows each architecture's numbers and refuses foreign ABIs
  (i386 or x32 calls from an x86_64 process kill it); the child only loads the compiled program.

Why apply them in the child, not in a launcher or the parent: the parent is threaded (no preexec_fn), the
child runs `python -I -S` (no site-packages), and both need only three system calls and a prctl that the
harness already makes with _ctypes before its audit hook is installed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from functools import lru_cache

LANDLOCK_CREATE_RULESET, LANDLOCK_CREATE_RULESET_VERSION = 444, 1  # the same number on every architecture
# Calls refused to the code (EPERM). A name this libseccomp does not know is left out.
DENIED = (
    "memfd_create", "memfd_secret",                           # memory that RLIMIT_AS does not count
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise",
    "keyctl", "add_key", "request_key",                       # the kernel keyrings
    "socket", "socketpair", "socketcall",                     # no socket at all: no network, and no abstract
                                                              # name bound (a private uid's lease is one)
    "setsid", "setpgid",                                      # the check's process group is killed as one
    "mknod", "mknodat",                                       # devices and FIFOs
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",         # namespaces and mounts
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "io_setup",                                               # Linux AIO: one check took the machine's aio-max-nr
    "execve", "execveat", "fork", "vfork",                    # the harness is the one program: no other
    "shmget", "shmat", "semget", "msgget",                    # System V IPC outlives the process
    "syslog", "acct", "quotactl", "name_to_handle_at", "open_by_handle_at", "lookup_dcookie",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff",
)
F_SETPIPE_SZ = 1031     # fcntl(2): grow a pipe's buffer
CLONE_THREAD = 0x10000  # clone without it makes a process: refused; a thread stays to RLIMIT_NPROC


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers (0: none: too old, not built in, or off at boot)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        version = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                               ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(version, 0)


@lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    """The compiled filter (struct sock_filter[] as bytes), or None where libseccomp is not installed."""
    try:
        import pyseccomp as seccomp
    except Exception:  # noqa: BLE001 - ImportError, or the library itself missing (pyseccomp loads it on import)
        return None
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    refuse = seccomp.ERRNO(errno.EPERM)
    for name in DENIED:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number >= 0 or number < -1:  # -1 (__NR_SCMP_ERROR): unknown to this libseccomp
            rules.add_rule(refuse, number)
    rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    # a pipe's buffer is kernel memory RLIMIT_AS does not count: at its default 64 KiB, RLIMIT_NOFILE bounds
    # them all (sandbox.PIPE_BYTES); grown to pipe-max-size (1 MiB), a check held 64 MiB
    rules.add_rule(refuse, "fcntl", seccomp.Arg(1, seccomp.EQ, F_SETPIPE_SZ))
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc fall back to clone for threads
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


@lru_cache(maxsize=1)
def available() -> tuple[int, bytes | None]:
    """(Landlock ABI, seccomp program) this machine offers, probed once."""
    return landlock_abi(), seccomp_program()


def payload(readable: list[str]) -> dict:
    """What the harness needs to build the wall: the Landlock ABI, the trees it may read (its work folder is
    its cwd), and the seccomp program. Either part may be absent (0 / None) where the machine lacks it."""
    abi, program = available()
    devices = [path for path in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
               if os.path.exists(path)]
    return {"landlock_abi": abi, "readable": list(readable), "devices": devices, "seccomp": program}
