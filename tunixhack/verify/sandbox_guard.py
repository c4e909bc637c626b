"""The child's tripwires: the audit hook and the guards on os.open and _imp.create_builtin (stdlib only).

Part of the sandbox child's harness: tunixhack/verify/sandbox.py sends this file and sandbox_child.py to the
child as one source (this one first), so it imports nothing of ours. What each guard stops, and why the hook
is a tripwire and not the wall, is in sandbox_child.py's docstring.
"""

import _thread
import os
import stat
import sys

DENIED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "_posixshmem", "syslog", "_testcapi", "_testinternalcapi",
    "_testbuffer", "_testmultiphase", "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz",
    "readline", "sqlite3", "_sqlite3", "dbm", "_dbm", "_gdbm",  # they write files without an audit event
    "_tkinter", "tkinter", "nis",  # Tcl reads files and opens sockets, NIS asks a server, without one either
})
# Builtin modules that must not be created afresh (a new `posix` has mkfifo/mknod back).
DENIED_REBUILDS = DENIED_IMPORTS | {"posix", "_imp", "sys", "builtins", "_io", "_thread", "_signal"}
# The only extension modules (built in, or in lib-dynload) that may be loaded once the code runs: those that
# compute. A name outside it, or holding a NUL (the loader reads the name as a C string: 'readline\0x' is
# readline to it), is refused, so no spelling reaches a denied module.
ALLOWED_EXTENSIONS = frozenset({
    "_abc", "_ast", "_bisect", "_blake2", "_bz2", "_codecs", "_codecs_cn", "_codecs_hk", "_codecs_iso2022",
    "_codecs_jp", "_codecs_kr", "_codecs_tw", "_collections", "_contextvars", "_csv", "_datetime", "_decimal",
    "_elementtree", "_functools", "_hashlib", "_heapq", "_json", "_locale", "_lzma", "_md5", "_multibytecodec",
    "_opcode", "_operator", "_pickle", "_queue", "_random", "_sha1", "_sha256", "_sha3", "_sha512", "_socket",
    "_sre", "_stat", "_statistics", "_string", "_struct", "_symtable", "_tokenize", "_tracemalloc", "_typing",
    "_uuid", "_warnings", "_weakref", "_zoneinfo", "array", "atexit", "binascii", "cmath", "errno", "fcntl",
    "gc", "grp", "itertools", "marshal", "math", "mmap", "pwd", "pyexpat", "resource", "select", "termios",
    "time", "unicodedata", "zlib",
}) - DENIED_REBUILDS
DENIED_EVENTS = frozenset({
    "cpython.PyInterpreterState_New",  # a subinterpreter has no audit hook at all
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
    allowed_extensions = frozenset(ALLOWED_EXTENSIONS)
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
            if type_(args[0]) is not str_ or "\0" in args[0]:
                deny("import of a module named by a str subclass or holding a NUL")
            for part in args[0].split("."):  # `x.readline` loads readline's PyInit_readline all the same
                if part in denied_imports:
                    deny(f"import {args[0]}")
            if args[1] is not None:  # _imp.create_dynamic: an extension's file, found by its last name
                if args[0].rpartition(".")[2] not in allowed_extensions:
                    deny(f"loading the extension module {args[0]}")
                if type_(args[1]) is not str_ or inside(resolve(args[1])):
                    deny("loading an extension module from the work folder")
                check_read(resolve(args[1]))
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
    has _posixsubprocess and posix there): only names on ALLOWED_EXTENSIONS (so no denied module, no fresh
    `posix`, no name with a NUL). The name is read once and handed on in a spec of ours (a property answering
    differently each time gets nothing). The guard holds the original in a closure, which a determined
    program can reach: Landlock and seccomp are the wall."""
    import _imp

    create, type_, str_, deny_error = _imp.create_builtin, type, str, PermissionError
    allowed, spec_of = frozenset(ALLOWED_EXTENSIONS), type(sys.implementation)  # types.SimpleNamespace

    def create_builtin(spec):
        name = spec.name
        if type_(name) is not str_ or name not in allowed:
            raise deny_error(f"sandbox: loading the builtin module {name!r} is not allowed")
        return create(spec_of(name=name))

    _imp.create_builtin = create_builtin
