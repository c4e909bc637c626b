"""Gemma3 weights as a Hugging Face folder: config.json <-> Tunix ModelConfig, and the writer.

Tunix reads Hugging Face folders (`params_safetensors.create_model_from_safe_tensors`) but has no
writer for a whole model, only one that adds a LoRA delta to an existing HF file. `write_folder` is
the exact inverse of Tunix's reading map, so a model written here reloads through Tunix's own loader
bit for bit (tests/train/test_export.py checks the logits). The tiny test model is written the same
way, so tests go through the real loading path.

    HF (out, in) Linear weights          Tunix
    q_proj   (N*H, D)                    attn.q_einsum.w        (N, D, H)
    k_proj / v_proj (K*H, D)             attn.kv_einsum.w       (2, K, D, H)
    o_proj   (D, N*H)                    attn.attn_vec_einsum.w (N, H, D)
    gate/up_proj (F, D), down_proj (D, F)  mlp.*.kernel (D, F) / (F, D)
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.model"


def read_config(folder: str) -> dict:
    with open(os.path.join(folder, CONFIG)) as f:
        config = json.load(f)
    return config.get("text_config", config)  # multimodal Gemma3 nests the text model


def read_tokenizer_config(folder: str) -> dict:
    """tokenizer_config.json ({} when the folder has none): which added pieces are special, the chat template."""
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def model_config(hf: dict, dtype: str):
    """Tunix ModelConfig from a Hugging Face Gemma3 text config."""
    import jax.numpy as jnp
    from tunix.models.gemma3 import model as gemma3

    rope_scaling = hf.get("rope_scaling") or {}
    params = hf.get("rope_parameters") or {}  # transformers >= 5 keeps rope settings here
    global_theta = params.get("full_attention", {}).get("rope_theta", hf.get("rope_theta", 1_000_000))
    local_theta = params.get("sliding_attention", {}).get("rope_theta", hf.get("rope_local_base_freq", 10_000))
    factor = params.get("full_attention", {}).get("factor", rope_scaling.get("factor", 1.0))
    head_dim = hf.get("head_dim", hf["hidden_size"] // hf["num_attention_heads"])
    norm = gemma3.QueryPreAttentionNormalisation
    scalar = hf.get("query_pre_attn_scalar", head_dim)
    if scalar == head_dim:
        query_norm = norm.BY_ONE_OVER_SQRT_HEAD_DIM
    elif scalar == hf["hidden_size"] // hf["num_attention_heads"]:
        query_norm = norm.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS
    else:
        raise ValueError(f"query_pre_attn_scalar {scalar} is neither head_dim nor hidden/heads")
    return gemma3.ModelConfig(
        num_layers=hf["num_hidden_layers"],
        num_embed=hf["vocab_size"],
        embed_dim=hf["hidden_size"],
        hidden_dim=hf["intermediate_size"],
        num_heads=hf["num_attention_heads"],
        head_dim=head_dim,
        num_kv_heads=hf["num_key_value_heads"],
        sliding_window_size=hf.get("sliding_window"),
        local_base_frequency=int(local_theta),
        global_base_frequency=int(global_theta),
        global_scale_factor=float(factor or 1.0),
        query_pre_attn_norm=query_norm,
        param_dtype=getattr(jnp, dtype),
    )


def config_dict(cfg, dtype: str, ids: dict) -> dict:
    """The Hugging Face config.json of a Tunix Gemma3 text model (Gemma3ForCausalLM)."""
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "vocab_size": cfg.num_embed,
        "hidden_size": cfg.embed_dim,
        "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "query_pre_attn_scalar": cfg.head_dim,
        "sliding_window": cfg.sliding_window_size,
        "sliding_window_pattern": 6,  # Tunix's GEMMA3_ATTENTION_PATTERN: 5 local layers, then 1 global
        "rope_theta": cfg.global_base_frequency,
        "rope_local_base_freq": cfg.local_base_frequency,
        "rope_scaling": None if cfg.global_scale_factor == 1.0 else
        {"rope_type": "linear", "factor": cfg.global_scale_factor},
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 32768,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": dtype,
        "pad_token_id": ids["pad"],
        "bos_token_id": ids["bos"],
        "eos_token_id": [ids["eos"], ids["end_of_turn"]],
    }


def tensors(state: dict, cfg) -> dict[str, np.ndarray]:
    """Hugging Face tensors from a flat {path tuple: array} Tunix Gemma3 state (no LoRA)."""
    n, k, d, h = cfg.num_heads, cfg.num_kv_heads, cfg.embed_dim, cfg.head_dim
    out = {"model.embed_tokens.weight": state[("embedder", "input_embedding")],
           "model.norm.weight": state[("final_norm", "scale")]}
    norms = {"pre_attention_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
             "pre_ffw_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
    for i in range(cfg.num_layers):
        p, hf = ("layers", i), f"model.layers.{i}."
        if (*p, "attn", "qkv_einsum", "w") in state:  # fused when num_heads == num_kv_heads
            q, kk, v = state[(*p, "attn", "qkv_einsum", "w")]
        else:
            q = state[(*p, "attn", "q_einsum", "w")]
            kk, v = state[(*p, "attn", "kv_einsum", "w")]
        out[hf + "self_attn.q_proj.weight"] = q.transpose(1, 0, 2).reshape(d, n * h).T
        out[hf + "self_attn.k_proj.weight"] = kk.transpose(1, 0, 2).reshape(d, k * h).T
        out[hf + "self_attn.v_proj.weight"] = v.transpose(1, 0, 2).reshape(d, k * h).T
        out[hf + "self_attn.o_proj.weight"] = state[(*p, "attn", "attn_vec_einsum", "w")].reshape(n * h, d).T
        out[hf + "self_attn.q_norm.weight"] = state[(*p, "attn", "_query_norm", "scale")]
        out[hf + "self_attn.k_norm.weight"] = state[(*p, "attn", "_key_norm", "scale")]
        for proj in ("gate_proj", "up_proj", "down_proj"):
            out[hf + f"mlp.{proj}.weight"] = state[(*p, "mlp", proj, "kernel")].T
        for ours, theirs in norms.items():
            out[hf + f"{theirs}.weight"] = state[(*p, ours, "scale")]
    return {name: np.ascontiguousarray(a) for name, a in out.items()}


def write_folder(state: dict, cfg, out: str, tokenizer_dir: str, dtype: str, ids: dict) -> None:
    """Write a Tunix state (path tuples to host arrays, see model.flat_params) as a Hugging Face folder."""
    write_tensors(tensors(state, cfg), cfg, out, tokenizer_dir, dtype, ids)


def read_tensors(folder: str) -> dict[str, np.ndarray]:
    import safetensors.numpy

    return safetensors.numpy.load_file(os.path.join(folder, WEIGHTS))


def write_tensors(hf_tensors: dict[str, np.ndarray], cfg, out: str, tokenizer_dir: str, dtype: str, ids: dict) -> None:
    """Write model.safetensors, config.json, generation_config.json and the tokenizer files to `out`.

    The folder is written under a temporary name and renamed, so a crash never leaves a half-written model.
    """
    import safetensors.numpy

    tmp = out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    arrays = {name: np.ascontiguousarray(a).astype(_np_dtype(dtype)) for name, a in hf_tensors.items()}
    safetensors.numpy.save_file(arrays, os.path.join(tmp, WEIGHTS), metadata={"format": "pt"})
    with open(os.path.join(tmp, CONFIG), "w") as f:
        json.dump(config_dict(cfg, dtype, ids), f, indent=2)
    with open(os.path.join(tmp, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": ids["bos"], "pad_token_id": ids["pad"],
                   "eos_token_id": [ids["eos"], ids["end_of_turn"]], "do_sample": False}, f, indent=2)
    copy_tokenizer(tokenizer_dir, tmp, ids)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)


def copy_tokenizer(src: str, dst: str, ids: dict) -> None:
    """Copy the tokenizer files; write a minimal tokenizer_config.json when the source has none."""
    for name in os.listdir(src):
        if name.startswith("tokenizer") or name in ("special_tokens_map.json", "chat_template.jinja",
                                                     "added_tokens.json"):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    if not os.path.exists(os.path.join(dst, "tokenizer_config.json")):
        with open(os.path.join(dst, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
                       "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True,
                       "add_eos_token": False}, f, indent=2)


def _np_dtype(name: str):
    import ml_dtypes

    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)
