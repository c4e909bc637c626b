"""The Kaggle notebook's code cells run top to bottom on the CPU in smoke mode (SMOKE=1: the tiny model)."""

import json
import subprocess
import sys

import pytest

from tests.train.conftest import ROOT

pytestmark = pytest.mark.train

RUNNER = """
import json, sys
import nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
scope = {"__name__": "__main__"}
for number, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
        print(f"--- cell {number}", flush=True)
        exec(compile(cell.source, f"cell {number}", "exec"), scope)
print(json.dumps({"WORK": scope["WORK"], "MODEL": scope["MODEL"], "BUDGET": scope["BUDGET"]}))
"""


def test_notebook_runs_top_to_bottom_in_smoke_mode(train_env, tmp_path):
    notebook = ROOT / "train" / "kaggle_tpu.ipynb"
    env = {**train_env, "SMOKE": "1", "SMOKE_WORK": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", RUNNER, str(notebook)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["MODEL"] == "tiny" and state["WORK"] == str(tmp_path)
    assert sum(state["BUDGET"].values()) <= 9 * 60
    assert (tmp_path / "runs" / "eval" / "eval.md").read_text().startswith("| dataset / category |")
    assert (tmp_path / "hf" / "model.safetensors").exists()
    assert (tmp_path / "ckpts" / "actor" / "2" / "model_params").is_dir()
