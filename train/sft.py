"""Supervised fine-tuning of Gemma3 on trace rows with Tunix's PeftTrainer: LoRA (qwix) or every weight.

    python train/sft.py --model tiny --data data/mix --steps 30 --out runs/sft
    python train/sft.py --model gemma3-1b-it --data USER/NAME --time-budget 150 --out runs/sft

--data is a trace .jsonl, a mix folder, a dataset folder as crap.py push stages it, or a Hub dataset id; SFT
reads its `sft` split (--split). It makes --max-epochs passes over it; with a --time-budget that allows more it
goes on with rows of the --fill-split (once each, at most --fill-share of them; their ids go to sft_fill_ids.txt
so that GRPO skips them), and
lays the learning-rate schedule over the steps the budget allows, timed as it runs. LoRA adapters (and, with
--lora-rank 0, every weight) train in float32 with float32 Adam state whatever the base dtype. The loss is
computed on float32 logits, 128 positions at a time, so the full [batch, length, 262k] logits never exist.

Re-running the same command resumes from the latest checkpoint in --out (a different config is refused).
Ctrl-C or the budget stops after the current step and saves it. Shows each step's loss, tokens/s, step time
and ETA as it trains. Writes --out/metrics.jsonl (loss, eval_loss, learning_rate, tokens_per_sec, step_seconds,
grad_norm), curves.png (loss and learning rate), TensorBoard events in --out/tb, run.json (config, data read,
dtypes, budget), and prints a few greedy samples from the holdout at the end.
"""

from __future__ import annotations

import argparse
import sys

from tunixhack.errors import UserError
from tunixhack.generate.argtypes import show_defaults
from tunixhack.train import budget as budgets
from tunixhack.train import plots, progress, runs

BYTES_PER_PARAM_FULL = 16  # float32 weights, gradients and Adam's two moments


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="a trace .jsonl, a mix folder, a pushed dataset folder or USER/NAME")
    data.add_argument("--split", default="sft", help="the split to train on (default sft)")
    data.add_argument("--fill-split", default="rl",
                      help="with --time-budget: rows of this split once the epochs are done ('' for none)")
    data.add_argument("--fill-share", type=float, default=0.5,
                      help="at most this share of --fill-split goes to SFT; the rest stays GRPO's (default 0.5)")
    data.add_argument("--max-epochs", type=int, default=2, help="passes over --split (default 2)")
    data.add_argument("--eval-data", help="holdout rows, any --data form, its eval split (default: --eval-frac)")
    data.add_argument("--eval-frac", type=float, default=0.05, help="share of --data held out for eval_loss")
    data.add_argument("--max-len", type=int, default=1024, help="tokens per example; longer rows are dropped")
    data.add_argument("--seed", type=int, default=0, help="shuffle, holdout and LoRA initialisation")
    lora = p.add_argument_group("LoRA (qwix, float32 adapters)")
    lora.add_argument("--lora-rank", type=int, default=64,
                      help="0 fine-tunes every weight instead, in float32 (weights and compute)")
    lora.add_argument("--lora-alpha", type=float, default=64.0)
    opt = p.add_argument_group("optimisation (AdamW, linear warmup then cosine decay to the stop)")
    opt.add_argument("--steps", type=int, help="optimizer steps, over as many passes as they take (default: "
                                               "--max-epochs, then --fill-split rows while the budget lasts)")
    opt.add_argument("--batch", type=int, default=8, help="examples per micro-batch, a multiple of the mesh's fsdp "
                                                          "(default 8; at most the examples there are)")
    opt.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    opt.add_argument("--lr", type=float, default=2e-4, help="peak learning rate")
    opt.add_argument("--warmup-steps", type=int, default=20, help="linear warmup (at most a tenth of the schedule)")
    opt.add_argument("--weight-decay", type=float, default=0.01)
    opt.add_argument("--clip", type=float, default=1.0, help="gradient clipping by global norm")
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help="run folder: run.json, metrics.jsonl, tb/, ckpts/")
    out.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps (and at the end)")
    out.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    out.add_argument("--eval-every", type=int, default=50, help="eval_loss on the holdout every N steps")
    out.add_argument("--samples", type=int, default=3, help="greedy samples printed at the end")
    out.add_argument("--time-budget", type=float, help="minutes; the schedule ends, and training stops, there")
    out.add_argument("--force", action="store_true", help="resume a folder even if its config differs")
    return show_defaults(p).parse_args(argv)


def main(argv=None, batches=None) -> None:
    """`batches` (bench/train_step.py) wraps the stream of training batches, e.g. to time each step."""
    args = parse_args(argv)
    if args.max_epochs < 1:  # checked before JAX is imported: a typo is answered at once
        raise UserError(f"--max-epochs must be at least 1, got {args.max_epochs}")
    if not 0 <= args.fill_share <= 1:
        raise UserError(f"--fill-share must be between 0 and 1, got {args.fill_share}")
    from tunixhack.train import data as traces
    from tunixhack.train import lora as adapters
    from tunixhack.train import loss
    from tunixhack.train import model as models

    source = models.resolve(args.model)
    mesh = models.make_mesh(args.mesh)
    if args.batch % mesh.shape["fsdp"]:
        raise UserError(f"--batch {args.batch} must be a multiple of the mesh's fsdp size {mesh.shape['fsdp']}")
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    rows, read = traces.read_rows(args.data, args.split)
    if args.eval_data:
        train_rows, (eval_rows, _) = rows, traces.read_rows(args.eval_data, "eval")
    else:
        eval_rows = [r for r in rows if traces.is_holdout(r, args.eval_frac, args.seed)]
        train_rows = [r for r in rows if not traces.is_holdout(r, args.eval_frac, args.seed)]
    train = traces.tokenize_sft(train_rows, tok, ids, args.max_len)
    holdout = traces.tokenize_sft(eval_rows, tok, ids, args.max_len)
    fill = fill_rows(args, read) if args.time_budget and not args.steps else []
    cap_batch(args, len(train.examples), mesh.shape["fsdp"])
    print(f"data: {read.rows} rows read ({read.form}, split {read.split}); train {train.summary()}; holdout "
          f"{holdout.summary() or 'none'}" + (f"; up to {len(fill)} {args.fill_split} rows after "
                                               f"{args.max_epochs} epochs" if fill else ""), file=sys.stderr)
    per_step = args.batch * args.grad_accum
    # --steps, when given, is what the user wants: as many passes as it takes. Else --max-epochs, then the fill rows.
    epochs = max(args.max_epochs, -(-args.steps * per_step // max(1, len(train.examples)))) if args.steps \
        else args.max_epochs
    stream = traces.SftStream(train.examples, args.batch, args.seed, epochs, fill,
                              encode=lambda row: traces.encode_sft(row, tok, ids, args.max_len))
    max_steps = max(1, min(args.steps or 10**12, (stream.epoch_examples + len(stream.fill)) // per_step))

    param_dtype = args.dtype if args.lora_rank else "float32"  # full fine-tuning keeps float32 master weights
    config = {"stage": "sft", "model": source.name, "dtype": args.dtype, "param_dtype": param_dtype, "init": None,
              "lora": {"rank": args.lora_rank, "alpha": args.lora_alpha} if args.lora_rank else None,
              "data": {k: v for k, v in read.as_dict().items() if k != "files"},
              "fill_split": args.fill_split if fill else None, "fill_share": args.fill_share if fill else None,
              "max_epochs": args.max_epochs,
              "eval_data": args.eval_data, "eval_frac": args.eval_frac, "max_len": args.max_len, "seed": args.seed,
              "batch": args.batch, "grad_accum": args.grad_accum, "lr": args.lr, "warmup_steps": args.warmup_steps,
              "weight_decay": args.weight_decay, "clip": args.clip, "steps": max_steps,
              "save_every": args.save_every, "eval_every": args.eval_every}
    out = runs.prepare_out(args.out, config, args.force)

    base, cfg = models.load_base(source, mesh, param_dtype)
    if not args.lora_rank:
        print(full_finetune_memory(base, mesh), file=sys.stderr)
    net = adapters.apply_lora(base, mesh, args.lora_rank, args.lora_alpha, args.seed) if args.lora_rank else base

    budget = budgets.Budget(max_steps, args.time_budget, args.lr, args.warmup_steps)
    train_ds = Counted(budget.batches(batches(stream) if batches else stream), ids["pad"])
    eval_ds = traces.holdout_batches(holdout.examples, args.batch) if holdout.examples else None
    shown = progress.StageProgress("sft", budget, tokens=lambda step: train_ds.tokens_of(step, args.grad_accum))
    trainer = make_trainer(net, args, max_steps, out, mesh, shown)
    budget.attach(trainer.optimizer, lambda: trainer.train_steps)
    budget.resume(runs.read_run(str(out)).get("budget"))
    if runs.nothing_left(budget, trainer.train_steps, out):
        return
    runs.record(out, dtypes={**runs.dtypes(net, trainer.optimizer), "loss_logits": loss.LOGITS}, rows_read=read.rows)
    trainer.with_gen_model_input_fn(traces.model_inputs(ids["pad"]))
    trainer.with_loss_fn(loss.chunked_loss)  # the [batch, length, 262k] logits never exist at once
    trainer.with_training_hooks(progress.step_hooks(budget, shown))
    shown.begin(trainer.train_steps)
    with runs.mesh_context(mesh):  # PeftTrainer shards each batch over the mesh active here
        trainer.train(train_ds, eval_ds)  # saves the last step when the batches end (or a stop ends them)
    shown.finish()
    step = trainer.train_steps
    used = stream.fill_ids_used(step * per_step)
    (out / runs.FILL_IDS).write_text("".join(f"{i}\n" for i in used))
    runs.record(out, sft_fill={"split": args.fill_split if fill else None, "rows_used": len(used)},
                budget=budget.summary(step))
    print(f"step {step}: checkpoint in {out / 'ckpts'}; metrics in {out / 'metrics.jsonl'}; curves in "
          f"{plots.curves(out)}", file=sys.stderr)
    budget.finish(step)
    print_samples(net, cfg, tok, ids, eval_rows or train_rows, args.samples)


def cap_batch(args, available: int, fsdp: int) -> None:
    """A small mix trains: --batch comes down to the examples there are (a multiple of the mesh's fsdp), said so."""
    if args.batch <= available:
        return
    capped = available - available % fsdp
    if capped < 1:
        raise UserError(f"only {available} training examples, fewer than the mesh's fsdp size {fsdp}: give more "
                        "rows, or a --mesh with a smaller fsdp")
    print(f"note: --batch {args.batch} lowered to {capped}: only {available} training examples", file=sys.stderr)
    args.batch = capped


def fill_rows(args, read) -> list[dict]:
    """The --fill-split rows of the same --data (none when it is a single file or has no such split)."""
    from tunixhack.train import data as traces

    if not args.fill_split or read.form == "file" or args.fill_split == args.split:
        return []
    try:
        rows = traces.read_rows(args.data, args.fill_split)[0]
    except UserError:
        return []
    return traces.seeded_order(rows, args.seed)[: int(len(rows) * args.fill_share)]


def full_finetune_memory(model, mesh) -> str:
    import jax
    from flax import nnx

    params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    total = params * BYTES_PER_PARAM_FULL / 2**30
    # Tunix shards Gemma3's weights over both mesh axes (fsdp and tp), and so the gradients and Adam's state.
    return (f"full fine-tuning in float32 (weights and compute): {params / 1e9:.2f} B parameters x "
            f"{BYTES_PER_PARAM_FULL} bytes (weights, gradients, Adam's two moments) = {total:.1f} GiB, about "
            f"{total / mesh.size:.1f} GiB per device over the {mesh.size} of the mesh, plus activations")


def make_trainer(net, args, steps: int, out, mesh, shown=None):
    """Tunix's PeftTrainer with budget.adamw (clipping, AdamW, warmup, cosine decay to the horizon)."""
    import orbax.checkpoint as ocp
    from tunix.sft import peft_trainer

    optimizer = budgets.adamw(args.lr, args.warmup_steps, steps, args.weight_decay, args.clip)
    config = peft_trainer.TrainingConfig(
        max_steps=steps, eval_every_n_steps=args.eval_every, data_sharding_axis=("fsdp",),
        gradient_accumulation_steps=args.grad_accum if args.grad_accum > 1 else None,
        checkpoint_root_directory=str((out / "ckpts").resolve()),
        checkpointing_options=ocp.CheckpointManagerOptions(save_interval_steps=args.save_every, max_to_keep=args.keep),
        metrics_logging_options=runs.metrics_options(out, watch=shown), pbar_description="SFT")
    with runs.mesh_context(mesh):
        return peft_trainer.PeftTrainer(net, optimizer, config)


class Counted:
    """The training batches, and the real (non-pad) tokens of each. Tunix takes batch i for micro-step i (a
    resumed run's trainer skips the batches of the steps already done), so step s trained on batches
    (s - 1) x grad_accum to s x grad_accum."""

    def __init__(self, dataset, pad_id: int):
        self.dataset, self.pad_id, self.tokens = dataset, pad_id, []

    def __iter__(self):
        for batch in self.dataset:
            self.tokens.append(int((batch.input_tokens != self.pad_id).sum()))
            yield batch

    def tokens_of(self, step: int, grad_accum: int) -> int:
        return sum(self.tokens[(step - 1) * grad_accum: step * grad_accum])


def print_samples(net, cfg, tok, ids, rows, n: int) -> None:
    from tunixhack.student import render_prompt
    from tunixhack.train.decode import Greedy

    if n <= 0:
        return
    greedy = Greedy(net, cfg, tok, ids, max_new_tokens=128 if cfg.num_layers < 4 else 512)
    prompts = [render_prompt(r["prompt"]) for r in rows[:n]]
    prompts = [p for p in prompts if greedy.fits(p)]
    for prompt, reply in zip(prompts, greedy(prompts, batch=max(1, len(prompts)))):
        question = prompt.split("\n", 1)[1].split("\n\n")[0]
        print(f"\n--- {question[:200]}\n{reply[:1000]}", file=sys.stderr)


if __name__ == "__main__":
    runs.cli(main)
