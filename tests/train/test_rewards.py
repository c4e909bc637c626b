"""The reward table over literal completions: correct, wrong, malformed, rows a reward cannot check, and answers
that cannot be checked (NaN, left out of the group's normalisation); the rollout seed; the learning-rate horizon."""

import json
import math

import numpy as np
import pytest

pytestmark = pytest.mark.train

R = "<reasoning>48 / 2 = 24, 48 + 24 = 72.</reasoning>"
MATH = json.dumps({"kind": "math", "gold": "72"})
CHOICE = json.dumps({"kind": "choice", "options": {"A": "oxygen", "B": "carbon dioxide", "C": "nitrogen"},
                     "answer": "carbon dioxide"})
TEXT = json.dumps({"kind": "text_match", "reference": "Tope", "min_f1": 0.5})
NONE = json.dumps(None)


def columns(n, check=NONE, **given):
    """The reward columns as Tunix passes them: numpy string arrays, one entry per completion."""
    base = {"id": "r", "question": "q", "category": "math", "check": check, "mode": "train", "trajectory_ids": "0_0"}
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


@pytest.mark.parametrize("completion, check, expected", [
    (f"{R}<answer>72</answer>", MATH, 1.0),
    (f"{R}<answer>\\boxed{{72}}</answer>", MATH, 1.0),
    (f"{R}<answer>The total is $72.00.</answer>", MATH, 1.0),
    (f"{R}<answer>71</answer>", MATH, 0.0),                 # wrong
    ("So the answer is 72.", MATH, 0.0),                     # malformed: no <answer>
    (f"{R}<answer>72</answer>", NONE, 0.0),                  # nothing to check: neutral
    (f"{R}<answer>72</answer>", CHOICE, 0.0),                # another kind: neutral
])
def test_math_reward(completion, check, expected):
    from tunixhack.train.rewards import math_reward

    assert math_reward(["p"], [completion], **columns(1, check)) == [expected]


@pytest.mark.parametrize("completion, check, expected", [
    (f"{R}<answer>B</answer>", CHOICE, 1.0),
    (f"{R}<answer>B) carbon dioxide</answer>", CHOICE, 1.0),
    (f"{R}<answer>carbon dioxide</answer>", CHOICE, 1.0),
    (f"{R}<answer>A</answer>", CHOICE, 0.0),      # wrong option
    ("B", CHOICE, 0.0),                           # malformed
    (f"{R}<answer>B</answer>", MATH, 0.0),        # not a choice row: neutral
])
def test_choice_reward(completion, check, expected):
    from tunixhack.train.rewards import choice_reward

    assert choice_reward(["p"], [completion], **columns(1, check, category="science")) == [expected]


def test_text_reward_scores_dolly_labels():
    from tunixhack.train.rewards import text_reward

    got = text_reward(["p"] * 3, [f"{R}<answer>Tope. It is a shark.</answer>", f"{R}<answer>Rope</answer>", "Tope"],
                      **columns(3, TEXT, category="classification"))
    assert got == [1.0, 0.0, 0.0]


def test_an_answer_that_cannot_be_checked_is_nan_not_wrong():
    """check() saying None (nothing can tell: here the row's correct option is none of its options) is not a wrong
    answer: the reward is NaN, left out of its group."""
    from tunixhack.train import rewards

    broken = json.dumps({"kind": "choice", "options": {"A": "oxygen", "B": "carbon"}, "answer": "helium"})
    got = rewards.choice_reward(["p"] * 2, [f"{R}<answer>A</answer>", "no tags"], **columns(2, broken))
    assert math.isnan(got[0]) and got[1] == 0.0  # no answer at all is still a wrong answer


def test_math_verify_out_of_time_is_none():
    """The comparison that runs out of TIME_LIMIT gives None (not computed), which the rewards turn into NaN."""
    import time

    from tunixhack.verify import math as verify_math

    assert verify_math._with_time_limit(lambda: time.sleep(1) or True, 0.01) is None
    assert verify_math._with_time_limit(lambda: True, 5.0) is True


@pytest.mark.parametrize("words, expected", [(5, 0.0), (10, 0.0), (11, -0.25), (12, -0.25), (13, -0.5),
                                             (15, -0.5), (16, -0.75), (40, -1.0)])
def test_length_reward_moves_in_steps(words, expected):
    from tunixhack.train.rewards import length_reward

    completion = " ".join(["word"] * words)
    assert length_reward(["p"], [completion], length_budget=10, **columns(1)) == [expected]


def test_length_reward_gives_no_advantage_to_a_few_tokens_when_the_rest_ties():
    from tunixhack.train.rewards import length_reward
    from tunixhack.train.rl import valid_group_advantages

    group = [" ".join(["w"] * n) for n in (9, 10, 7, 3)]  # all within budget, lengths differ
    rewards = np.asarray(length_reward(["p"] * 4, group, length_budget=10, **columns(4)))
    assert not valid_group_advantages(rewards, 4).any()


def test_judge_reward_scores_answers_and_marks_unanswered_ones():
    from tunixhack.train.rewards import judge_reward

    seen = []

    def judge(items):
        seen.extend(items)
        return [10, 1, None][: len(items)]

    completions = [f"{R}<answer>A poem.</answer>", f"{R}<answer>Bad.</answer>", f"{R}<answer>?</answer>", "no tags"]
    got = judge_reward(["p"] * 4, completions, judge=judge,
                       **columns(4, category="creative_writing", question="Write a poem."))
    assert got[:2] == [1.0, 0.0] and math.isnan(got[2]) and got[3] == 0.0  # no answer at all is a wrong answer
    assert seen == [("creative_writing", "Write a poem.", a) for a in ("A poem.", "Bad.", "?")]


def test_code_reward_runs_the_tests_of_the_check():
    from tunixhack.train.rewards import code_reward

    check = json.dumps({"kind": "code", "tests": ["assert add(2, 3) == 5"], "setup": "", "imports": [], "timeout": 10})
    good = f"{R}<answer>```python\ndef add(a, b):\n    return a + b\n```</answer>"
    bad = f"{R}<answer>```python\ndef add(a, b):\n    return a - b\n```</answer>"
    cols = {**columns(4, check, category="code"), "check": np.array([check] * 3 + [NONE])}
    assert code_reward(["p"] * 4, [good, bad, "def add(a, b): return a + b", good], **cols) == [1.0, 0.0, 0.0, 0.0]
    # a program that writes a line its parent cannot read fails alone; the batch is scored (issue 11)
    forge = "import os, sys\nos.write(int(sys.argv[1]), 'VALUE \\u00b2 0\\n'.encode())\n"
    forged = bad.replace("def add", forge + "def add")
    assert code_reward(["p"] * 3, [good, forged, good], **{**cols, "check": cols["check"][:3]}) == [1.0, 0.0, 1.0]


def test_select_names_rewards_and_rejects_unknown_ones():
    from tunixhack.errors import UserError
    from tunixhack.train import rewards

    fns = rewards.select("format,math,length", length_budget=3)
    assert [f.__name__ for f in fns] == ["format_reward", "math_reward", "length_reward"]
    assert fns[2](["p"], ["a b c d e f g"], **columns(1)) == [-1.0]  # the bound budget is used
    with pytest.raises(UserError, match="--rewards must be"):
        rewards.select("format,nope")


def test_which_rows_the_chosen_rewards_can_score():
    from tunixhack.train.rewards import can_score

    math_check, poem = json.loads(MATH), None
    assert can_score(["math"], math_check) and not can_score(["choice"], math_check)
    assert not can_score(["math", "choice"], poem) and can_score(["judge"], poem)


def test_the_reward_manager_leaves_uncomputed_rewards_out_of_the_group():
    """What GRPOLearner does with our rewards: a NaN total, and advantages over the finite ones only."""
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from tunixhack.train import rewards
    from tunixhack.train.rl import NanAwareRewardManager, valid_group_advantages

    def flaky(prompts, completions, **_):
        return [1.0, math.nan, 0.0, 1.0]

    flaky.__name__ = "flaky_reward"
    manager = NanAwareRewardManager(rewards.select("format") + [flaky], GRPOConfig(num_generations=4))
    completions = [f"{R}<answer>72</answer>"] * 4
    info = manager(prompts=["p"] * 4, completions=completions, **columns(4, MATH))
    assert list(info["rewards"][[0, 2, 3]]) == [2.0, 1.0, 2.0] and math.isnan(info["rewards"][1])
    assert info["log_metrics"]["rewards/uncomputed"][0].tolist() == [0, 1, 0, 0]
    advantages = valid_group_advantages(info["rewards"], 4)
    assert advantages[1] == 0.0  # no push either way
    assert advantages[0] == pytest.approx(advantages[3]) and advantages[0] > 0 > advantages[2]
    # the same three finite rewards alone give the same advantages: the NaN moved neither mean nor spread
    alone = valid_group_advantages(np.array([2.0, 1.0, 2.0, 0.0]), 4)
    ref = (np.array([2.0, 1.0, 2.0]) - 5 / 3) / (np.std([2.0, 1.0, 2.0], ddof=1) + 1e-6)
    assert advantages[[0, 2, 3]] == pytest.approx(ref, rel=1e-5) and alone[3] < 0


def test_a_group_with_one_finite_reward_gets_no_advantage():
    from tunixhack.train.rl import valid_group_advantages

    assert not valid_group_advantages(np.array([math.nan, math.nan, 1.0, math.nan]), 4).any()


def test_judge_reward_through_a_teacher_server():
    """--judge SPEC: the reward asks an OpenAI-compatible server (a local fake) through tunixhack.verify.judge."""
    from tests.fakes.openai_server import OpenAIFake
    from tunixhack.train import rewards

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


def test_learning_rate_warms_up_and_decays_to_the_floor_at_the_horizon():
    from tunixhack.train import budget

    rates = [float(budget.learning_rate(s, 1.0, 5, 100)) for s in range(101)]
    assert rates[0] == pytest.approx(1 / 6) and max(rates) == pytest.approx(1.0, abs=1e-3)
    assert rates[98] > budget.FLOOR * 1.001  # still decaying one step before the end
    assert rates[99] == pytest.approx(budget.FLOOR, rel=1e-6) and rates[100] == pytest.approx(budget.FLOOR)
    assert all(a >= b - 1e-9 for a, b in zip(rates[5:], rates[6:]))  # decays monotonically after the warmup


@pytest.mark.parametrize("warmup", [0, 2, 20])
def test_the_last_step_of_any_horizon_trains_at_the_floor(warmup):
    """A time budget picks the horizon from step times, so a busy machine gives a short one: whatever it is, the
    schedule's last step (count horizon - 1) is at the floor, never a few percent above it."""
    from tunixhack.train import budget

    for horizon in range(2, 120):
        last = float(budget.learning_rate(horizon - 1, 3e-3, warmup, horizon))
        assert last == pytest.approx(3e-3 * budget.FLOOR, rel=1e-6), horizon


def test_a_time_budget_lays_the_horizon_over_the_steps_it_allows(monkeypatch):
    """Step times measured after the compiling step set the horizon; the stream ends there, at the floor rate."""
    from tunixhack.train import budget as budgets

    clock = [1000.0]
    monkeypatch.setattr(budgets.time, "monotonic", lambda: clock[0])
    plan = budgets.Budget(max_steps=10_000, minutes=1.0, peak=1e-3, warmup=5)
    done = [0]
    plan.steps_done = lambda: done[0]
    seen = 0
    for _ in plan.batches(iter(range(10_000))):
        plan.step_started(done[0])
        clock[0] += 20.0 if seen == 0 else 0.5  # the first step compiles for 20 s, then 0.5 s a step
        done[0] += 1
        seen += 1
    assert plan.horizon == done[0]
    # 60 s less the 20 s compile and the 3% reserve, at 0.5 s a step, after the compiling step
    assert abs(plan.horizon - (1 + int((60 - 20 - 0.03 * 60) / 0.5))) <= 2
    assert plan.rate(done[0]) == pytest.approx(1e-3 * budgets.FLOOR, rel=1e-6)
    assert plan.summary(done[0])["ended"] == "schedule done"


def test_the_rollout_seed_changes_every_call(tiny):
    """Tunix's vanilla rollout samples the same numbers on every call; ours draws new ones each time."""
    from tunix.rl.rollout.base_rollout import CacheConfig, RolloutConfig
    from tunix.rl.rollout.vanilla_rollout import VanillaRollout

    from tunixhack.student import render_prompt
    from tunixhack.train import model as models
    from tunixhack.train.rl import SeededRollout

    source, tok, ids = tiny
    mesh = models.make_mesh(None)
    net, cfg = models.load_base(source, mesh)
    # The student prompt is about 70 tiny tokens (its tags split into several pieces, as Gemma's do). At
    # temperature 1 the random tiny model repeats "\n" often enough that two draws can both be all newlines;
    # at 2 two draws with different seeds differ, and the same seed still gives the same text.
    config = RolloutConfig(max_tokens_to_generate=12, max_prompt_length=128, kv_cache_size=160, temperature=2.0,
                           top_k=500, top_p=1.0, eos_tokens=[ids["eos"]])
    prompts = [render_prompt("Natalia sold clips to 48 of her friends.")] * 2
    ours = SeededRollout(net, tok, mesh, config, seed=0)
    theirs = VanillaRollout(net, tok, CacheConfig(cache_size=160, num_layers=cfg.num_layers,
                                                  num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim))
    assert theirs.generate(prompts, config).text == theirs.generate(prompts, config).text
    assert ours.generate(prompts, config).text != ours.generate(prompts, config).text
    assert ours.calls == 2 and len(ours.seconds) == 2
