"""crap.py convert: the original project's CSV outputs become trace files that stats, mix and push accept."""

from __future__ import annotations

import csv
import json

import crap
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script
from tunixhack.dataset.hub import stage
from tunixhack.dataset.mix import MixRecipe, build_mix
from tunixhack.tokens import WordCounter

CSVS = FIXTURES / "traces" / "csv"


def test_convert_the_original_csvs(tmp_path):
    result = run_script("crap.py", "convert", CSVS / "brainstorming-thinking.csv", CSVS / "databricks_with_reason.csv",
                        "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    brainstorm = read_rows(tmp_path / "brainstorming-thinking.jsonl")
    assert [r["id"] for r in brainstorm] == ["brainstorming-thinking/csv/1", "brainstorming-thinking/csv/2"]
    first = brainstorm[0]
    assert first["prompt"] == "List ways to save water at home."
    assert first["reasoning"] == "Water use at home is mostly showers, toilets,\ngardens and laundry, so target each."
    assert first["answer"] == "1. Shorter showers\n2. Fix leaks\n3. Water the garden at night"
    assert first["verified"] is None and first["teacher"] == {"backend": "unknown", "model": "unknown"}
    assert first["category"] == "brainstorming" and first["dataset"] == "Wanfq/Explore_Instruct_Brainstorming_10k"
    assert first["messages"][0]["content"].endswith("Prompt: List ways to save water at home.")
    assert brainstorm[1]["answer"] == "Rise & Shine, The Daily Crumb, Flour Power"  # no closing </answer>: kept
    rejects = read_rows(tmp_path / "brainstorming-thinking.rejects.jsonl")
    assert [(r["id"], r["reason"]) for r in rejects] == [("brainstorming-thinking/csv/3", "no_tags")]
    assert rejects[0]["raw"] == "I think a hike would be nice."  # nothing the user had is lost
    dolly = read_rows(tmp_path / "databricks_with_reason.jsonl")
    assert [(r["category"], r["answer"]) for r in dolly] == [("open_qa", "Leonardo da Vinci"),
                                                            ("summarization", "The Nile is Africa's longest river.")]
    assert {r["dataset"] for r in dolly} == {"databricks/databricks-dolly-15k"}
    assert not (tmp_path / "databricks_with_reason.rejects.jsonl").exists()
    # stable: converting again (elsewhere) gives the same rows, ids and fingerprints
    again = tmp_path / "again"
    assert run_script("crap.py", "convert", CSVS / "brainstorming-thinking.csv", "--out-dir", again).returncode == 0
    name = "brainstorming-thinking.jsonl"
    assert (again / name).read_bytes() == (tmp_path / name).read_bytes()

    # converted rows can be summarised, mixed and published
    stats = run_script("crap.py", "stats", tmp_path, "--out", tmp_path / "stats.md")
    assert stats.returncode == 0, stats.stderr
    assert "| brainstorming | 2 | 0.0% | 0.0% | 100.0% | 1 |" in stats.stdout
    files = [tmp_path / "brainstorming-thinking.jsonl", tmp_path / "databricks_with_reason.jsonl"]
    summary = build_mix(files, MixRecipe(eval_share=0, sft_share=0.5, decontaminate=False), WordCounter(), {},
                        tmp_path / "mix")
    assert sum(o["rows"] for o in summary["outputs"].values()) == 4
    stage(tmp_path / "mix", "bob/converted", tmp_path / "hub")
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "| unknown | unknown | 4 |" in card and "cc-by-nc-4.0" in card and "cc-by-sa-3.0" in card


def test_gsm8k_thinking_csv_and_flags(tmp_path):
    source = tmp_path / "gsm8k-thinking.csv"
    with source.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        writer.writerow(["Natalia sold clips to 48 of her friends...",
                         "<reasoning>Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n</reasoning><answer>72</answer>"])
    assert run_script("crap.py", "convert", source, "--out-dir", tmp_path / "a").returncode == 0
    row = read_rows(tmp_path / "a" / "gsm8k-thinking.jsonl")[0]
    assert (row["category"], row["dataset"], row["answer"]) == ("math", "openai/gsm8k", "72")
    assert row["messages"] is None  # the original did not record what was sent
    assert crap.main(["convert", str(source), "--out-dir", str(tmp_path / "b"), "--category", "arithmetic",
                      "--dataset", "me/my-math"]) == 0
    row = read_rows(tmp_path / "b" / "gsm8k-thinking.jsonl")[0]
    assert (row["category"], row["dataset"]) == ("arithmetic", "me/my-math")
    assert json.loads(json.dumps(row))["converted_from"] == {"file": "gsm8k-thinking.csv", "row": 1, "version": "1"}


def test_convert_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    # as users run it: a subprocess, one line, exit 2
    assert "CSV file not found" in one_line_error(run_script("crap.py", "convert", "nope.csv", "--out-dir", out))
    headless = tmp_path / "headless.csv"
    headless.write_text("text,output\nhello,world\n")
    capsys.readouterr()
    assert crap.main(["convert", str(headless), "--out-dir", str(out)]) == 2
    error = capsys.readouterr().err
    assert "no prompt column; it has text, output; expected one of prompt, question" in error
    unnamed = tmp_path / "misc.csv"
    unnamed.write_text("prompt,response\nhi,<reasoning>r</reasoning><answer>a</answer>\n")
    assert crap.main(["convert", str(unnamed), "--out-dir", str(out)]) == 2
    assert "no category column and none known for this file name; give --category" in capsys.readouterr().err
    assert not out.exists()
    # never overwrite: the existing file stays as it was
    assert crap.main(["convert", str(CSVS / "databricks_with_reason.csv"), "--out-dir", str(out)]) == 0
    before = (out / "databricks_with_reason.jsonl").read_bytes()
    capsys.readouterr()
    assert crap.main(["convert", str(CSVS / "databricks_with_reason.csv"), "--out-dir", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "databricks_with_reason.jsonl").read_bytes() == before
