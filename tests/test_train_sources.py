"""--data for the train/ scripts: a trace file, a mix folder, a dataset folder as crap.py push stages it (JSONL or
parquet), and a Hub dataset id fetched from a local fake of the Hub; the rows read back are the rows that were
mixed and pushed."""

import json
import os
import subprocess
import sys

import pytest

from tests.fakes.hub_server import HubFake
from tests.helpers import ROOT, one_line_error, script_env
from tunixhack.errors import UserError
from tunixhack.student import render_completion, render_prompt
from tunixhack.train.sources import read_split
from tunixhack.verify import check_of

TRACES = ROOT / "tests" / "train" / "fixtures" / "traces.jsonl"
# What push may change by design: the teacher's endpoint (a private address) is not published, and a
# nested object gains the keys other rows' objects have (as null).
TRAINED_ON = ("id", "category", "prompt", "reasoning", "answer", "verified")


def crap(*args, env=None):
    result = subprocess.run([sys.executable, str(ROOT / "crap.py"), *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=env or script_env())
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mix") / "mix"
    crap("mix", TRACES, "--out", folder, "--sft-share", "0.5", "--eval-share", "0.1", "--no-decontam")
    return folder


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def same_rows(read, written):
    assert [r["id"] for r in read] == [r["id"] for r in written]
    for a, b in zip(read, written):
        assert {k: a[k] for k in TRAINED_ON} == {k: b[k] for k in TRAINED_ON}
        assert render_prompt(a["prompt"]) + render_completion(a) == render_prompt(b["prompt"]) + render_completion(b)
        assert check_of(a) == check_of(b) and a["check"] == b["check"]  # the mix writes the check; it round-trips


def test_a_trace_file_is_its_own_split(mix):
    rows, read = read_split(str(mix / "rl.jsonl"), "sft")
    assert read.form == "file" and read.split is None and rows == lines(mix / "rl.jsonl")


def test_a_mix_folder_gives_the_split_asked_for(mix):
    for split in ("sft", "rl", "eval"):
        rows, read = read_split(str(mix), split)
        assert read.form == "mix" and read.rows == len(rows) and rows == lines(mix / f"{split}.jsonl")
    with pytest.raises(UserError, match=r"no split 'train' \(train.jsonl\); splits here: eval, rl, sft"):
        read_split(str(mix), "train")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_staged_dataset_folder_reads_back_the_pushed_rows(mix, tmp_path, fmt):
    crap("push", mix, "--repo", "someone/traces", "--format", fmt, "--dry-run", "--staging", tmp_path / "stage")
    for split in ("sft", "rl", "eval"):
        rows, read = read_split(str(tmp_path / "stage"), split)
        assert read.form == "dataset folder" and read.split == split
        assert [p.rsplit("/", 1)[-1] for p in read.files] == \
            [f"{split}.jsonl" if fmt == "jsonl" else f"{split}-00000-of-00001.parquet"]
        same_rows(rows, lines(mix / f"{split}.jsonl"))
        if fmt == "jsonl":  # read back exactly as pushed: every field, nothing gained
            assert rows == lines(tmp_path / "stage" / "data" / f"{split}.jsonl")
    with pytest.raises(UserError, match=r"no split 'test' \(data/test.jsonl or data/test-\*.parquet\); "
                                        r"splits here: eval, rl, sft"):
        read_split(str(tmp_path / "stage"), "test")


READ = """
import json, sys
from tunixhack.errors import UserError
from tunixhack.train.sources import read_split
try:
    rows, read = read_split(sys.argv[1], "sft")
    print(json.dumps({"rows": rows, "read": read.as_dict()}))
except UserError as e:
    print(json.dumps({"error": str(e)}))
"""


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_private_hub_dataset_pushed_by_crap_reads_back(mix, tmp_path, fmt):
    with HubFake() as hub:
        env = script_env(HF_ENDPOINT=hub.url, HF_TOKEN="hf_fake_token", HF_HUB_OFFLINE="0",
                         HF_HOME=str(tmp_path / "hf"))
        crap("push", mix, "--repo", "someone/traces", "--private", "--format", fmt, "--staging", tmp_path / "s",
             env=env)

        def read(repo, **extra):
            done = subprocess.run([sys.executable, "-c", READ, repo], cwd=ROOT, capture_output=True, text=True,
                                  timeout=120, env={**env, **extra})
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout.strip().splitlines()[-1])

        got = read("someone/traces")
        anonymous = read("someone/traces", HF_TOKEN="", HF_HOME=str(tmp_path / "other"))
    assert got["read"]["form"] == "hub" and got["read"]["revision"] and got["read"]["rows"] == len(got["rows"])
    assert got["read"]["files"][0].endswith("sft.jsonl" if fmt == "jsonl" else ".parquet")
    same_rows(got["rows"], lines(mix / "sft.jsonl"))
    assert "no such dataset on the Hub (set HF_TOKEN if it is private)" in anonymous["error"]


def test_bad_data_is_one_clear_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "train" / "sft.py"), "--model", "tiny", "--data",
                             str(tmp_path / "nothing"), "--out", str(tmp_path / "out")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env={**script_env(), **os.environ})
    if "No module named 'jax'" in result.stderr:
        pytest.skip("needs the [train] extra")
    assert "no such file or folder; --data takes a trace .jsonl file, a mix folder" in one_line_error(result)
