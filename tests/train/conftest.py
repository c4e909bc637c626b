"""Shared pieces of the training tests: the tiny Gemma3, one SFT run, one GRPO run, run as the user does.

Every test here needs the [train] extra (JAX, Tunix) and is marked `train`. They share, per session:
a cache folder (the tiny model and tokenizer, made once) and JAX's persistent compilation cache, so a
program compiled by one script run is reused by the next. Scripts run in subprocesses exactly as a user
types them; in-process tests load a train/ script by path (train_script).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import whole_rows

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "train"
FIXTURES = Path(__file__).parent / "fixtures"
TRACES = FIXTURES / "traces.jsonl"
# Small enough for 2 CPU cores: LoRA rank 8 on the tiny model, 256-token examples.
SFT_FLAGS = ["--max-len", "256", "--lora-rank", "8", "--lora-alpha", "16", "--lr", "3e-3", "--batch", "8",
             "--eval-every", "10", "--save-every", "10", "--samples", "0"]
GRPO_FLAGS = ["--lora-rank", "8", "--lora-alpha", "16", "--max-new-tokens", "16", "--max-prompt-len", "128",
              "--batch", "2", "--generations", "2"]



def train_script(name: str):
    """A train/ command as a module (train/ is a folder of scripts, not a package)."""
    from tunixhack.generate.scripts import load_script

    return load_script(TRAIN / f"{name}.py", f"train_{name}")


@pytest.fixture(scope="session")
def train_env(tmp_path_factory):
    """Environment of every script run (and of this process, for in-process tests)."""
    cache = tmp_path_factory.mktemp("tunixhack-cache")
    env = {
        "TUNIXHACK_CACHE": str(cache),
        "JAX_COMPILATION_CACHE_DIR": str(cache / "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "JAX_PLATFORMS": "cpu",
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield dict(os.environ)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_script(script: str, *args, env: dict, check: bool = True, extra_env: dict | None = None, timeout=400):
    """`python train/<script> args...` as a user runs it; returns the CompletedProcess."""
    result = subprocess.run([sys.executable, str(TRAIN / script), *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, env={**env, **(extra_env or {})}, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def metrics(out) -> list[dict]:
    """metrics.jsonl's rows; whole lines only, as a test may read it while a run writes it."""
    return whole_rows(Path(out) / "metrics.jsonl")


@pytest.fixture(scope="session")
def sft_run(train_env, tmp_path_factory):
    """One 30-step LoRA SFT run of the tiny model on the fixture traces (the issue's first 'done' command)."""
    out = tmp_path_factory.mktemp("runs") / "sft"
    result = run_script("sft.py", "--model", "tiny", "--data", TRACES, "--steps", 30, "--out", out, *SFT_FLAGS,
                        env=train_env)
    (out.parent / "sft.stderr").write_text(result.stderr)  # what the user saw (tests/train/test_progress.py)
    return out


@pytest.fixture(scope="session")
def grpo_run(sft_run, train_env):
    """Two GRPO steps from the SFT run with the format and math rewards."""
    out = sft_run.parent / "grpo"
    result = run_script("grpo.py", "--model", "tiny", "--init", sft_run, "--data", TRACES, "--steps", 2,
                        "--rewards", "format,math", "--out", out, *GRPO_FLAGS, env=train_env)
    (out.parent / "grpo.stderr").write_text(result.stderr)
    return out


@pytest.fixture(scope="session")
def tiny(train_env):
    """(Source, tokenizer, special ids) of the tiny model."""
    from tunixhack.train import model as models

    source = models.resolve("tiny")
    tok = models.load_tokenizer(source)
    return source, tok, models.token_ids(tok)
