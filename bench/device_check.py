"""Real-size Gemma3-1B (random weights) on whatever accelerator JAX finds, at the Kaggle notebook's shapes.

    bash bench/device_check.sh                 # on a GPU or TPU machine: under 8 minutes; appends to bench/README.md
    python bench/device_check.py --tiny --allow-cpu --no-readme    # the same code paths on a CPU, tiny model

Reports, for every mesh that applies (the notebook's 2,4 on 8 chips, 8,1 on 8, 1,1 on one):
  SFT through our trainer (LoRA rank 64 over a bfloat16 base, float32 adapters): step time, tokens/s, MFU,
  peak memory per device; and one GRPO step of the notebook's shape, split into rollout and the rest (reference
  log-probs, rewards, the update). Shapes: tunixhack/train/kaggle.py. On a CPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tunixhack.generate.scripts import load_script
from tunixhack.train import kaggle

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "bench" / "README.md"
PEAK_BF16 = {"TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v6 lite": 918e12, "TPU v4": 275e12,
             "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
TINY_SFT = {"batch": 8, "grad_accum": 2, "max_len": 128, "lora_rank": 8, "lora_alpha": 16.0}
TINY_GRPO = {"batch": 4, "micro_batch": 2, "rollout_batch": 4, "generations": 2, "max_new_tokens": 16,
             "max_prompt_len": 64}


class WideVocab:
    """A tokenizer for a random model with Gemma's 262k vocabulary: the tiny SentencePiece model, with ids
    beyond its vocabulary decoded modulo its size (the text of a random model's rollout does not matter)."""

    def __init__(self, sp):
        self.sp = sp

    def encode(self, text, **_):
        return self.sp.encode(text)

    def decode(self, ids, **_):
        return self.sp.decode([int(i) % self.sp.get_piece_size() for i in ids])

    def __getattr__(self, name):
        return getattr(self.sp, name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="the tiny model at small shapes (to try the code paths)")
    p.add_argument("--allow-cpu", action="store_true", help="measure on a CPU too")
    p.add_argument("--steps", type=int, default=8, help="SFT steps per mesh (the first ones compile)")
    p.add_argument("--no-readme", action="store_true", help="print only; do not append to bench/README.md")
    args = p.parse_args()
    import jax

    from tunixhack.train import runs

    runs.setup_jax()
    devices = jax.devices()
    if devices[0].platform == "cpu" and not args.allow_cpu:
        print("device check: no accelerator here (JAX sees only the CPU); nothing measured")
        return
    kind, n = devices[0].device_kind, len(devices)
    meshes = [kaggle.MESH] if n == 8 else []
    meshes += [f"{n},1"] if n > 1 else ["1,1"]
    rows = []
    for mesh in meshes:
        rows.append(measure_sft(args, mesh))
    rows.append(measure_grpo(args, meshes[0]))
    header = (f"{datetime.date.today()}, {n} x {kind}, jax {jax.__version__}, "
              f"{'tiny model' if args.tiny else 'Gemma3-1B (random weights, bfloat16 base)'}, nothing else running")
    table = ["| stage | mesh | shape | step s | tokens/s | MFU (6N) | peak GiB/device | notes |",
             "|---|---|---|---:|---:|---:|---:|---|"] + [row_line(r) for r in rows]
    print(header + "\n\n" + "\n".join(table))
    if not args.no_readme:
        with README.open("a") as f:
            f.write(f"\n### device_check.py: {header}\n\n" + "\n".join(table) + "\n")


def row_line(r: dict) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    return (f"| {r['stage']} | {r['mesh']} | {r['shape']} | {fmt(r.get('step'), '.3f')} | "
            f"{fmt(r.get('tokens_per_sec'), ',.0f')} | {fmt(r.get('mfu'), '.1%')} | {fmt(r.get('peak_gib'), '.2f')} | "
            f"{r.get('notes', '')} |")


def model_and_tokenizer(tiny: bool, mesh):
    """(bfloat16 Gemma3 on the mesh, cfg, tokenizer, ids): Gemma3-1B with random weights, or the tiny model."""
    import jax
    from flax import nnx
    from tunix.models.gemma3 import model as gemma3

    from tunixhack.train import model as models

    source = models.resolve("tiny")
    tok = models.load_tokenizer(source)
    if tiny:
        base, cfg = models.load_base(source, mesh, "bfloat16")
        return base, cfg, tok, models.token_ids(tok)
    import dataclasses

    import jax.numpy as jnp

    cfg = dataclasses.replace(gemma3.ModelConfig.gemma3_1b_it(), param_dtype=jnp.bfloat16)
    net = gemma3.Gemma3(cfg, rngs=nnx.Rngs(params=0))
    state = nnx.state(net)
    nnx.update(net, jax.device_put(state, nnx.get_named_sharding(state, mesh)))
    return net, cfg, WideVocab(tok), models.token_ids(tok)


def peak_gib() -> float | None:
    import jax

    stats = [d.memory_stats() or {} for d in jax.local_devices()]
    peaks = [s.get("peak_bytes_in_use") for s in stats if s.get("peak_bytes_in_use") is not None]
    return max(peaks) / 2**30 if peaks else None


def measure_sft(args, mesh_spec: str) -> dict:
    import jax
    import numpy as np
    from flax import nnx
    from tunix.sft import peft_trainer

    from tunixhack.train import data, lora
    from tunixhack.train import model as models
    from tunixhack.train import runs

    sft = load_script(ROOT / "train" / "sft.py", "train_sft")
    shape = TINY_SFT if args.tiny else kaggle.SFT
    mesh = models.make_mesh(mesh_spec)
    base, cfg, _, ids = model_and_tokenizer(args.tiny, mesh)
    net = lora.apply_lora(base, mesh, shape["lora_rank"], shape["lora_alpha"])
    params = sum(x.size for x in jax.tree.leaves(nnx.state(base, nnx.Param)))
    rng = np.random.default_rng(0)
    batch, seq = shape["batch"], shape["max_len"]
    micro = [peft_trainer.TrainingInput(input_tokens=rng.integers(4, cfg.num_embed, (batch, seq), dtype=np.int32),
                                        input_mask=np.ones((batch, seq), np.int32))
             for _ in range(args.steps * shape["grad_accum"])]
    settings = argparse.Namespace(lr=2e-4, warmup_steps=1, clip=1.0, weight_decay=0.0, eval_every=10**6,
                                  save_every=10**6, keep=1, grad_accum=shape["grad_accum"])
    times = []

    def timed(stream):
        for i, b in enumerate(stream):
            if i % shape["grad_accum"] == 0:
                times.append(time.perf_counter())
            yield b

    with tempfile.TemporaryDirectory() as out:
        trainer = sft.make_trainer(net, settings, args.steps, Path(out), mesh)
        trainer.with_gen_model_input_fn(data.model_inputs(ids["pad"]))
        with runs.mesh_context(mesh):
            trainer.train(timed(micro))
        jax.effects_barrier()
        times.append(time.perf_counter())
    step = statistics.median([b - a for a, b in zip(times, times[1:])][2:] or [times[-1] - times[0]])
    tokens = batch * seq * shape["grad_accum"]
    flops = 6 * params + 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq
    kind = jax.devices()[0].device_kind
    peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
    return {"stage": "SFT (LoRA)", "mesh": mesh_spec, "step": step, "tokens_per_sec": tokens / step,
            "shape": f"{shape['grad_accum']} x {batch} x {seq}, r{shape['lora_rank']}",
            "mfu": flops * tokens / step / (peak * mesh.size) if peak else None, "peak_gib": peak_gib(),
            "notes": f"{params / 1e9:.2f} B params; MFU counts 6N + attention per token (LoRA skips weight "
                     f"gradients: the chips do about 2/3 of that)"}


def measure_grpo(args, mesh_spec: str) -> dict:
    """One GRPO step after a warm-up step, through grpo.py's own cluster and learner; rollout timed apart."""
    from tunixhack.train import lora, rewards, rl
    from tunixhack.train import model as models

    grpo = load_script(ROOT / "train" / "grpo.py", "train_grpo")
    shape = TINY_GRPO if args.tiny else kaggle.GRPO
    mesh = models.make_mesh(mesh_spec)
    base, cfg, tok, ids = model_and_tokenizer(args.tiny, mesh)
    rank, alpha = (8, 16.0) if args.tiny else (64, 64.0)
    actor, reference = (lora.apply_lora(base, mesh, rank, alpha) for _ in "ar")  # as grpo.py: two sets, one base
    settings = grpo.parse_args(["--data", "-", "--out", "-", "--steps", "3", "--batch", str(shape["batch"]),
                                "--generations", str(shape["generations"]),
                                "--max-new-tokens", str(shape["max_new_tokens"]),
                                "--max-prompt-len", str(shape["max_prompt_len"]), "--save-every", "1000000"])
    rl.register()
    prompt = "<start_of_turn>user\nWhat is 12 + 30? Think step by step.<end_of_turn>\n<start_of_turn>model\n"
    batches = [{"prompts": [prompt] * shape["batch"], "check": ['{"kind": "math", "gold": "42"}'] * shape["batch"]}
               for _ in range(3)]  # the first compiles; the second is timed, from its pull to the next one
    stamps = []

    def timed(stream):
        for b in stream:
            stamps.append(time.perf_counter())
            yield b

    with tempfile.TemporaryDirectory() as out:
        cluster = grpo.make_cluster(actor, reference, tok, ids, settings, Path(out), mesh,
                                    (shape["micro_batch"], shape["rollout_batch"]))
        learner = grpo.make_learner(cluster, rewards.select("format,math"), settings)
        learner.train(timed(batches))
    step = stamps[2] - stamps[1]  # not the last step: the cluster's final save follows it
    calls = len(cluster.rollout.seconds) // 3
    rollout = sum(cluster.rollout.seconds[calls:2 * calls])
    completions = shape["batch"] * shape["generations"]
    return {"stage": "GRPO step", "mesh": mesh_spec, "step": step, "peak_gib": peak_gib(),
            "shape": f"{shape['batch']} prompts x {shape['generations']}, {shape['max_new_tokens']} new",
            "tokens_per_sec": completions * shape["max_new_tokens"] / rollout if rollout else None,
            "notes": f"rollout {rollout:.2f} s, the rest (reference, rewards, update) {step - rollout:.2f} s; "
                     f"tokens/s: generated, at most max-new per completion"}


if __name__ == "__main__":
    sys.exit(main())
