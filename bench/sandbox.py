"""Throughput of the code sandbox (tunixhack/verify/code.py) on MBPP-shaped checks.

Twelve small MBPP-like tasks with three asserts each; half are checked with a correct solution, half with
a wrong one. Prints checks per second and the mean seconds per check for each worker count.

    .venv/bin/python bench/sandbox.py                  # workers 1, 2, 4, at the machine's best isolation
    .venv/bin/python bench/sandbox.py --workers 8 --rounds 8 --isolation uid+landlock+seccomp
    .venv/bin/python bench/sandbox.py --overrun 1.0     # how far past its timeout a hostile check ends, per level
"""

from __future__ import annotations

import argparse
import os
import time

from tunixhack.verify.code import (available_levels, force_isolation, isolation, run_tests, set_max_parallel,
                                   verify_many)
from tunixhack.verify.isolation import UNWALLED

# (correct solution, wrong solution, asserts): realistic MBPP-sized functions
TASKS = [
    ("def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n",
     "def similar_elements(a, b):\n    return tuple(sorted(set(a) | set(b)))\n",
     ["assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)",
      "assert similar_elements((1, 2, 3, 4), (5, 4, 3, 7)) == (3, 4)",
      "assert similar_elements((11, 12, 14, 13), (17, 15, 14, 13)) == (13, 14)"]),
    ("import math\ndef is_not_prime(n):\n    return any(n % i == 0 for i in range(2, int(math.sqrt(n)) + 1))\n",
     "def is_not_prime(n):\n    return n % 2 == 0\n",
     ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True", "assert is_not_prime(35) == True"]),
    ("import heapq\ndef heap_queue_largest(nums, n):\n    return heapq.nlargest(n, nums)\n",
     "import heapq\ndef heap_queue_largest(nums, n):\n    return heapq.nsmallest(n, nums)\n",
     ["assert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 3) == [85, 75, 65]",
      "assert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 2) == [85, 75]",
      "assert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 5) == [85, 75, 65, 58, 35]"]),
    ("def count_ways(n):\n    a = [0] * (n + 1)\n    b = [0] * (n + 1)\n    a[0], a[1], b[0], b[1] = 1, 0, 0, 1\n"
     "    for i in range(2, n + 1):\n        a[i] = a[i - 2] + 2 * b[i - 1]\n        b[i] = a[i - 1] + b[i - 2]\n"
     "    return a[n]\n",
     "def count_ways(n):\n    return n * 2 - 1\n",
     ["assert count_ways(2) == 3", "assert count_ways(8) == 153", "assert count_ways(12) == 2131"]),
    ("import re\ndef find_char_long(text):\n    return re.findall(r'\\b\\w{4,}\\b', text)\n",
     "import re\ndef find_char_long(text):\n    return re.findall(r'\\b\\w{5,}\\b', text)\n",
     ["assert find_char_long('Please move back to stream') == ['Please', 'move', 'back', 'stream']",
      "assert find_char_long('Jing Eco and Tech') == ['Jing', 'Tech']",
      "assert find_char_long('Jhingai wulu road Zone 3') == ['Jhingai', 'wulu', 'road', 'Zone']"]),
    ("def square_nums(nums):\n    return list(map(lambda x: x ** 2, nums))\n",
     "def square_nums(nums):\n    return [x * 2 for x in nums]\n",
     ["assert square_nums([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]",
      "assert square_nums([10, 20, 30]) == [100, 400, 900]", "assert square_nums([12, 15]) == [144, 225]"]),
    ("def find_rotations(s):\n    t = s + s\n    for i in range(1, len(s) + 1):\n        if t[i:i + len(s)] == s:\n"
     "            return i\n    return len(s)\n",
     "def find_rotations(s):\n    return len(s)\n",
     ["assert find_rotations('aaaa') == 1", "assert find_rotations('ab') == 2", "assert find_rotations('abc') == 3"]),
    ("def remove_occ(s, ch):\n    first = s.find(ch)\n    if first != -1:\n        s = s[:first] + s[first + 1:]\n"
     "    last = s.rfind(ch)\n    if last != -1:\n        s = s[:last] + s[last + 1:]\n    return s\n",
     "def remove_occ(s, ch):\n    return s.replace(ch, '', 1)\n",
     ["assert remove_occ('hello', 'l') == 'heo'", "assert remove_occ('abcda', 'a') == 'bcd'",
      "assert remove_occ('PHP', 'P') == 'H'"]),
    ("def sort_matrix(m):\n    return sorted(m, key=sum)\n",
     "def sort_matrix(m):\n    return sorted(m, key=max)\n",
     ["assert sort_matrix([[1, 2, 3], [2, 4, 5], [1, 1, 1]]) == [[1, 1, 1], [1, 2, 3], [2, 4, 5]]",
      "assert sort_matrix([[1, 2, 3], [-2, 4, -5], [1, -1, 1]]) == [[-2, 4, -5], [1, -1, 1], [1, 2, 3]]",
      "assert sort_matrix([[5, 8, 9], [6, 4, 3], [2, 1, 4]]) == [[2, 1, 4], [6, 4, 3], [5, 8, 9]]"]),
    ("from collections import Counter\ndef count_common(words):\n    return Counter(words).most_common(4)\n",
     "from collections import Counter\ndef count_common(words):\n    return Counter(words).most_common(3)\n",
     ["assert count_common(['red', 'green', 'black', 'pink', 'black', 'white', 'black', 'eyes', 'white', 'black',"
      " 'orange', 'pink', 'pink', 'red', 'red', 'white', 'orange', 'white', 'black', 'pink', 'green', 'green',"
      " 'pink', 'green', 'pink', 'white', 'orange', 'orange', 'red']) == "
      "[('pink', 6), ('black', 5), ('white', 5), ('red', 4)]",
      "assert count_common(['one', 'two', 'three', 'four', 'five', 'one', 'two', 'one', 'three', 'one']) == "
      "[('one', 4), ('two', 2), ('three', 2), ('four', 1)]",
      "assert count_common(['Facebook', 'Apple', 'Amazon', 'Netflix', 'Google', 'Apple', 'Netflix', 'Amazon'])"
      " == [('Apple', 2), ('Amazon', 2), ('Netflix', 2), ('Facebook', 1)]"]),
    ("def find_volume(l, b, h):\n    return (l * b * h) / 2\n",
     "def find_volume(l, b, h):\n    return l * b * h\n",
     ["assert find_volume(10, 8, 6) == 240", "assert find_volume(3, 2, 2) == 6", "assert find_volume(1, 2, 1) == 1"]),
    ("import re\ndef split_lowerstring(text):\n    return re.findall('[a-z][^a-z]*', text)\n",
     "def split_lowerstring(text):\n    return list(text.lower())\n",
     ["assert split_lowerstring('AbCd') == ['bC', 'd']",
      "assert split_lowerstring('Python') == ['y', 't', 'h', 'o', 'n']",
      "assert split_lowerstring('Programming') == ['r', 'o', 'g', 'r', 'a', 'm', 'm', 'i', 'n', 'g']"]),
]


def batch(rounds: int) -> tuple[list[dict], int]:
    """`rounds` copies of the twelve tasks, even tasks with the correct solution, odd with the wrong one."""
    items = [{"code": right if i % 2 == 0 else wrong, "tests": tests}
             for _ in range(rounds) for i, (right, wrong, tests) in enumerate(TASKS)]
    return items, rounds * ((len(TASKS) + 1) // 2)


# Programs that do their best to outlast their check: (name, program); the test is `assert add(1, 2) == 3`.
HOSTILE = [
    ("sleep", "import time\ntime.sleep(600)\ndef add(a, b):\n    return a + b\n"),
    ("busy loop", "def add(a, b):\n    while True:\n        pass\n"),
    ("many threads", "import threading, time\ndef add(a, b):\n    for _ in range(1000):\n        try:\n"
                     "            threading.Thread(target=time.sleep, args=(600,)).start()\n"
                     "        except RuntimeError:\n            pass\n    while True:\n        pass\n"),
    ("big output", "import sys\ndef add(a, b):\n    while True:\n        sys.stdout.write('x' * 65536)\n"),
    ("slow output", "import sys, time\ndef add(a, b):\n    while True:\n        print('x', flush=True)\n"
                    "        time.sleep(0.01)\n"),
]


def overrun(timeout: float, repeats: int) -> None:
    """The worst time past `timeout` a hostile check took to end, per walled level and program."""
    print(f"timeout {timeout:g} s, {repeats} runs each, load average {os.getloadavg()[0]:.1f}")
    print(f"{'level':<22}  {'program':<12}  {'reason':<12}  {'worst s past timeout':>20}")
    for level in [level for level in available_levels() if level not in UNWALLED]:
        force_isolation(level)
        run_tests("def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3"])  # the level's probe, once
        worst = 0.0
        for name, program in HOSTILE:
            past, reasons = [], set()
            for _ in range(repeats):
                started = time.perf_counter()
                result = run_tests(program, ["assert add(1, 2) == 3"], timeout=timeout)
                past.append(time.perf_counter() - started - timeout)
                reasons.add(result.reason)
            worst = max(worst, *past)
            print(f"{level:<22}  {name:<12}  {'/'.join(sorted(reasons)):<12}  {max(past):>20.3f}")
        print(f"{level:<22}  {'worst':<12}  {'':<12}  {worst:>20.3f}")
    force_isolation(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts to measure")
    parser.add_argument("--rounds", type=int, default=4, help="copies of the 12 tasks per measurement")
    parser.add_argument("--isolation", choices=available_levels(), help="a weaker level than the machine's best")
    parser.add_argument("--overrun", type=float, metavar="TIMEOUT",
                        help="instead: how far past TIMEOUT hostile checks end, at every walled level")
    args = parser.parse_args()
    if args.overrun:
        overrun(args.overrun, max(1, args.rounds // 2))
        return
    force_isolation(args.isolation)
    set_max_parallel(max(args.workers))  # the bench measures workers, not the process-wide default cap
    items, expected = batch(args.rounds)
    verify_many(items[:2], workers=1)  # warm-up: the first call probes which interpreter the sandbox runs
    print(f"{len(items)} checks per run ({expected} should pass), {os.cpu_count()} CPUs, isolation {isolation()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'workers':>7}  {'wall s':>7}  {'checks/s':>8}  {'mean s/check':>12}  {'passed':>6}")
    for workers in args.workers:
        started = time.perf_counter()
        results = verify_many(items, workers=workers)
        wall = time.perf_counter() - started
        passed = sum(r.passed for r in results)
        mean = sum(r.seconds for r in results) / len(results)
        flag = "" if passed == expected else f"  (expected {expected}!)"
        print(f"{workers:>7}  {wall:>7.2f}  {len(items) / wall:>8.1f}  {mean:>12.3f}  {passed:>6}{flag}")


if __name__ == "__main__":
    main()
