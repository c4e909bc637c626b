"""Decide a check's asserts on the probes' values, in a worker process of ours, under a time limit.

The asserts are the dataset's, the values plain data (tunixhack/verify/code_values.py), so nothing here is
the program's; but the values are the program's choice, and an operator on one can cost seconds in C
(`assert f(4) ** 2 == 16` with `f` returning a 15-million-bit int took 8.4 s), where no thread can be
interrupted. So the checks run in a worker: `python -I` with the test imports, the real builtins and
RLIMIT_AS, reused from check to check and killed when it runs past its limit (the check is then a
`timeout`). One worker per check running at once; each starts on first use (about 30 ms) and ends when this
process does (its stdin closes).
"""

from __future__ import annotations

import marshal
import os
import select
import struct
import subprocess
import sys
import threading
import time

WORKER_MEMORY = 4 << 30  # RLIMIT_AS of a worker: a check building a huge string fails there, not here
_HEADER = struct.Struct("<I")

# The worker: read (imports, [(code, source)], values) and answer (reason, detail), until stdin closes.
WORKER = r"""
import builtins, marshal, os, resource, struct, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
answers = os.dup(1)
os.dup2(2, 1)  # whatever a test import prints goes to stderr, not into the answers
header, spaces, read = struct.Struct("<I"), {}, sys.stdin.buffer.read

def namespace(imports):
    if imports not in spaces:
        space = {"__builtins__": builtins}
        exec(compile("\n".join(imports), "<test imports>", "exec"), space)
        spaces[imports] = space
    return spaces[imports]

def verdict(imports, checks, values):
    try:
        base = namespace(imports)
    except BaseException as error:
        return "error", f"the test imports failed: {type(error).__name__}: {error}"
    for code, source in checks:
        try:
            if not eval(code, {**base, **values}):
                return "assertion_failed", source
        except BaseException as error:  # a TypeError comparing what came back, a MemoryError...
            return "error", f"{source}: {type(error).__name__}: {str(error)[:1000]}"
    return "passed", ""

while True:
    size = read(4)
    if len(size) < 4:
        break
    answer = marshal.dumps(verdict(*marshal.loads(read(header.unpack(size)[0]))))
    answer = header.pack(len(answer)) + answer
    while answer:
        answer = answer[os.write(answers, answer):]
"""


class _Worker:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-I", "-B", "-c", WORKER, str(WORKER_MEMORY)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")

    def ask(self, request: bytes, deadline: float) -> tuple[str, str] | None:
        """The worker's answer, or None if it did not come before the deadline (or the worker died)."""
        try:
            self.process.stdin.write(_HEADER.pack(len(request)) + request)
            self.process.stdin.flush()
            size = self.read(_HEADER.size, deadline)
            answer = self.read(_HEADER.unpack(size)[0], deadline) if size else None
        except (OSError, ValueError):
            return None
        return marshal.loads(answer) if answer is not None else None

    def read(self, count: int, deadline: float) -> bytes | None:
        data, fd = b"", self.process.stdout.fileno()
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, count - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def end(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


_idle: list[_Worker] = []
_lock = threading.Lock()


def decide(imports: tuple[str, ...], checks: list[tuple], values: dict, deadline: float) -> tuple[str, str]:
    """(reason, detail) for `checks` ((code, source) each, evaluated with `imports` and `values` bound):
    passed, assertion_failed, error, or timeout when the worker had not answered by `deadline`."""
    request = marshal.dumps((tuple(imports), list(checks), values))
    with _lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
    answer = worker.ask(request, deadline)
    if answer is None:
        worker.end()
        if time.monotonic() >= deadline:
            return "timeout", "the asserts took longer than the check's time limit"
        return "error", "the process deciding the asserts ended (out of memory?)"
    with _lock:
        _idle.append(worker)
    return answer
