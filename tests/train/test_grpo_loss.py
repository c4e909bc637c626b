"""GRPO's policy loss in chunks (tunixhack/train/grpo_loss.py) is Tunix's grpo_loss_fn: loss, aux and gradient."""

import pytest

pytestmark = pytest.mark.train

PROMPTS, GENERATIONS, PROMPT_LEN = 2, 2, 20


@pytest.fixture(scope="module")
def actor(tiny):
    """The tiny model with float32 LoRA adapters away from their zero start (every factor has a gradient)."""
    import numpy as np

    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models

    source, _, ids = tiny
    mesh = models.make_mesh(None)
    net = adapters.apply_lora(models.load_base(source, mesh, "float32")[0], mesh, 4, 8.0)
    rng = np.random.default_rng(0)
    adapters.set_adapters(net, {p: rng.normal(0, 0.05, v.shape) for p, v in adapters.adapters(net).items()})
    return net, ids


def train_example(net, ids, completion_len: int, old: bool, ref: bool, temperature: float):
    """A TrainExample as GRPOLearner builds one: prompts left-padded, completions ending in eos then right-padded,
    masks from the pad id, an advantage per completion of both signs; old and reference log-probabilities near
    the actor's own (so that ratios clip and the KL is not zero), or absent."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from tunix.rl import common

    b, pad = PROMPTS * GENERATIONS, ids["pad"]
    rng = np.random.default_rng(1)
    prompts = rng.integers(4, 512, (b, PROMPT_LEN))
    for i, start in enumerate([0, 5, 0, 12]):  # left padding of different lengths
        prompts[i, :start] = pad
    completions = rng.integers(4, 512, (b, completion_len))
    for i, end in enumerate([completion_len - 1, 40, completion_len // 2 + 3, 7]):
        end = min(end, completion_len - 1)
        completions[i, end], completions[i, end + 1:] = ids["eos"], pad
    prompts, completions = jnp.asarray(prompts), jnp.asarray(completions)
    graphdef, state = nnx.split(net)
    logps = common.compute_per_token_logps(graphdef, state, prompts, completions, pad, ids["eos"],
                                           temperature=temperature)
    near = lambda scale: jnp.asarray(logps + rng.normal(0, scale, logps.shape), jnp.float32)  # noqa: E731
    return common.TrainExample(
        prompt_ids=prompts, prompt_mask=prompts != pad, completion_ids=completions,
        completion_mask=completions != pad, advantages=jnp.asarray([1.3, -0.4, 0.0, -1.1], jnp.float32),
        ref_per_token_logps=near(0.2) if ref else None, old_per_token_logps=near(0.6) if old else None)


def algo(temperature: float, **changes):
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    config = GRPOConfig(num_generations=GENERATIONS, **changes)
    config.temperature = temperature  # what GRPOLearner sets from the rollout config
    return config


@pytest.mark.parametrize("case", [
    dict(old=True, ref=True, temperature=0.9, beta=0.08, epsilon_c=3.0),
    dict(old=False, ref=True, temperature=1.0, beta=0.04, loss_agg_mode="token-mean", kl_loss_mode="low_var_kl"),
    dict(old=False, ref=False, temperature=0.7, beta=0.0, loss_agg_mode="seq-mean-token-sum"),
], ids=["old+ref, dual clip", "ref only, token-mean", "neither, beta 0"])
def test_chunked_policy_loss_equals_tunix_grpo_loss_value_aux_and_gradient(actor, case):
    import jax
    import numpy as np
    from flax import nnx
    from tunix.rl import algo_core

    from tunixhack.train import grpo_loss, loss

    net, ids = actor
    case = dict(case)
    old, ref, temperature, epsilon_c = case.pop("old"), case.pop("ref"), case.pop("temperature"), case.pop(
        "epsilon_c", None)
    length = loss.CHUNK + 22  # not a multiple of the chunk: the last chunk is padded
    example = train_example(net, ids, length, old, ref, temperature)
    config = algo(temperature, **case)
    if epsilon_c is not None:
        config.epsilon_c = epsilon_c

    def run(fn):
        value_and_grad = nnx.value_and_grad(
            lambda m: fn(m, example, config, pad_id=ids["pad"], eos_id=ids["eos"]),
            argnums=nnx.DiffState(0, nnx.LoRAParam), has_aux=True)
        (value, aux), grads = value_and_grad(net)
        return float(value), {k: float(v) for k, v in aux.items()}, np.concatenate(
            [np.ravel(g) for g in jax.tree.leaves(grads)])

    ours, tunix = run(grpo_loss.policy_loss), run(algo_core.grpo_loss_fn)
    assert ours[0] == pytest.approx(tunix[0], abs=1e-5)
    assert ours[1].keys() == tunix[1].keys()
    for key, value in tunix[1].items():
        assert ours[1][key] == pytest.approx(value, abs=1e-5, rel=1e-5), key
    # what is compared is there: the entropy, clipped ratios and the KL are not zeros compared with zeros
    assert tunix[1]["entropy"] > 0.1
    assert (tunix[1]["pg_clipfrac"] > 0.05) == old and (tunix[1]["kl"] != 0.0) == ref
    if epsilon_c is not None:
        assert tunix[1]["pg_clipfrac_lower"] > 0.0  # the dual clip took effect somewhere
    scale = np.abs(tunix[2]).max()
    assert scale > 1e-3 and np.abs(ours[2] - tunix[2]).max() <= 1e-5 * scale
    assert not nnx.state(net, nnx.Intermediate)  # the hidden states it read were not left in the model


@pytest.mark.parametrize("change, named", [
    (dict(loss_algo="gspo-token"), "loss_algo"),
    (dict(sampler_is_weights=True), "sampler_is_weights"),
    (dict(segment_ids=True), "segment_ids"),
])
def test_configurations_it_does_not_restate_are_refused_in_one_line(actor, change, named):
    import dataclasses

    import jax.numpy as jnp

    from tunixhack.train import grpo_loss

    net, ids = actor
    example = train_example(net, ids, 8, old=False, ref=False, temperature=1.0)
    config = algo(1.0, **{k: v for k, v in change.items() if k == "loss_algo"})
    fields = {k: jnp.ones_like(example.completion_mask, jnp.float32) for k in change if k != "loss_algo"}
    with pytest.raises(ValueError) as refused:
        grpo_loss.policy_loss(net, dataclasses.replace(example, **fields), config, pad_id=ids["pad"], eos_id=ids["eos"])
    message = str(refused.value)
    assert named in message and "policy_loss_fn='grpo'" in message and "\n" not in message
