"""GRPO hands each reward the columns of the row each completion answers."""

import json

import pytest

from tests.train.conftest import GRPO_FLAGS, TRACES, train_script

pytestmark = pytest.mark.train


def test_each_reward_gets_the_columns_of_its_row(sft_run, tmp_path, monkeypatch):
    from tunixhack.train import data, rewards

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
    rows = {r["id"]: r for r in data.read_rows(str(TRACES))}
    for call in calls:
        assert set(call) == {"prompts", "completions", *data.REWARD_COLUMNS}
        assert len(call["prompts"]) == len(call["completions"]) == 4 and len(set(call["id"])) == 2
        for i, row_id in enumerate(call["id"]):
            row = rows[row_id]
            assert call["prompts"][i] == data.render_prompt(row["prompt"]) and call["question"][i] == row["prompt"]
            assert call["category"][i] == row["category"]
            assert call["reference"][i] == ("" if row["reference"] is None else str(row["reference"]))
            assert json.loads(call["tests"][i]) == row.get("tests")
            assert json.loads(call["options"][i]) == row.get("options")
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["rewards/spy_reward"] for r in logged] == [0.5, 0.5]
    assert all("rewards/format_reward" in r for r in logged)
