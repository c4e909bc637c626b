"""GRPO's policy loss with the log-probabilities computed in chunks, so the [batch, completion, 262k] logits never
exist at once: Tunix's "grpo" loss keeps them, their log-softmax and their entropy for the backward pass
(16 completions x 768 tokens is 13 GB of float32 logits in the Kaggle plan's micro-batch).

`policy_loss` is registered in Tunix's function registry as POLICY_LOSS (tunixhack/train/rl.py) and GRPOLearner
calls it in place of tunix.rl.algo_core.grpo_loss_fn. It takes the model's final hidden states over the same
inputs as tunix.rl.common.compute_per_token_logps (process_ids: the prompt's left padding, positions, the causal
mask over real tokens), keeps the positions that predict the completion, and projects them CHUNK at a time
(tunixhack/train/loss.py's over_chunks) in the dtype the model's own output layer gives (bfloat16 in a bfloat16
model, as Tunix's logits are, so the reference's and old log-probabilities Tunix computes match ours), divided by
the rollout temperature, through Tunix's own selective_log_softmax and compute_entropy_from_logits. What follows
is grpo_loss_fn's math for loss_algo "grpo", restated; the configurations not restated are refused.
Equal to Tunix's loss, every aux value and the gradient within 1e-5 in float32 (tests/train/test_grpo_loss.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from tunix.rl import algo_core, common

from tunixhack.train import loss as chunks

POLICY_LOSS = "grpo_chunked"
LOGITS = (f"the model's output dtype, {chunks.CHUNK} positions at a time ({POLICY_LOSS}: the full logits never "
          f"exist at once)")


def per_token_logps_and_entropy(model, prompt_ids, completion_ids, pad_id: int, eos_id: int, temperature: float):
    """compute_per_token_logps(..., return_logits=True)'s log-probabilities [B, C], and the entropy of the logits
    it returns [B, C], from CHUNK positions' logits at a time."""
    tokens, positions, attention_mask, _ = common.process_ids(prompt_ids, completion_ids, pad_id, eos_id)
    keep = completion_ids.shape[1]
    hidden = chunks.hidden_states(model, tokens, positions, attention_mask)[:, -keep - 1:-1]
    embedding = model.embedder.input_embedding[...]
    dtype = jnp.float32 if isinstance(model.embedder, chunks.Float32Head) else jnp.result_type(hidden, embedding)

    def step(logits, targets):
        logits = logits.astype(dtype)
        if temperature not in (0.0, 1.0):
            logits = logits / temperature
        # the entropy is only logged (aux): no gradient through it, so its backward costs nothing
        return (common.selective_log_softmax(logits, targets),
                algo_core.compute_entropy_from_logits(jax.lax.stop_gradient(logits)))

    return chunks.over_chunks(step, hidden, embedding, tokens[:, -keep:])


def refuse_unsupported(train_example, algo_config) -> None:
    if getattr(algo_config, "loss_algo", "grpo") != "grpo":
        raise ValueError(f"{POLICY_LOSS} computes loss_algo grpo only, got {algo_config.loss_algo!r}; "
                         f"use policy_loss_fn='grpo' for it")
    for field in ("segment_ids", "sampler_is_weights"):  # sequence packing, truncated importance sampling
        if getattr(train_example, field, None) is not None:
            raise ValueError(f"{POLICY_LOSS} does not support {field} (sequence packing, sampler importance "
                             f"weights); use policy_loss_fn='grpo' for it")


def policy_loss(model, train_example, algo_config, pad_id, eos_id, **kwargs):
    """tunix.rl.algo_core.grpo_loss_fn's (loss, aux), for loss_algo "grpo", without the full logits."""
    refuse_unsupported(train_example, algo_config)
    mask, mode = train_example.completion_mask, algo_config.loss_agg_mode
    logps, entropy = per_token_logps_and_entropy(model, train_example.prompt_ids, train_example.completion_ids,
                                                 pad_id, eos_id, algo_config.temperature)
    logps = logps.astype(jnp.float32)
    adv = jnp.astype(train_example.advantages, jnp.float32)
    adv = adv if adv.ndim == 2 else adv[:, None]  # per token, or one a completion
    old = train_example.old_per_token_logps
    old = jax.lax.stop_gradient(logps) if old is None else jnp.astype(old, jnp.float32)

    log_ratio = logps - old
    ppo_kl = algo_core.masked_mean(-log_ratio, mask)  # before the clip, as Tunix logs it
    log_ratio = jnp.clip(log_ratio, -20.0, 20.0)
    ratio = jnp.exp(log_ratio)
    epsilon = algo_config.epsilon
    pg_1 = -adv * ratio
    pg_2 = -adv * jnp.clip(ratio, 1 - epsilon, 1 + getattr(algo_config, "epsilon_high", epsilon))
    per_token = jnp.maximum(pg_1, pg_2).astype(jnp.float32)
    epsilon_c = getattr(algo_config, "epsilon_c", None)  # dual clip, for negative advantages
    pg_3 = per_token if epsilon_c is None else -epsilon_c * adv
    clipfrac_lower = common.aggregate_loss(((per_token > pg_3) & (adv < 0.0)).astype(jnp.float32), mask, mode)
    per_token = jnp.where(adv < 0.0, jnp.minimum(pg_3, per_token), per_token)
    total = common.aggregate_loss(per_token, mask, mode)

    real = mask > 0
    adv_all = jnp.broadcast_to(adv, mask.shape)
    mean = lambda x: algo_core.masked_mean(x, mask)  # noqa: E731
    aux = {"kl": 0.0, "kl_loss": 0.0, "pg_loss": total, "pg_clipfrac": mean(jnp.greater(pg_2, pg_1)),
           "ppo_kl": ppo_kl, "pg_clipfrac_lower": clipfrac_lower,
           "is_ratio/mean": mean(ratio), "is_ratio/max": jnp.max(jnp.where(real, ratio, 0.0)),
           "is_ratio/min": jnp.min(jnp.where(real, ratio, jnp.inf)), "log_ratio/abs_mean": mean(jnp.abs(log_ratio)),
           "pg_loss/unclipped_mean": mean(pg_1), "pg_loss/clipped_mean": mean(pg_2),
           "advantage/abs_mean": mean(jnp.abs(adv_all)), "advantage/max": jnp.max(jnp.where(real, adv_all, -jnp.inf)),
           "advantage/min": jnp.min(jnp.where(real, adv_all, jnp.inf)),
           "advantage/nonzero_frac": mean((jnp.abs(adv_all) > 1e-8).astype(jnp.float32)),
           "sampler_is/weight_mean": jnp.float32(1.0), "sampler_is/weight_min": jnp.float32(1.0)}
    if train_example.ref_per_token_logps is not None:
        kl = common.compute_kl_divergence(logps, train_example.ref_per_token_logps, algo_config.kl_loss_mode,
                                          clamp_value=algo_config.kl_clamp_value)
        aux["kl"] = jnp.astype((kl * mask).sum() / jnp.clip(mask.sum(), min=1), jnp.float32)
        aux["kl_loss"] = common.aggregate_loss(kl, mask, mode)
        if algo_config.beta:
            total = total + algo_config.beta * aux["kl_loss"]
    aux["entropy"] = common.aggregate_loss(entropy, mask, mode)
    return total, aux
