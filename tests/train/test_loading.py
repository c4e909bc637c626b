"""Where the weights come from: a Hugging Face folder (the tiny model goes through it) and a Kaggle Flax
checkpoint, written here in the upstream layout from the tiny model's weights."""

import os
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.train


def write_kaggle_checkpoint(hf_dir: str, out: str) -> None:
    """The upstream Gemma3 Flax layout (what kagglehub downloads): tokenizer.model + an Orbax folder."""
    import orbax.checkpoint as ocp
    import safetensors.numpy

    from tunixhack.train import hf

    w = safetensors.numpy.load_file(os.path.join(hf_dir, "model.safetensors"))
    cfg = hf.model_config(hf.read_config(hf_dir), "float32")
    n, k, d, h = cfg.num_heads, cfg.num_kv_heads, cfg.embed_dim, cfg.head_dim
    params = {"transformer/embedder": {"input_embedding": w["model.embed_tokens.weight"]},
              "transformer/final_norm": {"scale": w["model.norm.weight"]}}
    norms = {"pre_attention_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
             "pre_ffw_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
    for i in range(cfg.num_layers):
        src, dst = f"model.layers.{i}.", f"transformer/layer_{i}/"
        heads = lambda name, count: w[src + name].T.reshape(d, count, h).transpose(1, 0, 2)  # noqa: E731
        params[dst + "attn/q_einsum"] = {"w": heads("self_attn.q_proj.weight", n)}
        params[dst + "attn/kv_einsum"] = {"w": np.stack([heads("self_attn.k_proj.weight", k),
                                                         heads("self_attn.v_proj.weight", k)])}
        params[dst + "attn/attn_vec_einsum"] = {"w": w[src + "self_attn.o_proj.weight"].T.reshape(n, h, d)}
        params[dst + "attn/_query_norm"] = {"scale": w[src + "self_attn.q_norm.weight"]}
        params[dst + "attn/_key_norm"] = {"scale": w[src + "self_attn.k_norm.weight"]}
        params[dst + "mlp/gating_einsum"] = {"w": np.stack([w[src + "mlp.gate_proj.weight"],
                                                            w[src + "mlp.up_proj.weight"]])}
        params[dst + "mlp/linear"] = {"w": w[src + "mlp.down_proj.weight"].T}
        for ours, theirs in norms.items():
            params[dst + ours] = {"scale": w[src + theirs + ".weight"]}
    os.makedirs(out)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.abspath(os.path.join(out, "gemma3-1b-it")), params)
    checkpointer.wait_until_finished()
    shutil.copy(os.path.join(hf_dir, "tokenizer.model"), out)


def logits(model, tokens):
    import jax.numpy as jnp
    from tunix.sft import utils

    mask = jnp.ones(tokens.shape, bool)
    out, _ = model(jnp.asarray(tokens), utils.build_positions_from_mask(mask), None, utils.make_causal_attn_mask(mask))
    return np.asarray(out, np.float32)


def test_a_kaggle_flax_checkpoint_loads_like_the_hugging_face_folder(tiny, tmp_path):
    from tunixhack.train import model as models

    source, tok, _ = tiny
    kaggle = tmp_path / "gemma3-kaggle"
    write_kaggle_checkpoint(source.path, str(kaggle))
    found = models.resolve(str(kaggle))
    assert found.kind == "kaggle" and models.folder_kind(source.path) == "hf"
    mesh = models.make_mesh(None)
    from_kaggle, cfg = models.load_base(found, mesh, "float32")
    from_hf, hf_cfg = models.load_base(source, mesh)
    assert (cfg.num_layers, cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_dim) == (
        hf_cfg.num_layers, hf_cfg.embed_dim, hf_cfg.num_heads, hf_cfg.num_kv_heads, hf_cfg.head_dim, hf_cfg.hidden_dim)
    tokens = np.array([[2, *tok.encode("<start_of_turn>user\nHi there<end_of_turn>")]], np.int32)
    assert tokens.shape[1] < hf_cfg.sliding_window_size  # the window sizes differ; shorter inputs do not see it
    np.testing.assert_allclose(logits(from_kaggle, tokens), logits(from_hf, tokens), atol=1e-5)
    assert models.load_tokenizer(found).encode("Hi there") == tok.encode("Hi there")


def test_the_tiny_model_is_made_once_and_reused(tiny):
    from tunixhack.train import model as models

    source, _, _ = tiny
    before = os.path.getmtime(os.path.join(source.path, "model.safetensors"))
    assert models.resolve("tiny").path == source.path
    assert os.path.getmtime(os.path.join(source.path, "model.safetensors")) == before
