"""The harness that runs inside the sandbox child (stdlib only, run as `python -I -S -B -c <this source> FD`).

It reads one marshalled payload from stdin (code, setup, imports, tests, a nonce, the limits), locks itself down,
then runs, in order: the test imports, the candidate code, the setup code and each assert, in one fresh
module namespace. It reports on the result pipe FD:

    READY                     setup done, untrusted code about to run (no READY: the sandbox itself failed)
    FAIL <reason> <stage>     the harness saw the code fail (the code could forge this; it only hurts itself)
    PASS <nonce>              every assert ran and passed: the only line the parent accepts as a pass

The nonce is written only after the last assert, so leaving early (sys.exit, os._exit, SystemExit, a
crash) can never pass. Lock-down, in order: resource limits; privilege drop when the parent asks for it;
an audit hook (it cannot be removed once added) refusing sockets, new processes, signals to other
processes, ctypes and friends, reads of other processes' /proc entries and any write outside the working
directory. Everything the harness needs after the untrusted code has run is bound before it runs, so
patching builtins or modules cannot fake a pass.

Limits of this design: the untrusted code shares the interpreter with the harness; the audit hook is a
tripwire, not a security boundary (PEP 578), which is why the parent also runs it as an unprivileged user
with rlimits, a private temp dir and an empty environment.
"""

import marshal
import os
import resource
import stat
import sys

# Modules whose import gives a way around the audit hook (raw memory, fork+exec without events, syslog's
# own socket, shared memory files) or at the interpreter's internals.
DENIED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "_posixshmem", "syslog", "_testcapi", "_testinternalcapi",
    "_testbuffer", "_testmultiphase", "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz",
})
# Events refused outright: new processes, signals, limit changes, heap walks (they would find the nonce).
DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "resource.setrlimit", "resource.prlimit", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents", "sys._current_frames", "mmap.__new__", "os.startfile",
})
DENIED_PREFIXES = ("socket.", "ctypes.", "syslog.", "_posixshmem.", "winreg.", "webbrowser.")
# Events that change the file system, with the positions of their path and dir_fd arguments.
PATH_EVENTS = {
    "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "os.mkdir": ((0,), (2,)),
    "os.rename": ((0, 1), (2, 3)), "os.link": ((1,), (2, 3)), "os.symlink": ((1,), (2,)),
    "os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)), "os.utime": ((0,), (3,)),
    "os.truncate": ((0,), ()), "os.setxattr": ((0,), ()), "os.removexattr": ((0,), ()),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def set_limits(limits: dict) -> None:
    """Soft == hard everywhere (so the code cannot raise them), except CPU: SIGXCPU first, then SIGKILL."""
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_NOFILE", limits["open_files"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    nproc = limits["processes"]
    if not limits["private_uid"]:
        # RLIMIT_NPROC counts every task of the real uid, ours and the user's other programs alike.
        nproc += count_tasks(os.getuid())
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
    """The hook, with every function it calls bound now: later patches of os or builtins cannot weaken it."""
    lstat, readlink, getcwd, fsdecode, fspath = os.lstat, os.readlink, os.getcwd, os.fsdecode, os.fspath
    is_link, isinstance_, int_, OSError_ = stat.S_ISLNK, isinstance, int, OSError
    deny_error = PermissionError
    own_proc = f"/proc/{os.getpid()}"
    write_opens = [0]

    def resolve(path) -> str:
        """os.path.realpath without os.path (which the code could patch): follow symlinks, fold . and .."""
        text = fsdecode(fspath(path))
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

    def inside(path) -> bool:
        real = resolve(path)
        return real == root or real.startswith(root + "/")

    def deny(event: str):
        raise deny_error(f"sandbox: {event} is not allowed")

    def check_open(path, mode, flags) -> None:
        if isinstance_(path, int_):
            return  # wrapping a descriptor the process already holds
        real = resolve(path)
        if real.startswith("/proc/") and not (real == own_proc or real.startswith(own_proc + "/")):
            first = real[6:].split("/")[0]
            if first.isdigit():
                deny("reading another process's /proc entry")
        if flags & WRITE_FLAGS:
            text = fsdecode(fspath(path))
            if mode is None and not text.startswith("/"):
                deny("os.open of a relative path for writing")  # its event does not show dir_fd
            if not (real == root or real.startswith(root + "/")):
                deny(f"writing outside the working directory ({real})")
            write_opens[0] += 1
            if write_opens[0] > max_write_opens:
                deny("opening more files for writing")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            check_open(*args)
        elif event == "import":
            if args[0].split(".")[0] in DENIED_IMPORTS:
                deny(f"import {args[0]}")
        elif event in DENIED_EVENTS or event.startswith(DENIED_PREFIXES):
            deny(event)
        elif event in PATH_EVENTS:
            path_positions, dir_fd_positions = PATH_EVENTS[event]
            for i in dir_fd_positions:
                if args[i] not in (None, -1, -100):  # the events show "no dir_fd" as -1; -100 is AT_FDCWD
                    deny(f"{event} with dir_fd")
            for i in path_positions:
                if isinstance_(args[i], int_) or not inside(args[i]):
                    deny(f"{event} outside the working directory")

    return hook


def main() -> None:
    result_fd = int(sys.argv[1])
    write, exit_now, exec_, compile_ = os.write, os._exit, exec, compile
    base_exception, assertion_error, memory_error, system_exit = (
        BaseException, AssertionError, MemoryError, SystemExit)
    stdout, stderr = sys.stdout, sys.stderr

    def report(line: str) -> None:
        try:
            write(result_fd, (line + "\n").encode())
        except OSError:
            pass  # the code closed or replaced the pipe: the parent sees no verdict, which is a failure

    payload = marshal.loads(sys.stdin.buffer.read())
    nonce = payload.pop("nonce")
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
    sys.addaudithook(make_audit_hook(root, payload["limits"]["write_opens"]))
    report("READY")

    stage, failure, units = "solution", None, []
    try:
        units.append(("solution", compile_(payload["code"], "<solution>", "exec")))
        stage = "tests"  # a test that does not compile is the dataset's fault: reason "error"
        # test imports first (sanitized MBPP), then code, setup (it may use the code's classes), asserts
        units.insert(0, ("imports", compile_("\n".join(payload["imports"]), "<test_imports>", "exec")))
        units.append(("setup", compile_(payload["setup"], "<test_setup>", "exec")))
        units += [(f"test{i + 1}", compile_(test, f"<test {i + 1}>", "exec"))
                  for i, test in enumerate(payload["tests"])]
    except (SyntaxError, ValueError) as error:  # ValueError: a NUL byte in the source
        failure = ("syntax_error" if stage == "solution" else "error", error)
    except memory_error as error:
        failure = ("memory", error)
    except base_exception as error:  # RecursionError on absurdly nested code
        failure = ("error", error)
    units = tuple(units)
    sources = {f"test{i + 1}": test for i, test in enumerate(payload["tests"])}
    expected = 3 + len(payload["tests"])
    ran = 0
    namespace = module.__dict__
    del payload
    if failure is None:
        try:
            for stage, unit in units:
                exec_(unit, namespace)
                ran += 1
        except assertion_error as error:
            failure = ("assertion_failed", error)
        except memory_error as error:
            namespace.clear()  # a memory bomb's data may live there: free it before reporting
            failure = ("memory", error)
        except system_exit as error:
            failure = ("exited", error)
        except base_exception as error:
            failure = ("error", error)
    if failure is None and ran == expected:
        for stream in (stdout, stderr):
            try:
                stream.flush()
            except base_exception:
                pass
        report("PASS " + nonce)
        exit_now(0)
    reason, error = failure or ("error", None)
    report(f"FAIL {reason} {stage}")
    try:
        import traceback
        source = sources.get(stage, "")
        stderr.write(f"[sandbox] {reason} in {stage}" + (f": {source[:300]}" if source else "") + "\n")
        if error is not None:
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
