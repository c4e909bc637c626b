"""GRPO on prompts with verifiable rewards, from an SFT run, with Tunix's RLCluster and GRPOLearner.

    python train/grpo.py --model tiny --init runs/sft --data rl.jsonl --steps 2 --rewards format,math --out runs/grpo
    python train/grpo.py --init ckpts/sft --data rl.jsonl --rewards format,math,choice,length --out ckpts/grpo

The SFT run's LoRA is merged into the base and fresh adapters train on top, so the KL reference is the
SFT model itself (sharing its weights: no second copy in memory), not the model before SFT. Checkpoints
go to --out/ckpts/actor/<step>/model_params (the Kaggle layout). metrics.jsonl has per step the mean of
each reward (rewards/<name>_reward), the KL to the reference (kl), the loss and the completion length
(completions/mean_length). Re-running resumes; Ctrl-C or --time-budget saves the latest step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunixhack.train import runs

from tunixhack.errors import UserError
from tunixhack.traces import file_fingerprint


def parse_args(argv=None):
    from tunixhack.train import rewards

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    p.add_argument("--init", help="an SFT run folder (train/sft.py --out) to start from; default: --model itself")
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="trace rows (.jsonl), e.g. crap.py mix's rl.jsonl")
    data.add_argument("--max-prompt-len", type=int, default=256, help="prompt tokens; longer prompts are dropped")
    data.add_argument("--seed", type=int, default=0)
    rew = p.add_argument_group("rewards")
    rew.add_argument("--rewards", default="format,math,choice", help=f"comma-separated: {','.join(rewards.REWARDS)}")
    rew.add_argument("--length-budget", type=int, default=768, help="length reward: tokens before the penalty")
    rew.add_argument("--judge", metavar="SPEC", help="judge reward: teacher server (lmstudio | http://HOST:PORT/v1)")
    rew.add_argument("--judge-model", default="qwen3-14b")
    grpo = p.add_argument_group("GRPO")
    grpo.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    grpo.add_argument("--beta", type=float, default=0.08, help="KL penalty to the reference")
    grpo.add_argument("--epsilon", type=float, default=0.2, help="ratio clipping")
    grpo.add_argument("--iterations", type=int, default=1, help="updates per batch of rollouts (mu)")
    grpo.add_argument("--max-new-tokens", type=int, default=768)
    grpo.add_argument("--temperature", type=float, default=0.9)
    grpo.add_argument("--top-p", type=float, default=1.0)
    grpo.add_argument("--top-k", type=int, default=50)
    lora = p.add_argument_group("LoRA (qwix)")
    lora.add_argument("--lora-rank", type=int, default=64, help="0 trains every weight (the reference is a copy)")
    lora.add_argument("--lora-alpha", type=float, default=64.0)
    opt = p.add_argument_group("optimisation (AdamW, linear warmup then cosine decay)")
    opt.add_argument("--steps", type=int, default=100, help="optimizer steps, one batch of prompts each")
    opt.add_argument("--batch", type=int, default=2, help="prompts per step (x --generations completions)")
    opt.add_argument("--lr", type=float, default=3e-6)
    opt.add_argument("--warmup", type=float, default=0.1, help="warmup steps as a share of --steps")
    opt.add_argument("--weight-decay", type=float, default=0.1)
    opt.add_argument("--clip", type=float, default=0.1, help="gradient clipping by global norm")
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help="run folder: run.json, metrics.jsonl, tb/, ckpts/actor/")
    out.add_argument("--save-every", type=int, default=50)
    out.add_argument("--keep", type=int, default=3)
    out.add_argument("--time-budget", type=float, help="minutes; stop (and save) after the step that passes it")
    out.add_argument("--force", action="store_true", help="resume a folder even if its config differs")
    return p.parse_args(argv)


def main(argv=None, batches=None) -> None:
    """`batches` (bench/train_step.py) wraps the stream of prompt batches, e.g. to time each step."""
    args = parse_args(argv)
    from tunixhack.train import data as traces
    from tunixhack.train import model as models
    from tunixhack.train import rewards

    if args.init:
        init = runs.read_run(args.init)  # fails early with a clear line when it is not a run folder
        if args.model not in ("gemma3-1b-it", runs.root_model(init)):
            raise UserError(f"--model {args.model} differs from the model {args.init} was trained from "
                            f"({runs.root_model(init)}); leave --model out")
    source = models.resolve(runs.root_model(runs.read_run(args.init)) if args.init else args.model)
    mesh = models.make_mesh(args.mesh)
    if (args.batch * args.generations) % mesh.shape["fsdp"]:
        raise UserError(f"--batch x --generations ({args.batch * args.generations}) must be a multiple of the "
                        f"mesh's fsdp size {mesh.shape['fsdp']}")
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    if "judge" in args.rewards.split(",") and not args.judge:
        raise UserError("--rewards judge needs --judge SPEC (a teacher server: lmstudio | http://HOST:PORT/v1)")
    judge = rewards.judge_client(args.judge, args.judge_model) if args.judge else None
    reward_fns = rewards.select(args.rewards, length_budget=args.length_budget, judge=judge,
                                count=lambda text: len(tok.encode(text)))
    prompts = traces.grpo_prompts(traces.read_rows(args.data), tok, args.max_prompt_len)
    print(f"data: {prompts.summary()}", file=sys.stderr)

    config = {"stage": "grpo", "model": source.name, "dtype": args.dtype,
              "init": str(Path(args.init).resolve()) if args.init else None,
              "lora": {"rank": args.lora_rank, "alpha": args.lora_alpha} if args.lora_rank else None,
              "data": str(Path(args.data).resolve()), "data_sha256": file_fingerprint(Path(args.data)),
              "max_prompt_len": args.max_prompt_len, "seed": args.seed, "rewards": args.rewards,
              "length_budget": args.length_budget, "judge": args.judge, "judge_model": args.judge_model,
              **{k: getattr(args, k) for k in ("generations", "beta", "epsilon", "iterations", "max_new_tokens",
                                                "temperature", "top_p", "top_k", "batch", "lr", "warmup",
                                                "weight_decay", "clip", "steps", "save_every")}}
    out = runs.prepare_out(args.out, config, args.force)

    if args.init:
        policy, cfg, _, _ = runs.load_run(args.init, mesh, merged=True)
    else:
        policy, cfg = models.load_base(source, mesh, args.dtype)
    if args.lora_rank:
        actor, reference = models.apply_lora(policy, mesh, args.lora_rank, args.lora_alpha, args.seed), policy
    else:
        from flax import nnx

        actor, reference = policy, nnx.clone(policy)

    cluster = make_cluster(actor, reference, tok, ids, args, out, mesh)
    learner = make_learner(cluster, reward_fns, args)
    stop = runs.StopControl(args.time_budget)
    stop.steps_done = lambda: cluster.actor_trainer.train_steps
    # The learner closes the cluster when the batches end, which saves the latest step.
    stream = traces.grpo_dataset(prompts.examples, args.batch, args.seed)
    learner.train(stop.batches(batches(stream) if batches else stream))
    step = cluster.actor_trainer.train_steps
    print(f"step {step}: checkpoint in {out / 'ckpts' / 'actor'}; metrics in {out / 'metrics.jsonl'}",
          file=sys.stderr)
    stop.finish(step)


def make_cluster(actor, reference, tok, ids, args, out: Path, mesh):
    import optax
    import orbax.checkpoint as ocp
    from tunix.rl import rl_cluster as rl
    from tunix.rl.rollout.base_rollout import RolloutConfig

    warmup = max(1, int(args.warmup * args.steps))
    schedule = optax.warmup_cosine_decay_schedule(args.lr / (warmup + 1), args.lr, warmup, max(args.steps, warmup + 1))

    optimizer = optax.chain(optax.clip_by_global_norm(args.clip),
                            optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=args.weight_decay))
    training = rl.RLTrainingConfig(
        actor_optimizer=optimizer,
        max_steps=args.steps, eval_every_n_steps=10**9, mini_batch_size=args.batch, data_sharding_axis=("fsdp",),
        checkpoint_root_directory=str((out / "ckpts").resolve()),
        checkpointing_options=ocp.CheckpointManagerOptions(save_interval_steps=args.save_every, max_to_keep=args.keep),
        metrics_logging_options=runs.metrics_options(out, grpo=True), pbar_description="GRPO")
    rollout = RolloutConfig(
        max_tokens_to_generate=args.max_new_tokens, max_prompt_length=args.max_prompt_len,
        kv_cache_size=args.max_prompt_len + args.max_new_tokens + 8, temperature=args.temperature,
        top_p=args.top_p, top_k=args.top_k, eos_tokens=[ids["eos"], ids["end_of_turn"]])
    roles = {rl.Role.ACTOR: mesh, rl.Role.REFERENCE: mesh, rl.Role.ROLLOUT: mesh}
    config = rl.ClusterConfig(role_to_mesh=roles, rollout_engine="vanilla", offload_to_cpu=False,
                              training_config=training, rollout_config=rollout)
    cluster = rl.RLCluster(actor=actor, reference=reference, tokenizer=tok, cluster_config=config)
    cluster.actor_trainer.with_training_hooks(runs.step_hooks(runs.learning_rates(schedule, args.steps)))
    return cluster


def make_learner(cluster, reward_fns, args):
    from tunix.rl.grpo.grpo_learner import GRPOConfig, GRPOLearner

    algo = GRPOConfig(num_generations=args.generations, num_iterations=args.iterations, beta=args.beta,
                      epsilon=args.epsilon)
    # Not under jax.set_mesh: RLCluster enters each role's mesh itself (an outer one crashes it).
    return GRPOLearner(rl_cluster=cluster, reward_fns=reward_fns, algo_config=algo)


if __name__ == "__main__":
    runs.cli(main)
