"""The Dolly helper scripts as users run them: rework_databricks.py (rebuild prompts by id join),
analyze_databricks.py (counts, lengths, chart) and test.py (teacher smoke check)."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script

DOLLY = FIXTURES / "dolly" / "databricks-dolly-15k.jsonl"
ROWS = [json.loads(line) for line in DOLLY.read_text().splitlines()]


# --- rework -------------------------------------------------------------------------------------------
def old_row(index: int, *, reference=None, context_sent=False) -> dict:
    """A row as the older recipe wrote it: the student prompt lost the passage."""
    source = ROWS[index] if index < len(ROWS) else {"instruction": "Gone?", "context": "", "response": "x", "category": "open_qa"}
    sent = source["instruction"] + (f"\n\nReference text:\n{source['context']}" if context_sent else "")
    return {"id": f"dolly/train/{index}", "dataset": str(DOLLY), "config": None, "split": "train",
            "category": source["category"], "prompt": source["instruction"],
            "messages": [{"role": "user", "content": sent}], "reasoning": "thinking", "answer": f"answer {index}",
            "reference": source["response"] if reference is None else reference, "verified": None,
            "fingerprint": "0123456789abcdef"}


@pytest.fixture
def trace(tmp_path):
    # Not in source order, so a join by position would pair the wrong rows.
    rows = [old_row(7, context_sent=True), old_row(999), old_row(0), old_row(1, reference="Rope"), old_row(2)]
    path = tmp_path / "dolly.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rework_rebuilds_prompts_by_id_and_reports_unjoined(trace, tmp_path):
    before = digest(trace)
    out = tmp_path / "fixed.jsonl"
    result = run_script("Databricks/rework_databricks.py", trace, "--out", out)
    assert result.returncode == 0, result.stderr
    assert digest(trace) == before  # the input is never touched
    fixed = read_rows(out)
    assert [r["id"] for r in fixed] == ["dolly/train/7", "dolly/train/0", "dolly/train/2"]
    by_id = {r["id"]: r for r in fixed}
    assert by_id["dolly/train/0"]["prompt"] == f"{ROWS[0]['instruction']}\n\nReference text:\n{ROWS[0]['context']}"
    assert by_id["dolly/train/7"]["prompt"].startswith(ROWS[7]["instruction"] + "\n\nText:\nJohn Moses Browning")
    assert by_id["dolly/train/2"]["prompt"] == ROWS[2]["instruction"]  # no context: nothing to change
    originals = {r["id"]: r for r in read_rows(trace)}
    for key, row in by_id.items():  # everything but the prompt is kept, the messages as sent
        assert {k: v for k, v in row.items() if k != "prompt"} == {k: v for k, v in originals[key].items() if k != "prompt"}
    unjoined = read_rows(tmp_path / "fixed.unjoined.jsonl")
    assert [r["id"] for r in unjoined] == ["dolly/train/999", "dolly/train/1"] and unjoined[1] == originals["dolly/train/1"]
    assert "5 rows read" in result.stdout and "3 joined" in result.stdout and "2 prompts changed" in result.stdout
    assert "2 rows did not join" in result.stderr and "dolly/train/999 (no source row has this id)" in result.stderr
    assert "dolly/train/1 (the source row's response differs" in result.stderr
    # row 0's teacher never saw its passage: said, so the user knows those answers are ungrounded
    assert "in 1 repaired rows the teacher messages do not hold the context" in result.stderr


def test_rework_never_overwrites(trace, tmp_path):
    out = tmp_path / "fixed.jsonl"
    out.write_text("keep me\n")
    line = one_line_error(run_script("Databricks/rework_databricks.py", trace, "--out", out, "--source", DOLLY))
    assert "exists" in line and "--force" in line and out.read_text() == "keep me\n"
    assert run_script("Databricks/rework_databricks.py", trace, "--out", out, "--source", DOLLY, "--force").returncode == 0
    assert len(read_rows(out)) == 3
    before = digest(trace)
    line = one_line_error(run_script("Databricks/rework_databricks.py", trace, "--out", trace, "--force"))
    assert "never overwritten" in line and digest(trace) == before


def test_rework_bad_input_is_one_line(tmp_path):
    assert "not found" in one_line_error(run_script("Databricks/rework_databricks.py", tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "dolly/train/0"}\n')
    assert "not a trace row" in one_line_error(run_script("Databricks/rework_databricks.py", bad, "--source", DOLLY))


# --- analyze ------------------------------------------------------------------------------------------
def table_row(text: str, *cells: str) -> list[str]:
    prefix = "| " + " | ".join(cells) + " |"
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_analyze_writes_table_and_chart(tmp_path):
    result = run_script("Databricks/analyze_databricks.py", "--source", DOLLY, "--out-dir", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "report" / "dolly_analysis.md").read_text()
    png = (tmp_path / "report" / "dolly_analysis.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert "Lengths are in words" in md and "![rows and lengths per category](dolly_analysis.png)" in md
    assert table_row(md, "closed_qa", "2", "12.5%", "2") and table_row(md, "(all)", "16", "100.0%", "6")
    assert table_row(md, "classification", "response", "1", "4", "6", "6")   # "Tope" .. 6 words
    assert table_row(md, "open_qa", "context", "-", "-", "-", "-")            # no passage in that category
    assert table_row(md, "summarization", "context", "29")
    assert md in result.stdout


def test_analyze_counts_tokens_with_a_sentencepiece_model(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r[k] for r in ROWS for k in ("instruction", "context", "response") if r[k]))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "tiny"), vocab_size=120,
                                   hard_vocab_limit=False, minloglevel=2)
    model = tmp_path / "tiny.model"
    result = run_script("Databricks/analyze_databricks.py", "--source", DOLLY, "--out-dir", tmp_path, "--tokenizer", model)
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "dolly_analysis.md").read_text()
    assert f"Lengths are in tokens ({model})" in md
    tokens_max = int(table_row(md, "(all)", "context")[0].split("|")[-2])
    assert tokens_max > 85  # the longest passage is 85 words; a 120-piece vocabulary splits words up


def test_analyze_bad_tokenizer_is_one_line(tmp_path):
    line = one_line_error(run_script("Databricks/analyze_databricks.py", "--source", DOLLY, "--out-dir", tmp_path,
                                     "--tokenizer", tmp_path / "missing.model"))
    assert "--tokenizer not found" in line


# --- test.py ------------------------------------------------------------------------------------------
def test_smoke_check_against_a_server():
    script = {"rules": [{"match": "sky", "reasoning": "Rayleigh scattering goes as 1/wavelength^4.",
                         "content": "Air scatters blue light more than red."}]}
    with OpenAIFake(script) as fake:
        result = run_script("Databricks/test.py", "--teacher", fake.url, "--max-tokens", "64")
        body = fake.requests[-1]
    assert result.returncode == 0, result.stderr
    assert f"{fake.url}: model qwen3-14b is ready" in result.stdout
    assert "reasoning (43 chars): Rayleigh scattering" in result.stdout
    assert "answer (38 chars): Air scatters blue light" in result.stdout
    assert "finish: stop; thinking closed: True" in result.stdout and "tok/s" in result.stdout
    assert body["max_tokens"] == 64 and "sky" in body["messages"][0]["content"]


def test_smoke_check_unknown_model():
    with OpenAIFake({"models": ["qwen3-14b"]}) as fake:
        line = one_line_error(run_script("Databricks/test.py", "--teacher", fake.url, "--model", "qwen3-4b"))
    assert "'qwen3-4b' is not served" in line and "qwen3-14b" in line


def test_smoke_check_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_line_error(run_script("Databricks/test.py", "--teacher", f"http://127.0.0.1:{port}/v1", timeout=60))
    assert line.startswith("error: cannot reach the teacher") and str(port) in line
