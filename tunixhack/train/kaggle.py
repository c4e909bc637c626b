"""The Kaggle TPU v5e-8 run's shapes, in one place: the notebook passes them to the scripts, and
bench/device_check.py measures step times, memory and MFU at exactly these shapes.

Each stage's length is not set here: every stage times its own steps and lays its schedule over what its
time budget allows (tunixhack/train/budget.py). These shapes fix what one step holds.

Measured: not yet on a TPU v5e-8, nor on any accelerator (none has been available to this project). The shapes
follow the public Tunix Gemma3 demos and the memory arithmetic in the comments; `bash bench/device_check.sh` on the
accelerator measures step time, tokens/s, MFU and peak memory per device at exactly these shapes and appends them
to bench/README.md: run it before the first real session and adjust here if memory is short.
"""

# Estimate, scaled by FLOPs from the 270M on a 2-core CPU (bench/README.md, real_gemma.py; not measured on a TPU):
# - Per token, a forward pass is 2 x (non-embedding + tied-output) weights: 0.54 GFLOP on the 270M (100M + 168M),
#   2.0 GFLOP on Gemma3-1B (698M + 302M), 3.7x; a LoRA training token ~3x forward (6 GFLOP on the 1B). On the CPU
#   the 270M trained at 42-47 tokens/s (2 x 256, bf16) and decoded 8 x 256 tokens in 49 s (0.19 s a step): scaled by
#   FLOPs, the 1B would be 3.7x slower there. The 270M's output layer is 63% of its FLOPs, the 1B's 30%.
# - Eval: 2,069 questions x 3 models x up to 768 tokens = 4.8M tokens, 9.5 PFLOP: 6 s of the v5e-8's 1.58 PFLOP/s
#   bf16 peak, so decoding is bound by reading memory, not FLOPs: each of the 99 batches of 64 is 768 steps that
#   each read a quarter of the 2 GB of weights (tp 4) plus the KV cache, >= ~1.7 ms at 819 GB/s a chip: 2 minutes
#   at the floor, ~20 at 10x the floor (the sampler's per-step overhead). BUDGET["eval"] = 80 keeps a 4x margin.
# - GRPO step: rollout 64 completions x 768 steps (memory-bound as above: ~1.3 s floor, ~13 s at 10x), then the
#   actor's forward and backward and the reference's forward over 64 x 1024 tokens, ~8 GFLOP a token: 0.5 PFLOP,
#   ~1.1 s at 30% MFU. ~15 s a step: 240 minutes hold ~950 steps at most; the rollout is what to measure first.
#   Measured on the 270M on the CPU, where FLOPs bound both: the rollout (SeededRollout, 8 x 128 new tokens) at
#   33 tokens/s, ~30 ms a completion token, the actor step (4 x 256 completions after 100 prompt tokens, forward
#   and backward) ~14 ms a completion token: the rollout is two thirds of a step even there; on the TPU, where
#   decoding is bound by memory and the update by FLOPs, its share is larger (the ~13 of ~15 s above).
# - Memory: on the 270M at 2 x 256, Tunix's default SFT loss needs 3.78 GB of XLA temp, the chunked loss 2.18 GB
#   (3.1 MB a token less, the full float32 logits and their one-hot). SFT's 8 x 1024 micro-batch (4,096 tokens a
#   chip under fsdp 2) would need ~13 GB of a v5e chip's 16 for the plain loss's logits if tp does not shard
#   them: SFT's chunked loss (now its default) is what lets it fit. GRPO's actor step, same method, 4 completions
#   x 256 tokens: Tunix's `grpo` loss 9.05 GB, the chunked `grpo_chunked` (grpo.py's default) 4.61 GB, 4.3 MB less
#   per completion token (bf16 logits, their float32 casts, log-softmax and entropy, kept for the backward). At
#   the plan's micro-batch (16 completions x 768 tokens, 8 a chip under fsdp 2: 6,144 completion tokens) that is
#   ~26 GB a chip that Tunix's loss would hold if tp does not shard the vocabulary: it could not fit; the chunked
#   loss holds one 128-position chunk of 8 completions at a time (~4.4 GB at the CPU's rate, a bound). Still
#   full logits, forward only, no backward: the reference's log-probabilities (Tunix computes them), 8 x 768 x
#   262k in bf16 = 3.2 GB a chip. The 1B's activations over 8,192 tokens a chip are not measured: the first thing
#   device_check.sh must see; lower micro_batch if it is short.

MESH = "2,4"   # fsdp 2 x tp 4: all 8 chips (tp must divide Gemma3-1B's 4 heads)

# SFT: LoRA rank 64 on every projection; 2 micro-batches of 8 x 1024 tokens per step (the 262k-word vocabulary's
# logits dominate activation memory, so micro-batches stay at 8).
SFT = {"batch": 8, "grad_accum": 2, "max_len": 1024, "lora_rank": 64, "lora_alpha": 64.0, "lr": 2e-4}

# GRPO: 16 prompts x 4 completions of up to 768 tokens per step, trained 4 prompts (16 completions) at a time
# so the actor step holds no more than at batch 4; rolled out 16 prompts at once.
GRPO = {"batch": 16, "micro_batch": 4, "rollout_batch": 16, "generations": 4, "max_new_tokens": 768,
        "max_prompt_len": 256}

# Minutes per stage in one 9-hour session (30 minutes stay free for slow starts and saving outputs).
BUDGET = {"setup": 20, "sft": 150, "grpo": 240, "eval": 80, "export": 10}


def flags(shape: dict) -> list[str]:
    """A shape as command-line flags: {"max_len": 1024} -> ["--max-len", "1024"]."""
    return [item for key, value in shape.items() for item in (f"--{key.replace('_', '-')}", str(value))]
