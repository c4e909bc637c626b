"""The harness that runs inside the sandbox child (stdlib only, run as `python -I -S -B -c <this source> FD`).

It reads one marshalled payload from stdin (code, setup, imports, probes, limits), locks itself down, runs
the test imports, the candidate code and the setup code in one fresh module namespace, then evaluates each
probe (a call into a name the code binds, with arguments the parent evaluated: `call_probe`; see
tunixhack/verify/code_probes.py) and reports on the pipe FD:

    READY                     locked down, untrusted code about to run (no READY: the sandbox itself failed)
    PROBING                   the program, imports and setup ran; the probes start (names a timeout's test)
    VALUE <i> <json>          the value of probe i, as plain data (see `encode`)
    FAIL <reason> <stage>     the code failed before every probe had a value

Nothing here decides whether the code passed: the parent compares the values with the expected ones, which
never enter this process. Whatever the code writes on FD can only be values it could have returned.

Lock-down, in order: a new, empty session keyring (the parent's may hold secrets, and neither namespaces nor a
uid switch take it away); the privilege drop when the parent asks for it (root without namespaces); resource
limits (soft == hard; one process only where the uid or user namespace is private to this check); the kernel
wall (sandbox_wall.py: Landlock, then the seccomp filter, as tunixhack/verify/kernel_wall.py built them);
then the tripwire: an audit hook (it cannot be removed once added) refusing sockets, new processes, signals,
ctypes, subinterpreters, extension modules off an allow list or named with a NUL, the modules that read,
write, connect or spawn without audit events (readline, sqlite3, dbm, _tkinter, nis, _posixsubprocess,
however they are loaded and under whatever dotted name), reads outside the working directory, /usr and the
Python install, paths that are not plain str/bytes, relative os.open (its event does not show dir_fd: os.open
is wrapped to open by absolute path) and any write, directory or link outside the working directory, at most
`write_opens` of them. The hook reads nothing the code can change: its lists are frozen copies in its
closure, its functions and builtins are bound there, it decodes paths itself, and its count of writes is an
int no frame can write back. Code that runs inside the hook (a signal handler, a garbage collection's
finalizer) may cause no audited event there: it could otherwise swap a link between the check and the
operation.

Limits of this design: the code shares the interpreter with this harness and the audit hook is a tripwire,
not a security boundary (PEP 578): a subinterpreter has no hook at all, and the create_builtin guard's closure
hands back the unguarded loader. What stops the code is the kernel, by level (tunixhack/verify/isolation.py;
the README's table says what each stops and what it does not):

- "namespaces": no network, a PID namespace of its own, a read-only root showing only the system and Python
  files, a tmpfs work folder, no capabilities, one process; and Landlock and seccomp inside, as below.
- "uid+landlock+seccomp": a private uid with no capabilities and one process; Landlock: reads only the
  system and Python files, writes only in its work folder, no TCP, no signal or abstract socket outside;
  seccomp: no socket, memfd, ptrace, keyring, mknod, mount or namespace, bpf, io_uring, exec, fork, new
  session or process group, System V IPC. What the uid leaves in the shared temp folders is swept after each
  check, in case. Native code that reached a kernel bug would get past it all.
- "landlock+seccomp": the same wall, as the user (Landlock ABI 6+: the user's processes are out of reach).
- "uid+rlimits+audit" and "rlimits+audit": no wall, the hook alone; refused unless the user allows it.
"""

import gc
import marshal
import os
import resource
import sys
from _collections import defaultdict
from _json import encode_basestring_ascii as json_string  # the json package would import re: 6 ms a check

if __package__:  # imported (by tests); in the child this file follows sandbox_guard.py in one source
    from .sandbox_guard import DENIED_IMPORTS, guard_builtin_modules, guard_os_open, make_audit_hook
    from .sandbox_wall import build_wall, leave_session_keyring

MAX_DEPTH = 100        # as tunixhack/verify/code_values.py
BIG_INT_BITS = 14_000  # ints past this travel as hex (decimal conversion is capped at 4300 digits)
TAGS = {tuple: "t", set: "s", frozenset: "f"}
# Bound when the harness loads, before the code runs (code_probes.BUILTIN_TYPES: a type passed as an argument).
BUILTIN_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bool, list, tuple, set, frozenset, dict)}
FLOAT_WORDS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}  # JSON as Python's json reads it


class Unsupported(TypeError):
    """A value that is not plain data."""


def encode(value, depth=0) -> str:
    """`value` as JSON text, exact builtin types only (a subclass or custom object raises; a Counter or a
    defaultdict becomes a dict). The format is the one tunixhack.verify.code_values.decode_value reads."""
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


def call_probe(namespace: dict, results: list, name: str, args, kwargs):
    """One probe (tunixhack/verify/code_probes.py): `name` as the program or setup code bound it, called
    with the arguments the parent evaluated (args None: its value itself)."""
    if name not in namespace:
        raise NameError(f"name {name!r} is not defined")
    if args is None:
        return namespace[name]
    return namespace[name](*[argument(a, namespace, results) for a in args],
                           **{key: argument(value, namespace, results) for key, value in kwargs})


def argument(node: tuple, namespace: dict, results: list):
    """("v", value) as sent, ("n", name) from the namespace, ("b", name) a real builtin type, ("p", i) probe i's
    value, or a display of these: ("l"|"t"|"s", [nodes]) a list, tuple or set, ("d", [(key node, value node)])."""
    tag, body = node
    if tag == "v":
        return body
    if tag == "b":
        return BUILTIN_TYPES[body]
    if tag == "n":
        return call_probe(namespace, results, body, None, ())
    if tag == "p":
        return results[body]
    if tag == "d":
        return {argument(key, namespace, results): argument(value, namespace, results) for key, value in body}
    return {"l": list, "t": tuple, "s": set}[tag]([argument(item, namespace, results) for item in body])


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


def main() -> None:
    result_fd = int(sys.argv[1])
    write, exit_now, exec_, compile_ = os.write, os._exit, exec, compile
    base_exception, memory_error, system_exit, unsupported = BaseException, MemoryError, SystemExit, Unsupported
    encode_, call_probe_ = encode, call_probe
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
    build_wall(payload["wall"], root)
    gc.collect()  # the _ctypes classes the keyring and the wall were made with: none is left for the code

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
            report("PROBING")  # past the program and the setup: a timeout from here on is in a test's probe
            results = []  # each probe's value: a later probe's argument may be an earlier one's
            for i, (name, args, kwargs, wrapper, sent) in enumerate(probes):
                stage = f"probe {i}"
                value = call_probe_(namespace, results, name, args, kwargs)
                if wrapper is not None:
                    value = wrappers[wrapper](value)
                results.append(value)
                if sent:
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
