"""GRPO rewards, chosen by name from REWARDS (`--rewards format,math,choice`).

Every reward is `fn(prompts, completions, **columns) -> list[float]`, one value per completion, with its
range in a comment. The columns are train/data.py's reward_columns, repeated per generation by Tunix
(numpy strings). A row whose category a reward cannot check gets 0.0, the neutral value: Tunix sums the
rewards, so a math check never pushes on a poem. Correctness rewards read the <answer> section only
and use the same checks as the trace filter and eval.py (tunixhack/verify), so the three agree.
"""

from __future__ import annotations

from tunixhack.errors import UserError
from tunixhack.student import answer_of, clean, format_compliant


def decode_json(value):
    from tunixhack.train.data import decode_json as decode

    return decode(value)


# --- the rewards ---------------------------------------------------------------------------------------
def format_reward(prompts, completions, **_) -> list[float]:
    """Range [0, 1]: 1 for the strict format, 0.5 for both tagged sections with other text around, else 0."""
    return [1.0 if format_compliant(c) else 0.5 if answer_of(c) is not None else 0.0 for c in completions]


def math_reward(prompts, completions, category, reference, **_) -> list[float]:
    """Range [0, 1]: 1 when a math row's <answer> equals the reference (math-verify), else 0."""
    from tunixhack.verify.math import verify_math

    out = []
    for completion, cat, ref in zip(completions, category, reference):
        answer = answer_of(completion) if str(cat) == "math" and str(ref) else None
        out.append(1.0 if answer is not None and verify_math(answer, str(ref)) else 0.0)
    return out


def choice_reward(prompts, completions, options, reference, **_) -> list[float]:
    """Range [0, 1]: 1 when a multiple-choice row's <answer> picks the correct option, else 0."""
    from tunixhack.verify.choice import verify_choice

    out = []
    for completion, opts, ref in zip(completions, options, reference):
        opts, answer = decode_json(opts), answer_of(completion)
        ok = isinstance(opts, dict) and opts and str(ref) and answer is not None
        out.append(1.0 if ok and verify_choice(answer, str(ref), opts) else 0.0)
    return out


def code_reward(prompts, completions, tests, test_setup, test_imports, **_) -> list[float]:
    """Range [0, 1]: 1 when the program in a code row's <answer> passes all the row's tests (sandboxed), else 0."""
    from tunixhack.verify.code import verify_many

    todo = {}
    for i, (completion, row_tests, setup, imports) in enumerate(zip(completions, tests, test_setup, test_imports)):
        row_tests, answer = decode_json(row_tests), answer_of(completion)
        if row_tests and answer is not None:
            todo[i] = {"answer": answer, "tests": list(row_tests), "setup": str(setup or ""),
                       "imports": tuple(decode_json(imports) or ())}
    results = verify_many(list(todo.values())) if todo else []
    out = [0.0] * len(completions)
    for i, result in zip(todo, results):
        out[i] = 1.0 if result.passed else 0.0
    return out


def length_reward(prompts, completions, length_budget=768, count=None, **_) -> list[float]:
    """Range [-1, 0]: 0 up to length_budget tokens, then falling linearly to -1 at twice the budget."""
    count = count or (lambda text: len(text.split()))
    return [-min(1.0, max(0, count(clean(c)) - length_budget) / length_budget) for c in completions]


def judge_reward(prompts, completions, question, category, judge=None, **_) -> list[float]:
    """Range [0, 1]: an LLM judge's 1-10 score of the <answer>, as (score - 1) / 9; 0 when unjudged.

    `judge(items) -> scores` takes [(category, question, answer)] and returns a score or None for each
    (grpo.py builds it from --judge on tunixhack.judge and the same teacher backends as generation).
    """
    if judge is None:
        raise UserError("the judge reward needs --judge SPEC (a teacher server)")
    answers = [answer_of(c) for c in completions]
    items = [(str(cat), str(q), a) for cat, q, a in zip(category, question, answers)]
    todo = [i for i, a in enumerate(answers) if a is not None]
    scores = judge([items[i] for i in todo]) if todo else []
    out = [0.0] * len(completions)
    for i, score in zip(todo, scores):
        out[i] = 0.0 if score is None else (min(10.0, max(1.0, float(score))) - 1.0) / 9.0
    return out


REWARDS = {"format": format_reward, "math": math_reward, "choice": choice_reward, "code": code_reward,
           "length": length_reward, "judge": judge_reward}


def select(names: str, **settings) -> list:
    """The reward functions named in `names` (comma separated), with settings bound to those that take them.

    Tunix logs each reward under its function's __name__ (rewards/format_reward, ...), kept here.
    """
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in REWARDS]
    if unknown or not chosen:
        raise UserError(f"--rewards must be a comma-separated subset of {','.join(REWARDS)}, got {names!r}")
    return [bind(REWARDS[n], settings) for n in dict.fromkeys(chosen)]


def bind(fn, settings: dict):
    import inspect

    own = {k: v for k, v in settings.items() if k in inspect.signature(fn).parameters}

    def reward(prompts, completions, **columns):
        return fn(prompts, completions, **columns, **own)

    reward.__name__ = reward.__qualname__ = fn.__name__
    reward.__doc__ = fn.__doc__
    return reward


def judge_client(spec: str, model: str, concurrency: int = 8):
    """A batch judge, [(category, question, answer)] -> [score 1-10 or None], on tunixhack.judge (the same
    teacher backends as generation); a request that fails after retries scores None, never stops training."""
    from tunixhack.judge import score_batch

    return lambda items: score_batch(spec, model, items, concurrency=concurrency)
