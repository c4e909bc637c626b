"""The Kaggle notebook's code cells run top to bottom on the CPU in smoke mode (SMOKE=1: the tiny model), reading
its data from the Hub the way a user's run does: `crap.py push` uploads a mix to a local fake Hub (JSONL splits, the
default), and the notebook gets only its id. The same mix pushed with `--format parquet` goes through the cells up
to the one that reads the data (what differs between the forms), not through training again."""

import json
import subprocess
import sys

import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S
from tests.fakes.hub_server import HubFake
from tests.train.conftest import ROOT, TRACES

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]

RUNNER = """
import json, sys
import nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
scope = {"__name__": "__main__"}
data_only = sys.argv[2:] == ["--data-only"]
for number, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
        print(f"--- cell {number}", flush=True)
        exec(compile(cell.source, f"cell {number}", "exec"), scope)
        if data_only and "read_split(" in cell.source:
            break
print(json.dumps({k: scope.get(k) for k in ("WORK", "MODEL", "BUDGET", "REPLY")}))
"""


def crap(*args, env):
    result = subprocess.run([sys.executable, str(ROOT / "crap.py"), *map(str, args)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_notebook_runs_top_to_bottom_on_data_from_the_hub(train_env, tmp_path):
    with HubFake() as hub:
        env = {**train_env, "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake_token", "HF_HUB_OFFLINE": "0",
               "HF_HOME": str(tmp_path / "hf-home")}
        crap("mix", TRACES, "--out", tmp_path / "mix", "--sft-share", "0.6", "--eval-share", "0.1", "--no-decontam",
             env=env)
        crap("push", tmp_path / "mix", "--repo", "someone/traces", "--private", env=env)
        crap("push", tmp_path / "mix", "--repo", "someone/traces-parquet", "--format", "parquet", env=env)
        notebook = ROOT / "train" / "kaggle_tpu.ipynb"
        work = tmp_path / "work"
        result = subprocess.run([sys.executable, "-c", RUNNER, str(notebook)], cwd=ROOT, capture_output=True, text=True,
                                env={**env, "SMOKE": "1", "SMOKE_WORK": str(work), "DATASET_REPO": "someone/traces"},
                                timeout=900)
        parquet = subprocess.run([sys.executable, "-c", RUNNER, str(notebook), "--data-only"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=300,
                                 env={**env, "SMOKE": "1", "SMOKE_WORK": str(tmp_path / "work-parquet"),
                                      "DATASET_REPO": "someone/traces-parquet"})
        downloads = [p for p in hub.paths() if p.startswith("GET /datasets/someone/traces/resolve/")]
        parquet_downloads = [p for p in hub.paths() if p.startswith("GET /datasets/someone/traces-parquet/resolve/")]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert parquet.returncode == 0, parquet.stdout[-3000:] + parquet.stderr[-3000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["MODEL"] == "tiny" and state["WORK"] == str(work)
    assert sum(state["BUDGET"].values()) <= 9 * 60
    assert any(p.endswith("data/sft.jsonl") for p in downloads)  # read from the Hub, not a file
    assert any(p.endswith("data/sft-00000-of-00001.parquet") for p in parquet_downloads)
    mix_rows = {s: sum(1 for _ in (tmp_path / "mix" / f"{s}.jsonl").open()) for s in ("sft", "rl", "eval")}
    for split, rows in mix_rows.items():  # the data cell's line for each split, from either form
        line = f"{split}: {rows} rows (hub, revision "
        assert line in result.stdout and line in parquet.stdout, parquet.stdout[-2000:]
    assert json.loads((work / "runs" / "sft" / "run.json").read_text())["data"]["rows"] == mix_rows["sft"]
    assert json.loads((work / "runs" / "grpo" / "run.json").read_text())["data"]["form"] == "hub"
    for bench in ("gsm8k", "sciq", "mbpp"):
        report = json.loads((work / "runs" / "eval" / bench / "eval.json").read_text())
        assert set(report["results"]) == {"base", str(work / "runs" / "sft"), str(work / "runs" / "grpo")}
    assert (work / "adapter" / "adapter_model.safetensors").exists() and (work / "hf" / "model.safetensors").exists()
    assert (work / "ckpts" / "actor" / "2" / "model_params").is_dir()
    assert isinstance(state["REPLY"], str)  # the last cell reloaded the checkpoint the demo's way and answered
