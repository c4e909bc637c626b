"""The Kaggle path on a bfloat16 base, as the commands are typed: a mix staged by `crap.py push`, SFT on its sft
split, GRPO continuing the adapter, export of the adapter and the merged weights, and the base itself.

What float32 adapters buy over a bfloat16 base: one GRPO step at the default learning rate moves (nearly) every
LoRA-A entry. (The merged model answering like the trained one: tests/train/test_learning.py, where the model is
confident enough for greedy decoding to mean something.)
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S
from tests.train.conftest import ROOT, TRACES, run_script

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]

SMALL = ["--lora-rank", "8", "--lora-alpha", "16", "--max-len", "256"]


@pytest.fixture(scope="module")
def chain(train_env, tmp_path_factory):
    """MIX -> push --dry-run -> S; sft D1 (8 steps) -> grpo D2 (2 steps, a checkpoint each) -> export E and B."""
    tmp = tmp_path_factory.mktemp("bf16")
    for command in (["mix", TRACES, "--out", tmp / "mix", "--sft-share", "0.6", "--eval-share", "0.1",
                     "--no-decontam"],
                    ["push", tmp / "mix", "--repo", "u/x", "--dry-run", "--staging", tmp / "S"]):
        done = subprocess.run([sys.executable, str(ROOT / "crap.py"), *map(str, command)], cwd=ROOT, env=train_env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    tiny = ["--model", "tiny", "--dtype", "bfloat16"]
    run_script("sft.py", *tiny, "--data", tmp / "S", "--steps", 8, "--out", tmp / "D1", *SMALL, "--lr", "3e-3",
               "--batch", 4, "--eval-every", 4, "--save-every", 4, "--samples", 0, env=train_env)
    run_script("grpo.py", *tiny, "--init", tmp / "D1", "--data", tmp / "S", "--steps", 2, "--rewards", "format,math",
               "--out", tmp / "D2", "--max-new-tokens", 16, "--max-prompt-len", 128, "--batch", 2, "--generations", 2,
               "--save-every", 1, env=train_env)
    export = run_script("export.py", *tiny, "--ckpt", tmp / "D2", "--out", tmp / "E", env=train_env)
    run_script("export.py", *tiny, "--out", tmp / "B", env=train_env)
    return tmp, export.stderr


def adapters_at(run, step):
    """The LoRA-A and LoRA-B arrays of a run's checkpoint, as saved (Orbax), by path."""
    import orbax.checkpoint as ocp

    state = ocp.StandardCheckpointer().restore((run / "ckpts" / ("actor" if (run / "ckpts" / "actor").exists() else "")
                                                / str(step) / "model_params").resolve())
    flat = {}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        else:
            flat[path] = np.asarray(node.get("value") if isinstance(node, dict) else node)

    walk(state, ())
    return flat


def test_sft_trains_on_the_pushed_sft_split_in_float32(chain):
    tmp, _ = chain
    run = json.loads((tmp / "D1" / "run.json").read_text())
    sft_rows = sum(1 for _ in (tmp / "mix" / "sft.jsonl").open())
    assert run["data"]["form"] == "dataset folder" and run["data"]["split"] == "sft"
    assert run["data"]["rows"] == run["rows_read"] == sft_rows
    assert run["dtypes"] == {"base": "bfloat16", "trainable": "float32", "optimizer_state": "float32",
                             "loss_logits": "float32, 128 positions at a time (chunked loss: the full logits "
                                            "never exist at once)"}


def test_one_grpo_step_moves_nearly_every_lora_a_entry(chain):
    """At GRPO's default learning rate (2e-5) on a bfloat16 base. With adapters in the base's dtype, as qwix
    makes them, an Adam step of 2e-5 on entries of about 0.1 rounds away for most of them."""
    tmp, _ = chain
    run = json.loads((tmp / "D2" / "run.json").read_text())
    assert run["lr"] == 2e-5 and run["dtypes"]["trainable"] == "float32"
    sft, grpo = adapters_at(tmp / "D1", 8), adapters_at(tmp / "D2", 1)
    lora_a = [p for p in sft if any("lora_a" in str(k) for k in p)]
    assert lora_a and set(lora_a) <= set(grpo)
    changed = sum(int((sft[p] != grpo[p]).sum()) for p in lora_a)
    total = sum(sft[p].size for p in lora_a)
    assert changed / total >= 0.9, f"{changed} of {total} LoRA-A entries changed"


def test_base_plus_adapter_is_the_merged_export_tensor_for_tensor(chain):
    import safetensors.numpy

    from tunixhack.train import lora

    tmp, stderr = chain
    assert "base + adapter vs the merge in Tunix's layout: max |difference|" in stderr
    config = json.loads((tmp / "E" / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16.0
    adapter = safetensors.numpy.load_file(tmp / "E" / "adapter" / "adapter_model.safetensors")
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in adapter
    assert len(adapter) == 2 * 7 * 2  # A and B of q, k, v, o, gate, up, down, in both layers
    base = safetensors.numpy.load_file(tmp / "B" / "hf" / "model.safetensors")
    merged = safetensors.numpy.load_file(tmp / "E" / "hf" / "model.safetensors")
    rebuilt = lora.apply_peft(base, adapter, config["lora_alpha"] / config["r"])
    assert set(rebuilt) == set(merged)
    targets = {k[len("base_model.model."): -len(".lora_A.weight")] + ".weight" for k in adapter if "lora_A" in k}
    for name in merged:
        assert merged[name].dtype == base[name].dtype
        np.testing.assert_array_equal(rebuilt[name], merged[name], err_msg=name)
        if name not in targets:
            np.testing.assert_array_equal(merged[name], base[name], err_msg=name)  # every other tensor unchanged
    assert sum(not np.array_equal(merged[t], base[t]) for t in targets) == len(targets)  # SFT + GRPO both in it


def test_the_exported_adapters_restore_the_way_tunix_demo_restores_them(chain):
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from tunixhack.train import lora, runs
    from tunixhack.train import model as models

    tmp, _ = chain
    mesh = models.make_mesh(None)
    trained, cfg, _, run = runs.load_run(str(tmp / "D2"), mesh)
    base, _, _ = runs.load_base_of(run, mesh)
    policy = lora.apply_lora(base, mesh, 8, 16.0, seed=123)  # fresh adapters, then the demo's restore
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), nnx.state(policy, nnx.LoRAParam))
    restored = ocp.StandardCheckpointer().restore((tmp / "E" / "ckpts" / "actor" / "2" / "model_params").resolve(),
                                                  target=target)
    nnx.update(policy, jax.tree.map(lambda _, new: new, nnx.state(policy, nnx.LoRAParam), restored))
    for path, value in lora.adapters(trained).items():
        np.testing.assert_array_equal(np.asarray(lora.adapters(policy)[path]), np.asarray(value))
    assert (tmp / "E" / "ckpts" / "merged" / "2" / "model_params").is_dir()


def test_the_base_export_is_the_same_every_time(chain, train_env, tmp_path):
    import safetensors.numpy

    tmp, _ = chain
    run_script("export.py", "--model", "tiny", "--dtype", "bfloat16", "--out", tmp_path / "B2", env=train_env)
    first = safetensors.numpy.load_file(tmp / "B" / "hf" / "model.safetensors")
    again = safetensors.numpy.load_file(tmp_path / "B2" / "hf" / "model.safetensors")
    assert all(np.array_equal(first[k], again[k]) for k in first) and set(first) == set(again)
    assert not (tmp / "B" / "adapter").exists()
