"""The values a check's probes send back from the sandbox, read here as plain data with size caps.

The format (the child's `encode` in sandbox_child.py writes it) is JSON where a list is a list and a JSON
object is always a one-key tag: {"t": [...]} tuple, {"s": [...]} set, {"f": [...]} frozenset,
{"d": [[k, v], ...]} dict, {"b": "hex"} bytes, {"c": [re, im]} complex, {"x": "hex"} a big int; floats
may be NaN/Infinity. Anything else is BadValue, and so is a value over a cap: the checks are evaluated on
these values, so a value's size bounds what they can cost (issue 15: `f(4) ** 2` on a 15-million-bit int
took 8 s). The caps:

- an int of more bits than the test's own literals justify (`int_bits`, see `int_bits_for`);
- a str or bytes of more than MAX_CHARS characters or bytes;
- more than MAX_ITEMS values in all, or nesting deeper than MAX_DEPTH;
- more than MAX_SAME_HASH unequal items of one container that share a hash.
"""

from __future__ import annotations

import ast
import json
import math
import time

MAX_DEPTH = 100            # nesting of a returned value (as sandbox_child.MAX_DEPTH)
MAX_SAME_HASH = 32         # unequal items of one container that may share a hash
MAX_CHARS = 1_000_000      # characters of a str, bytes of a bytes
MAX_ITEMS = 1_000_000      # values in one returned value, all levels counted
MIN_INT_BITS = 4096        # the int bound when the test's literals are small (2 ** 1000 is fine)
CLOCK_EVERY = 4096         # values rebuilt between looks at the clock
UNHASHABLE = (list, set, dict)  # plain types hash() refuses: raising for each of a million cost seconds


class BadValue(ValueError):
    """A value from the sandbox that is not plain data in the agreed format, or is over a cap."""


class OutOfTime(BadValue):
    """Rebuilding the values ran past the check's limit (a million items sent just before its timeout)."""


def int_bits_for(tests: list[str] | tuple[str, ...]) -> int:
    """The largest int a probe may return, in bits: twice the largest int the tests write (a literal, or a
    power of two literals, `2 ** 1000`), and never under MIN_INT_BITS."""
    largest = 0
    for test in tests:
        try:
            tree = ast.parse(test)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # the plan refuses it with its own message
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and type(node.value) is int:
                largest = max(largest, node.value.bit_length())
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
                  and all(isinstance(side, ast.Constant) and type(side.value) is int
                          for side in (node.left, node.right)) and node.right.value > 0):
                largest = max(largest, node.left.value.bit_length() * min(node.right.value, 1 << 40))
    return max(MIN_INT_BITS, 2 * largest)


def decode_value(text: str, int_bits: int = MIN_INT_BITS, until: float | None = None):
    """One value from the sandbox, or BadValue (never another exception); OutOfTime once time.monotonic()
    passes `until`: this runs in the trainer's process, where nothing else would end it."""
    try:
        raw = json.loads(text, parse_constant=_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError; so is a 5000-digit int
        raise BadValue(f"not a value: {error}") from None
    try:
        return _Rebuild(int_bits, until).value(raw, 0)
    except BadValue:
        raise
    except Exception as error:  # noqa: BLE001 - complex(10**400, 0) raises OverflowError, say: still a bad value
        raise BadValue(f"not a value: {type(error).__name__}: {error}") from None


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


class _Rebuild:
    """Rebuild one value, counting its items against MAX_ITEMS."""

    def __init__(self, int_bits: int, until: float | None = None):
        self.int_bits, self.until = int_bits, until
        self.items = 0

    def value(self, raw, depth: int):
        if depth > MAX_DEPTH:
            raise BadValue(f"nested deeper than {MAX_DEPTH}")
        self.items += 1
        if self.items > MAX_ITEMS:
            raise BadValue(f"more than {MAX_ITEMS} values in one returned value")
        if self.until is not None and self.items % CLOCK_EVERY == 0 and time.monotonic() >= self.until:
            raise OutOfTime(f"reading the values ran past the check's time limit ({self.items} values read)")
        kind = type(raw)
        if raw is None or kind in (bool, float):
            return raw
        if kind is int:
            return self.bounded(raw)
        if kind is str:
            if len(raw) > MAX_CHARS:
                raise BadValue(f"a string of {len(raw)} characters (at most {MAX_CHARS})")
            return raw
        if kind is list:
            return _few_collisions([self.value(item, depth + 1) for item in raw])
        if kind is not dict or len(raw) != 1:
            raise BadValue(f"unexpected {kind.__name__}")
        (tag, body), = raw.items()
        try:
            return self.tagged(tag, body, depth)
        except (TypeError, ValueError) as error:  # an unhashable set member or dict key; bad hex
            if isinstance(error, BadValue):
                raise
            raise BadValue(f"bad {tag!r} value: {error}") from None

    def tagged(self, tag: str, body, depth: int):
        if tag in ("t", "s", "f") and type(body) is list:
            items = _few_collisions([self.value(item, depth + 1) for item in body])
            return tuple(items) if tag == "t" else set(items) if tag == "s" else frozenset(items)
        if tag == "d" and type(body) is list and all(type(p) is list and len(p) == 2 for p in body):
            keys = _few_collisions([self.value(k, depth + 1) for k, _ in body])
            return dict(zip(keys, [self.value(v, depth + 1) for _, v in body]))
        if tag == "b" and type(body) is str:
            if len(body) > 2 * MAX_CHARS:
                raise BadValue(f"bytes of {len(body) // 2} bytes (at most {MAX_CHARS})")
            return bytes.fromhex(body)
        if tag == "x" and type(body) is str:
            if len(body.lstrip("-")) > self.int_bits // 4 + 1:  # before int(): parsing is the slow part
                raise BadValue(self.too_big(len(body) * 4))
            return self.bounded(int(body, 16))
        if tag == "c" and type(body) is list and len(body) == 2 and all(type(p) in (int, float) for p in body):
            return complex(*[self.bounded(p) if type(p) is int else p for p in body])
        raise BadValue(f"unknown tag {tag!r}")

    def bounded(self, number: int) -> int:
        if number.bit_length() > self.int_bits:
            raise BadValue(self.too_big(number.bit_length()))
        return number

    def too_big(self, bits: int) -> str:
        return f"an int of about {bits} bits (at most {self.int_bits}: twice what the test's own literals hold)"


def _few_collisions(items: list) -> list:
    """Refuse many unequal items with one hash (ints that are equal modulo 2**61 - 1, say): putting them in
    a set or dict, here or in a check's Counter(...), would take quadratic time and stall the trainer."""
    if len(items) > MAX_SAME_HASH:
        seen: dict[int, list] = {}  # hash -> [first item, unequal items with that hash]
        for item in items:
            if type(item) in UNHASHABLE:
                continue
            try:
                group = seen.setdefault(hash(item), [item, 0])
            except TypeError:
                continue  # unhashable: nothing will hash it
            if item is not group[0] and item != group[0]:
                group[1] += 1
                if group[1] > MAX_SAME_HASH:
                    raise BadValue(f"more than {MAX_SAME_HASH} unequal items share one hash")
    return items
