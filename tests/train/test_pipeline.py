"""SFT -> GRPO -> eval -> export on the tiny model, run as a user types the commands (the issue's 'done' list)."""

import json
import shutil

import numpy as np
import pytest

from tests.train.conftest import SFT_FLAGS, TRACES, metrics, run_script

pytestmark = pytest.mark.train


def test_sft_loss_falls_and_leaves_a_checkpoint(sft_run):
    rows = metrics(sft_run)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 31))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(evals) == 4 and evals[-1] < evals[0]  # steps 0, 10, 20, 30
    assert all(r["learning_rate"] > 0 for r in rows if "loss" in r)
    assert any("tokens_per_sec" in r for r in rows)
    assert (sft_run / "ckpts" / "30" / "model_params").is_dir()
    assert list((sft_run / "tb").iterdir())
    run = json.loads((sft_run / "run.json").read_text())
    assert run["stage"] == "sft" and run["lora"] == {"rank": 8, "alpha": 16.0}


def test_a_folder_of_another_run_is_not_resumed(sft_run, train_env, tmp_path):
    out = tmp_path / "sft"
    shutil.copytree(sft_run, out)
    result = run_script("sft.py", "--model", "tiny", "--data", TRACES, "--steps", 31, "--out", out,
                        *SFT_FLAGS, "--lr", "1e-3", env=train_env, check=False)
    assert result.returncode == 2
    assert "holds a run with a different config (lr: 0.003 -> 0.001)" in result.stderr
    assert "Traceback" not in result.stderr and not (out / "ckpts" / "31").exists()


def test_grpo_logs_each_reward_kl_and_length(grpo_run):
    rows = metrics(grpo_run)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        for key in ("rewards/format_reward", "rewards/math_reward", "kl", "loss", "completions/mean_length"):
            assert key in row, (key, row)
    assert (grpo_run / "ckpts" / "actor" / "2" / "model_params").is_dir()
    run = json.loads((grpo_run / "run.json").read_text())
    assert run["stage"] == "grpo" and run["init"] and run["rewards"] == "format,math"


def test_eval_on_the_holdout_writes_json_and_table_for_base_and_checkpoints(sft_run, grpo_run, train_env, tmp_path):
    import matplotlib.pyplot as plt

    out = tmp_path / "eval"
    result = run_script("eval.py", "--model", "tiny", "--ckpt", sft_run, "--ckpt", grpo_run, "--data", TRACES,
                        "--limit", 2, "--max-new-tokens", 16, "--batch", 4, "--out", out, env=train_env)
    report = json.loads((out / "eval.json").read_text())
    assert list(report["results"]) == ["base", str(sft_run), str(grpo_run)]
    assert report["results"][str(grpo_run)]["step"] == 2 and report["results"][str(sft_run)]["step"] == 30
    assert report["protocol"]["what"].startswith("the holdout") and report["protocol"]["n"] == 8
    groups = report["results"][str(grpo_run)]["groups"]
    assert set(groups) == {"gsm8k / math", "sciq / science", "mbpp / code",
                           "essays-creative-writing-prompts / creative_writing"}
    assert all(g["format"]["n"] == 2 for g in groups.values())
    assert groups["gsm8k / math"]["accuracy"]["n"] == 2
    assert groups["essays-creative-writing-prompts / creative_writing"]["accuracy"] == {
        "value": None, "correct": 0, "n": 0, "ci95": None}  # nothing to check: no accuracy, not 0%
    table = (out / "eval.md").read_text()
    title, _, described = table.split("\n")[:3]
    assert title == f"# Holdout of {TRACES}: tiny (base), {sft_run} (step 30), {grpo_run} (step 2)"  # a file: no split
    assert "holdout of the training sources" in described and "test" not in described
    assert table.strip() in result.stdout
    assert f"{out / 'eval.png'}" in result.stderr
    chart = plt.imread(out / "eval.png")  # accuracy and format bars with their intervals: not a blank page
    assert chart.shape[1] > chart.shape[0] and chart[..., :3].std() > 0.05
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24 and {s["model"] for s in samples} == {"base", str(sft_run), str(grpo_run)}
    # run again into the same folder: refused before anything loads, the first results kept
    again = run_script("eval.py", "--model", "tiny", "--ckpt", sft_run, "--data", TRACES, "--out", out,
                       env=train_env, check=False)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == (
        f"error: {out} already holds an eval (eval.json); use another --out, or --force to replace it")
    assert (out / "eval.md").read_text() == table


def test_a_resumed_run_continues_and_its_time_budget_saves_the_step_it_made(sft_run, train_env, tmp_path):
    out = tmp_path / "sft"
    shutil.copytree(sft_run, out)
    before = metrics(out)
    # More steps than before (allowed on resume); a budget that runs out in its first step: the next one ends
    # the schedule at the floor rate.
    result = run_script("sft.py", "--model", "tiny", "--data", TRACES, "--steps", 500, "--out", out, *SFT_FLAGS,
                        "--time-budget", "0.0001", env=train_env)
    assert "time budget reached: the schedule ended at step 32, at the floor rate" in result.stderr
    assert "resumed from step 30, its latest checkpoint" in result.stderr
    assert (out / "ckpts" / "32" / "model_params").is_dir()
    after = metrics(out)[len(before):]
    assert [r["step"] for r in after] == [31, 32]  # no step trained twice, none logged twice
    first_loss = next(r["loss"] for r in before if "loss" in r)
    last_loss = [r["loss"] for r in before if "loss" in r][-1]
    assert after[0]["loss"] < (first_loss + last_loss) / 2  # the trained weights came back, not the initial ones


def test_ctrl_c_saves_the_step_it_reached(sft_run, train_env, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.train.conftest import ROOT, TRAIN

    out = tmp_path / "sft"
    shutil.copytree(sft_run, out)
    lines = len(metrics(out))
    proc = subprocess.Popen([sys.executable, str(TRAIN / "sft.py"), "--model", "tiny", "--data", str(TRACES),
                             "--steps", "500", "--out", str(out), *SFT_FLAGS], cwd=ROOT, env=train_env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 450  # the import, the restore and the compile: minutes on a loaded machine
    while len(metrics(out)) < lines + 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None and len(metrics(out)) >= lines + 2, "no two new steps to interrupt after"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    step = int(stderr.split("interrupted at step ")[1].split(";")[0])
    assert step > 31 and (out / "ckpts" / str(step) / "model_params").is_dir()


def test_full_fine_tuning_trains_every_weight_and_exports(train_env, tmp_path):
    out = tmp_path / "full"
    result_sft = run_script("sft.py", "--model", "tiny", "--data", TRACES, "--steps", 3, "--out", out, *SFT_FLAGS,
                            "--lora-rank", "0", env=train_env)
    run = json.loads((out / "run.json").read_text())
    assert run["lora"] is None and (out / "ckpts" / "3" / "model_params").is_dir()
    assert "full fine-tuning in float32 (weights and compute): 0.00 B parameters x 16 bytes" in result_sft.stderr
    assert run["param_dtype"] == "float32" and run["dtypes"]["trainable"] == "float32"
    result = run_script("export.py", "--ckpt", out, "--out", tmp_path / "export", env=train_env)
    assert "max |logit difference| 0.00e+00" in result.stderr and "adapter: none" not in result.stderr
    assert (tmp_path / "export" / "ckpts" / "actor" / "3" / "model_params").is_dir()
    assert not (tmp_path / "export" / "adapter").exists()


def test_a_time_budget_ends_sft_with_its_schedule_finished_and_a_rerun_trains_nothing(train_env, tmp_path):
    from tunixhack.train import budget

    out = tmp_path / "sft"
    args = ["--model", "tiny", "--data", TRACES, "--out", out, *SFT_FLAGS, "--warmup-steps", 2, "--max-epochs", 1000,
            "--time-budget", 0.3]
    run_script("sft.py", *args, env=train_env)
    run = json.loads((out / "run.json").read_text())
    plan = run["budget"]
    # On a loaded machine the compile may take the whole budget: no step is timed, and the step after it ends the
    # schedule at the floor; either way the stage ends with its schedule done.
    assert plan["step_seconds"] or plan["steps_done"] <= budget.MEASURE_AFTER + 2
    assert plan["ended"] == "schedule done" and plan["steps_done"] == plan["horizon"]
    assert plan["horizon"] < plan["max_steps"]  # the minutes, not the data, decided the length
    rates = [r["learning_rate"] for r in metrics(out) if "learning_rate" in r]
    assert rates[-1] == pytest.approx(run["lr"] * budget.FLOOR, rel=1e-4)  # exact, however long the steps took
    logged = len(metrics(out))
    again = run_script("sft.py", *args, env=train_env)
    assert "nothing to train" in again.stderr and len(metrics(out)) == logged
    assert json.loads((out / "run.json").read_text())["budget"]["steps_done"] == plan["steps_done"]


def test_sft_on_fewer_rows_than_the_batch_trains_on_the_rows_there_are(train_env, tmp_path):
    """The README's commands on a small mix: two SFT rows and --batch 8 train with a batch of 2, said so."""
    rows = [json.loads(line) for line in TRACES.read_text().splitlines()]
    small = tmp_path / "two.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in [r for r in rows if r["category"] == "math"][:2]))
    out = tmp_path / "sft"
    result = run_script("sft.py", "--model", "tiny", "--data", small, "--out", out, *SFT_FLAGS, "--eval-frac", 0,
                        "--steps", 1, env=train_env)
    assert "note: --batch 8 lowered to 2: only 2 training examples" in result.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["batch"] == 2 and run["budget"]["steps_done"] == 1
