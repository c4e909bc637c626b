"""Trace rows as Gemma chat: the completion-only mask, dropped rows, the seeded pipelines, GRPO columns."""

import json

import numpy as np
import pytest

from tests.train.conftest import TRACES

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def rows():
    from tunixhack.train import data

    return data.read_rows(str(TRACES))


def test_the_loss_mask_covers_the_model_turn_and_nothing_else(tiny, rows):
    from tunixhack.train import data
    from tunixhack.student import render_completion

    _, tok, ids = tiny
    loaded = data.tokenize_sft(rows[:3], tok, ids, max_len=256)
    for row, example in zip(rows[:3], loaded.examples):
        tokens, mask = example["tokens"], example["mask"]
        start, end = int(np.argmax(mask)), int(mask.nonzero()[0][-1]) + 1
        assert mask[start:end].all() and not mask[:start].any() and not mask[end:].any()
        assert tokens[0] == ids["bos"]
        assert tok.decode(tokens[1:start].tolist()) == data.render_prompt(row["prompt"])
        assert tok.decode(tokens[start:end - 1].tolist()) == render_completion(row)
        assert tokens[end - 1] == ids["end_of_turn"]  # the model learns to end its turn
        assert (tokens[end:] == ids["pad"]).all()


def test_rows_longer_than_max_len_are_dropped_and_counted(tiny, rows):
    from tunixhack.train import data

    _, tok, ids = tiny
    lengths = [len(tok.encode(data.render_prompt(r["prompt"]))) for r in rows]
    max_len = sorted(lengths)[len(lengths) // 2] + 30  # about half the rows fit
    loaded = data.tokenize_sft(rows, tok, ids, max_len=max_len)
    dropped = loaded.counts[f"dropped (longer than --max-len {max_len})"]
    assert dropped > 0 and loaded.counts["kept"] == len(loaded.examples) > 0
    assert dropped + loaded.counts["kept"] == len(rows)
    assert all(e["tokens"].shape == (max_len,) for e in loaded.examples)
    assert "dropped" in loaded.summary()


def test_unverified_and_empty_rows_are_not_trained_on(tiny, rows):
    from tunixhack.train import data

    _, tok, ids = tiny
    bad = [dict(rows[0], id="x/1", verified=False), dict(rows[1], id="x/2", answer="  ")]
    loaded = data.tokenize_sft(bad + rows[2:4], tok, ids, max_len=256)
    assert loaded.counts["kept"] == 2 and loaded.counts["skipped (unverified or empty answer)"] == 2


def test_sft_batches_are_seeded(tiny, rows):
    from tunixhack.train import data

    _, tok, ids = tiny
    examples = data.tokenize_sft(rows, tok, ids, max_len=256).examples

    def first(seed, n=3):
        it = iter(data.sft_dataset(examples, 4, seed))
        return [next(it) for _ in range(n)]

    a, b, c = first(0), first(0), first(1)
    assert a[0].input_tokens.shape == (4, 256) and a[0].input_mask.shape == (4, 256)
    assert all((x.input_tokens == y.input_tokens).all() for x, y in zip(a, b))
    assert any((x.input_tokens != y.input_tokens).any() for x, y in zip(a, c))


def test_holdout_depends_on_the_row_id_only(rows):
    from tunixhack.train import data

    held = {r["id"] for r in rows if data.is_holdout(r, 0.3, seed=0)}
    again = {r["id"] for r in reversed(rows) if data.is_holdout(r, 0.3, seed=0)}
    assert held == again and 0 < len(held) < len(rows)


def test_grpo_prompts_carry_the_reward_columns(tiny, rows):
    from tunixhack.train import data

    _, tok, _ = tiny
    loaded = data.grpo_prompts(rows, tok, max_prompt_len=128)
    code = next(e for e in loaded.examples if e["category"] == "code")
    choice = next(e for e in loaded.examples if e["category"] == "science")
    assert set(code) == {"prompts", *data.REWARD_COLUMNS}
    assert code["prompts"].endswith("<start_of_turn>model\n") and not code["prompts"].startswith("<bos>")
    assert json.loads(code["tests"]) == next(r["tests"] for r in rows if r["id"] == code["id"])
    assert json.loads(choice["options"])["B"] and choice["reference"]
    short = data.grpo_prompts(rows, tok, max_prompt_len=20)
    assert short.counts["dropped (prompt longer than --max-prompt-len 20)"] == len(rows)

    batch = next(iter(data.grpo_dataset(loaded.examples, 3, seed=0)))
    assert all(isinstance(v, np.ndarray) and v.shape == (3,) for v in batch.values())
    assert np.repeat(batch["tests"], 2, axis=0).shape == (6,)  # what Tunix does with each column
