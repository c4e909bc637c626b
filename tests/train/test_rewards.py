"""The reward table over literal completions: correct, wrong, malformed, and rows a reward cannot check."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.train

R = "<reasoning>48 / 2 = 24, 48 + 24 = 72.</reasoning>"
OPTIONS = json.dumps({"A": "oxygen", "B": "carbon dioxide", "C": "nitrogen"})


def columns(n, **given):
    """The reward columns as Tunix passes them: numpy string arrays, one entry per completion."""
    base = {"id": "r", "question": "q", "category": "math", "reference": "", "options": "null", "tests": "null",
            "test_setup": "", "test_imports": "null", "mode": "train", "trajectory_ids": "0_0"}
    return {k: np.array([v] * n) for k, v in {**base, **given}.items()}


@pytest.mark.parametrize("completion, expected", [
    (f"{R}<answer>72</answer>", 1.0),
    (f"  {R}\n<answer>72</answer>\n<end_of_turn>", 1.0),           # whitespace and the end marker are fine
    (f"Sure! {R}<answer>72</answer>", 0.5),                        # text outside the tags
    ("<reasoning></reasoning><answer>72</answer>", 0.5),             # empty reasoning
    (f"{R}<answer>72", 0.5),                                       # cut before </answer>
    ("The answer is 72.", 0.0),
    (f"{R}", 0.0),
    ("", 0.0),
])
def test_format_reward(completion, expected):
    from tunixhack.train.rewards import format_reward

    assert format_reward(["p"], [completion], **columns(1)) == [expected]


@pytest.mark.parametrize("completion, category, reference, expected", [
    (f"{R}<answer>72</answer>", "math", "72", 1.0),
    (f"{R}<answer>\\boxed{{72}}</answer>", "math", "72", 1.0),
    (f"{R}<answer>The total is $1,234.</answer>", "math", "1234", 1.0),
    (f"{R}<answer>71</answer>", "math", "72", 0.0),                 # wrong
    ("So the answer is 72.", "math", "72", 0.0),                     # malformed: no <answer>
    (f"{R}<answer>72</answer>", "creative_writing", "72", 0.0),      # not a math row: neutral
    (f"{R}<answer>72</answer>", "math", "", 0.0),                    # no reference: neutral
])
def test_math_reward(completion, category, reference, expected):
    from tunixhack.train.rewards import math_reward

    assert math_reward(["p"], [completion], **columns(1, category=category, reference=reference)) == [expected]


@pytest.mark.parametrize("completion, options, reference, expected", [
    (f"{R}<answer>B</answer>", OPTIONS, "carbon dioxide", 1.0),
    (f"{R}<answer>B) carbon dioxide</answer>", OPTIONS, "B", 1.0),
    (f"{R}<answer>carbon dioxide</answer>", OPTIONS, "carbon dioxide", 1.0),
    (f"{R}<answer>A</answer>", OPTIONS, "carbon dioxide", 0.0),      # wrong option
    ("B", OPTIONS, "carbon dioxide", 0.0),                           # malformed
    (f"{R}<answer>B</answer>", "null", "carbon dioxide", 0.0),       # not a choice row: neutral
])
def test_choice_reward(completion, options, reference, expected):
    from tunixhack.train.rewards import choice_reward

    got = choice_reward(["p"], [completion], **columns(1, category="science", options=options, reference=reference))
    assert got == [expected]


@pytest.mark.parametrize("words, expected", [(5, 0.0), (10, 0.0), (15, -0.5), (40, -1.0)])
def test_length_reward(words, expected):
    from tunixhack.train.rewards import length_reward

    completion = " ".join(["word"] * words)
    assert length_reward(["p"], [completion], length_budget=10, **columns(1)) == [expected]


def test_judge_reward_scores_answers_and_leaves_the_rest_neutral():
    from tunixhack.train.rewards import judge_reward

    seen = []

    def judge(items):
        seen.extend(items)
        return [10, 1, None][: len(items)]

    completions = [f"{R}<answer>A poem.</answer>", f"{R}<answer>Bad.</answer>", f"{R}<answer>?</answer>", "no tags"]
    got = judge_reward(["p"] * 4, completions, judge=judge,
                       **columns(4, category="creative_writing", question="Write a poem."))
    assert got == [1.0, 0.0, 0.0, 0.0]
    assert seen == [("creative_writing", "Write a poem.", a) for a in ("A poem.", "Bad.", "?")]


def test_code_reward_runs_the_tests():
    from tunixhack.train.rewards import code_reward

    tests = json.dumps(["assert add(2, 3) == 5"])
    good = f"{R}<answer>```python\ndef add(a, b):\n    return a + b\n```</answer>"
    bad = f"{R}<answer>```python\ndef add(a, b):\n    return a - b\n```</answer>"
    got = code_reward(["p"] * 4, [good, bad, "def add(a, b): return a + b", good],
                      **{**columns(4, category="code", tests=tests), "tests": np.array([tests] * 3 + ["null"])})
    assert got == [1.0, 0.0, 0.0, 0.0]


def test_select_names_rewards_and_rejects_unknown_ones():
    from tunixhack.train import rewards
    from tunixhack.errors import UserError

    fns = rewards.select("format,math,length", length_budget=3)
    assert [f.__name__ for f in fns] == ["format_reward", "math_reward", "length_reward"]
    assert fns[2](["p"], ["a b c d e f"], **columns(1)) == [-1.0]  # the bound budget is used
    with pytest.raises(UserError, match="--rewards must be"):
        rewards.select("format,nope")


def test_rewards_through_tunix_reward_manager():
    """What GRPOLearner does with our rewards: sum them per completion and log each by name."""
    from tunixhack.train import rewards
    from tunix.rl.grpo.grpo_learner import GRPOConfig
    from tunix.rl.reward_manager import SequenceRewardManager

    manager = SequenceRewardManager(rewards.select("format,math"), GRPOConfig(num_generations=2))
    cols = {k: np.repeat(v, 2, axis=0) for k, v in columns(1, reference="72").items()}
    info = manager(prompts=["p", "p"], completions=[f"{R}<answer>72</answer>", "72"], **cols)
    assert list(info["rewards"]) == [2.0, 0.0]
    assert list(info["log_metrics"]["rewards/format_reward"][0]) == [1.0, 0.0]
    assert list(info["log_metrics"]["rewards/math_reward"][0]) == [1.0, 0.0]


def test_judge_reward_through_a_teacher_server():
    """--judge SPEC: the reward asks an OpenAI-compatible server (a local fake) through tunixhack.judge."""
    from tunixhack.train import rewards
    from tests.fakes.openai_server import OpenAIFake

    rules = [{"match": "rain on a tin roof", "content": "Score: 10\nReason: vivid."},
             {"match": "a poem", "content": "Score: 4\nReason: flat."}]
    with OpenAIFake({"rules": rules}) as fake:
        [judge] = rewards.select("judge", judge=rewards.judge_client(fake.url, "qwen3-14b"))
        completions = [f"{R}<answer>The sound of rain on a tin roof.</answer>", f"{R}<answer>This is a poem.</answer>",
                       "untagged"]
        got = judge(["p"] * 3, completions, **columns(3, category="creative_writing", question="Write about rain."))
        sent = [body["messages"][-1]["content"] for body in fake.requests]
    assert got == [1.0, pytest.approx(1 / 3), 0.0]
    assert len(sent) == 2 and all("Write about rain." in text for text in sent)  # the untagged reply is not sent
