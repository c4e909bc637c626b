"""Training learns, on a toy verifiable task, with the tiny model over a bfloat16 base (the Kaggle setting).

The task: "Task N: pick one of A, B, C or D." SFT rows answer A, B, C and D in turn, so SFT teaches the format and
leaves the letter to chance; the verifiable reward (a choice check whose answer is A) pays for A only. So:
  - SFT takes format compliance on held-out prompts from about 0 to at least 90%;
  - GRPO from that checkpoint raises the reward's mean from about a quarter to well above it;
  - the same GRPO with the rewards shuffled against the completions (a miswired policy gradient) does not;
  - the merged model answers like the model that was trained.
"""

import json
import random

import numpy as np
import pytest

from tests.train.conftest import train_script

pytestmark = pytest.mark.train

LETTERS = "ABCD"
CHECK = {"kind": "choice", "options": {k: k for k in LETTERS}, "answer": "A"}
TINY = ["--lora-rank", "8", "--lora-alpha", "16"]
GRPO = ["--rewards", "picked", "--steps", "12", "--batch", "8", "--generations", "4", "--max-new-tokens", "24",
        "--max-prompt-len", "128", "--lr", "1e-3", "--beta", "0", "--temperature", "1.0", "--warmup-steps", "1",
        "--save-every", "1000"]
MARGIN = 0.3  # the mean reward of the last steps over the first ones


def rows(start: int, n: int) -> list[dict]:
    return [{"id": f"toy/{i}", "category": "choice", "prompt": f"Task {i}: pick one of A, B, C or D.",
             "reasoning": f"I pick {LETTERS[i % 4]}.", "answer": LETTERS[i % 4], "verified": True, "check": CHECK}
            for i in range(start, start + n)]


def write(path, items):
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def greedy_replies(model, cfg, tok, prompts):
    from tunixhack.student import render_prompt
    from tunixhack.train import model as models
    from tunixhack.train.decode import Greedy

    greedy = Greedy(model, cfg, tok, models.token_ids(tok), max_new_tokens=24, max_prompt_len=128)
    return greedy([render_prompt(p) for p in prompts], batch=16)


@pytest.fixture(scope="module")
def toy(train_env, tmp_path_factory):
    """SFT on the toy task; returns (folder, held-out prompts, format rate before, format rate after)."""
    from tunixhack.student import format_compliant
    from tunixhack.train import model as models
    from tunixhack.train import runs

    tmp = tmp_path_factory.mktemp("toy")
    held_out = [r["prompt"] for r in rows(5000, 16)]
    mesh = models.make_mesh(None)
    source = models.resolve("tiny")
    base, cfg = models.load_base(source, mesh, "bfloat16")
    before = np.mean([format_compliant(r) for r in greedy_replies(base, cfg, models.load_tokenizer(source), held_out)])
    train_script("sft").main(["--model", "tiny", "--dtype", "bfloat16", "--data", str(write(tmp / "sft.jsonl",
                              rows(0, 64))), "--out", str(tmp / "sft"), *TINY, "--lr", "1e-2", "--batch", "8",
                              "--max-len", "192", "--max-epochs", "6", "--warmup-steps", "2", "--eval-frac", "0",
                              "--eval-every", "1000", "--save-every", "1000", "--samples", "0"])
    net, cfg, tok, _ = runs.load_run(str(tmp / "sft"), mesh)
    after = np.mean([format_compliant(r) for r in greedy_replies(net, cfg, tok, held_out)])
    write(tmp / "rl.jsonl", rows(1000, 64))
    return tmp, held_out, before, after


def grpo_run(toy, monkeypatch, name: str, shuffle: bool) -> list[float]:
    """GRPO from the SFT checkpoint with the choice reward (optionally shuffled within each batch); returns the
    true mean reward of each step."""
    from tunixhack.train import rewards

    tmp = toy[0]
    true_means = []

    def picked_reward(prompts, completions, check, **_):
        values = rewards.choice_reward(prompts, completions, check)
        true_means.append(float(np.mean(values)))
        if shuffle:
            random.Random(len(true_means)).shuffle(values)
        return values

    monkeypatch.setitem(rewards.REWARDS, "picked", picked_reward)
    monkeypatch.setitem(rewards.SCORES, "picked", "choice")
    train_script("grpo").main(["--init", str(tmp / "sft"), "--data", str(tmp / "rl.jsonl"), "--out", str(tmp / name),
                               "--seed", "0", *GRPO])
    return true_means


def learned(means: list[float]) -> bool:
    return np.mean(means[-4:]) >= np.mean(means[:2]) + MARGIN


def test_sft_teaches_the_format(toy):
    _, _, before, after = toy
    print(f"format compliance on held-out prompts: {before:.2f} before SFT, {after:.2f} after")
    assert before <= 0.1 and after >= 0.9, (before, after)


def test_grpo_raises_the_verifiable_reward_and_shuffled_rewards_do_not(toy, monkeypatch):
    real = grpo_run(toy, monkeypatch, "grpo", shuffle=False)
    shuffled = grpo_run(toy, monkeypatch, "grpo-shuffled", shuffle=True)
    print(f"mean reward per step: real {[round(x, 2) for x in real]}; shuffled {[round(x, 2) for x in shuffled]}")
    assert len(real) == len(shuffled) == 12
    assert real[0] < 0.5, real  # SFT left the letter to chance
    assert learned(real), real
    assert not learned(shuffled), shuffled


def test_the_merged_model_answers_like_the_trained_one(toy, monkeypatch):
    """Greedy completions of 16 held-out prompts: base + float32 adapter as trained, and the merge computed in
    float32 and cast once to bfloat16."""
    from tunixhack.train import lora, runs
    from tunixhack.train import model as models

    tmp, held_out, _, _ = toy
    if not (tmp / "grpo").exists():
        grpo_run(toy, monkeypatch, "grpo", shuffle=False)
    mesh = models.make_mesh(None)
    actor, cfg, tok, run = runs.load_run(str(tmp / "grpo"), mesh)
    merged = lora.merge(actor, cfg, mesh, run["lora"]["alpha"] / run["lora"]["rank"])
    assert str(merged.embedder.input_embedding[...].dtype) == "bfloat16"
    assert greedy_replies(merged, cfg, tok, held_out) == greedy_replies(actor, cfg, tok, held_out)
