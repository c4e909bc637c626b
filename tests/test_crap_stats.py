"""crap.py stats over fixture trace files: the report, the histograms, the tokenizer unit and bad input."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import sentencepiece as spm

import crap
from tests.helpers import FIXTURES, one_line_error, run_script

TRACES = FIXTURES / "traces"


def train_tokenizer(path) -> spm.SentencePieceProcessor:
    """A tiny SentencePiece model trained on the fixture texts (a stand-in for Gemma3's, in well under a second)."""
    texts = [json.loads(line)[k] for name in ("gsm8k", "sciq", "databricks")
             for line in (TRACES / f"{name}.jsonl").read_text().splitlines() for k in ("prompt", "reasoning", "answer")]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts * 3), model_writer=model, vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=0.99, minloglevel=2)
    path.write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path))


def section(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def row_of(table: str, *first_cells: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[: len(first_cells)] == list(first_cells):
            return cells
    raise AssertionError(f"no row {first_cells} in\n{table}")


def test_stats_report_and_histograms(tmp_path):
    out = tmp_path / "report" / "stats.md"
    result = run_script("crap.py", "stats", TRACES, "--out", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert result.stdout.strip() == text.strip()
    assert "Lengths are in words" in text
    gsm8k = section(text, str(TRACES / "gsm8k.jsonl"))
    # 8 rows: 7 verified, 1 failed; 4 rejects (one malformed row without a category)
    math = row_of(gsm8k, "math")
    assert math[1:6] == ["8", "87.5%", "12.5%", "0.0%", "3"]
    assert row_of(gsm8k, "(all)")[5] == "4"
    assert row_of(gsm8k, "math", "verify_failed")[2] == "1"
    assert row_of(gsm8k, "math", "parse_error")[2] == "1"  # the detail after ':' is not part of the reason
    assert row_of(gsm8k, "(no category)", "malformed_row")[2] == "1"
    # median teacher speed over every math request, the rejected ones included
    requests = [json.loads(line) for name in ("gsm8k.jsonl", "gsm8k.rejects.jsonl") for line in (TRACES / name).open()]
    speeds = [r["usage"]["tokens_per_second"] for r in requests if r.get("category") == "math"]
    assert len(speeds) == 11
    assert math[7] == f"{np.median(speeds):.1f}"
    dolly = section(text, str(TRACES / "databricks.jsonl"))
    assert row_of(dolly, "open_qa")[1:5] == ["2", "0.0%", "0.0%", "100.0%"]
    # the one brainstorming row: every percentile is its length in words
    brainstorm = json.loads((TRACES / "databricks.jsonl").read_text().splitlines()[4])
    assert row_of(dolly, "brainstorming", "reasoning")[2:] == [str(len(brainstorm["reasoning"].split()))] * 5
    for name in ("gsm8k", "sciq", "databricks"):
        png = out.parent / f"stats_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"](stats_{name}.png)" in text


def test_stats_in_tokens_with_a_tokenizer(tmp_path):
    sp = train_tokenizer(tmp_path / "tokenizer.model")
    folder = tmp_path / "hf_tokenizer"
    folder.mkdir()
    shutil.copy(tmp_path / "tokenizer.model", folder / "tokenizer.model")
    brainstorm = json.loads((TRACES / "databricks.jsonl").read_text().splitlines()[4])
    expected = str(len(sp.encode(brainstorm["reasoning"])))
    assert expected != str(len(brainstorm["reasoning"].split()))
    for tokenizer in (tmp_path / "tokenizer.model", folder):  # a model file, or a Hugging Face folder
        out = tmp_path / f"stats_{tokenizer.name}.md"
        result = run_script("crap.py", "stats", TRACES / "databricks.jsonl", "--out", out, "--tokenizer", tokenizer)
        assert result.returncode == 0, result.stderr
        text = out.read_text()
        assert f"Lengths are in tokens ({tokenizer})" in text
        assert row_of(text, "brainstorming", "reasoning")[2] == expected


def test_stats_bad_input(tmp_path):
    out = tmp_path / "stats.md"
    missing = run_script("crap.py", "stats", "nope.jsonl", "--out", out)
    assert "trace file not found: nope.jsonl" in one_line_error(missing)
    error = one_line_error(run_script("crap.py", "stats", TRACES / "bad" / "not_traces.jsonl", "--out", out))
    assert "row 1 is not a trace row: it lacks id, category, prompt, reasoning" in error
    bad = tmp_path / "broken.jsonl"
    lines = (TRACES / "sciq.jsonl").read_text().splitlines()
    bad.write_text(lines[0] + "\n{not json\n" + lines[1] + "\n")
    assert f"{bad}:2: not JSON" in one_line_error(run_script("crap.py", "stats", bad, "--out", out))
    error = one_line_error(run_script("crap.py", "stats", TRACES, "--out", out, "--tokenizer", tmp_path))
    assert "has no tokenizer.model" in error
    assert not out.exists()


def test_a_row_with_wrong_types_is_named(tmp_path, capsys):
    row = json.loads((TRACES / "sciq.jsonl").read_text().splitlines()[1])
    bad = tmp_path / "typed.jsonl"
    bad.write_text(json.dumps({**row, "verified": "yes", "category": None}) + "\n")
    assert crap.main(["stats", str(bad), "--out", str(tmp_path / "s.md")]) == 2
    assert "row 1 ('sciq/train/1') has a bad category, verified" in capsys.readouterr().err


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    torn = tmp_path / "sciq.jsonl"
    text = (TRACES / "sciq.jsonl").read_text()
    torn.write_text(text + text.splitlines()[0][:50])  # a crash mid-write: no newline at the end
    result = run_script("crap.py", "stats", torn, "--out", tmp_path / "stats.md")
    assert result.returncode == 0, result.stderr
    assert "torn last line skipped" in result.stderr
    assert row_of(result.stdout, "science")[1] == "4"
