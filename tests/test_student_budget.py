"""--budget-from counts what crap.py mix counts (issue 18): the whole training row (chat prompt, tags, thinking and
answer) in the student's unit, Gemma's SentencePiece (a tiny one trained here) or words. A reply whose row would be
over is cut on the stream as too_long; one that fits is kept and survives the mix at the same budget; a long
prompt leaves less room; a reply that ends before the stream's count catches up is still rejected by the exact
check after it; and counting the stream costs a bounded amount a chunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, read_rows, run_script, script_env, sibling
from tests.test_crap_stats import train_tokenizer
from tunixhack import tokens
from tunixhack.tokens import SentencePieceCounter, StreamCount, WordCounter, row_length

SHORT = {"question": "Item 1: what is 5 plus 6?", "answer": "#### 11"}
LONG_THINKING = " ".join(f"step{i} adds" for i in range(150))   # 300 words
RULES = [{"match": "Item 0:", "reasoning": LONG_THINKING, "content": "\\boxed{7}", "rate": 2000},
         {"match": "Item 1:", "reasoning": "5 + 6 = 11, so the sum is eleven.", "content": "\\boxed{11}", "rate": 2000}]


def counter_of(kind: str, tmp_path: Path):
    if kind == "words":
        return WordCounter(), []
    path = tmp_path / "tiny.model"
    train_tokenizer(path)
    return SentencePieceCounter(path, str(path)), ["--tokenizer", path]


def generate(tmp_path: Path, rows: list[dict], rules: list[dict], budget, *extra):
    """gsm8k/generate.py over `rows` against a fake server; an empty Hugging Face cache, so no Gemma is found."""
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake({"rules": rules}) as fake:
        result = run_script("gsm8k/generate.py", "--source", source, "--split", "test", "--teacher", fake.url,
                            "--out", out, "--concurrency", "4", "--budget-from", budget, *extra,
                            env=script_env(HF_HOME=str(tmp_path / "empty-hf")))
    assert result.returncode == 0, result.stderr
    result.asked = [json.dumps(body["messages"]) for body in fake.requests]   # what the teacher was sent
    rejects = {r["id"]: r for r in read_rows(sibling(out, "rejects"))}
    summary = json.loads(out.with_name("gsm8k.summary.json").read_text())
    return result, {r["id"]: r for r in read_rows(out)}, rejects, summary


def mix_folder(tmp_path: Path, budget: int, unit: str) -> Path:
    mix = tmp_path / "student-mix"
    mix.mkdir()
    (mix / "mix.json").write_text(json.dumps({"recipe": {"max_tokens": budget}, "length_unit": unit}))
    return mix


@pytest.mark.parametrize("kind", ["words", "sentencepiece"])
def test_a_row_over_the_mix_budget_is_cut_and_one_that_fits_survives_the_mix(tmp_path, kind):
    counter, flag = counter_of(kind, tmp_path)
    long_ = {"question": "Item 0: what is 3 plus 4?", "answer": "#### 7"}
    budget = row_length(SHORT["question"], RULES[1]["reasoning"], RULES[1]["content"], counter) + 10
    whole = row_length(long_["question"], LONG_THINKING, RULES[0]["content"], counter)
    assert whole > 3 * budget
    result, kept, rejects, summary = generate(tmp_path, [long_, SHORT], RULES, mix_folder(tmp_path, budget, counter.unit),
                                              *flag)
    assert f"within {budget:,} {counter.unit}, as crap.py mix counts it" in result.stderr
    assert f"--budget-from counted lengths in {counter.unit}" in result.stderr
    cut = rejects["gsm8k/test/0"]
    assert cut["reason"].startswith(f"too_long: the training row past {budget} {counter.unit}")
    assert cut["finish"] == "cancelled" and LONG_THINKING.startswith(cut["reasoning"].strip())
    # Cut once the row passed the budget, within the stream's lag (a segment of ~200 characters), not at its end.
    lag = counter.count(LONG_THINKING[:tokens.SEGMENT_CHARS + 20])
    assert budget < row_length(long_["question"], cut["reasoning"], "", counter) <= budget + lag
    assert cut["usage"]["completion_tokens"] < 300
    assert summary["spent"]["cancelled"]["too_long"]["replies"] == 1
    assert set(kept) == {"gsm8k/test/1"} and kept["gsm8k/test/1"]["verified"] is True

    # The kept row goes through crap.py mix at the same budget, counted the same way: nothing is dropped as too long.
    made = run_script("crap.py", "mix", tmp_path / "gsm8k.jsonl", "--out", tmp_path / "mix", "--no-decontam",
                      "--max-tokens", budget, *flag, env=script_env(HF_HOME=str(tmp_path / "empty-hf")))
    assert made.returncode == 0, made.stderr
    assert read_rows(tmp_path / "mix" / "removed.jsonl") == []
    mixed = [r["id"] for split in ("sft", "rl", "eval") for r in read_rows(tmp_path / "mix" / f"{split}.jsonl")]
    assert mixed == ["gsm8k/test/1"]
    assert json.loads((tmp_path / "mix" / "mix.json").read_text())["length_unit"] == counter.unit


def test_a_long_prompt_leaves_less_room(tmp_path):
    # The same reply to two questions; the long question's row is over the budget, the short one's is not.
    thinking = " ".join(f"w{i}" for i in range(100))
    padding = " ".join(["Consider the question carefully."] * 40)   # 160 words
    rows = [{"question": f"Item 0: {padding} What is 5 plus 6?", "answer": "#### 11"}, SHORT]
    rules = [{"match": "Item ", "reasoning": thinking, "content": "\\boxed{11}", "rate": 2000}]
    budget = row_length(SHORT["question"], thinking, "\\boxed{11}", WordCounter()) + 5
    result, kept, rejects, _ = generate(tmp_path, rows, rules, budget)
    assert set(kept) == {"gsm8k/test/1"}
    assert len(result.asked) == 1 and "Item 1:" in result.asked[0]
    long_ = rejects["gsm8k/test/0"]
    # Its prompt alone is over the budget: no reply could fit, so the teacher is not asked at all.
    prompt = row_length(rows[0]["question"], "", "", WordCounter())
    assert long_["reason"] == (f"too_long: the prompt alone is {prompt} of the {budget} words the training row "
                               "may have; the teacher was not asked")
    assert long_["usage"] == {} and long_["attempt"] == 0


@pytest.mark.parametrize("settings, prompt_budget", [("mix.json", 100), ("mix.toml", 256)],
                         ids=["mix.json", "config-without-it"])
def test_a_prompt_over_the_mix_prompt_budget_is_not_sent(tmp_path, settings, prompt_budget):
    # crap.py mix drops a row whose GRPO prompt is over max_prompt_tokens, however short its trace: with the mix's
    # settings, generation does not ask the teacher for it. mix.json names every setting; a config that leaves
    # max_prompt_tokens out gets the mix's default (256), as crap.py mix --config does.
    padding = " ".join(["Consider the question carefully."] * 70)   # 280 words
    rows = [{"question": f"Item 0: {padding} What is 5 plus 6?", "answer": "#### 11"}, SHORT]
    rules = [{"match": "Item ", "reasoning": "5 + 6 = 11, so the sum is eleven.", "content": "\\boxed{11}",
              "rate": 2000}]
    counter, budget = WordCounter(), 1000
    long_prompt = tokens.prompt_length(rows[0]["question"], counter)
    assert prompt_budget < long_prompt and row_length(rows[0]["question"], rules[0]["reasoning"], "x", counter) < budget
    path = tmp_path / settings
    path.write_text(json.dumps({"recipe": {"max_tokens": budget, "max_prompt_tokens": prompt_budget},
                                "length_unit": "words"}) if settings == "mix.json" else f"max_tokens = {budget}\n")
    result, kept, rejects, summary = generate(tmp_path, rows, rules, path)
    assert f"a row whose prompt is over {prompt_budget} words (the mix's max_prompt_tokens)" in result.stderr
    assert set(kept) == {"gsm8k/test/1"}
    assert len(result.asked) == 1 and "Item 1:" in result.asked[0]   # the teacher never saw row 0
    reject = rejects["gsm8k/test/0"]
    assert reject["reason"] == (f"too_long: the prompt is {long_prompt} words, over the {prompt_budget} a GRPO "
                                "prompt may have (the mix's max_prompt_tokens); the teacher was not asked")
    assert reject["usage"] == {} and reject["attempt"] == 0 and reject["prompt"] == rows[0]["question"]
    assert summary["rejected"] == {"too_long": 1} and summary["accepted"] == 1

    # --budget-from N sets no prompt cut: the row is asked for and kept, and the mix at that prompt budget drops it,
    # which is the teacher time the cut saves.
    (tmp_path / "n").mkdir()
    result, kept, rejects, _ = generate(tmp_path / "n", rows, rules, budget)
    assert "a row whose prompt is over" not in result.stderr
    assert len(result.asked) == 2 and set(kept) == {"gsm8k/test/0", "gsm8k/test/1"} and rejects == {}
    made = run_script("crap.py", "mix", tmp_path / "n" / "gsm8k.jsonl", "--out", tmp_path / "mix", "--no-decontam",
                      "--max-tokens", budget, "--max-prompt-tokens", prompt_budget,
                      env=script_env(HF_HOME=str(tmp_path / "empty-hf")))
    assert made.returncode == 0, made.stderr
    removed = read_rows(tmp_path / "mix" / "removed.jsonl")
    assert [(r["id"], r["stage"]) for r in removed] == [("gsm8k/test/0", "too_long")]


def test_a_reply_that_ends_before_the_stream_count_catches_up_is_still_rejected(tmp_path):
    # 30 short words, under one segment: the stream counts none of them, the reply ends; the row is over anyway.
    thinking = " ".join(f"w{i}" for i in range(30))
    rules = [{"match": "Item 1:", "reasoning": thinking, "content": "\\boxed{11}", "rate": 2000}]
    whole = row_length(SHORT["question"], thinking, "\\boxed{11}", WordCounter())
    _, kept, rejects, summary = generate(tmp_path, [SHORT], rules, whole - 10)
    assert kept == {}
    reject = rejects["gsm8k/test/0"]
    assert reject["reason"] == f"too_long: the training row is {whole} words, over {whole - 10}"
    assert reject["finish"] == "stop"   # it ended by itself: the exact check after the reply caught it
    spent = summary["spent"]["rejected"]["too_long"]
    assert spent["replies"] == 1 and spent["completion"] == reject["usage"]["completion_tokens"] > 30


def test_a_mix_counted_in_other_units_is_said_at_start_up(tmp_path):
    mix = mix_folder(tmp_path, 1024, "tokens (google/gemma-3-1b-it, from the Hugging Face cache)")
    result = run_script("gsm8k/generate.py", "--source", FIXTURES / "gsm8k" / "test.jsonl", "--split", "test",
                        "--budget-from", mix, "--dry-run", "--out", tmp_path / "o.jsonl",
                        env=script_env(HF_HOME=str(tmp_path / "empty-hf")))
    assert result.returncode == 0, result.stderr
    assert "within 1,024 words" in result.stderr and "note: lengths in words" in result.stderr
    assert "warning: the mix counted lengths in tokens (google/gemma-3-1b-it" in result.stderr


class Recording:
    """A counter that records how many characters each call encodes."""

    def __init__(self, counter):
        self.counter, self.calls, self.unit = counter, [], counter.unit

    def count(self, text: str) -> int:
        self.calls.append(len(text))
        return self.counter.count(text)


def real_text() -> str:
    rows = [json.loads(line) for name in ("gsm8k", "sciq", "databricks")
            for line in (FIXTURES / "traces" / f"{name}.jsonl").read_text().splitlines()]
    return "\n".join(r[k] for r in rows for k in ("reasoning", "answer")) * 20


@pytest.mark.parametrize("kind", ["words", "sentencepiece"])
def test_each_streamed_character_is_encoded_once_in_bounded_pieces(tmp_path, kind):
    counter, _ = counter_of(kind, tmp_path)
    text = real_text() + " " + "x" * 5000 + " and then some words"   # a 5,000-character "word" too
    assert len(text) > 50_000
    recording = Recording(counter)
    stream = StreamCount(recording)
    at, size = 0, 1
    while at < len(text):   # chunks of 1 to 7 characters, as servers stream tokens
        stream.feed(text[at : at + size])
        at, size = at + size, size % 7 + 1
    total = stream.finish()
    assert sum(recording.calls) == len(text)   # no character encoded twice: no rescans of what came before
    # A piece is a segment and a chunk at most; only inside the long word does the tail wait for up to LONGEST_WORD.
    assert max(recording.calls) <= tokens.LONGEST_WORD + 7
    assert len([n for n in recording.calls if n > tokens.SEGMENT_CHARS + 7]) <= 5000 // tokens.LONGEST_WORD + 1
    assert len(recording.calls) < len(text) / 20   # pieces, not a call a chunk
    if kind == "words":
        # Segments start at a whitespace, so words add exactly, but for the long word, cut where it stands.
        assert counter.count(text) <= total <= counter.count(text) + 5000 // tokens.LONGEST_WORD
    else:
        assert abs(total - counter.count(text)) <= 0.02 * counter.count(text)   # a piece or so at a seam
