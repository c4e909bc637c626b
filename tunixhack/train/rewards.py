"""GRPO rewards, chosen by name from REWARDS (`--rewards format,math,choice`).

Every reward is `fn(prompts, completions, **columns) -> list[float]`, one value per completion, with its
range in a comment. The columns are data.reward_columns (id, question, category, check), repeated per
generation by Tunix (numpy strings). Tunix sums the rewards; a group of completions shares one prompt.

The correctness rewards (math, choice, code, text) score a row whose `check` is of their kind through
tunixhack.verify.check, the same call as the generation filter and eval.py, so the three cannot drift apart.
On a row of another kind a reward is 0.0 for every completion of the group, so it moves nothing. A value that
could not be computed (math-verify out of time, a judge that did not answer) is NaN: grpo.py leaves that
completion out of its group's normalisation instead of scoring it as a wrong answer.
"""

from __future__ import annotations

import json
import math

from tunixhack.errors import UserError
from tunixhack.student import answer_of, clean, format_compliant

NAN = math.nan
LENGTH_STEP = 0.25   # the length penalty moves in quarter steps: tiny differences give no advantage


def _checks(check_column) -> list[dict | None]:
    cache: dict[str, dict | None] = {}
    return [cache.setdefault(str(c), json.loads(str(c))) for c in check_column]


def _verdicts(kind: str, completions, check) -> list[float]:
    """1.0 right, 0.0 wrong, NaN not computable, for the completions of rows whose check is of `kind`; 0.0 else."""
    from tunixhack.verify import check_many

    checks = _checks(check)
    todo = [i for i, c in enumerate(checks) if c and c.get("kind") == kind]
    answers = [answer_of(completions[i]) for i in todo]
    verdicts = check_many([{"check": checks[i]} for i in todo], answers, sandbox_failed=None) if todo else []
    out = [0.0] * len(completions)
    for i, answer, verdict in zip(todo, answers, verdicts):
        out[i] = 0.0 if answer is None else NAN if verdict is None else float(verdict)
    return out


# --- the rewards ---------------------------------------------------------------------------------------
def format_reward(prompts, completions, **_) -> list[float]:
    """Range [0, 1]: 1 for the strict format, 0.5 for both tagged sections with other text around, else 0."""
    return [1.0 if format_compliant(c) else 0.5 if answer_of(c) is not None else 0.0 for c in completions]


def math_reward(prompts, completions, check, **_) -> list[float]:
    """Range [0, 1]: 1 when a math row's <answer> equals the gold (math-verify), else 0."""
    return _verdicts("math", list(completions), check)


def choice_reward(prompts, completions, check, **_) -> list[float]:
    """Range [0, 1]: 1 when a multiple-choice row's <answer> picks the correct option, else 0."""
    return _verdicts("choice", list(completions), check)


def code_reward(prompts, completions, check, **_) -> list[float]:
    """Range [0, 1]: 1 when the program in a code row's <answer> passes all the row's tests (sandboxed), else 0."""
    return _verdicts("code", list(completions), check)


def text_reward(prompts, completions, check, **_) -> list[float]:
    """Range [0, 1]: 1 when a short answer matches the human reference (Dolly closed_qa, classification)."""
    return _verdicts("text_match", list(completions), check)


def length_reward(prompts, completions, length_budget=768, count=None, **_) -> list[float]:
    """Range [-1, 0]: 0 up to length_budget tokens, then -0.25 for each started quarter of the budget beyond.

    Steps, not a slope: group normalisation divides by the group's spread, so a slope would turn a few tokens'
    difference into a full advantage whenever the other rewards tie.
    """
    count = count or (lambda text: len(text.split()))
    over = [max(0, count(clean(c)) - length_budget) / length_budget for c in completions]
    return [-min(1.0, LENGTH_STEP * math.ceil(x / LENGTH_STEP)) for x in over]


def judge_reward(prompts, completions, question, category, judge=None, **_) -> list[float]:
    """Range [0, 1]: an LLM judge's 1-10 score of the <answer>, as (score - 1) / 9; NaN when it did not answer.

    `judge(items) -> scores` takes [(category, question, answer)] and returns a score or None for each
    (grpo.py builds it from --judge on tunixhack.verify.judge and the same teacher backends as generation).
    """
    if judge is None:
        raise UserError("the judge reward needs --judge SPEC (a teacher server)")
    answers = [answer_of(c) for c in completions]
    items = [(str(cat), str(q), a) for cat, q, a in zip(category, question, answers)]
    todo = [i for i, a in enumerate(answers) if a is not None]
    scores = judge([items[i] for i in todo]) if todo else []
    out = [0.0] * len(completions)
    for i, score in zip(todo, scores):
        out[i] = NAN if score is None else (min(10.0, max(1.0, float(score))) - 1.0) / 9.0
    return out


REWARDS = {"format": format_reward, "math": math_reward, "choice": choice_reward, "code": code_reward,
           "text": text_reward, "length": length_reward, "judge": judge_reward}
# Which rows a reward can tell apart on their answers (the check kind it reads; judge: every row). A row that no
# chosen reward of these can score gives GRPO tied groups only once the format is learnt: grpo.py drops it.
SCORES = {"math": "math", "choice": "choice", "code": "code", "text": "text_match"}


def can_score(names: list[str], row_check: dict | None) -> bool:
    """Whether one of the chosen rewards tells this row's answers apart (format and length shape every row
    but do not judge the answer)."""
    if "judge" in names:
        return True
    kind = (row_check or {}).get("kind")
    return any(SCORES.get(n) == kind for n in names)


def names_of(spec: str) -> list[str]:
    chosen = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in REWARDS]
    if unknown or not chosen:
        raise UserError(f"--rewards must be a comma-separated subset of {','.join(REWARDS)}, got {spec!r}")
    return list(dict.fromkeys(chosen))


def select(names: str, **settings) -> list:
    """The reward functions named in `names` (comma separated), with settings bound to those that take them.

    Tunix logs each reward under its function's __name__ (rewards/format_reward, ...), kept here.
    """
    return [bind(REWARDS[n], settings) for n in names_of(names)]


def bind(fn, settings: dict):
    import inspect

    own = {k: v for k, v in settings.items() if k in inspect.signature(fn).parameters}

    def reward(prompts, completions, **columns):
        return fn(prompts, completions, **columns, **own)

    reward.__name__ = reward.__qualname__ = fn.__name__
    reward.__doc__ = fn.__doc__
    return reward


def judge_client(spec: str, model: str, concurrency: int = 8):
    """A batch judge, [(category, question, answer)] -> [score 1-10 or None], on tunixhack.verify.judge (the same
    teacher backends as generation); a request that fails after retries scores None, never stops training."""
    from tunixhack.verify.judge import score_batch

    return lambda items: score_batch(spec, model, items, concurrency=concurrency)
