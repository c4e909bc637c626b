"""GRPO on prompts with verifiable rewards, from an SFT run, with Tunix's RLCluster and GRPOLearner.

    python train/grpo.py --model tiny --init runs/sft --data data/mix --steps 2 --rewards format,math --out runs/grpo
    python train/grpo.py --init runs/sft --data USER/NAME --rewards format,math,choice,code --time-budget 200 --out runs/grpo

GRPO reads the `rl` split of --data (--split), less the rows the SFT run already trained on, and keeps the rows
that one of the chosen answer rewards (math, choice, code, text, judge) can score: on the others every
completion of a group would tie once the format is learnt, and a tied group teaches nothing. It continues the
SFT run's float32 LoRA adapter on the stock base, so base + adapter is always the model trained; the KL
reference is the SFT model (the same base with a frozen copy of the SFT adapter: no second base in memory).

Each step rolls out --batch prompts x --generations completions with a fresh seed; --micro-batch bounds how
many prompts one forward/backward pass holds, so --batch can grow without raising the actor step's memory.
A reward that could not be computed is left out of its group's normalisation (tunixhack/train/rl.py).
Checkpoints: --out/ckpts/actor/<step>/model_params. Shows each step's mean reward, generated tokens/s, step
time and ETA as it trains. metrics.jsonl has per step each reward's mean (rewards/<name>_reward), the share not
computed, the KL, the loss, the completion length and step_seconds; curves.png draws them when the stage ends.
Re-running resumes; Ctrl-C or --time-budget saves the latest step; the schedule ends at the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.generate.argtypes import show_defaults
from tunixhack.train import budget as budgets
from tunixhack.train import plots, progress, runs

# LoRA learns at about ten times the rate of full fine-tuning ("LoRA Without Regret", Thinking Machines, 2025);
# GRPO on full weights commonly uses 1e-6 to 3e-6, so 2e-5 here, on float32 adapters where it does not round away.
DEFAULT_LR = 2e-5
UNBOUNDED = 10**6  # --steps with a --time-budget and no --steps: the budget decides


def parse_args(argv=None):
    from tunixhack.train import rewards

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    p.add_argument("--init", help="an SFT run folder (train/sft.py --out) to start from; default: --model itself")
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="a trace .jsonl, a mix folder, a pushed dataset folder or USER/NAME")
    data.add_argument("--split", default="rl", help="the split to train on (default rl)")
    data.add_argument("--max-prompt-len", type=int, default=256, help="prompt tokens; longer prompts are dropped")
    data.add_argument("--seed", type=int, default=0, help="data order, LoRA initialisation and rollout sampling")
    rew = p.add_argument_group("rewards")
    rew.add_argument("--rewards", default="format,math,choice", help=f"comma-separated: {','.join(rewards.REWARDS)}")
    rew.add_argument("--length-budget", type=int, default=768, help="length reward: tokens before the penalty")
    rew.add_argument("--judge", metavar="SPEC", help="judge reward: teacher server (lmstudio | http://HOST:PORT/v1)")
    rew.add_argument("--judge-model", default="qwen3-14b")
    rew.add_argument("--unsafe-run-code", action="store_true",
                     help="code reward: run model-written code where the machine allows no isolation (README)")
    grpo = p.add_argument_group("GRPO")
    grpo.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    grpo.add_argument("--beta", type=float, default=0.08, help="KL penalty to the reference")
    grpo.add_argument("--epsilon", type=float, default=0.2, help="ratio clipping")
    grpo.add_argument("--iterations", type=int, default=1, help="updates per batch of rollouts (mu)")
    grpo.add_argument("--max-new-tokens", type=int, default=768)
    grpo.add_argument("--temperature", type=float, default=0.9)
    grpo.add_argument("--top-p", type=float, default=1.0)
    grpo.add_argument("--top-k", type=int, default=50)
    lora = p.add_argument_group("LoRA (qwix, float32 adapters; from an SFT LoRA run: its adapter, rank and alpha)")
    lora.add_argument("--lora-rank", type=int, help="default: the SFT run's, else 64; 0 trains every weight")
    lora.add_argument("--lora-alpha", type=float, help="default: the SFT run's, else 64")
    opt = p.add_argument_group("optimisation (AdamW, linear warmup then cosine decay to the stop)")
    opt.add_argument("--steps", type=int,
                     help="at most this many optimizer steps (default: 100, or with --time-budget what it allows)")
    opt.add_argument("--batch", type=int, default=8, help="prompts per step (x --generations completions)")
    opt.add_argument("--micro-batch", type=int, help="prompts per forward/backward pass (default: --batch)")
    opt.add_argument("--rollout-batch", type=int, help="prompts per rollout call (default: --batch)")
    opt.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"peak learning rate (default {DEFAULT_LR}: LoRA)")
    opt.add_argument("--warmup-steps", type=int, default=5, help="linear warmup (at most a tenth of the schedule)")
    opt.add_argument("--weight-decay", type=float, default=0.1)
    opt.add_argument("--clip", type=float, default=0.1, help="gradient clipping by global norm")
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help="run folder: run.json, metrics.jsonl, tb/, ckpts/actor/")
    out.add_argument("--save-every", type=int, default=50)
    out.add_argument("--keep", type=int, default=3)
    out.add_argument("--time-budget", type=float, help="minutes; the schedule ends, and training stops, there")
    out.add_argument("--force", action="store_true", help="resume a folder even if its config differs")
    return show_defaults(p).parse_args(argv)


def main(argv=None, batches=None) -> None:
    """`batches` (bench/train_step.py) wraps the stream of prompt batches, e.g. to time each step."""
    args = parse_args(argv)
    from tunixhack.train import rewards

    names = rewards.names_of(args.rewards)  # checked before JAX is imported: a typo is answered at once
    if "judge" in names and not args.judge:
        raise UserError("--rewards judge needs --judge SPEC (a teacher server: lmstudio | http://HOST:PORT/v1)")
    from tunixhack.train import data as traces
    from tunixhack.train import model as models
    from tunixhack.train import rl

    args.steps = args.steps or (UNBOUNDED if args.time_budget else 100)
    init = runs.read_run(args.init) if args.init else None  # fails early with a clear line when not a run
    if init and args.model not in ("gemma3-1b-it", runs.root_model(init)):
        raise UserError(f"--model {args.model} differs from the model {args.init} was trained from "
                        f"({runs.root_model(init)}); leave --model out")
    lora = lora_spec(args, init)
    source = models.resolve(runs.root_model(init) if init else args.model)
    mesh = models.make_mesh(args.mesh)
    micro, rollout_batch = args.micro_batch or args.batch, args.rollout_batch or args.batch
    check_batches(args, micro, rollout_batch, mesh.shape["fsdp"])
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    judge = rewards.judge_client(args.judge, args.judge_model) if args.judge else None
    reward_fns = rewards.select(args.rewards, length_budget=args.length_budget, judge=judge,
                                count=lambda text: len(tok.encode(text)))
    rows, read = traces.read_rows(args.data, args.split)
    rows, dropped = scorable(rows, names, runs.fill_ids(args.init))
    prompts = traces.grpo_prompts(rows, tok, args.max_prompt_len)
    print(f"data: {read.rows} rows read ({read.form}, split {read.split}); prompts {prompts.summary()}"
          + (f"; dropped:\n{dropped_table(dropped)}" if dropped else "; none dropped"), file=sys.stderr)

    # Full fine-tuning keeps float32 master weights; an adapter continued from SFT stays on the base SFT trained it on.
    param_dtype = "float32" if not lora else init["param_dtype"] if init and init.get("lora") else args.dtype
    # The SFT step GRPO starts from, actor and KL reference alike, fixed for the whole run: a resumed run keeps it
    # even when the SFT folder has trained further since.
    init_step = init_step_of(args, init)
    config = {"stage": "grpo", "model": source.name, "dtype": args.dtype, "param_dtype": param_dtype,
              "init": str(Path(args.init).resolve()) if args.init else None, "init_step": init_step, "lora": lora,
              "data": {k: v for k, v in read.as_dict().items() if k != "files"},
              "max_prompt_len": args.max_prompt_len, "seed": args.seed, "rewards": args.rewards,
              "length_budget": args.length_budget, "judge": args.judge, "judge_model": args.judge_model,
              "micro_batch": micro, "rollout_batch": rollout_batch,
              **{k: getattr(args, k) for k in ("generations", "beta", "epsilon", "iterations", "max_new_tokens",
                                                "temperature", "top_p", "top_k", "batch", "lr", "warmup_steps",
                                                "weight_decay", "clip", "steps", "save_every")}}
    out = runs.prepare_out(args.out, config, args.force)
    runs.record(out, rows_read=read.rows, rows_dropped=dict(dropped),
                isolation=sandbox_level(names, args.unsafe_run_code))

    actor, reference = policy_and_reference(args, init, init_step, lora, source, mesh)
    rl.register()
    budget = budgets.Budget(args.steps, args.time_budget, args.lr, args.warmup_steps)
    shown = progress.StageProgress("grpo", budget, completions=args.batch * args.generations)
    cluster = make_cluster(actor, reference, tok, ids, args, out, mesh, (micro, rollout_batch), shown)
    trainer = cluster.actor_trainer
    trainer.with_training_hooks(progress.step_hooks(budget, shown))
    budget.attach(trainer.optimizer, lambda: trainer.train_steps)
    budget.resume(runs.read_run(str(out)).get("budget"))
    if runs.nothing_left(budget, trainer.train_steps, out):  # Tunix's learner fails on an empty stream
        return
    # A step makes batch / rollout-batch rollout calls; counting a resumed run's calls from steps x 1000 keeps
    # them apart from the first run's, so it draws new random numbers.
    cluster.rollout.calls = trainer.train_steps * 1000
    learner = make_learner(cluster, reward_fns, args)
    runs.record(out, dtypes={**runs.dtypes(actor, trainer.optimizer), "loss_logits": loss_logits(learner)})
    # The learner closes the cluster when the batches end, which saves the latest step.
    stream = traces.grpo_dataset(prompts.examples, args.batch, args.seed)
    shown.begin(trainer.train_steps)
    learner.train(budget.batches(batches(stream) if batches else stream))
    shown.finish()
    step = trainer.train_steps
    runs.record(out, budget=budget.summary(step))
    print(f"step {step}: checkpoint in {out / 'ckpts' / 'actor'}; metrics in {out / 'metrics.jsonl'}; curves in "
          f"{plots.curves(out)}", file=sys.stderr)
    budget.finish(step)


def lora_spec(args, init: dict | None) -> dict | None:
    """GRPO continues the SFT run's adapter: its rank and alpha, unless this run trains every weight."""
    inherited = (init or {}).get("lora")
    if inherited and args.lora_rank != 0:
        if args.lora_rank not in (None, inherited["rank"]) or args.lora_alpha not in (None, inherited["alpha"]):
            raise UserError(f"GRPO continues the SFT run's adapter (rank {inherited['rank']}, alpha "
                            f"{inherited['alpha']}); leave --lora-rank and --lora-alpha out, or --lora-rank 0")
        return dict(inherited)
    rank = 64 if args.lora_rank is None else args.lora_rank
    return {"rank": rank, "alpha": args.lora_alpha or 64.0} if rank else None


def check_batches(args, micro: int, rollout_batch: int, fsdp: int) -> None:
    for name, value in (("--micro-batch", micro), ("--rollout-batch", rollout_batch)):
        if value < 1 or args.batch % value:
            raise UserError(f"{name} must divide --batch {args.batch}, got {value}")
    if (micro * args.generations) % fsdp:
        raise UserError(f"--micro-batch x --generations ({micro * args.generations}) must be a multiple of the "
                        f"mesh's fsdp size {fsdp}")


def scorable(rows: list[dict], names: list[str], sft_ids: set[str]) -> tuple[list[dict], Counter]:
    """The rows GRPO trains on, and how many were dropped per reason and category."""
    from tunixhack.train import rewards
    from tunixhack.verify import check_of

    answer_rewards = [n for n in names if n in rewards.SCORES or n == "judge"]
    kept, dropped = [], Counter()
    for row in rows:
        if row["id"] in sft_ids:
            dropped[f"seen in SFT ({row.get('category')})"] += 1
        elif answer_rewards and not rewards.can_score(answer_rewards, check_of(row)):
            dropped[f"no chosen reward scores it ({row.get('category')})"] += 1
        else:
            kept.append(row)
    if not kept:
        print(f"dropped, all {len(rows)} rows:\n{dropped_table(dropped)}", file=sys.stderr)
        raise UserError(f"no row left to train on: the chosen rewards ({','.join(names)}) score none of the "
                        f"{len(rows)} rows (table above); choose rewards that fit the categories, or other --data")
    return kept, dropped


def dropped_table(dropped: Counter) -> str:
    """Rows dropped, a line per reason and a column per category, e.g.
         category                    math  science
         no chosen reward scores it     -        8
         seen in SFT                    2        -"""
    cells = {tuple(key[:-1].split(" (", 1)) for key in dropped}  # "reason (category)"
    reasons, categories = sorted({r for r, _ in cells}), sorted({c for _, c in cells})
    first = max(map(len, [*reasons, "category"])) + 2
    widths = [max(len(c), 5) + 2 for c in categories]
    lines = ["  " + "category".ljust(first) + "".join(c.rjust(w) for c, w in zip(categories, widths))]
    for reason in reasons:
        lines.append("  " + reason.ljust(first) + "".join(str(dropped.get(f"{reason} ({c})", "-")).rjust(w)
                                                          for c, w in zip(categories, widths)))
    return "\n".join(lines)


def sandbox_level(names: list[str], unsafe: bool) -> dict | None:
    """The code sandbox's isolation, checked at start-up (not at the first rollout), when the code reward will run
    model-written programs; refused where the machine isolates nothing unless --unsafe-run-code."""
    if "code" not in names:
        return None
    from tunixhack.verify import code

    code.allow_unsafe(unsafe)
    level = code.require_isolation()
    print(f"code sandbox: {level}" + (f" ({code.why()})" if code.why() else ""), file=sys.stderr)
    return {"level": level, "why": code.why() or None}


def init_step_of(args, init: dict | None) -> int | None:
    if not init:
        return None
    earlier = Path(args.out) / runs.RUN_FILE
    step = json.loads(earlier.read_text()).get("init_step") if earlier.exists() else None
    step = step or runs.latest_step(runs.ckpt_root(args.init, init))
    if step is None or runs.latest_step(runs.ckpt_root(args.init, init)) is None:
        raise UserError(f"{args.init} has no checkpoint yet")
    if not (Path(runs.ckpt_root(args.init, init)) / str(step) / "model_params").exists():
        raise UserError(f"{args.init} no longer holds step {step}, which this GRPO run started from (its KL "
                        f"reference); use a new --out")
    return step


def policy_and_reference(args, init: dict | None, init_step: int | None, lora: dict | None, source, mesh):
    """(actor, KL reference). LoRA: two adapter sets on one base, both starting from the SFT adapter."""
    from flax import nnx

    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models

    if not lora:  # every weight trains, in float32; the reference is a frozen copy
        if init:
            policy, cfg, _, _ = runs.load_run(args.init, mesh, dtype="float32")
            policy = adapters.merge(policy, cfg, mesh, init["lora"]["alpha"] / init["lora"]["rank"]) \
                if init.get("lora") else policy
        else:
            policy, _ = models.load_base(source, mesh, "float32")
        return policy, nnx.clone(policy)
    spec = {"lora": lora, "seed": args.seed}
    if init and init.get("lora"):
        base, _, _ = runs.load_base_of(init, mesh)
        actor, reference = runs.lora_model(base, spec, mesh), runs.lora_model(base, spec, mesh)
        runs.restore(actor, runs.ckpt_root(args.init, init), init_step, lora=True)
        adapters.set_adapters(reference, adapters.adapters(actor))
        return actor, reference
    base = runs.load_run(args.init, mesh)[0] if init else models.load_base(source, mesh, args.dtype)[0]
    return runs.lora_model(base, spec, mesh), base


def make_cluster(actor, reference, tok, ids, args, out: Path, mesh, sizes: tuple[int, int], shown=None):
    import orbax.checkpoint as ocp
    from tunix.rl import rl_cluster as rl
    from tunix.rl.rollout.base_rollout import RolloutConfig

    from tunixhack.train.rl import seeded_rollout

    micro, rollout_batch = sizes
    training = rl.RLTrainingConfig(
        actor_optimizer=budgets.adamw(args.lr, args.warmup_steps, args.steps, args.weight_decay, args.clip),
        max_steps=args.steps, eval_every_n_steps=10**9, data_sharding_axis=("fsdp",),
        mini_batch_size=args.batch, train_micro_batch_size=micro, rollout_micro_batch_size=rollout_batch,
        compute_logps_micro_batch_size=micro,
        checkpoint_root_directory=str((out / "ckpts").resolve()),
        checkpointing_options=ocp.CheckpointManagerOptions(save_interval_steps=args.save_every, max_to_keep=args.keep),
        metrics_logging_options=runs.metrics_options(out, grpo=True, watch=shown), pbar_description="GRPO")
    rollout = RolloutConfig(
        max_tokens_to_generate=args.max_new_tokens, max_prompt_length=args.max_prompt_len,
        kv_cache_size=args.max_prompt_len + args.max_new_tokens + 8, temperature=args.temperature,
        top_p=args.top_p, top_k=args.top_k, eos_tokens=[ids["eos"], ids["end_of_turn"]])
    roles = {rl.Role.ACTOR: mesh, rl.Role.REFERENCE: mesh, rl.Role.ROLLOUT: mesh}
    config = rl.ClusterConfig(role_to_mesh=roles, rollout_engine=seeded_rollout(args.seed), offload_to_cpu=False,
                              training_config=training, rollout_config=rollout)
    return rl.RLCluster(actor=actor, reference=reference, tokenizer=tok, cluster_config=config)


def make_learner(cluster, reward_fns, args):
    from tunix.rl.grpo.grpo_learner import GRPOConfig, GRPOLearner

    from tunixhack.train.rl import ADVANTAGE_ESTIMATOR, REWARD_MANAGER

    from tunixhack.train.grpo_loss import POLICY_LOSS

    # The chunked policy loss: Tunix's "grpo" would hold [completions, length, 262k] logits for the backward pass.
    algo = GRPOConfig(num_generations=args.generations, num_iterations=args.iterations, beta=args.beta,
                      epsilon=args.epsilon, reward_manager=REWARD_MANAGER, advantage_estimator=ADVANTAGE_ESTIMATOR,
                      policy_loss_fn=POLICY_LOSS)
    # Not under jax.set_mesh: RLCluster enters each role's mesh itself (an outer one crashes it).
    return GRPOLearner(rl_cluster=cluster, reward_fns=reward_fns, algo_config=algo)


def loss_logits(learner) -> str:
    """run.json's dtypes.loss_logits: how the policy loss the learner looked up computes its logits."""
    from tunix.rl import function_registry

    from tunixhack.train import grpo_loss

    name = learner.algo_config.policy_loss_fn
    if function_registry.get_policy_loss_fn(name) is grpo_loss.policy_loss:
        return grpo_loss.LOGITS
    return f"the model's output dtype, all positions at once: Tunix's {name}"


if __name__ == "__main__":
    runs.cli(main)
