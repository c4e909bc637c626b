"""The Kaggle TPU v5e-8 run's shapes, in one place: the notebook passes them to the scripts, and
bench/device_check.py measures step times, memory and MFU at exactly these shapes.

Each stage's length is not set here: every stage times its own steps and lays its schedule over what its
time budget allows (tunixhack/train/budget.py). These shapes fix what one step holds.

Measured: not yet on a TPU v5e-8, nor on any accelerator (none has been available to this project). The shapes
follow the public Tunix Gemma3 demos and the memory arithmetic in the comments; `bash bench/device_check.sh` on the
accelerator measures step time, tokens/s, MFU and peak memory per device at exactly these shapes and appends them
to bench/README.md: run it before the first real session and adjust here if memory is short.
"""

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
