"""The child's kernel-side lock-down (stdlib only): a new session keyring, then Landlock and the seccomp filter
that tunixhack/verify/kernel_wall.py built in the parent.

Part of the sandbox child's harness: sandbox.py sends sandbox_guard.py, this file and sandbox_child.py to the
child as one source. Python has no keyctl, Landlock or seccomp call, so _ctypes (0.6 ms to load, against
15 ms for the ctypes package) makes them here, before the audit hook is installed; the objects made for them
are freed and _ctypes leaves sys.modules with the denied imports.
"""

import os
import sys

# keyctl(2)'s system call number by `uname -m` (the Landlock calls have one number on every architecture)
KEYCTL_SYSCALL = {"x86_64": 250, "aarch64": 219, "arm64": 219, "riscv64": 219, "loongarch64": 219,
                  "i386": 288, "i486": 288, "i586": 288, "i686": 288, "armv6l": 311, "armv7l": 311,
                  "armv8l": 311, "ppc": 271, "ppc64": 271, "ppc64le": 271, "s390x": 280}
KEYCTL_GET_KEYRING_ID, KEYCTL_JOIN_SESSION_KEYRING, KEY_SPEC_SESSION_KEYRING = 0, 1, -3
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF, LANDLOCK_RULE_PATH_BENEATH = 444, 445, 446, 1
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
# Landlock's file system rights (linux/landlock.h) and the ABI that brought each one past the first 13
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR, REMOVE_DIR, REMOVE_FILE = 1, 2, 4, 8, 16, 32
MAKE_DIR, MAKE_REG, MAKE_SYM, REFER, TRUNCATE, IOCTL_DEV = 1 << 7, 1 << 8, 1 << 12, 1 << 13, 1 << 14, 1 << 15
LATER_FS_RIGHTS = ((2, REFER), (3, TRUNCATE), (5, IOCTL_DEV))
NET_TCP = 1 | 2                 # ABI 4: bind and connect; with no rule, none is allowed
SCOPES = 1 | 2                  # ABI 6: abstract unix sockets and signals stay inside the domain
READ_TREE = READ_FILE | READ_DIR
WORK_TREE = READ_TREE | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM | REFER | TRUNCATE


def libc_calls():
    """(syscall, prctl, Long, byref, Structure) from libc through _ctypes; arguments are passed as Long."""
    import _ctypes

    class Long(_ctypes._SimpleCData):
        _type_ = "l"

    class Libc:
        _handle = _ctypes.dlopen(None)

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = Long

    def checked(name):
        function = Function((name, Libc))

        def call(*args):
            result = function(*args)
            if result < 0:
                error = _ctypes.get_errno()
                raise OSError(error, f"{name}: {os.strerror(error)}")
            return result
        return call

    return checked("syscall"), checked("prctl"), Long, _ctypes.byref, _ctypes.Structure


def leave_session_keyring() -> None:
    """Join a new, empty, anonymous session keyring. The one inherited from the parent may hold its secrets
    (a key an agent or a login added) and neither namespaces nor a uid switch take it away: the process
    possesses its session keyring, so it could search and read every key in there. Raises OSError where the
    kernel refuses the switch but would still show the old keyring."""
    number = KEYCTL_SYSCALL.get(os.uname().machine)
    if number is None:
        raise OSError(f"no keyctl system call number known for {os.uname().machine}")
    syscall, _, Long, _, _ = libc_calls()
    try:
        syscall(Long(number), Long(KEYCTL_JOIN_SESSION_KEYRING), Long(0))  # name NULL: anonymous
    except OSError as error:
        # keyctl refused to this process altogether (a seccomp filter, an LSM) is refused to the code too
        try:
            syscall(Long(number), Long(KEYCTL_GET_KEYRING_ID), Long(KEY_SPEC_SESSION_KEYRING), Long(0))
        except OSError:
            return
        raise OSError(error.errno, f"could not leave the parent's session keyring: {error.strerror}") from None


def restrict_landlock(abi: int, readable: list, devices: list, work: str) -> None:
    """From here on this process reads only `readable` (trees) and `devices`, writes only under `work`, makes
    no TCP connection and reaches no signal or abstract socket outside itself, as far as `abi` allows."""
    syscall, prctl, Long, _, _ = libc_calls()
    fs = (1 << 13) - 1
    for since, right in LATER_FS_RIGHTS:
        if abi >= since:
            fs |= right
    fields = [fs] + ([NET_TCP] if abi >= 4 else []) + ([SCOPES] if abi >= 6 else [])
    attr = b"".join(value.to_bytes(8, sys.byteorder) for value in fields)  # struct landlock_ruleset_attr
    ruleset = syscall(Long(LANDLOCK_CREATE_RULESET), attr, Long(len(attr)), Long(0))
    try:
        for paths, rights in ((readable, READ_TREE), (devices, READ_FILE | WRITE_FILE), ([work], WORK_TREE)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # not there, or out of this uid's reach: nothing to allow
                try:
                    # struct landlock_path_beneath_attr, packed: u64 allowed_access, s32 parent_fd
                    rule = (rights & fs).to_bytes(8, sys.byteorder) + fd.to_bytes(4, sys.byteorder)
                    syscall(Long(LANDLOCK_ADD_RULE), Long(ruleset), Long(LANDLOCK_RULE_PATH_BENEATH), rule, Long(0))
                finally:
                    os.close(fd)
        prctl(Long(PR_SET_NO_NEW_PRIVS), Long(1), Long(0), Long(0), Long(0))
        syscall(Long(LANDLOCK_RESTRICT_SELF), Long(ruleset), Long(0))
    finally:
        os.close(ruleset)


def load_seccomp(program: bytes) -> None:
    """Load the compiled filter (struct sock_filter[]): from here on its denied calls fail with EPERM."""
    _, prctl, Long, byref, Structure = libc_calls()
    import _ctypes

    class UShort(_ctypes._SimpleCData):
        _type_ = "H"

    class Pointer(_ctypes._SimpleCData):
        _type_ = "z"

    class Program(Structure):  # struct sock_fprog
        _fields_ = [("len", UShort), ("filter", Pointer)]

    prctl(Long(PR_SET_NO_NEW_PRIVS), Long(1), Long(0), Long(0), Long(0))
    prctl(Long(PR_SET_SECCOMP), Long(SECCOMP_MODE_FILTER), byref(Program(len(program) // 8, program)),
          Long(0), Long(0))


def build_wall(wall: dict, work: str) -> None:
    """Landlock, then seccomp (whose filter refuses calls Landlock no longer needs), each where the parent
    found it on this machine."""
    if wall.get("landlock_abi"):
        restrict_landlock(wall["landlock_abi"], wall["readable"], wall["devices"], work)
    if wall.get("seccomp"):
        load_seccomp(wall["seccomp"])
