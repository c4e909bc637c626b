"""Export: the merged Hugging Face folder reloads through Tunix's loader with the trained model's logits;
the merge agrees with Tunix's own LoRA saver; the merged Orbax layout restores onto a plain Gemma3.
(The PEFT adapter and the LoRA layout over a bfloat16 base: test_bfloat16.py.)"""

import json

import numpy as np
import pytest

from tests.train.conftest import run_script

pytestmark = pytest.mark.train


def logits(model, tokens):
    import jax.numpy as jnp
    from tunix.sft import utils

    mask = jnp.ones(tokens.shape, bool)
    out, _ = model(jnp.asarray(tokens), utils.build_positions_from_mask(mask), None, utils.make_causal_attn_mask(mask))
    return np.asarray(out, np.float32)


@pytest.fixture(scope="module")
def exported(grpo_run, train_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    result = run_script("export.py", "--model", "tiny", "--ckpt", grpo_run, "--out", out, env=train_env)
    diff = float(result.stderr.split("max |logit difference| ")[1].split()[0])
    assert diff < 1e-4  # hf/ is base + adapter in PEFT's arithmetic; the in-memory merge sums in Tunix's layout
    return out


def test_exported_safetensors_reload_with_the_same_logits(exported, grpo_run, train_env):
    from tunixhack.train import model as models
    from tunixhack.train import runs
    from tunix.models.gemma3 import params_safetensors

    mesh = models.make_mesh(None)
    trained, cfg, tok, run = runs.load_run(str(grpo_run), mesh)  # the LoRA model as trained, not merged
    report = json.loads((exported / "export.json").read_text())
    assert report["step"] == 2 and report["base_plus_adapter_vs_tunix_merge"] < 1e-6
    reloaded = params_safetensors.create_model_from_safe_tensors(str(exported / "hf"), cfg, mesh)
    tokens = np.array([[2, *tok.encode("<start_of_turn>user\nWhat is 48 + 24?<end_of_turn>")]], np.int32)
    np.testing.assert_allclose(logits(reloaded, tokens), logits(trained, tokens), atol=1e-4)
    assert run["restored_step"] == 2


def test_exported_folder_is_a_transformers_gemma3(exported, tiny):
    transformers = pytest.importorskip("transformers")
    _, tok, ids = tiny
    config = transformers.AutoConfig.from_pretrained(exported / "hf")
    assert config.model_type == "gemma3_text" and config.num_hidden_layers == 2 and config.head_dim == 16
    assert config.eos_token_id == [ids["eos"], ids["end_of_turn"]]
    hf_tok = transformers.AutoTokenizer.from_pretrained(exported / "hf")
    text = "<start_of_turn>user\nHello<end_of_turn>"
    assert hf_tok(text, add_special_tokens=False).input_ids == tok.encode(text)


def test_orbax_layout_restores_onto_a_plain_gemma3(exported):
    import orbax.checkpoint as ocp
    import safetensors.numpy
    from flax import nnx
    from tunix.models.gemma3 import model as gemma3

    from tunixhack.train import hf

    [step] = list((exported / "ckpts" / "merged").iterdir())
    assert step.name == "2" and (exported / "ckpts" / "actor" / "2" / "model_params").is_dir()
    cfg = hf.model_config(hf.read_config(str(exported / "hf")), "float32")
    abstract = nnx.state(nnx.eval_shape(lambda: gemma3.Gemma3(cfg, rngs=nnx.Rngs(params=0))))
    restored = ocp.StandardCheckpointer().restore((step / "model_params").resolve(), target=abstract)
    weights = safetensors.numpy.load_file(exported / "hf" / "model.safetensors")
    np.testing.assert_array_equal(np.asarray(restored["embedder"]["input_embedding"][...]),
                                  weights["model.embed_tokens.weight"])


def test_our_lora_merge_matches_tunix_lora_saver(sft_run, tmp_path, tiny):
    import safetensors.numpy
    from tunix.models.gemma3 import params as gemma3_params

    from tunixhack.train import hf, lora, runs
    from tunixhack.train import model as models

    source, _, ids = tiny
    mesh = models.make_mesh(None)
    lora_net, cfg, _, run = runs.load_run(str(sft_run), mesh)
    gemma3_params.save_lora_merged_model_as_safetensors(
        local_model_path=source.path, output_dir=str(tmp_path / "tunix"), lora_model=lora_net,
        rank=run["lora"]["rank"], alpha=run["lora"]["alpha"])
    merged = lora.merge(lora_net, cfg, mesh, run["lora"]["alpha"] / run["lora"]["rank"])
    hf.write_folder(models.flat_params(merged), cfg, str(tmp_path / "ours"), source.path, "float32", ids)
    theirs = safetensors.numpy.load_file(tmp_path / "tunix" / "model.safetensors")
    ours = safetensors.numpy.load_file(tmp_path / "ours" / "model.safetensors")
    assert set(ours) <= set(theirs)
    changed = 0
    for name, value in ours.items():
        np.testing.assert_allclose(value, theirs[name], atol=1e-6, err_msg=name)
        base = safetensors.numpy.load_file(f"{source.path}/model.safetensors")[name]
        changed += not np.array_equal(value, base)
    assert changed == 14  # q, k, v, o, gate, up, down of both layers
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"] == ["Gemma3ForCausalLM"]
