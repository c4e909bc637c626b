"""Training shows itself: a line per step as it trains, curves.png after each stage, runs side by side.

The runs are the session's (conftest.py's sft_run and grpo_run); their stderr is what a user saw in a log file.
"""

import re

import matplotlib.pyplot as plt
import pytest

from tests.train.conftest import metrics, run_script

pytestmark = pytest.mark.train

LINE = re.compile(r"(?P<stage>sft|grpo): step (?P<step>\d+)/(?P<total>\d+) \(\d+%\) \| (?P<measure>[^|]+) \| "
                  r"(?:(?P<tps>[\d,]+) (?:gen )?tok/s \| )?(?P<seconds>[\d.]+) s/step(?P<compiling> \(compiling\))?"
                  r"(?: \| eta (?P<eta>\S+))?$")


def shown(run, stage: str) -> list[dict]:
    text = (run.parent / f"{stage}.stderr").read_text()
    lines = [line for line in text.splitlines() if line.startswith(f"{stage}: step")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches) if not m]
    return [m.groupdict() for m in matches]


def not_blank(path) -> bool:
    image = plt.imread(path)
    return image[..., :3].std() > 0.05


def test_sft_shows_its_steps_with_loss_and_the_tokens_a_step_trained_over_its_wall_time(sft_run):
    lines, rows = shown(sft_run, "sft"), {r["step"]: r for r in metrics(sft_run)}
    assert [line["step"] for line in lines][:3] == ["1", "2", "3"] and lines[-1]["step"] == "30"
    assert all(line["total"] == "30" for line in lines)
    for line in lines:  # the line is the log: the same loss and step time metrics.jsonl holds for that step
        row = rows[int(line["step"])]
        assert line["measure"] == f"loss {row['loss']:.4f}"
        assert float(line["seconds"]) == pytest.approx(row["step_seconds"], abs=0.006)
    first = lines[0]  # the step that compiled says so, and claims no speed
    assert first["compiling"] and first["tps"] is None and rows[1]["compiled"] == 1 and "tokens_per_sec" not in rows[1]
    assert lines[-1]["eta"] == "0m00s" and not lines[-1]["compiling"]
    timed = [r for r in rows.values() if "tokens_per_sec" in r]
    assert len(timed) >= 20  # compiling is the exception, not every step
    for row in timed:  # tokens/s x the step's seconds = the real tokens of the step's batch (8 x at most 256)
        tokens = row["tokens_per_sec"] * row["step_seconds"]
        assert tokens == pytest.approx(round(tokens), abs=0.05) and 8 <= round(tokens) <= 8 * 256


def test_sft_draws_its_loss_and_learning_rate(sft_run):
    from tunixhack.train import plots

    assert not_blank(sft_run / "curves.png")
    title, chart = plots.run_panels(sft_run)
    assert title == "sft: sft of tiny, 30 steps"
    assert [name for name, _ in chart] == ["loss", "learning rate"]
    (train, train_steps, _), (holdout, holdout_steps, _) = chart[0][1]
    assert (train, holdout) == ("train", "holdout") and train_steps == list(range(1, 31))
    assert holdout_steps == [0, 10, 20, 30]


def test_grpo_shows_its_mean_reward_and_draws_each_reward_kl_and_length(grpo_run):
    from tunixhack.train import plots

    lines, rows = shown(grpo_run, "grpo"), {r["step"]: r for r in metrics(grpo_run)}
    assert [line["step"] for line in lines] == ["1", "2"]
    for line in lines:
        row = rows[int(line["step"])]
        assert line["measure"] == (f"reward {row['rewards/sum']:.3f} (format {row['rewards/format_reward']:.3f}, "
                                   f"math {row['rewards/math_reward']:.3f})")
        assert float(line["seconds"]) == pytest.approx(row["step_seconds"], abs=0.006)
    assert lines[0]["compiling"]
    assert not_blank(grpo_run / "curves.png")
    _, chart = plots.run_panels(grpo_run)
    assert [name for name, _ in chart] == ["reward (mean per completion)", "KL to the reference",
                                           "completion length (tokens)"]
    assert [label for label, _, _ in chart[0][1]] == ["sum", "format", "math"]
    assert all(steps == [1, 2] for _, lines_ in chart for _, steps, _ in lines_)


def test_plot_draws_runs_side_by_side_and_refuses_a_folder_that_is_not_a_run(sft_run, grpo_run, train_env, tmp_path):
    out = tmp_path / "both.png"
    run_script("plot.py", sft_run, grpo_run, "--out", out, env=train_env)
    one, two = plt.imread(sft_run / "curves.png"), plt.imread(out)
    assert two.shape[1] == 2 * one.shape[1] and two.shape[0] > one.shape[0]  # a column per run; GRPO's 3 panels
    bad = run_script("plot.py", sft_run, tmp_path, "--out", tmp_path / "x.png", env=train_env, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        f"error: {tmp_path} has no run.json: not an output folder of train/sft.py or train/grpo.py")
    assert not (tmp_path / "x.png").exists()
