"""Trace rows as Gemma chat: the completion-only mask, dropped rows, SFT's stream (epochs, then fill rows, and
which of them it used), the holdout, GRPO columns."""

import json

import numpy as np
import pytest

from tests.train.conftest import TRACES

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def rows():
    from tunixhack.train import data

    return data.read_rows(str(TRACES), "sft")[0]


def test_the_loss_mask_covers_the_model_turn_and_nothing_else(tiny, rows):
    from tunixhack.student import render_completion, render_prompt
    from tunixhack.train import data

    _, tok, ids = tiny
    loaded = data.tokenize_sft(rows[:3], tok, ids, max_len=256)
    for row, example in zip(rows[:3], loaded.examples):
        tokens, mask = example["tokens"], example["mask"]
        start, end = int(np.argmax(mask)), int(mask.nonzero()[0][-1]) + 1
        assert mask[start:end].all() and not mask[:start].any() and not mask[end:].any()
        assert tokens[0] == ids["bos"]
        assert tok.decode(tokens[1:start].tolist()) == render_prompt(row["prompt"])
        assert tok.decode(tokens[start:end - 1].tolist()) == render_completion(row)
        assert tokens[end - 1] == ids["end_of_turn"]  # the model learns to end its turn
        assert (tokens[end:] == ids["pad"]).all()


def test_rows_longer_than_max_len_are_dropped_and_counted(tiny, rows):
    from tunixhack.student import render_prompt
    from tunixhack.train import data

    _, tok, ids = tiny
    lengths = [len(tok.encode(render_prompt(r["prompt"]))) for r in rows]
    max_len = sorted(lengths)[len(lengths) // 2] + 30  # about half the rows fit
    loaded = data.tokenize_sft(rows, tok, ids, max_len=max_len)
    dropped = loaded.counts[f"dropped (longer than --max-len {max_len})"]
    assert dropped > 0 and loaded.counts["kept"] == len(loaded.examples) > 0
    assert dropped + loaded.counts["kept"] == len(rows)
    assert all(e["tokens"].shape == (max_len,) for e in loaded.examples)


def test_unverified_and_empty_rows_are_not_trained_on(tiny, rows):
    from tunixhack.train import data

    _, tok, ids = tiny
    bad = [dict(rows[0], id="x/1", verified=False), dict(rows[1], id="x/2", answer="  ")]
    loaded = data.tokenize_sft(bad + rows[2:4], tok, ids, max_len=256)
    assert loaded.counts["kept"] == 2 and loaded.counts["skipped (unverified or empty answer)"] == 2


def test_the_sft_stream_makes_its_epochs_then_takes_fill_rows_once_and_names_them(tiny, rows):
    from tunixhack.train import data

    _, tok, ids = tiny
    train, fill = rows[:16], [dict(r, id=f"fill/{i}") for i, r in enumerate(rows[16:32])]
    examples = data.tokenize_sft(train, tok, ids, 256).examples
    encode = lambda row: data.encode_sft(row, tok, ids, 256)  # noqa: E731
    stream = data.SftStream(examples, batch=4, seed=0, epochs=2, fill=fill, encode=encode)
    batches = list(stream)
    assert len(batches) == (2 * 16 + 16) // 4 and batches[0].input_tokens.shape == (4, 256)
    seen = [tuple(t) for b in batches for t in b.input_tokens]
    first_epoch, second_epoch = seen[:16], seen[16:32]
    assert sorted(first_epoch) == sorted(second_epoch) and first_epoch != second_epoch  # reshuffled each epoch
    again = [tuple(t) for b in data.SftStream(examples, 4, 0, 2, fill, encode) for t in b.input_tokens]
    assert again == seen  # seeded
    assert stream.fill_ids_used(32) == [] and len(stream.fill_ids_used(32 + 5)) == 5
    assert set(stream.fill_ids_used(10**6)) == {r["id"] for r in fill}


def test_holdout_depends_on_the_row_id_only(rows):
    from tunixhack.train import data

    held = {r["id"] for r in rows if data.is_holdout(r, 0.3, seed=0)}
    again = {r["id"] for r in reversed(rows) if data.is_holdout(r, 0.3, seed=0)}
    assert held == again and 0 < len(held) < len(rows)


def test_grpo_prompts_carry_the_check_of_their_row(tiny, rows):
    from tunixhack.train import data

    _, tok, _ = tiny
    loaded = data.grpo_prompts(rows, tok, max_prompt_len=128)
    code = next(e for e in loaded.examples if e["category"] == "code")
    choice = next(e for e in loaded.examples if e["category"] == "science")
    poem = next(e for e in loaded.examples if e["category"] == "creative_writing")
    assert set(code) == {"prompts", *data.REWARD_COLUMNS}
    assert code["prompts"].endswith("<start_of_turn>model\n") and not code["prompts"].startswith("<bos>")
    row = next(r for r in rows if r["id"] == code["id"])  # a row written before `check`: derived from its fields
    assert json.loads(code["check"]) == {"kind": "code", "tests": row["tests"], "setup": "", "imports": [],
                                         "timeout": 20.0}
    assert json.loads(choice["check"])["kind"] == "choice" and json.loads(poem["check"]) is None
    short = data.grpo_prompts(rows, tok, max_prompt_len=20)
    assert short.counts["dropped (prompt longer than --max-prompt-len 20)"] == len(rows)

    batch = next(iter(data.grpo_dataset(loaded.examples, 3, seed=0)))
    assert all(isinstance(v, np.ndarray) and v.shape == (3,) for v in batch.values())
    assert np.repeat(batch["check"], 2, axis=0).shape == (6,)  # what Tunix does with each column
