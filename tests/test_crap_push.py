"""crap.py push: the staged folder (JSONL splits by default, parquet with --format parquet, and the dataset card),
read back by the real `datasets.load_dataset` through the card's `configs:`, and the upload at the HTTP layer
against a local fake of the Hub API (huggingface_hub honours HF_ENDPOINT), in a subprocess as users run it."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import datasets
import pyarrow.parquet as pq
import yaml

import crap
from tests.fakes.hub_server import HubFake
from tests.helpers import FIXTURES, ROOT, one_line_error, script_env
from tests.test_crap_mix import EVAL_FILES, trace_row, write_rows
from tunixhack.dataset.hub import stage
from tunixhack.dataset.mix import MixRecipe, build_mix
from tunixhack.tokens import WordCounter

TRACES = FIXTURES / "traces"
TOKEN = "hf_fake_token_0123456789"
PARQUETS = ["data/eval-00000-of-00001.parquet", "data/rl-00000-of-00001.parquet", "data/sft-00000-of-00001.parquet"]
JSONLS = ["data/eval.jsonl", "data/rl.jsonl", "data/sft.jsonl"]
ENDPOINT = ', "endpoint": "http://192.168.1.20:1234/v1"'  # how the fixtures' rows name their (private) server


def make_mix(tmp_path):
    out = tmp_path / "mix"
    build_mix([TRACES / f"{n}.jsonl" for n in ("databricks", "gsm8k", "sciq")],
              MixRecipe(seed=3, max_tokens=400, eval_share=0.25), WordCounter(),
              {k: str(v) for k, v in EVAL_FILES.items()}, out)
    return out


def push(*args, hub=None, token=TOKEN, home=None):
    extra = {"HF_HUB_OFFLINE": "0", "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    if hub:
        extra["HF_ENDPOINT"] = hub.url
    if token:
        extra["HF_TOKEN"] = token
    return subprocess.run([sys.executable, str(ROOT / "crap.py"), "push", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=script_env(**extra), cwd=ROOT)


def card_parts(text: str) -> tuple[dict, str]:
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def load(folder, tmp_path):
    """The splits as the Hub's loader reads the folder: datasets.load_dataset, through the card's configs:."""
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "datasets-cache"))
    return {name: split.to_list() for name, split in loaded.items()}


def test_dry_run_writes_jsonl_splits_as_written_and_load_dataset_reads_them(tmp_path):
    mix = make_mix(tmp_path)
    staging = tmp_path / "staging"
    result = push(mix, "--repo", "alice/think-mix", "--dry-run", "--staging", staging, home=tmp_path / "hf")
    assert result.returncode == 0, result.stderr
    assert "nothing sent" in result.stdout
    assert sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()) == ["README.md", *JSONLS]
    loaded = load(staging, tmp_path)
    for name in ("sft", "rl", "eval"):
        written = (mix / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        published = (staging / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert all(ENDPOINT in line for line in written)
        # one trace row a line, byte for byte as the mix wrote it, less the teacher's private address
        assert published == [line.replace(ENDPOINT, "") for line in written]
        # and load_dataset gives every row back as it is in the file (the tagged-union `check` included)
        assert loaded[name] == [json.loads(line) for line in published]
    meta, body = card_parts((staging / "README.md").read_text())
    assert meta["configs"][0]["data_files"] == [{"split": s, "path": f"data/{s}.jsonl"} for s in ("sft", "rl", "eval")]
    assert {"name": "check", "dtype": "json"} in meta["dataset_info"]["features"]
    assert [(s["name"], s["num_examples"]) for s in meta["dataset_info"]["splits"]] == [("sft", 2), ("rl", 8), ("eval", 2)]
    assert "| openai | qwen3-14b | 12 |" in body and "`data/sft.jsonl`: one trace row a line" in body
    assert "192.168" not in (staging / "README.md").read_text()


def test_format_parquet_writes_the_exact_folder(tmp_path):
    mix = make_mix(tmp_path)
    staging = tmp_path / "staging"
    result = push(mix, "--repo", "alice/think-mix", "--format", "parquet", "--dry-run", "--staging", staging,
                  home=tmp_path / "hf")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()) == ["README.md", *PARQUETS]
    loaded = load(staging, tmp_path)
    for name in ("sft", "rl", "eval"):
        assert [r["id"] for r in loaded[name]] == [json.loads(line)["id"] for line in (mix / f"{name}.jsonl").open()]
        table = pq.read_table(staging / "data" / f"{name}-00000-of-00001.parquet")
        rows = [json.loads(line) for line in (mix / f"{name}.jsonl").read_text().splitlines()]
        assert table.column("id").to_pylist() == [r["id"] for r in rows]
        assert table.column("reasoning").to_pylist() == [r["reasoning"] for r in rows]
        assert table.column("messages").to_pylist()[0] == rows[0]["messages"]
        # the teacher's endpoint is a private address: not published
        assert all("endpoint" not in t for t in table.column("teacher").to_pylist())
    meta, body = card_parts((staging / "README.md").read_text())
    assert meta["license"] == ["cc-by-nc-3.0", "cc-by-sa-3.0", "mit"]
    assert meta["task_categories"] == ["text-generation", "question-answering"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"] == [{"split": s, "path": f"data/{s}-*.parquet"}
                                                for s in ("sft", "rl", "eval")]
    assert "features" not in meta["dataset_info"]  # parquet files carry their schema
    assert "| openai/gsm8k | MIT | 4 |" in body and "| allenai/sciq | CC BY-NC 3.0 | 4 |" in body
    assert "| openai | qwen3-14b | 12 |" in body                    # teacher
    assert '"temperature": 0.6' in body and "`a1b2c3d4e5f60718`" in body  # sampling, prompt version
    assert "| gsm8k-test | gsm8k_test.jsonl | 1 |" in body            # decontamination results
    assert "| math | 8 | 1 | 1 | 1 | 1 | 0 | 4 | 1 | 2 | 1 |" in body   # the mix's counts per stage
    assert "| gsm8k.jsonl | verify_failed | 1 |" in body               # generation rejects (verification yield)
    assert 'load_dataset("alice/think-mix", split="sft")' in body
    assert "192.168" not in (staging / "README.md").read_text()


def test_push_to_the_fake_hub(tmp_path):
    mix = make_mix(tmp_path)
    staging = tmp_path / "staging"
    with HubFake(tokens=[TOKEN]) as hub:
        result = push(mix, "--repo", "alice/think-mix", "--private", "--collection", "alice/reasoning-0123abcd",
                      "--staging", staging, hub=hub, home=tmp_path / "hf")
        assert result.returncode == 0, result.stderr
        calls = hub.paths()
        order = ["POST /api/repos/create", "POST /api/datasets/alice/think-mix/preupload/main",
                 "POST /api/datasets/alice/think-mix/commit/main",
                 "POST /api/collections/alice/reasoning-0123abcd/items"]
        assert [calls.index(c) for c in order] == sorted(calls.index(c) for c in order)
        create = next(body for method, path, _, body in hub.calls if path == "/api/repos/create")
        assert create["name"] == "think-mix" and create["organization"] == "alice" and create["type"] == "dataset"
        assert hub.repos["alice/think-mix"]["private"] is True
        preupload = next(body for _, path, _, body in hub.calls if "/preupload/" in path)
        assert sorted(f["path"] for f in preupload["files"]) == ["README.md", *JSONLS]
        committed = dict(hub.repos["alice/think-mix"]["files"])
        assert sorted(committed) == ["README.md", *JSONLS]
        for path, content in committed.items():  # byte for byte what the dry run shows
            assert content == (staging / path).read_bytes()
        assert len(committed["data/sft.jsonl"].decode().splitlines()) == len((mix / "sft.jsonl").read_text().splitlines())
        assert hub.collections == {"alice/reasoning-0123abcd": ["alice/think-mix"]}
        collection_call = next(body for _, path, _, body in hub.calls if path.endswith("/items"))
        assert collection_call["item"] == {"id": "alice/think-mix", "type": "dataset"}
        # every call carried the token; the user never sees it
        assert all(h.get("authorization") == f"Bearer {TOKEN}" for m, _, h, _ in hub.calls if m == "POST")
        # pushed again as parquet: the JSONL splits go in the same commit, so no reader finds two forms
        again = push(mix, "--repo", "alice/think-mix", "--format", "parquet", "--staging", staging, hub=hub,
                     home=tmp_path / "hf")
        assert again.returncode == 0, again.stderr
        assert sorted(hub.repos["alice/think-mix"]["files"]) == ["README.md", *PARQUETS]
        sft = pq.read_table(io.BytesIO(hub.repos["alice/think-mix"]["files"][PARQUETS[2]]))
        assert sft.num_rows == len((mix / "sft.jsonl").read_text().splitlines())
    assert TOKEN not in result.stdout + result.stderr + again.stdout + again.stderr
    assert "pushed sft 2, rl 8, eval 2" in result.stdout and "alice/reasoning-0123abcd" in result.stdout


def test_push_without_a_token_or_with_a_refused_one(tmp_path):
    mix = make_mix(tmp_path)
    with HubFake(tokens=[TOKEN]) as hub:
        error = one_line_error(push(mix, "--repo", "alice/x", "--staging", tmp_path / "s1", hub=hub, token=None,
                                    home=tmp_path / "empty_home"))
        assert "no Hugging Face token: set HF_TOKEN" in error
        assert hub.calls == []
        wrong = "hf_wrong_token_987654321"
        result = push(mix, "--repo", "alice/x", "--staging", tmp_path / "s2", hub=hub, token=wrong, home=tmp_path / "h")
        error = one_line_error(result)
        assert "HTTP 401" in error and "lacks write access" in error
        assert wrong not in result.stdout + result.stderr
        assert hub.repos == {}


def test_a_trace_file_or_a_folder_of_them(tmp_path, capsys):
    staged = stage(TRACES / "sciq.jsonl", "bob/sciq-traces", tmp_path / "one")
    assert staged["splits"] == {"train": 4}
    meta, body = card_parts((tmp_path / "one" / "README.md").read_text())
    assert meta["license"] == ["cc-by-nc-3.0"] and "Not decontaminated" in body
    staged = stage(TRACES, "bob/all-traces", tmp_path / "all", "parquet")
    assert staged["splits"] == {"databricks": 5, "gsm8k": 8, "sciq": 4}
    schemas = {pq.read_schema(p) for p in (tmp_path / "all" / "data").glob("*.parquet")}
    assert len(schemas) == 1  # one schema for every split, as the Hub's loader wants
    # as JSONL, the card declares that one schema: a column all null in one file reads with the others' type
    stage(TRACES, "bob/all-traces", tmp_path / "jsonl")
    loaded = load(tmp_path / "jsonl", tmp_path)
    assert {name: len(rows) for name, rows in loaded.items()} == staged["splits"]
    assert loaded["gsm8k"] == [json.loads(line) for line in (tmp_path / "jsonl" / "data" / "gsm8k.jsonl").open()]
    # staging again replaces an earlier staging folder, but never a folder with other files in it
    stage(TRACES, "bob/all-traces", tmp_path / "all")
    (tmp_path / "all" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert crap.main(["push", str(TRACES), "--repo", "bob/all", "--dry-run", "--staging", str(tmp_path / "all")]) == 2
    assert "holds other files (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "all" / "notes.txt").read_text() == "mine"
    assert crap.main(["push", str(TRACES), "--repo", "not a repo", "--dry-run"]) == 2
    assert "--repo must be USER/NAME" in capsys.readouterr().err
    assert crap.main(["push", str(tmp_path / "nothing"), "--repo", "bob/x", "--dry-run"]) == 2
    assert "nothing to push at" in capsys.readouterr().err


def test_columns_whose_types_differ_are_json_text_in_parquet_and_as_written_in_jsonl(tmp_path):
    rows = [trace_row(0, "science", "Which gas do plants take in?", options=["oxygen", "carbon dioxide"]),
            trace_row(1, "science", "Which planet is largest?", options="A. Mars B. Jupiter"),
            trace_row(2, "open_qa", "Why is the sky blue?", verified=None)]
    traces = write_rows(tmp_path / "t.jsonl", rows)
    stage(traces, "bob/t", tmp_path / "j")
    assert load(tmp_path / "j", tmp_path)["train"] == [{"options": None, **r} for r in rows]
    assert "json.loads" not in (tmp_path / "j" / "README.md").read_text()
    staged = stage(traces, "bob/t", tmp_path / "s", "parquet")
    table = pq.read_table(tmp_path / "s" / "data" / "train-00000-of-00001.parquet")
    assert [None if v is None else json.loads(v) for v in table.column("options").to_pylist()] == \
        [["oxygen", "carbon dioxide"], "A. Mars B. Jupiter", None]
    assert table.column("verified").to_pylist() == [True, True, None]
    assert "`options`; read them with `json.loads`" in (tmp_path / "s" / "README.md").read_text()
    assert staged["splits"] == {"train": 3}
