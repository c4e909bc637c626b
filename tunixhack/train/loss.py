"""Gemma3's output layer in float32, and SFT's loss computed in chunks so the full logits never exist at once.

Gemma3's logits are its final hidden states times the tied embedding: [batch, length, 262,144], 1 GiB in
float32 for 4 x 256 tokens, and in a bfloat16 model they are bfloat16, where near-equal logits tie exactly.

- `Float32Head` computes that projection with float32 results (bfloat16 products are exact in float32; the
  sums are accumulated in float32), so greedy decoding's argmax does not depend on bfloat16 ties.
- `chunked_loss` is PeftTrainer's loss (mean token negative log-likelihood over input_mask) from the hidden
  states: it projects CHUNK positions at a time inside `jax.checkpoint`, so the forward pass keeps one chunk's
  logits and the backward pass recomputes each chunk's (the fused linear-cross-entropy idea). It equals the
  full-logits loss in float32, and its gradient too (tests/train/test_chunked_loss.py).
- `over_chunks` is that chunked projection for any per-position function of the logits: SFT's loss and GRPO's
  policy loss (tunixhack/train/grpo_loss.py) both run on it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from tunix.models.gemma3 import model as gemma3

CHUNK = 128  # sequence positions projected at once: batch x 128 x 262,144 float32 logits (134 MB a sequence)
LOGITS = f"float32, {CHUNK} positions at a time (chunked loss: the full logits never exist at once)"


def project(hidden, embedding):
    """Logits of `hidden` [..., D] against the tied embedding [V, D], with float32 results whatever the dtypes."""
    return jnp.einsum("...d,vd->...v", hidden, embedding, preferred_element_type=jnp.float32)


class Float32Head(gemma3.Embedder):
    """Gemma3's embedder whose decode (the output layer) gives float32 logits."""

    def decode(self, x):
        return project(x, self.input_embedding[...])


def float32_logits(model) -> None:
    """Make `model`'s output layer float32 (in place; the weights are shared, nothing is copied)."""
    if type(model.embedder) is gemma3.Embedder:
        model.embedder.__class__ = Float32Head


def hidden_states(model, input_tokens, positions, attention_mask):
    """The final (normed) hidden states [B, L, D], through Tunix's own `output_hidden_states`; the logits the
    model also returns are unused, so XLA drops their computation."""
    model(input_tokens, positions, None, attention_mask, output_hidden_states=True)
    (hidden,) = nnx.pop(model, nnx.Intermediate)["all_hidden_states"].get_value()
    return hidden


def over_chunks(step, hidden, embedding, *per_position):
    """`step(logits, *per_position_chunks)` -> a tuple of [B, CHUNK] arrays, run CHUNK positions at a time inside
    `jax.checkpoint` on the float32 logits of `hidden` [B, L, D] against `embedding` [V, D]; returns the tuple
    as [B, L] arrays. Only one chunk's logits exist at a time, forward and backward (each chunk's are recomputed
    for its gradient), so [B, L, V] never does. `per_position` are [B, L] arrays (targets, masks)."""
    b, length, _ = hidden.shape
    pad = -length % CHUNK
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        per_position = tuple(jnp.pad(x, ((0, 0), (0, pad))) for x in per_position)
    n = (length + pad) // CHUNK
    # [n, B, CHUNK, ...]: the batch axis stays whole (it is the one sharded over fsdp)
    split = lambda x: jnp.moveaxis(x.reshape(b, n, CHUNK, *x.shape[2:]), 1, 0)  # noqa: E731

    @jax.checkpoint
    def chunk(carry, xs):
        h, *rest = xs
        return carry, tuple(step(project(h, embedding), *rest))

    _, outs = jax.lax.scan(chunk, None, (split(hidden), *map(split, per_position)))
    return tuple(jnp.moveaxis(y, 0, 1).reshape(b, n * CHUNK)[:, :length] for y in outs)


def token_nll_sum(hidden, embedding, targets, mask):
    """Sum over positions of -log p(target) * mask, CHUNK positions at a time. hidden [B, L, D]."""

    def nll(logits, t):
        picked = jnp.take_along_axis(logits, t[..., None], axis=-1)[..., 0]
        return (jax.nn.logsumexp(logits, axis=-1) - picked,)

    (per_token,) = over_chunks(nll, hidden, embedding, targets)
    return jnp.sum(per_token * mask)


def chunked_loss(model, input_tokens, input_mask, positions, attention_mask):
    """PeftTrainer's default loss (next-token NLL averaged over the input_mask tokens), without full logits."""
    hidden = hidden_states(model, input_tokens, positions, attention_mask)[:, :-1]
    mask = input_mask[:, 1:].astype(jnp.float32)
    total = token_nll_sum(hidden, model.embedder.input_embedding[...], input_tokens[:, 1:], mask)
    return total / (jnp.sum(mask) + 1e-8)


def full_loss(model, input_tokens, input_mask, positions, attention_mask):
    """The same loss from the full float32 logits at once (the reference chunked_loss is held to)."""
    logits = project(hidden_states(model, input_tokens, positions, attention_mask)[:, :-1],
                     model.embedder.input_embedding[...])
    mask = input_mask[:, 1:].astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, input_tokens[:, 1:, None], axis=-1)[..., 0]
    return -jnp.sum(picked * mask) / (jnp.sum(mask) + 1e-8)
