"""Supervised fine-tuning of Gemma3 on trace rows with Tunix's PeftTrainer: LoRA (qwix) or every weight.

    python train/sft.py --model tiny --data sft.jsonl --steps 30 --out runs/sft
    python train/sft.py --model gemma3-1b-it --data sft.jsonl --batch 8 --max-len 1024 --out ckpts/sft

Re-running the same command resumes from the latest checkpoint in --out (a different config is refused).
Ctrl-C or --time-budget stops after the current step and saves it. Writes --out/metrics.jsonl (step, loss,
eval_loss, learning_rate, tokens_per_sec, grad_norm), TensorBoard events in --out/tb, and prints a few
greedy samples from the holdout at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunixhack.train import runs

from tunixhack.errors import UserError
from tunixhack.traces import file_fingerprint


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="trace rows (.jsonl), e.g. crap.py mix's sft.jsonl")
    data.add_argument("--eval-data", help="holdout rows (default: --eval-frac of --data, chosen by row id)")
    data.add_argument("--eval-frac", type=float, default=0.05, help="share of --data held out for eval_loss")
    data.add_argument("--max-len", type=int, default=1024, help="tokens per example; longer rows are dropped")
    data.add_argument("--seed", type=int, default=0, help="shuffle, holdout and LoRA initialisation")
    lora = p.add_argument_group("LoRA (qwix)")
    lora.add_argument("--lora-rank", type=int, default=64, help="0 fine-tunes every weight instead")
    lora.add_argument("--lora-alpha", type=float, default=64.0)
    opt = p.add_argument_group("optimisation (AdamW, linear warmup then cosine decay)")
    opt.add_argument("--steps", type=int, help="optimizer steps (default: one epoch)")
    opt.add_argument("--batch", type=int, default=8, help="examples per micro-batch (a multiple of the mesh's fsdp)")
    opt.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    opt.add_argument("--lr", type=float, default=2e-4, help="peak learning rate")
    opt.add_argument("--warmup", type=float, default=0.05, help="warmup steps as a share of --steps")
    opt.add_argument("--weight-decay", type=float, default=0.01)
    opt.add_argument("--clip", type=float, default=1.0, help="gradient clipping by global norm")
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help="run folder: run.json, metrics.jsonl, tb/, ckpts/")
    out.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps (and at the end)")
    out.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    out.add_argument("--eval-every", type=int, default=50, help="eval_loss on the holdout every N steps")
    out.add_argument("--samples", type=int, default=3, help="greedy samples printed at the end")
    out.add_argument("--time-budget", type=float, help="minutes; stop (and save) after the step that passes it")
    out.add_argument("--force", action="store_true", help="resume a folder even if its config differs")
    return p.parse_args(argv)


def main(argv=None, batches=None) -> None:
    """`batches` (bench/train_step.py) wraps the stream of training batches, e.g. to time each step."""
    args = parse_args(argv)
    from tunixhack.train import data as traces
    from tunixhack.train import model as models

    source = models.resolve(args.model)
    mesh = models.make_mesh(args.mesh)
    if args.batch % mesh.shape["fsdp"]:
        raise UserError(f"--batch {args.batch} must be a multiple of the mesh's fsdp size {mesh.shape['fsdp']}")
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    rows = traces.read_rows(args.data)
    if args.eval_data:
        train_rows, eval_rows = rows, traces.read_rows(args.eval_data)
    else:
        eval_rows = [r for r in rows if traces.is_holdout(r, args.eval_frac, args.seed)]
        train_rows = [r for r in rows if not traces.is_holdout(r, args.eval_frac, args.seed)]
    train = traces.tokenize_sft(train_rows, tok, ids, args.max_len)
    holdout = traces.tokenize_sft(eval_rows, tok, ids, args.max_len)
    print(f"data: train {train.summary()}; holdout {holdout.summary() or 'none'}", file=sys.stderr)
    steps = args.steps or max(1, len(train.examples) // (args.batch * args.grad_accum))

    config = {"stage": "sft", "model": source.name, "dtype": args.dtype, "init": None,
              "lora": {"rank": args.lora_rank, "alpha": args.lora_alpha} if args.lora_rank else None,
              "data": str(Path(args.data).resolve()), "data_sha256": file_fingerprint(Path(args.data)),
              "eval_data": args.eval_data, "eval_frac": args.eval_frac, "max_len": args.max_len, "seed": args.seed,
              "batch": args.batch, "grad_accum": args.grad_accum, "lr": args.lr, "warmup": args.warmup,
              "weight_decay": args.weight_decay, "clip": args.clip, "steps": steps, "save_every": args.save_every,
              "eval_every": args.eval_every}
    out = runs.prepare_out(args.out, config, args.force)

    base, cfg = models.load_base(source, mesh, args.dtype)
    net = models.apply_lora(base, mesh, args.lora_rank, args.lora_alpha, args.seed) if args.lora_rank else base

    stop = runs.StopControl(args.time_budget)
    stream = traces.sft_dataset(train.examples, args.batch, args.seed)
    train_ds = Counted(stop.batches(batches(stream) if batches else stream), ids["pad"])
    eval_ds = traces.sft_dataset(holdout.examples, args.batch, args.seed, repeat=False) if holdout.examples else None
    trainer, rates = make_trainer(net, args, steps, out, mesh)
    stop.steps_done = lambda: trainer.train_steps
    trainer.with_gen_model_input_fn(traces.model_inputs(ids["pad"]))
    trainer.with_training_hooks(runs.step_hooks(rates, train_ds))
    with runs.mesh_context(mesh):  # PeftTrainer shards each batch over the mesh active here
        trainer.train(train_ds, eval_ds)  # saves the last step when the batches end (or a stop ends them)
    print(f"step {trainer.train_steps}: checkpoint in {out / 'ckpts'}; metrics in {out / 'metrics.jsonl'}",
          file=sys.stderr)
    stop.finish(trainer.train_steps)
    print_samples(net, cfg, tok, ids, eval_rows or train_rows, args.samples)


def make_trainer(net, args, steps: int, out: Path, mesh):
    """(PeftTrainer, the learning rate of each step): AdamW, linear warmup then cosine decay, clipping."""
    import optax
    import orbax.checkpoint as ocp
    from tunix.sft import peft_trainer

    warmup = int(args.warmup * steps)
    # Warmup starts above 0 so that the first step is not wasted.
    schedule = optax.warmup_cosine_decay_schedule(args.lr / (warmup + 1), args.lr, max(warmup, 1),
                                                  max(steps, warmup + 1), end_value=args.lr * 0.1)
    optimizer = optax.chain(optax.clip_by_global_norm(args.clip),
                            optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=args.weight_decay))
    config = peft_trainer.TrainingConfig(
        max_steps=steps, eval_every_n_steps=args.eval_every, data_sharding_axis=("fsdp",),
        gradient_accumulation_steps=args.grad_accum if args.grad_accum > 1 else None,
        checkpoint_root_directory=str((out / "ckpts").resolve()),
        checkpointing_options=ocp.CheckpointManagerOptions(save_interval_steps=args.save_every, max_to_keep=args.keep),
        metrics_logging_options=runs.metrics_options(out), pbar_description="SFT")
    with runs.mesh_context(mesh):
        return peft_trainer.PeftTrainer(net, optimizer, config), runs.learning_rates(schedule, steps)


class Counted:
    """The training batches; `previous` is the real (non-pad) token count of the batch before the last one."""

    def __init__(self, dataset, pad_id: int):
        self.dataset, self.pad_id, self.current, self.previous = dataset, pad_id, 0, 0

    def __iter__(self):
        for batch in self.dataset:
            self.previous, self.current = self.current, int((batch.input_tokens != self.pad_id).sum())
            yield batch


def print_samples(net, cfg, tok, ids, rows, n: int) -> None:
    from tunixhack.train import data as traces
    from tunixhack.train.decode import Greedy

    if n <= 0:
        return
    greedy = Greedy(net, cfg, tok, ids, max_new_tokens=128 if cfg.num_layers < 4 else 512)
    prompts = [traces.render_prompt(r["prompt"]) for r in rows[:n]]
    prompts = [p for p in prompts if greedy.fits(p)]
    for prompt, reply in zip(prompts, greedy(prompts, batch=max(1, len(prompts)))):
        question = prompt.split("\n", 1)[1].split("\n\n")[0]
        print(f"\n--- {question[:200]}\n{reply[:1000]}", file=sys.stderr)


if __name__ == "__main__":
    runs.cli(main)
