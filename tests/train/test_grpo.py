"""GRPO hands each reward the columns of the row each completion answers, keeps the rows its rewards can score,
skips the rows SFT trained on, and trains in micro-batches."""

import json

import pytest

from tests.train.conftest import GRPO_FLAGS, TRACES, metrics, run_script, train_script

pytestmark = pytest.mark.train


def test_each_reward_gets_the_columns_of_its_row(sft_run, tmp_path, monkeypatch):
    from tunixhack.student import render_prompt
    from tunixhack.train import data, rewards
    from tunixhack.verify import check_of

    grpo = train_script("grpo")
    calls = []

    def spy_reward(prompts, completions, **columns):
        calls.append({"prompts": list(prompts), "completions": list(completions),
                      **{k: [str(v) for v in vs] for k, vs in columns.items() if k in data.REWARD_COLUMNS}})
        return [0.5] * len(prompts)

    monkeypatch.setitem(rewards.REWARDS, "spy", spy_reward)
    out = tmp_path / "grpo"
    grpo.main(["--init", str(sft_run), "--data", str(TRACES), "--steps", "2", "--rewards", "spy,format",
               "--out", str(out), *GRPO_FLAGS])

    assert len(calls) == 2  # one call per step, each over batch x generations completions
    rows = {r["id"]: r for r in data.read_rows(str(TRACES), "rl")[0]}
    for call in calls:
        assert set(call) == {"prompts", "completions", *data.REWARD_COLUMNS}
        assert len(call["prompts"]) == len(call["completions"]) == 4 and len(set(call["id"])) == 2
        for i, row_id in enumerate(call["id"]):
            row = rows[row_id]
            assert call["prompts"][i] == render_prompt(row["prompt"]) and call["question"][i] == row["prompt"]
            assert call["category"][i] == row["category"]
            assert json.loads(call["check"][i]) == check_of(row)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["rewards/spy_reward"] for r in logged] == [0.5, 0.5]
    assert all("rewards/format_reward" in r and r["rewards/uncomputed"] == 0.0 for r in logged)


def test_rows_no_reward_scores_and_rows_sft_saw_are_left_out(sft_run, tmp_path, train_env):
    fill = sft_run / "sft_fill_ids.txt"
    seen = "gsm8k/train/0\ngsm8k/train/1\n"
    original = fill.read_text()
    try:
        fill.write_text(seen)  # as if SFT had taken these two rows of the rl split
        result = run_script("grpo.py", "--init", sft_run, "--data", TRACES, "--steps", 2, "--rewards", "format,math,code",
                            "--out", tmp_path / "g", *GRPO_FLAGS, "--batch", 4, "--micro-batch", 2, env=train_env)
    finally:
        fill.write_text(original)
    run = json.loads((tmp_path / "g" / "run.json").read_text())
    assert run["rows_dropped"] == {"seen in SFT (math)": 2, "no chosen reward scores it (science)": 8,
                                   "no chosen reward scores it (creative_writing)": 4}
    table = [line.split() for line in result.stderr.split("dropped:\n", 1)[1].splitlines()[:3]]
    assert table == [["category", "creative_writing", "math", "science"],
                     ["no", "chosen", "reward", "scores", "it", "4", "-", "8"], ["seen", "in", "SFT", "-", "2", "-"]]
    from tunixhack.verify import code

    assert run["isolation"]["level"] == code.isolation()  # named once, at start-up, when model-written code runs
    assert f"code sandbox: {code.isolation()}" in result.stderr
    assert run["micro_batch"] == 2 and run["batch"] == 4
    assert run["dtypes"]["trainable"] == "float32" and run["budget"]["steps_done"] == 2
    from tunixhack.train import grpo_loss

    # the learner looked up the chunked policy loss: the [completions, length, vocab] logits never exist at once
    assert run["dtypes"]["loss_logits"] == grpo_loss.LOGITS


def test_grpo_refuses_when_no_row_is_left(sft_run, tmp_path, train_env):
    result = run_script("grpo.py", "--init", sft_run, "--data", TRACES, "--steps", 2, "--rewards", "format,text",
                        "--out", tmp_path / "g", *GRPO_FLAGS, env=train_env, check=False)
    last = result.stderr.splitlines()[-1]
    assert result.returncode == 2 and last.startswith("error: no row left to train on") and len(last) < 200
    assert "  no chosen reward scores it " in result.stderr  # the counts, as a table above the error


def test_a_time_budget_times_grpo_steps_and_ends_its_schedule_there(sft_run, tmp_path, train_env):
    """GRPO's trainer starts a pass per micro-batch: the budget still measures its steps, lays the schedule over
    what the minutes allow, and ends there at the floor rate; a re-run then has nothing to train."""
    from tunixhack.train import budget

    args = ["--init", sft_run, "--data", TRACES, "--rewards", "format,math", "--out", tmp_path / "g", *GRPO_FLAGS,
            "--batch", 4, "--micro-batch", 2, "--warmup-steps", 1, "--time-budget", 0.4]
    run_script("grpo.py", *args, env=train_env)
    run = json.loads((tmp_path / "g" / "run.json").read_text())
    plan = run["budget"]
    # On a loaded machine the compile may take the whole budget: no step is timed, and the step after it ends the
    # schedule at the floor; either way the stage ends with its schedule done.
    assert plan["step_seconds"] or plan["steps_done"] <= budget.MEASURE_AFTER + 2
    assert plan["horizon"] < 10**6 and plan["ended"] == "schedule done" and plan["steps_done"] == plan["horizon"] >= 2
    rates = [r["learning_rate"] for r in metrics(tmp_path / "g") if "learning_rate" in r]
    assert rates[-1] == pytest.approx(run["lr"] * budget.FLOOR, rel=1e-4)  # exact, however long the steps took
    again = run_script("grpo.py", *args, env=train_env)
    assert "nothing to train" in again.stderr and "Traceback" not in again.stderr
