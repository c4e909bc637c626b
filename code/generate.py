"""MBPP: short Python programming tasks, checked by running the reply's code against the task's asserts.

Source: https://huggingface.co/datasets/google-research-datasets/mbpp (parquet; configs `full` and
`sanitized`; splits train/test/validation/prompt; CC BY 4.0). `--source Muennighoff/mbpp` (the id the
original project linked; a loading-script repo) and local files in either config's shape work too.
Example row (config full):
    {"task_id": 17, "text": "Write a function to find the perimeter of a square.",
     "code": "def square_perimeter(a):\\r\\n  perimeter=4*a\\r\\n  return perimeter",
     "test_list": ["assert square_perimeter(10)==40", "assert square_perimeter(5)==20", ...],
     "test_setup_code": "", "challenge_test_list": []}
The sanitized config names the task `prompt` instead of `text` and adds `test_imports`.

The teacher sees the task and one assert (it fixes the function name); the reference solution is never sent.
A reply passes when its code and the setup code run in the sandbox and every assert holds on the values
its functions return there, judged outside the sandbox (tunixhack/verify/code.py; the run names the
sandbox's isolation level at start-up). A reply whose check runs out of time is rejected as `verify_timeout`,
naming the test it ran out on; `--attempts` does not resample it after two in a row on the same test. The
asserts, setup, imports and time limit are the row's `check`, read again by the GRPO code reward and by eval.
    python code/generate.py --split test --limit 50 --attempts 4
"""

from tunixhack import Recipe, Reject, run
from tunixhack.generate.argtypes import positive
from tunixhack.verify.code import allow_unsafe, extract_code, isolation, require_isolation, why

PROMPT = "{task}\n\nYour code should pass this test:\n{test}"
# Two tasks' asserts use objects that the setup code builds from classes the solution must define.
SETUP_NOTE = "\n\nBefore the asserts, the tests run this setup code (after your code):\n{setup}"
INSTRUCTION = "{prompt}\n\nWrite the solution in Python, in a single ```python code block."


class MBPP(Recipe):
    name = "mbpp"
    dataset = "google-research-datasets/mbpp"
    config = "full"
    split = "test"
    splits = ("train", "test", "validation", "prompt")
    category = "code"
    version = "1"
    columns = ("task_id", "test_list")  # the task text is `text` (full) or `prompt` (sanitized)
    id_column = "task_id"
    verify_timeout = 20.0  # seconds; --verify-timeout

    def add_arguments(self, group):
        group.add_argument("--verify-timeout", type=positive(float), default=self.verify_timeout,
                           help="seconds to run one reply's code and asserts (default 20; one reference "
                                "solution takes about 3 s); past it, the reply is rejected as verify_timeout")
        group.add_argument("--unsafe-run-code", action="store_true",
                           help="run the replies' code even where the sandbox cannot isolate it (no user "
                                "namespaces and not root): it then runs as you and can read your files")

    def configure(self, args):
        super().configure(args)
        self.verify_timeout = args.verify_timeout
        allow_unsafe(args.unsafe_run_code)
        require_isolation()  # refuses now, at start-up, where the code could not be isolated

    def describe(self):
        weaker = {"code_sandbox_why": why()} if why() else {}  # why namespaces were refused
        return {"code_sandbox": isolation(), **weaker}

    def prompt(self, row):
        task = row.get("text") or row.get("prompt")
        if not task or not task.strip():
            raise KeyError("no task text: a full-config row has 'text', a sanitized one 'prompt'")
        if not row["test_list"]:
            raise ValueError("no asserts in test_list")
        prompt = PROMPT.format(task=task.strip(), test=row["test_list"][0].strip())
        setup = normalise_newlines(row.get("test_setup_code") or "").strip()
        return prompt + SETUP_NOTE.format(setup=setup) if setup else prompt

    def teacher_prompt(self, row):
        return INSTRUCTION.format(prompt=self.prompt(row))

    def reference(self, row):
        return row.get("code")

    def check(self, row):
        return {"kind": "code", "tests": list(row["test_list"]), "setup": row.get("test_setup_code") or "",
                "imports": list(row.get("test_imports") or []), "timeout": self.verify_timeout}

    def parse(self, row, reply):
        if extract_code(reply.content) is None:
            raise Reject("no_code", "no ```python block and the reply is not a program")
        return {"reasoning": reply.reasoning, "answer": reply.content}


def normalise_newlines(text: str) -> str:
    """MBPP's full config uses CRLF; show the setup code with plain newlines (running it needs no change)."""
    return text.replace("\r\n", "\n")


if __name__ == "__main__":
    run(MBPP())
