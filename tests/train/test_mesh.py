"""8 simulated CPU devices: the model and batches are sharded over an (fsdp 2, tp 4) mesh, SFT gives the same
losses as on one device, and GRPO runs. A subprocess, since the device count is fixed when JAX starts."""

import json
import subprocess
import sys

import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S
from tests.train.conftest import GRPO_FLAGS, ROOT, SFT_FLAGS, TRACES

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]

SCRIPT = """
import json, sys
import jax
from tunixhack.generate.scripts import load_script
from tunixhack.train import model as models, runs
sft, grpo = load_script("train/sft.py", "train_sft"), load_script("train/grpo.py", "train_grpo")

out, traces, sft_flags, grpo_flags = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
mesh = models.make_mesh(None)
base, cfg = models.load_base(models.resolve("tiny"), mesh)
report = {"devices": jax.device_count(), "mesh": dict(mesh.shape),
          "embed_devices": len(base.embedder.input_embedding[...].sharding.device_set),
          "embed_spec": list(base.embedder.input_embedding[...].sharding.spec)}
for m in ("1,1", "2,4"):
    sft.main(["--model", "tiny", "--data", traces, "--steps", "3", "--out", f"{out}/sft{m}", "--mesh", m,
              *sft_flags, "--eval-frac", "0"])
    report[m] = [r["loss"] for r in runs.read_metrics(f"{out}/sft{m}") if "loss" in r]
grpo.main(["--init", f"{out}/sft2,4", "--data", traces, "--steps", "2", "--rewards", "format,math",
           "--out", f"{out}/grpo", "--mesh", "2,4", *grpo_flags])
report["grpo"] = runs.read_metrics(f"{out}/grpo")
print(json.dumps(report))
"""


def test_sft_and_grpo_on_eight_simulated_devices(train_env, tmp_path):
    env = {**train_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(TRACES), json.dumps(SFT_FLAGS),
                             json.dumps(GRPO_FLAGS)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8 and report["mesh"] == {"fsdp": 2, "tp": 4}  # the default on 8 devices
    assert report["embed_devices"] == 8 and report["embed_spec"] == ["tp", "fsdp"]
    assert len(report["2,4"]) == 3
    assert report["2,4"] == pytest.approx(report["1,1"], abs=1e-4)
    assert [r["step"] for r in report["grpo"]] == [1, 2] and all("kl" in r for r in report["grpo"])
