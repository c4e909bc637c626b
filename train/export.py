"""Export a trained run: merged weights as a Hugging Face folder, and the Kaggle Orbax layout.

    python train/export.py --model tiny --ckpt runs/grpo --out export/
    python train/export.py --ckpt ckpts/grpo --out /kaggle/working

Writes
    OUT/hf/                               model.safetensors (LoRA merged), config.json, generation_config.json,
                                          tokenizer files: loadable by transformers (Gemma3ForCausalLM) and vLLM
    OUT/ckpts/actor/<step>/model_params   every weight of the merged model as an Orbax PyTree (the layout of
                                          the Kaggle setting); restore onto nnx.state of a plain Gemma3
Then it reloads OUT/hf through Tunix's own loader and checks the logits match the merged model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tunixhack.train import runs

from tunixhack.errors import UserError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    p.add_argument("--ckpt", required=True, help="a run folder of train/sft.py or train/grpo.py (latest checkpoint)")
    p.add_argument("--out", required=True, help="export folder: OUT/hf and OUT/ckpts/actor/<step>/model_params")
    p.add_argument("--no-verify", action="store_true", help="skip reloading the export to compare logits")
    p.add_argument("--force", action="store_true", help="replace an existing export in --out")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from tunixhack.train import hf
    from tunixhack.train import model as models
    import numpy as np

    run = runs.read_run(args.ckpt)
    if args.model not in ("gemma3-1b-it", runs.root_model(run)):
        raise UserError(f"--model {args.model} differs from the model {args.ckpt} was trained from "
                        f"({runs.root_model(run)}); leave --model out")
    out = Path(args.out)
    hf_dir, orbax_root = out / "hf", out / "ckpts" / "actor"
    if (hf_dir.exists() or orbax_root.exists()) and not args.force:
        raise UserError(f"{out} already holds an export (hf/ or ckpts/actor/); use another --out or --force")

    mesh = models.make_mesh(args.mesh)
    merged, cfg, tok, run = runs.load_run(args.ckpt, mesh, merged=True)
    step = run["restored_step"]
    source = models.resolve(runs.root_model(run))
    dtype = np.dtype(cfg.param_dtype).name
    hf.write_folder(models.flat_params(merged), cfg, str(hf_dir), source.path, dtype, models.token_ids(tok))
    print(f"hf: {hf_dir} ({dtype})", file=sys.stderr)
    path = write_orbax(merged, orbax_root, step, args.force)
    print(f"orbax: {path}", file=sys.stderr)
    if not args.no_verify:
        diff = compare_logits(merged, str(hf_dir), cfg, mesh, models.token_ids(tok))
        print(f"verify: reloaded through Tunix's loader, max |logit difference| {diff:.2e}", file=sys.stderr)
        if diff > 1e-4:
            raise UserError(f"the exported model's logits differ from the trained model's by {diff:.2e}")


def write_orbax(model, root: Path, step: int, force: bool) -> Path:
    """OUT/ckpts/actor/<step>/model_params: the merged model's nnx state, saved with Orbax."""
    import orbax.checkpoint as ocp
    from flax import nnx

    path = root / str(step) / "model_params"
    if path.exists() and force:
        shutil.rmtree(path)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path.resolve(), nnx.state(model))
    checkpointer.wait_until_finished()
    return path


def compare_logits(model, hf_dir: str, cfg, mesh, ids: dict) -> float:
    """Max |logit difference| between `model` and the export reloaded by Tunix, on a fixed token batch."""
    import jax.numpy as jnp
    import numpy as np
    from tunix.models.gemma3 import params_safetensors
    from tunix.sft import utils

    reloaded = params_safetensors.create_model_from_safe_tensors(hf_dir, cfg, mesh, dtype=cfg.param_dtype)
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, min(cfg.num_embed, 5000), size=(2, 16)).astype(np.int32)
    tokens[:, 0] = ids["bos"]
    mask = jnp.ones(tokens.shape, bool)
    positions, attention = utils.build_positions_from_mask(mask), utils.make_causal_attn_mask(mask)
    a, _ = model(jnp.asarray(tokens), positions, None, attention)
    b, _ = reloaded(jnp.asarray(tokens), positions, None, attention)
    return float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))


if __name__ == "__main__":
    runs.cli(main)
