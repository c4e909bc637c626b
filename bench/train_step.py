"""Training step time: our SFT and GRPO scripts against the same loops written directly on Tunix.

    python bench/train_step.py                      # tiny Gemma3 (CPU): overhead ratio, target <= 1.05
    python bench/train_step.py --mfu 1b --steps 10  # an accelerator: Gemma3-1B SFT tokens/s and MFU, random weights

Both sides of a comparison get the same model, batch shapes, optimizer and, for GRPO, rollout settings;
ours adds what the scripts add (grain pipeline, metrics.jsonl and TensorBoard, tokens/s hook, stop control,
checkpoint manager, the reward table). A step's time is the gap between two batch fetches, whose median
over the steps after the warm-up is reported (the first steps compile). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tunixhack.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "train" / "fixtures" / "traces.jsonl"
TRACES = FIXTURE  # replaced in main() by a 2,000-row copy: grain's index shuffle is slow on tiny datasets only
SFT = dict(batch=8, max_len=256, rank=8, alpha=16.0)
GRPO = dict(batch=2, generations=2, max_new=16, max_prompt=128, rank=8, alpha=16.0)
PEAK_BF16 = {"TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v6 lite": 918e12, "TPU v4": 275e12,
             "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}


class Timed:
    """Wraps a batch stream; records the time each batch is pulled."""

    def __init__(self, limit: int):
        self.times: list[float] = []
        self.limit = limit

    def __call__(self, stream):
        for i, batch in enumerate(stream):
            if i >= self.limit:
                return
            self.times.append(time.perf_counter())
            yield batch

    def gaps(self, warmup: int) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:])][warmup:]

    def step_time(self, warmup: int) -> float:
        return statistics.median(self.gaps(warmup))


# --- SFT ---------------------------------------------------------------------------------------------------
def sft_ours(steps: int, warmup: int, out: str) -> list[float]:
    sft = load_script(ROOT / "train" / "sft.py", "train_sft")

    timer = Timed(steps)
    sft.main(["--model", "tiny", "--data", str(TRACES), "--steps", str(steps), "--out", out, "--batch",
              str(SFT["batch"]), "--max-len", str(SFT["max_len"]), "--lora-rank", str(SFT["rank"]), "--lora-alpha",
              str(SFT["alpha"]), "--eval-every", str(10**6), "--save-every", str(10**6), "--samples", "0"], timer)
    return timer.gaps(warmup)


def tensorboard(log_dir: str):
    """Tunix's own metrics logging to TensorBoard, which a hand-written loop would use too."""
    from tunix.sft.metrics_logger import MetricsLoggerOptions, TensorboardBackend

    return MetricsLoggerOptions(log_dir=log_dir, flush_every_n_steps=1, backend_kwargs={"custom_backend": [
        lambda: TensorboardBackend(log_dir=log_dir, flush_every_n_steps=1)]})


def sft_direct(steps: int, warmup: int, out: str) -> list[float]:
    """PeftTrainer on the same LoRA model and batch shapes, logging to TensorBoard; no checkpoints or hooks."""
    import numpy as np
    import optax
    import qwix
    from flax import nnx
    from tunix.models.gemma3 import params_safetensors
    from tunix.sft import peft_trainer, utils

    from tunixhack.train import data
    from tunixhack.train import hf
    from tunixhack.train import model as models

    source = models.resolve("tiny")
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    examples = data.tokenize_sft(data.read_rows(str(TRACES)), tok, ids, SFT["max_len"]).examples
    mesh = models.make_mesh(None)
    cfg = hf.model_config(hf.read_config(source.path), "float32")
    base = params_safetensors.create_model_from_safe_tensors(source.path, cfg, mesh)
    provider = qwix.LoraProvider(module_path=models.LORA_MODULES, rank=SFT["rank"], alpha=SFT["alpha"])
    lora = qwix.apply_lora_to_model(base, provider, rngs=nnx.Rngs(0), **base.get_model_input())
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(steps):
        pick = rng.choice(len(examples), SFT["batch"], replace=False)
        batches.append(peft_trainer.TrainingInput(input_tokens=np.stack([examples[i]["tokens"] for i in pick]),
                                                  input_mask=np.stack([examples[i]["mask"] for i in pick])))

    def inputs(x):
        real = x.input_tokens != ids["pad"]
        return {"input_tokens": x.input_tokens, "input_mask": x.input_mask,
                "positions": utils.build_positions_from_mask(real), "attention_mask": utils.make_causal_attn_mask(real)}

    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(2e-4, b1=0.9, b2=0.99, weight_decay=0.01))
    config = peft_trainer.TrainingConfig(eval_every_n_steps=10**6, max_steps=steps,
                                         metrics_logging_options=tensorboard(out))
    trainer = peft_trainer.PeftTrainer(lora, opt, config)
    trainer.with_gen_model_input_fn(inputs)
    timer = Timed(steps)
    with mesh:
        trainer.train(timer(batches))
    return timer.gaps(warmup)


# --- GRPO --------------------------------------------------------------------------------------------------
def grpo_ours(steps: int, warmup: int, init: str, out: str) -> list[float]:
    grpo = load_script(ROOT / "train" / "grpo.py", "train_grpo")

    timer = Timed(steps)
    grpo.main(["--init", init, "--data", str(TRACES), "--steps", str(steps), "--rewards", "format,math",
               "--out", out, "--batch", str(GRPO["batch"]), "--generations", str(GRPO["generations"]),
               "--max-new-tokens", str(GRPO["max_new"]), "--max-prompt-len", str(GRPO["max_prompt"]),
               "--lora-rank", str(GRPO["rank"]), "--lora-alpha", str(GRPO["alpha"]), "--save-every", str(10**6)],
              timer)
    return timer.gaps(warmup)


def grpo_direct(steps: int, warmup: int, init: str, out: str) -> list[float]:
    """RLCluster + GRPOLearner with a hand-written format reward, same model and rollout settings."""
    import re

    import optax
    import qwix
    from flax import nnx
    from tunix.rl import rl_cluster as rl
    from tunix.rl.grpo.grpo_learner import GRPOConfig, GRPOLearner
    from tunix.rl.rollout.base_rollout import RolloutConfig

    from tunixhack.train import data
    from tunixhack.train import model as models
    from tunixhack.train import runs

    mesh = models.make_mesh(None)
    policy, cfg, tok, _ = runs.load_run(init, mesh, merged=True)
    ids = models.token_ids(tok)
    provider = qwix.LoraProvider(module_path=models.LORA_MODULES, rank=GRPO["rank"], alpha=GRPO["alpha"])
    actor = qwix.apply_lora_to_model(policy, provider, rngs=nnx.Rngs(0), **policy.get_model_input())
    # The prompt batches ours sees (same seed), without the reward columns: the rollouts are the same.
    prompts = data.grpo_prompts(data.read_rows(str(TRACES)), tok, GRPO["max_prompt"]).examples
    stream = iter(data.grpo_dataset(prompts, GRPO["batch"], seed=0))
    batches = [{"prompts": next(stream)["prompts"]} for _ in range(steps)]
    tagged = re.compile(r"\s*<reasoning>.+?</reasoning>\s*<answer>.+?</answer>\s*", re.DOTALL)

    def format_reward(prompts, completions, **_):
        return [1.0 if tagged.fullmatch(c) else 0.0 for c in completions]

    opt = optax.chain(optax.clip_by_global_norm(0.1), optax.adamw(3e-6, b1=0.9, b2=0.99, weight_decay=0.1))
    training = rl.RLTrainingConfig(actor_optimizer=opt, max_steps=steps, eval_every_n_steps=10**9,
                                   mini_batch_size=GRPO["batch"], metrics_logging_options=tensorboard(out))
    rollout = RolloutConfig(max_tokens_to_generate=GRPO["max_new"], max_prompt_length=GRPO["max_prompt"],
                            kv_cache_size=GRPO["max_prompt"] + GRPO["max_new"] + 8, temperature=0.9, top_p=1.0,
                            top_k=50, eos_tokens=[ids["eos"], ids["end_of_turn"]])
    config = rl.ClusterConfig(role_to_mesh={r: mesh for r in (rl.Role.ACTOR, rl.Role.REFERENCE, rl.Role.ROLLOUT)},
                              rollout_engine="vanilla", training_config=training, rollout_config=rollout)
    cluster = rl.RLCluster(actor=actor, reference=policy, tokenizer=tok, cluster_config=config)
    learner = GRPOLearner(rl_cluster=cluster, reward_fns=[format_reward],
                          algo_config=GRPOConfig(num_generations=GRPO["generations"], beta=0.08, epsilon=0.2))
    timer = Timed(steps)
    learner.train(timer(batches))
    return timer.gaps(warmup)


# --- Gemma3-1B throughput and MFU ----------------------------------------------------------------------------
def mfu(size: str, steps: int, batch: int, seq: int) -> None:
    """Full fine-tuning with random weights through our trainer; MFU = (6N + 12 L H Q T) x tokens/s / peak."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from tunix.models.gemma3 import model as gemma3
    from tunix.sft import peft_trainer

    from tunixhack.train import data
    from tunixhack.train import model as models
    from tunixhack.train import runs
    sft = load_script(ROOT / "train" / "sft.py", "train_sft")

    if size == "1b":
        cfg = gemma3.ModelConfig.gemma3_1b_it()
    else:
        cfg = models.hf.model_config(dict(models.TINY), "bfloat16")
    mesh = models.make_mesh(None, cfg.num_heads)
    with runs.mesh_context(mesh):
        net = gemma3.Gemma3(cfg, rngs=nnx.Rngs(params=0))
    state = nnx.state(net)
    nnx.update(net, jax.device_put(state, nnx.get_named_sharding(state, mesh)))
    params = sum(x.size for x in jax.tree.leaves(state))
    rng = np.random.default_rng(0)
    batches = [peft_trainer.TrainingInput(input_tokens=rng.integers(4, cfg.num_embed, (batch, seq), dtype=np.int32),
                                          input_mask=np.ones((batch, seq), np.int32)) for _ in range(steps)]
    args = argparse.Namespace(lr=1e-5, warmup=0.0, clip=1.0, weight_decay=0.0, eval_every=10**6,
                              save_every=10**6, keep=1, grad_accum=1)
    with tempfile.TemporaryDirectory() as out:
        trainer, _ = sft.make_trainer(net, args, steps, Path(out), mesh)
        trainer.with_gen_model_input_fn(data.model_inputs(0))
        timer = Timed(steps)
        with runs.mesh_context(mesh):
            trainer.train(timer(batches))
    step = statistics.median(timer.gaps(min(2, steps - 2)))
    tokens_per_sec = batch * seq / step
    flops_per_token = 6 * params + 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq
    kind = jax.devices()[0].device_kind
    peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
    print(f"{size}: {params / 1e9:.2f} B params on {jax.device_count()} x {kind}, mesh {dict(mesh.shape)}, "
          f"batch {batch} x {seq}, dtype {jnp.dtype(cfg.param_dtype).name}")
    print(f"  step {step * 1e3:.0f} ms, {tokens_per_sec:,.0f} tokens/s, "
          f"{flops_per_token * tokens_per_sec / 1e12:.1f} TFLOP/s" +
          (f", MFU {100 * flops_per_token * tokens_per_sec / (peak * jax.device_count()):.1f}%" if peak else
           " (no bf16 peak known for this device: MFU not computed)"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="steps per measurement, warm-up included")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the median (compilation)")
    p.add_argument("--reps", type=int, default=3, help="runs of each side, alternated")
    p.add_argument("--mfu", choices=["1b", "tiny"], help="measure full-fine-tuning throughput and MFU instead")
    p.add_argument("--batch", type=int, default=8, help="--mfu: sequences per step")
    p.add_argument("--seq", type=int, default=1024, help="--mfu: tokens per sequence")
    args = p.parse_args()
    runs_setup()
    if args.mfu:
        mfu(args.mfu, args.steps, args.batch, args.seq)
        return
    with tempfile.TemporaryDirectory() as tmp:
        global TRACES
        TRACES = Path(tmp) / "traces.jsonl"
        TRACES.write_text(scale_fixture(2000))
        sft_gaps = compare(args.reps, lambda r: sft_ours(args.steps, args.warmup, f"{tmp}/sft{r}"),
                           lambda r: sft_direct(args.steps, args.warmup, f"{tmp}/direct-sft{r}"))
        report(f"SFT  (tiny, LoRA r{SFT['rank']}, {SFT['batch']} x {SFT['max_len']} tokens)", sft_gaps,
               SFT["batch"] * SFT["max_len"])
        steps = max(args.warmup + 5, args.steps // 2)
        grpo_gaps = compare(args.reps, lambda r: grpo_ours(steps, args.warmup, f"{tmp}/sft0", f"{tmp}/grpo{r}"),
                            lambda r: grpo_direct(steps, args.warmup, f"{tmp}/sft0", f"{tmp}/direct-grpo{r}"))
        report(f"GRPO (tiny, {GRPO['batch']} prompts x {GRPO['generations']}, {GRPO['max_new']} new tokens)",
               grpo_gaps, None)


def scale_fixture(rows: int) -> str:
    """The fixture's rows repeated under new ids, as a dataset of realistic size."""
    import json

    base = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    return "".join(json.dumps({**base[i % len(base)], "id": f"bench/{i}"}) + "\n" for i in range(rows))


def compare(reps: int, ours, direct) -> dict:
    """Step gaps of both sides, alternating runs so that a noisy neighbour hits both alike."""
    gaps = {"ours": [], "direct": []}
    for r in range(reps):
        gaps["ours"] += ours(r)
        gaps["direct"] += direct(r)
    return gaps


def report(title: str, gaps: dict, tokens: int | None) -> None:
    """Median step time, and the 20th percentile: on a shared machine the fast steps show the cost itself."""
    def p20(values):
        return statistics.quantiles(values, n=5)[0]

    med = {k: statistics.median(v) for k, v in gaps.items()}
    fast = {k: p20(v) for k, v in gaps.items()}
    rate = f", ours {tokens / med['ours']:,.0f} padded tokens/s" if tokens else ""
    print(f"{title}: median step ours {med['ours'] * 1e3:.1f} ms, direct Tunix {med['direct'] * 1e3:.1f} ms "
          f"(ratio {med['ours'] / med['direct']:.3f}); 20th percentile ours {fast['ours'] * 1e3:.1f} ms, direct "
          f"{fast['direct'] * 1e3:.1f} ms (ratio {fast['ours'] / fast['direct']:.3f}){rate}; "
          f"{len(gaps['ours'])} + {len(gaps['direct'])} steps")


def runs_setup() -> None:
    from tunixhack.train import runs

    runs.setup_jax()  # the persistent compilation cache: the warm-up steps are left out anyway


if __name__ == "__main__":
    main()
