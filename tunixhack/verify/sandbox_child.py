"""The harness that runs inside the sandbox child (stdlib only, run as `python -I -S -B -c <this source> FD`).

It reads one marshalled payload from stdin (code, setup, imports, probes, limits), locks itself down, runs
the test imports, the candidate code and the setup code in one fresh module namespace, then evaluates each
probe (a call to the code under test, see tunixhack/verify/code_probes.py) and reports on the pipe FD:

    READY                     locked down, untrusted code about to run (no READY: the sandbox itself failed)
    VALUE <i> <json>          the value of probe i, as plain data (see `encode`)
    FAIL <reason> <stage>     the code failed before every probe had a value

Nothing here decides whether the code passed: the parent compares the values with the expected ones, which
never enter this process. Whatever the code writes on FD can only be values it could have returned.

Lock-down, in order: a new, empty session keyring (the parent's may hold secrets, and neither namespaces nor a
uid switch take it away); the privilege drop when the parent asks for it (root without namespaces); resource
limits (soft == hard; one process only where the uid or user namespace is private to this check); an audit
hook (it cannot be removed once added) refusing sockets, new processes, signals, ctypes and the modules that
read, write, connect or spawn without audit events (readline, sqlite3, dbm, _tkinter, nis, _posixsubprocess,
however they are loaded and under whatever dotted name), reads outside the working directory, /usr and the
Python install (other processes' /proc entries, datasets, tokens), paths that are not plain str/bytes,
relative os.open (its event does not show dir_fd: os.open is wrapped to open by absolute path) and any write,
directory or link outside the working directory, at most `write_opens` of them. The hook reads nothing the
code can change: its lists are frozen copies in its closure, its functions and builtins are bound there, it
decodes paths itself (os.fsdecode would call the module global os.fspath), and its count of writes is an int
no frame can write back. Code that runs inside the hook (a signal handler, a garbage collection's finalizer)
may cause no audited event there: it could otherwise swap a link between the check and the operation.

Limits of this design: the code shares the interpreter with this harness and the audit hook is a tripwire,
not a security boundary (PEP 578). What stops the code, by level (tunixhack/verify/isolation.py):

- "namespaces": the kernel. No network, a PID namespace of its own, a read-only root showing only the system
  and Python files, a tmpfs work folder, no capabilities, one process. The hook adds nothing it relies on.
- "uid+rlimits+audit": the kernel stops what a private uid with no capabilities cannot do (read files that
  are not world-readable, write outside world-writable folders, signal or trace other users' processes,
  start a second process or thread, exceed the rlimits) and what it leaves in /tmp, /var/tmp, /dev/shm,
  /run/lock and the temp folder is removed after each check. The rest rests on the hook alone: the network
  (a service on 127.0.0.1 included), world-readable files (a dataset with the expected answers, a token in
  a world-readable file), other processes' /proc entries, disk use in other world-writable folders, SysV
  IPC objects, the slot uid's own user keyring (kept between its checks) and the 32-write cap. No way past
  the hook is known that reaches those; ways past it are known for less (the create_builtin guard's
  closure hands back the unguarded loader: a fresh `posix` makes FIFOs with no audit event, which the
  sweep removes), and native code that reached a bug in a C module would get them all.
- "rlimits+audit": as above but as the user: everything the user can read or write; refused by default.
"""

import _thread
import marshal
import os
import resource
import stat
import sys
from _collections import defaultdict
from _json import encode_basestring_ascii as json_string  # the json package would import re: 6 ms a check

DENIED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "_posixshmem", "syslog", "_testcapi", "_testinternalcapi",
    "_testbuffer", "_testmultiphase", "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz",
    "readline", "sqlite3", "_sqlite3", "dbm", "_dbm", "_gdbm",  # they write files without an audit event
    "_tkinter", "tkinter", "nis",  # Tcl reads files and opens sockets, NIS asks a server, without one either
})
# Builtin modules that must not be created afresh (a new `posix` has mkfifo/mknod back).
DENIED_REBUILDS = DENIED_IMPORTS | {"posix", "_imp", "sys", "builtins", "_io", "_thread", "_signal"}
DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "resource.setrlimit", "resource.prlimit", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents", "sys._current_frames", "mmap.__new__", "os.startfile",
})
DENIED_PREFIXES = ("socket.", "ctypes.", "syslog.", "_posixshmem.", "winreg.", "webbrowser.")
# Events that change the file system: positions of their path and dir_fd arguments, and whether the
# event makes a new inode (counted with the files opened for writing).
PATH_EVENTS = {
    "os.remove": ((0,), (1,), False), "os.rmdir": ((0,), (1,), False), "os.mkdir": ((0,), (2,), True),
    "os.rename": ((0, 1), (2, 3), False), "os.link": ((0, 1), (2, 3), True), "os.symlink": ((1,), (2,), True),
    "os.chmod": ((0,), (2,), False), "os.chown": ((0,), (3,), False), "os.utime": ((0,), (3,), False),
    "os.truncate": ((0,), (), False), "os.setxattr": ((0,), (), False), "os.removexattr": ((0,), (), False),
}
LISTING_EVENTS = ("os.listdir", "os.scandir")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
MAX_DEPTH = 100        # as tunixhack/verify/code_probes.py
BIG_INT_BITS = 14_000  # ints past this travel as hex (decimal conversion is capped at 4300 digits)
TAGS = {tuple: "t", set: "s", frozenset: "f"}
# keyctl(2)'s system call number by `uname -m` (Python has no keyctl; ctypes is loaded for this one call)
KEYCTL_SYSCALL = {"x86_64": 250, "aarch64": 219, "arm64": 219, "riscv64": 219, "loongarch64": 219,
                  "i386": 288, "i486": 288, "i586": 288, "i686": 288, "armv6l": 311, "armv7l": 311,
                  "armv8l": 311, "ppc": 271, "ppc64": 271, "ppc64le": 271, "s390x": 280}
KEYCTL_GET_KEYRING_ID, KEYCTL_JOIN_SESSION_KEYRING, KEY_SPEC_SESSION_KEYRING = 0, 1, -3
FLOAT_WORDS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}  # JSON as Python's json reads it


class Unsupported(TypeError):
    """A value that is not plain data."""


def encode(value, depth=0) -> str:
    """`value` as JSON text, exact builtin types only (a subclass or custom object raises; a Counter or a
    defaultdict becomes a dict). The format is the one tunixhack.verify.code_probes.decode_value reads."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is str:
        return json_string(value)
    if kind is int:
        return int.__repr__(value) if value.bit_length() <= BIG_INT_BITS else '{"x":"%x"}' % value
    if kind is float:
        text = float.__repr__(value)
        return FLOAT_WORDS.get(text, text)
    if depth >= MAX_DEPTH:
        raise Unsupported(f"a value nested deeper than {MAX_DEPTH}")
    if kind is list:
        return "[" + ",".join([encode(item, depth + 1) for item in value]) + "]"
    if kind in TAGS:
        return '{"%s":[%s]}' % (TAGS[kind], ",".join([encode(item, depth + 1) for item in value]))
    counter = getattr(sys.modules.get("collections"), "Counter", None)  # loaded if the value is one
    if kind is dict or kind is defaultdict or (counter is not None and kind is counter):
        # the last two travel as the plain dict of their items: compared with a dict (as every MBPP test
        # does) they behave exactly like it; four MBPP reference solutions return one
        pairs = ["[%s,%s]" % (encode(k, depth + 1), encode(v, depth + 1)) for k, v in dict.items(value)]
        return '{"d":[%s]}' % ",".join(pairs)
    if kind is bytes:
        return '{"b":"%s"}' % value.hex()
    if kind is complex:
        return '{"c":[%s,%s]}' % (encode(value.real), encode(value.imag))
    raise Unsupported(f"a value of type {kind.__module__}.{kind.__qualname__}: only None, bool, int, float, "
                      "complex, str, bytes and list/tuple/set/frozenset/dict of these can be checked")


def leave_session_keyring() -> None:
    """Join a new, empty, anonymous session keyring. The one inherited from the parent may hold its secrets
    (a key an agent or a login added) and neither namespaces nor a uid switch take it away: the process
    possesses its session keyring, so it could search and read every key in there. Done before the code
    runs; the ctypes objects made for it are freed and _ctypes leaves sys.modules with the denied imports.
    Raises OSError where the kernel refuses the switch but would still show the old keyring."""
    import _ctypes
    import gc

    number = KEYCTL_SYSCALL.get(os.uname().machine)
    if number is None:
        raise OSError(f"no keyctl system call number known for {os.uname().machine}")

    class Long(_ctypes._SimpleCData):
        _type_ = "l"

    class Libc:
        _handle = _ctypes.dlopen(None)

    class Syscall(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = Long

    syscall = Syscall(("syscall", Libc))
    joined = syscall(Long(number), Long(KEYCTL_JOIN_SESSION_KEYRING), Long(0))  # name NULL: anonymous
    error = _ctypes.get_errno()
    # keyctl refused to this process altogether (a seccomp filter, an LSM) is refused to the code too
    reachable = joined < 0 and syscall(Long(number), Long(KEYCTL_GET_KEYRING_ID), Long(KEY_SPEC_SESSION_KEYRING),
                                       Long(0)) >= 0
    del syscall, Syscall, Libc, Long
    gc.collect()
    if reachable:
        raise OSError(error, f"could not leave the parent's session keyring: {os.strerror(error)}")


def set_limits(limits: dict) -> None:
    """Soft == hard everywhere (so the code cannot raise them), except CPU: SIGXCPU first, then SIGKILL."""
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_NOFILE", limits["open_files"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    nproc = limits["processes"]
    if nproc is None:
        # No uid of our own: RLIMIT_NPROC counts every task of the real uid, the user's other programs too.
        nproc = count_tasks(os.getuid()) + limits["spare_processes"]
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def count_tasks(uid: int) -> int:
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    total += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass  # the process ended while we counted
    return total


def drop_privileges(uid: int, gid: int, preload: list) -> None:
    """Become uid/gid (started as root). `preload`: modules to load first when uid cannot read the stdlib."""
    for name in preload:
        try:
            __import__(name)
        except ImportError:
            pass
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def make_audit_hook(root: str, max_write_opens: int):
    """The hook. Everything it reads is bound here, before the code runs, as locals of this closure: the
    deny lists (frozen copies), the os functions, the builtins (even `type`), the count of writes and the
    threads inside it (an int and a frozenset, `nonlocal`: a frame the code reaches shows them, cannot
    change them). Patching this module's globals, `os`,
    `os.path` or `builtins` changes nothing it does; test_the_audit_hook_reads_no_global_name holds it to
    that."""
    lstat, readlink, getcwd, is_link = os.lstat, os.readlink, os.getcwd, stat.S_ISLNK
    type_, str_, bytes_, int_, OSError_, deny_error = type, str, bytes, int, OSError, PermissionError
    name_of = type.__dict__["__name__"].__get__  # a class's own name: a metaclass property cannot run here
    fs_encoding = sys.getfilesystemencoding()
    denied_imports, denied_events, denied_prefixes = (frozenset(DENIED_IMPORTS), frozenset(DENIED_EVENTS),
                                                      tuple(DENIED_PREFIXES))
    path_events = frozenset(PATH_EVENTS)
    path_specs = tuple(PATH_EVENTS.items())  # a tuple, not a dict: nothing the code reaches can be changed
    listing_events, write_flags = frozenset(LISTING_EVENTS), int(WRITE_FLAGS)
    own_proc = f"/proc/{os.getpid()}"
    write_opens = 0
    busy, get_ident = frozenset(), _thread.get_ident  # the threads in the hook (immutable: no frame changes it)
    # What may be read: what the namespaces' root shows (the work folder, /usr, the Python install) and a few
    # devices. Without namespaces this keeps a private uid off world-readable files: a dataset with the
    # expected answers, a token in a project folder.
    installs = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable))
    readable = tuple({root, own_proc, "/usr", *map(os.path.realpath, installs)})
    devices = frozenset(("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"))

    def deny(event: str):
        raise deny_error(f"sandbox: {event} is not allowed")

    def plain(path) -> str:
        """The path as str, decoded here (os.fsdecode would call os.fspath, which the code can replace); a
        path object (its __fspath__ could answer differently each time) or a str/bytes subclass is refused."""
        kind = type_(path)
        if kind is str_:
            return path
        if kind is bytes_:
            return path.decode(fs_encoding, "surrogateescape")
        deny(f"a path of type {name_of(kind)} (only str and bytes)")

    def resolve(text: str) -> str:
        """os.path.realpath without os.path (which the code could patch): follow symlinks, fold . and .."""
        if not text.startswith("/"):
            text = getcwd() + "/" + text
        pending = [part for part in text.split("/") if part][::-1]
        parts, hops = [], 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            candidate = "/" + "/".join(parts + [part])
            try:
                mode = lstat(candidate).st_mode
            except OSError_:
                parts.append(part)  # not there (yet): taken literally
                continue
            if not is_link(mode):
                parts.append(part)
                continue
            hops += 1
            if hops > 40:
                raise deny_error("sandbox: too many symbolic links")
            target = readlink(candidate)
            if target.startswith("/"):
                parts = []
            pending.extend([p for p in target.split("/") if p][::-1])
        return "/" + "/".join(parts)

    def inside(real: str) -> bool:
        return real == root or real.startswith(root + "/")

    def check_read(real: str) -> None:
        if real == "/proc" or (real.startswith("/proc/") and real[6:].split("/")[0].isdigit()
                               and not (real == own_proc or real.startswith(own_proc + "/"))):
            deny("reading the process table or another process's /proc entry")
        if real in devices:
            return
        for top in readable:
            if real == top or real.startswith(top + "/"):
                return
        deny(f"reading outside the work folder and the Python and system files ({real})")

    def count_write(what: str) -> None:
        nonlocal write_opens
        write_opens += 1
        if write_opens > max_write_opens:
            deny(f"{what}: more than {max_write_opens} files, directories and links")

    def check_open(path, mode, flags) -> None:
        if type_(path) is int_:
            return  # wrapping a descriptor the process already holds
        text = plain(path)
        if mode is None and not text.startswith("/"):
            deny("os.open of a relative path")  # its event does not show dir_fd, so it cannot be resolved
        real = resolve(text)
        check_read(real)
        if flags & write_flags:
            if not inside(real):
                deny(f"writing outside the working directory ({real})")
            count_write("opening for writing")

    def check_path_event(event: str, args: tuple) -> None:
        for name, (path_positions, dir_fd_positions, makes_inode) in path_specs:
            if name == event:
                break
        for i in dir_fd_positions:
            if args[i] is not None and (type_(args[i]) is not int_ or (args[i] != -1 and args[i] != -100)):
                deny(f"{event} with dir_fd")  # the events show "no dir_fd" as -1; -100 is AT_FDCWD
        for i in path_positions:
            if type_(args[i]) is int_ or not inside(resolve(plain(args[i]))):
                deny(f"{event} outside the working directory")
        if makes_inode:
            count_write(event)

    def check_event(event: str, args: tuple) -> None:
        if event == "open":
            check_open(*args)
        elif event == "import":
            if type_(args[0]) is not str_:
                deny("import of a module named by a str subclass")
            for part in args[0].split("."):  # `x.readline` loads readline's PyInit_readline all the same
                if part in denied_imports:
                    deny(f"import {args[0]}")
        elif event in denied_events or event.startswith(denied_prefixes):
            deny(event)
        elif event in path_events:
            check_path_event(event, args)
        elif event in listing_events:
            if type_(args[0]) is not int_ and args[0] is not None:
                check_read(resolve(plain(args[0])))
        elif event == "sqlite3.connect":  # refused at import already; a database file is a write
            if type_(args[0]) is not str_ or args[0] != ":memory:":
                if not inside(resolve(plain(args[0]))):
                    deny("sqlite3.connect outside the working directory")
                count_write(event)

    def hook(event: str, args: tuple) -> None:
        # Code can run inside the hook, between its check and the operation it allows: a signal handler, a
        # finalizer or weakref callback of a garbage collection. Were it to rename, link or chdir there, the
        # operation would reach what the check never saw; so an event it causes is refused.
        nonlocal busy
        thread = get_ident()
        if thread in busy:
            deny(f"{event} from code run while the sandbox checks another operation")
        busy = busy | {thread}
        try:
            check_event(event, args)
        finally:
            busy = busy - {thread}

    return hook


def guard_os_open() -> None:
    """os.open's audit event does not show dir_fd: open relative paths (to the cwd or to dir_fd) by their
    absolute path instead, so the hook checks the file really opened. The hook refuses any relative
    os.open that bypasses this (it cannot tell which directory it is relative to). Like the hook, it reads
    nothing the code can replace."""
    real_open, readlink, getcwd, type_, str_, bytes_, int_ = os.open, os.readlink, os.getcwd, type, str, bytes, int
    deny_error, fs_encoding = PermissionError, sys.getfilesystemencoding()

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        kind = type_(path)
        if kind is str_:
            text = path
        elif kind is bytes_:
            text = path.decode(fs_encoding, "surrogateescape")
        else:
            raise deny_error(f"sandbox: os.open of a path of type {kind.__name__} is not allowed")
        if not text.startswith("/"):
            base = getcwd() if dir_fd is None else readlink(f"/proc/self/fd/{int_(dir_fd)}")
            text = base.rstrip("/") + "/" + text
        return real_open(text, flags, mode)

    os.open = open_  # `os` and `posix` share the function object: replace both names
    sys.modules["posix"].open = open_


def guard_builtin_modules() -> None:
    """`_imp.create_builtin` loads a module compiled into the interpreter with no audit event (Debian's python
    has _posixsubprocess and posix there): refuse the denied ones and fresh copies of loaded ones. The name
    is read once and handed on in a spec of ours (a property answering differently each time gets nothing).
    The guard holds the original in a closure, which a determined program can reach: the kernel limits are
    the wall (and, as a private uid, the sweep of what it leaves in the shared temp folders)."""
    import _imp

    create, type_, str_, deny_error = _imp.create_builtin, type, str, PermissionError
    denied, spec_of = frozenset(DENIED_REBUILDS), type(sys.implementation)  # types.SimpleNamespace

    def create_builtin(spec):
        name = spec.name
        if type_(name) is not str_ or name in denied:
            raise deny_error(f"sandbox: loading the builtin module {name!r} is not allowed")
        return create(spec_of(name=name))

    _imp.create_builtin = create_builtin


def main() -> None:
    result_fd = int(sys.argv[1])
    write, exit_now, exec_, eval_, compile_ = os.write, os._exit, exec, eval, compile
    base_exception, memory_error, system_exit, unsupported = BaseException, MemoryError, SystemExit, Unsupported
    encode_ = encode
    wrappers = {"bool": bool, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
                "sorted": sorted, "str": str, "dict": dict}
    stdout, stderr = sys.stdout, sys.stderr

    def report(line: str) -> None:
        data = (line + "\n").encode()
        try:
            while data:
                data = data[write(result_fd, data):]  # a pipe may take a long line in pieces
        except OSError:
            pass  # the code closed or replaced the pipe: the parent sees missing values, a failure

    payload = marshal.loads(sys.stdin.buffer.read())
    leave_session_keyring()
    if payload.get("drop"):
        uid, gid = payload["drop"]
        drop_privileges(uid, gid, payload.get("preload", []))
    set_limits(payload["limits"])
    root = os.path.realpath(os.getcwd())

    module = type(sys)("solution")  # a real module: dataclasses and pickle look classes up in sys.modules
    sys.modules["solution"] = module
    for name in list(sys.modules):
        if name.split(".")[0] in DENIED_IMPORTS:
            del sys.modules[name]
    for holder in (os, sys.modules.get("posix")):
        for name in ("mkfifo", "mknod"):  # these make files with no audit event
            if holder is not None and hasattr(holder, name):
                delattr(holder, name)
    guard_os_open()
    guard_builtin_modules()
    sys.addaudithook(make_audit_hook(root, payload["limits"]["write_opens"]))
    report("READY")

    stage, failure, units = "solution", None, []
    probes = payload["probes"]
    try:
        units.append(("solution", compile_(payload["code"], "<solution>", "exec")))
        stage = "tests"  # a test that does not compile is the dataset's fault: reason "error"
        # test imports first (sanitized MBPP), then code, setup (it may use the code's classes), probes
        units.insert(0, ("imports", compile_("\n".join(payload["imports"]), "<test_imports>", "exec")))
        units.append(("setup", compile_(payload["setup"], "<test_setup>", "exec")))
        probes = [(compile_(expression, f"<probe {i}>", "eval"), wrapper)
                  for i, (expression, wrapper) in enumerate(probes)]
    except (SyntaxError, ValueError) as error:  # ValueError: a NUL byte in the source
        failure = ("syntax_error" if stage == "solution" else "error", error)
    except memory_error as error:
        failure = ("memory", error)
    except base_exception as error:  # RecursionError on absurdly nested code
        failure = ("error", error)
    namespace = module.__dict__
    del payload
    if failure is None:
        try:
            for stage, unit in units:
                exec_(unit, namespace)
            for i, (unit, wrapper) in enumerate(probes):
                stage = f"probe {i}"
                value = eval_(unit, namespace)
                if wrapper is not None:
                    value = wrappers[wrapper](value)
                report(f"VALUE {i} " + encode_(value))
        except unsupported as error:
            failure = ("unsupported_value", error)
        except memory_error as error:
            namespace.clear()  # a memory bomb's data may live there: free it before reporting
            failure = ("memory", error)
        except system_exit as error:
            failure = ("exited", error)
        except base_exception as error:
            failure = ("error", error)
    if failure is None:
        for stream in (stdout, stderr):
            try:
                stream.flush()
            except base_exception:
                pass
        exit_now(0)
    reason, error = failure
    report(f"FAIL {reason} {stage.replace(' ', '')}")
    try:
        import traceback
        stderr.write(f"[sandbox] {reason} in {stage}\n")
        frames = error.__traceback__
        if frames is not None and frames.tb_frame.f_code is main.__code__:
            frames = frames.tb_next  # the harness's own frame tells the reader nothing
        stderr.write("".join(traceback.format_exception(type(error), error, frames, limit=-8)))
        stdout.flush()
        stderr.flush()
    except base_exception:
        pass
    exit_now(1)


if __name__ == "__main__":
    main()
