"""bench/device_check.sh: on a CPU it says there is no accelerator and exits 0; its measurements run end to end on
the tiny model (the real ones need an accelerator: Gemma3-1B at the notebook's shapes)."""

import subprocess
import sys

import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S
from tests.train.conftest import ROOT

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]


def test_without_an_accelerator_it_says_so_and_exits_0(train_env):
    # PYTHON: this interpreter, wherever its venv is (the script's default is the checkout's .venv)
    done = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh")], cwd=ROOT,
                          env={**train_env, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "no accelerator here" in done.stdout, done.stderr[-2000:]


def test_its_measurements_run_on_the_tiny_model(train_env):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--tiny", "--allow-cpu",
                           "--no-readme", "--steps", "4"], cwd=ROOT, env=train_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| SFT") or line.startswith("| GRPO")]
    assert len(rows) == 2 and "rollout" in rows[1]
    step_seconds = [float(r.split("|")[4]) for r in rows]
    assert all(s > 0 for s in step_seconds)
