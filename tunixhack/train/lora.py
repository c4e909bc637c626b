"""LoRA adapters (qwix) kept in float32 over a base of any dtype, their exact merge, and their PEFT form.

Why float32: qwix makes adapters in the base weight's dtype and optax keeps Adam's moments in the parameter
dtype. Over a bfloat16 base, an update of 1e-5 relative to an adapter entry rounds away (bfloat16 keeps 8 bits
of mantissa), so GRPO at its learning rates would barely move LoRA-A. Here the adapters are created in float32,
their matmuls run in float32, and their output is cast back to the activations' dtype, so the base model
computes exactly as before. A merge is computed in float32 and cast once.

One adapter lives through SFT and GRPO on the stock base, so `base + adapter` is always the model that was
trained, and its PEFT form (Hugging Face module names) is valid on the stock google/gemma-3-1b-it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import qwix
from flax import nnx

MODULES = ".*q_einsum|.*kv_einsum|.*gate_proj|.*down_proj|.*up_proj|.*attn_vec_einsum"
PEFT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _float32(initializer):
    return lambda key, shape, dtype=None: initializer(key, shape, jnp.float32)


def _base_dtype(operands) -> jnp.dtype:
    return jnp.result_type(*(o.dtype for o in operands if hasattr(o, "dtype")))


class Float32Lora(qwix.LoraProvider):
    """qwix's LoRA with float32 adapters whose contribution is cast back to what the base layer computes in."""

    def dot_general(self, lhs, rhs, *args, **kwargs):
        return super().dot_general(lhs, rhs, *args, **kwargs).astype(_base_dtype((lhs, rhs)))

    def einsum(self, einsum_str, *operands, **kwargs):
        return super().einsum(einsum_str, *operands, **kwargs).astype(_base_dtype(operands))


def apply_lora(model, mesh, rank: int, alpha: float, seed: int = 0):
    """Wrap `model` with float32 LoRA adapters; the wrapper shares (does not copy) the base weights."""
    provider = Float32Lora(module_path=MODULES, rank=rank, alpha=float(alpha),
                           lora_a_initializer=_float32(nnx.initializers.he_uniform()),
                           lora_b_initializer=_float32(nnx.initializers.zeros))
    lora = qwix.apply_lora_to_model(model, provider, rngs=nnx.Rngs(seed), **model.get_model_input())
    state = nnx.state(lora)
    nnx.update(lora, jax.device_put(state, nnx.get_named_sharding(state, mesh)))
    return lora


def adapters(model) -> dict:
    """{path tuple: array} of the LoRA adapters (empty for a model without)."""
    return {path: v.get_value() for path, v in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam))}


def set_adapters(model, values: dict) -> None:
    """Load adapter values (same paths and shapes, e.g. from another run) into `model`, keeping its dtypes."""
    state = nnx.state(model, nnx.LoRAParam)
    flat = dict(nnx.to_flat_state(state))
    missing = sorted(set(flat) ^ set(values))
    if missing:
        raise ValueError(f"adapter paths differ, e.g. {missing[0]}")
    for path, variable in flat.items():
        old = variable.get_value()
        variable.set_value(jax.device_put(jnp.asarray(values[path], old.dtype), old.sharding))
    nnx.update(model, nnx.from_flat_state(flat))


def _factors(model):
    """(module path, weight name, lora_a, lora_b, weight's einsum string or None for a Linear kernel)."""
    for path, module in nnx.iter_modules(model):
        for name in [k[: -len("_lora_a")] for k in vars(module) if k.endswith("_lora_a")]:
            a, b = getattr(module, name + "_lora_a")[...], getattr(module, name + "_lora_b")[...]
            yield path, name, a, b, getattr(module, "einsum_str", None) if name == "w" else None


def delta(a, b, einsum_str: str | None, shape) -> jax.Array:
    """The float32 weight delta (before the alpha/rank scale) of one adapter, in the weight's own layout."""
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    if einsum_str is None:  # a Linear kernel (in, out): a (in, r), b (r, out)
        return (a @ b).reshape(shape)
    w_axes = einsum_str.split("->")[0].split(",")[1]
    a_axes = "".join(c for c in w_axes if c in einsum_str.split("->")[0].split(",")[0]) + "r"
    b_axes = "r" + "".join(c for c in w_axes if c not in a_axes)
    return jnp.einsum(f"{a_axes},{b_axes}->{w_axes}", a, b).reshape(shape)


def merged_params(lora_model, scale: float, dtype=None) -> dict:
    """{path: array} of the base weights with every adapter added: computed in float32, cast once to the
    weight's dtype (or `dtype`: float32 keeps the whole delta, which a bfloat16 weight rounds partly away)."""
    state = nnx.to_flat_state(nnx.state(lora_model, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))))
    merged = {path: v.get_value() for path, v in state}
    for path, name, a, b, einsum_str in _factors(lora_model):
        weight = merged[(*path, name)]
        total = weight.astype(jnp.float32) + delta(a, b, einsum_str, weight.shape) * scale
        merged[(*path, name)] = total.astype(dtype or weight.dtype)
    return merged


def merge(lora_model, cfg, mesh, scale: float):
    """A plain Gemma3 holding merged_params, placed on the mesh."""
    from tunix.models.gemma3 import model as gemma3

    plain = nnx.eval_shape(lambda: gemma3.Gemma3(cfg, rngs=nnx.Rngs(params=0)))
    nnx.update(plain, nnx.from_flat_state(merged_params(lora_model, scale)))
    state = nnx.state(plain)
    nnx.update(plain, jax.device_put(state, nnx.get_named_sharding(state, mesh)))
    return plain


# --- PEFT ----------------------------------------------------------------------------------------------
def peft_tensors(lora_model, cfg) -> dict[str, np.ndarray]:
    """The adapters as a PEFT LoRA state dict for Hugging Face Gemma3ForCausalLM: for each target module,
    lora_A (r, in) and lora_B (out, r) with W_hf + (alpha / r) * B @ A equal to the merged weight in HF layout.

    qwix factors a weight W[...] as a (shared axes, r) and b (r, other axes) of its einsum; HF keeps each
    projection as one (out, in) matrix, and Tunix's kv_einsum holds k_proj and v_proj together (one A, two Bs).
    """
    n, k, h = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    out: dict[str, np.ndarray] = {}

    def put(layer: int, module: str, a_peft, b_peft):
        prefix = f"base_model.model.model.layers.{layer}.{module}"
        out[f"{prefix}.lora_A.weight"] = np.asarray(a_peft, np.float32)
        out[f"{prefix}.lora_B.weight"] = np.asarray(b_peft, np.float32)

    for path, name, a, b, _ in _factors(lora_model):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        layer, kind = int(path[1]), path[-1]
        r = a.shape[-1]
        if kind == "q_einsum":        # a (D, r), b (r, N, H)
            put(layer, "self_attn.q_proj", a.T, b.transpose(1, 2, 0).reshape(n * h, r))
        elif kind == "kv_einsum":     # a (D, r), b (r, 2, K, H)
            put(layer, "self_attn.k_proj", a.T, b[:, 0].transpose(1, 2, 0).reshape(k * h, r))
            put(layer, "self_attn.v_proj", a.T, b[:, 1].transpose(1, 2, 0).reshape(k * h, r))
        elif kind == "attn_vec_einsum":  # a (N, H, r), b (r, D)
            put(layer, "self_attn.o_proj", a.reshape(n * h, r).T, b.T)
        elif kind in ("gate_proj", "up_proj", "down_proj"):  # a (in, r), b (r, out)
            put(layer, f"mlp.{kind}", a.T, b.T)
        else:
            raise ValueError(f"no Hugging Face name for the LoRA adapter of {'/'.join(map(str, path))}/{name}")
    return out


def peft_config(rank: int, alpha: float, base: str) -> dict:
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base, "r": rank,
            "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none", "target_modules": PEFT_TARGETS,
            "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "init_lora_weights": True,
            "modules_to_save": None, "inference_mode": True}


def apply_peft(hf_tensors: dict[str, np.ndarray], adapter: dict[str, np.ndarray], scale: float) -> dict:
    """HF weights + PEFT adapter, computed in float32 and cast once to each weight's dtype (what PEFT's merge
    does), for checking an export against its merged weights."""
    out = dict(hf_tensors)
    for key in adapter:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."): -len(".lora_A.weight")]
        weight = out[f"{module}.weight"]
        update = adapter[key.replace("lora_A", "lora_B")].astype(np.float32) @ adapter[key].astype(np.float32)
        out[f"{module}.weight"] = (weight.astype(np.float32) + scale * update).astype(weight.dtype)
    return out
