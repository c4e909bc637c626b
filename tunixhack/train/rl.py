"""What GRPO adds to Tunix, through Tunix's own extension points (a rollout engine class, the function registry).

- SeededRollout: Tunix's vanilla rollout samples with RolloutConfig.seed, a constant, so every step would
  draw the same random numbers; here each rollout call folds a call counter into the seed.
- The "tunixhack" reward manager sums the rewards like Tunix's own, except that a reward that could not be
  computed (NaN: a judge that did not answer, a check out of time) makes the completion's total NaN instead
  of counting as 0, and logs each reward's mean over the values it did compute.
- The "grpo_valid" advantage estimator is GRPO's group normalisation over the completions whose total is a
  number; a NaN completion gets advantage 0 (no push either way) and does not move its group's mean or spread.
- The "grpo_chunked" policy loss is Tunix's GRPO loss without the full [batch, length, 262k] logits
  (tunixhack/train/grpo_loss.py).
"""

from __future__ import annotations

import numpy as np
from tunix.rl import function_registry
from tunix.rl.reward_manager import SequenceRewardManager
from tunix.rl.rollout import base_rollout
from tunix.rl.rollout.vanilla_rollout import VanillaRollout

from tunixhack.train import grpo_loss

REWARD_MANAGER = "tunixhack"
ADVANTAGE_ESTIMATOR = "grpo_valid"


class SeededRollout(VanillaRollout):
    """The vanilla rollout with a fresh seed per call: fold_in(PRNGKey(seed), calls made so far)."""

    def __init__(self, rollout_actor, tokenizer, mesh, rollout_config, seed: int = 0):
        cfg = rollout_actor.config
        super().__init__(rollout_actor, tokenizer, base_rollout.CacheConfig(
            cache_size=rollout_config.kv_cache_size, num_layers=cfg.num_layers, num_kv_heads=cfg.num_kv_heads,
            head_dim=cfg.head_dim))
        self.mesh, self.seed = mesh, seed
        self.calls = 0
        self.seconds: list[float] = []  # wall time of each call (bench/device_check.py splits a step with it)

    def generate(self, prompts, rollout_config, **kwargs):
        import dataclasses
        import time

        import jax

        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), self.calls)
        self.calls += 1
        start = time.perf_counter()
        output = super().generate(prompts, dataclasses.replace(rollout_config, seed=key), **kwargs)
        self.seconds.append(time.perf_counter() - start)  # the sampler returns host arrays: the work is done
        return output


def seeded_rollout(seed: int):
    """ClusterConfig.rollout_engine: Tunix builds the rollout itself from this."""
    import functools

    return functools.partial(SeededRollout, seed=int(seed))


class NanAwareRewardManager(SequenceRewardManager):
    def _compute_rewards(self, prompts, completions, **kwargs):
        rewards = np.zeros((len(prompts), len(self.reward_fns)))
        for i, reward_fn in enumerate(self.reward_fns):
            values = reward_fn(prompts=prompts, completions=completions, **kwargs)
            if values is None or len(values) != len(prompts):
                raise RuntimeError(f"{reward_fn.__name__} returned {None if values is None else len(values)} "
                                   f"values for {len(prompts)} completions")
            rewards[:, i] = np.asarray(values, dtype=np.float64)
        total = rewards.sum(axis=1)  # NaN when any reward could not be computed
        log = {"prompts": (prompts, None), "completions": (completions, None),
               "rewards/sum": (total, np.nanmean), "rewards/uncomputed": (np.isnan(total).astype(float), np.mean)}
        for i, reward_fn in enumerate(self.reward_fns):
            log[f"rewards/{reward_fn.__name__}"] = (rewards[:, i], np.nanmean)
        return {"rewards": total, "log_metrics": log}


def valid_group_advantages(rewards: np.ndarray, num_generations: int) -> np.ndarray:
    """(r - mean) / (std + 1e-6) within each group, over the finite rewards only; 0 for the others and for a
    group with fewer than two finite rewards (nothing to compare)."""
    grouped = np.asarray(rewards, np.float64).reshape(-1, num_generations)
    valid = np.isfinite(grouped)
    count = valid.sum(axis=1, keepdims=True)
    filled = np.where(valid, grouped, 0.0)
    mean = filled.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    var = np.where(valid, (filled - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / np.maximum(count - 1, 1)
    advantages = (filled - mean) / (np.sqrt(var) + 1e-6)
    advantages = np.where(valid & (count >= 2), advantages, 0.0)
    return advantages.reshape(-1).astype(np.float32)


def register() -> None:
    """Put the manager, the estimator and the policy loss in Tunix's registry (once per process)."""
    registry = function_registry.default_registry
    if REWARD_MANAGER not in registry.list_functions(function_registry._REWARD_MANAGER_CATEGORY):
        function_registry.register_reward_manager(REWARD_MANAGER)(NanAwareRewardManager)
    if ADVANTAGE_ESTIMATOR not in registry.list_functions(function_registry._ADVANTAGE_ESTIMATOR_CATEGORY):
        function_registry.register_advantage_estimator(ADVANTAGE_ESTIMATOR)(valid_group_advantages)
    if grpo_loss.POLICY_LOSS not in registry.list_functions(function_registry._POLICY_LOSS_FN_CATEGORY):
        function_registry.register_policy_loss_fn(grpo_loss.POLICY_LOSS)(grpo_loss.policy_loss)
