"""SFT's loss in chunks over the sequence (tunixhack/train/loss.py) is the full-logits loss, value and gradient."""

import pytest

pytestmark = pytest.mark.train


def test_chunked_loss_and_its_gradient_equal_the_full_logits_ones(tiny):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from tunix.sft import peft_trainer, utils

    from tunixhack.train import loss
    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models

    source, _, ids = tiny
    mesh = models.make_mesh(None)
    base, _ = models.load_base(source, mesh, "float32")
    net = adapters.apply_lora(base, mesh, 4, 8.0)
    rng = np.random.default_rng(0)  # adapters away from their zero start, so that every factor has a gradient
    adapters.set_adapters(net, {p: rng.normal(0, 0.05, v.shape) for p, v in adapters.adapters(net).items()})
    # 2 x 300 tokens: not a multiple of the chunk, right padding, and a prompt part the mask leaves out
    length = 2 * loss.CHUNK + 44
    tokens = rng.integers(4, 512, (2, length))
    tokens[1, 250:] = ids["pad"]
    mask = np.zeros((2, length), bool)
    mask[0, 20:], mask[1, 30:250] = True, True
    real = jnp.asarray(tokens != ids["pad"])
    inputs = dict(input_tokens=jnp.asarray(tokens), input_mask=jnp.asarray(mask),
                  positions=utils.build_positions_from_mask(real), attention_mask=utils.make_causal_attn_mask(real))

    def value_and_grad(fn):
        value, grads = nnx.value_and_grad(fn, argnums=nnx.DiffState(0, nnx.LoRAParam))(net, **inputs)
        return float(value), np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads)])

    chunked, full, tunix = (value_and_grad(f) for f in (loss.chunked_loss, loss.full_loss,
                                                        peft_trainer._default_loss_fn))
    assert chunked[0] == pytest.approx(full[0], abs=1e-5) and chunked[0] == pytest.approx(tunix[0], abs=1e-5)
    assert np.abs(chunked[1]).max() > 1e-3  # a gradient that is there, not zeros compared with zeros
    np.testing.assert_allclose(chunked[1], full[1], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(chunked[1], tunix[1], atol=1e-5, rtol=1e-4)
    assert not nnx.state(net, nnx.Intermediate)  # the hidden states it read were not left in the model


def test_sft_says_its_loss_is_chunked_in_float32(sft_run):
    import json

    from tunixhack.train import loss

    assert json.loads((sft_run / "run.json").read_text())["dtypes"]["loss_logits"] == loss.LOGITS
