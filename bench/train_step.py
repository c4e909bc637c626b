"""Training step time: our SFT and GRPO scripts against the same loops written directly on Tunix.

    python bench/train_step.py                      # tiny Gemma3 (CPU): overhead ratio, target <= 1.05
    python bench/train_step.py --mesh 2,4           # on a given device mesh (8 simulated CPU devices: XLA_FLAGS)

Real-size Gemma3-1B step times, memory and MFU: bench/device_check.sh.

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

from tunixhack.generate.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "train" / "fixtures" / "traces.jsonl"
TRACES = FIXTURE  # replaced in main() by a 2,000-row copy: grain's index shuffle is slow on tiny datasets only
SFT = dict(batch=8, max_len=256, rank=8, alpha=16.0)
GRPO = dict(batch=2, generations=2, max_new=16, max_prompt=128, rank=8, alpha=16.0)
MESH = None  # --mesh FSDP,TP (None: every device)


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
              str(SFT["alpha"]), "--eval-every", str(10**6), "--save-every", str(10**6), "--samples", "0",
              *(["--mesh", MESH] if MESH else [])], timer)
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
    from tunix.models.gemma3 import params_safetensors
    from tunix.sft import peft_trainer, utils

    from tunixhack.train import data, hf, runs
    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models

    source = models.resolve("tiny")
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    examples = data.tokenize_sft(data.read_rows(str(TRACES), "sft")[0], tok, ids, SFT["max_len"]).examples
    mesh = models.make_mesh(MESH)
    cfg = hf.model_config(hf.read_config(source.path), "float32")
    base = params_safetensors.create_model_from_safe_tensors(source.path, cfg, mesh)
    lora = adapters.apply_lora(base, mesh, SFT["rank"], SFT["alpha"])
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
    with runs.mesh_context(mesh):
        trainer.train(timer(batches))
    return timer.gaps(warmup)


# --- GRPO --------------------------------------------------------------------------------------------------
def grpo_ours(steps: int, warmup: int, init: str, out: str) -> list[float]:
    grpo = load_script(ROOT / "train" / "grpo.py", "train_grpo")

    timer = Timed(steps)
    grpo.main(["--init", init, "--data", str(TRACES), "--steps", str(steps), "--rewards", "format,math",
               "--out", out, "--batch", str(GRPO["batch"]), "--generations", str(GRPO["generations"]),
               "--max-new-tokens", str(GRPO["max_new"]), "--max-prompt-len", str(GRPO["max_prompt"]),
               "--save-every", str(10**6), *(["--mesh", MESH] if MESH else [])], timer)
    return timer.gaps(warmup)


def grpo_direct(steps: int, warmup: int, init: str, out: str) -> list[float]:
    """RLCluster + GRPOLearner with a hand-written format reward, same model and rollout settings."""
    import re

    import optax
    from tunix.rl import rl_cluster as rl
    from tunix.rl.grpo.grpo_learner import GRPOConfig, GRPOLearner
    from tunix.rl.rollout.base_rollout import RolloutConfig

    from tunixhack.train import data
    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models
    from tunixhack.train import runs

    mesh = models.make_mesh(MESH)
    sft, cfg, tok, run = runs.load_run(init, mesh)  # the SFT adapter, as ours starts
    ids = models.token_ids(tok)
    base, _, _ = runs.load_base_of(run, mesh)  # actor and reference share one base, as in ours
    actor, reference = (adapters.apply_lora(base, mesh, run["lora"]["rank"], run["lora"]["alpha"]) for _ in "ar")
    for net in (actor, reference):
        adapters.set_adapters(net, adapters.adapters(sft))
    # The prompt batches ours sees (same seed), without the reward columns: the rollouts are the same.
    prompts = data.grpo_prompts(data.read_rows(str(TRACES), "rl")[0], tok, GRPO["max_prompt"]).examples
    stream = iter(data.grpo_dataset(prompts, GRPO["batch"], seed=0))
    batches = [{"prompts": next(stream)["prompts"]} for _ in range(steps)]
    tagged = re.compile(r"\s*<reasoning>.+?</reasoning>\s*<answer>.+?</answer>\s*", re.DOTALL)

    def format_reward(prompts, completions, **_):
        return [1.0 if tagged.fullmatch(c) else 0.0 for c in completions]

    opt = optax.chain(optax.clip_by_global_norm(0.1), optax.adamw(2e-5, b1=0.9, b2=0.99, weight_decay=0.1))
    training = rl.RLTrainingConfig(actor_optimizer=opt, max_steps=steps, eval_every_n_steps=10**9,
                                   mini_batch_size=GRPO["batch"], data_sharding_axis=("fsdp",),
                                   metrics_logging_options=tensorboard(out))
    rollout = RolloutConfig(max_tokens_to_generate=GRPO["max_new"], max_prompt_length=GRPO["max_prompt"],
                            kv_cache_size=GRPO["max_prompt"] + GRPO["max_new"] + 8, temperature=0.9, top_p=1.0,
                            top_k=50, eos_tokens=[ids["eos"], ids["end_of_turn"]])
    config = rl.ClusterConfig(role_to_mesh={r: mesh for r in (rl.Role.ACTOR, rl.Role.REFERENCE, rl.Role.ROLLOUT)},
                              rollout_engine="vanilla", training_config=training, rollout_config=rollout)
    cluster = rl.RLCluster(actor=actor, reference=reference, tokenizer=tok, cluster_config=config)
    learner = GRPOLearner(rl_cluster=cluster, reward_fns=[format_reward],
                          algo_config=GRPOConfig(num_generations=GRPO["generations"], beta=0.08, epsilon=0.2))
    timer = Timed(steps)
    learner.train(timer(batches))
    return timer.gaps(warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="steps per measurement, warm-up included")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the median (compilation)")
    p.add_argument("--reps", type=int, default=3, help="runs of each side, alternated")
    p.add_argument("--mesh", metavar="FSDP,TP", help="device mesh for both sides (default: every device)")
    args = p.parse_args()
    global MESH
    MESH = args.mesh
    runs_setup()
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
