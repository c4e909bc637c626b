"""Export the model a run trained: a PEFT LoRA adapter, merged Hugging Face weights, and the Tunix/Kaggle layouts.

    python train/export.py --model tiny --ckpt runs/grpo --out export/
    python train/export.py --ckpt runs/grpo --out /kaggle/working
    python train/export.py --model gemma3-1b-it --out base/          # the base itself (e.g. Kaggle Flax -> HF)
    python train/export.py --ckpt runs/grpo --out export/ --gguf q8_0   # + a GGUF for LM Studio (lms import)

Writes
    OUT/adapter/                           adapter_config.json + adapter_model.safetensors: a PEFT LoRA adapter with
                                           Hugging Face Gemma3 module names, valid on the stock google/gemma-3-1b-it
                                           (SFT and GRPO trained one adapter, so it holds both)
    OUT/hf/                                merged weights (base + adapter in float32, cast once to the base dtype),
                                           config and tokenizer: transformers (Gemma3ForCausalLM), vLLM
    OUT/ckpts/actor/<step>/model_params    the adapters as Tunix saves them: restore into
                                           nnx.state(lora_model, nnx.LoRAParam) as Tunix's GRPO demo does
                                           (a full fine-tune: every weight)
    OUT/ckpts/merged/<step>/model_params   the full merged state: restore onto nnx.state of a plain Gemma3
    OUT/gguf/<name>-<type>.gguf            with --gguf f32|f16|bf16|q8_0: hf/'s weights as a Gemma 3 GGUF for llama.cpp,
                                           LM Studio (`lms import`) and Ollama, with the tokenizer and a chat template
                                           in the student's format (read back and compared before it is kept)
    OUT/export.json                        what was exported, and the checks below
Without --ckpt it writes the base model (OUT/hf, OUT/ckpts/merged/0) in the same layouts. Then it checks that
base + adapter equals the merged weights and that the merged folder reloads through Tunix's own loader with the
logits of the merged model, and prints the largest differences.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.generate.argtypes import show_defaults
from tunixhack.dataset.traces import write_json
from tunixhack.train import runs

LOGIT_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.1}  # reload vs in-memory merge: a few units in the last place


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    p.add_argument("--ckpt", help="a run folder of sft.py or grpo.py (its latest checkpoint); none: the base model")
    p.add_argument("--out", required=True, help="export folder: adapter/, hf/, ckpts/, export.json")
    p.add_argument("--hf-dtype", choices=["base", "float32"], default="base",
                   help="dtype of hf/ (base: the base's, e.g. bfloat16; float32 keeps every bit of the merge)")
    p.add_argument("--gguf", choices=["f32", "f16", "bf16", "q8_0"],
                   help="also write gguf/<name>-<type>.gguf from hf/'s weights (f32 keeps them exactly)")
    p.add_argument("--no-verify", action="store_true", help="skip reloading the export to compare logits")
    p.add_argument("--force", action="store_true", help="replace an existing export in --out")
    return show_defaults(p).parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import numpy as np
    from flax import nnx

    from tunixhack.train import hf, lora
    from tunixhack.train import model as models

    run = runs.read_run(args.ckpt) if args.ckpt else None
    if run and args.model not in ("gemma3-1b-it", runs.root_model(run)):
        raise UserError(f"--model {args.model} differs from the model {args.ckpt} was trained from "
                        f"({runs.root_model(run)}); leave --model out")
    out = Path(args.out)
    parts = [out / name for name in ("adapter", "hf", "ckpts", "gguf", "export.json")]
    if any(p.exists() for p in parts) and not args.force:
        raise UserError(f"{out} already holds an export (adapter/, hf/, ckpts/, gguf/ or export.json); use another "
                        f"--out or --force")
    for part in parts:
        if part.is_dir():
            shutil.rmtree(part)

    mesh = models.make_mesh(args.mesh)
    if run:
        net, cfg, tok, run = runs.load_run(args.ckpt, mesh)
        step, spec, source = run["restored_step"], run.get("lora"), models.resolve(runs.root_model(run))
    else:
        source = models.resolve(args.model)
        (net, cfg), tok, step, spec = models.load_base(source, mesh, args.dtype), models.load_tokenizer(source), 0, None
    ids, dtype = models.token_ids(tok), np.dtype(cfg.param_dtype).name
    hf_dtype = dtype if args.hf_dtype == "base" else "float32"
    report = {"run": args.ckpt, "step": step, "model": source.name, "dtype": dtype, "hf_dtype": hf_dtype,
              "lora": spec, "files": {}}

    if spec:
        scale = spec["alpha"] / spec["rank"]
        keep = np.float32 if hf_dtype == "float32" else None
        tunix_merged = {p: np.asarray(v) for p, v in lora.merged_params(net, scale, keep).items()}
        if runs.adapter_on_stock_base(run):
            adapter = lora.peft_tensors(net, cfg)
            write_adapter(out / "adapter", adapter, spec, source.name)
            base_hf = {k: v.astype(hf_dtype) if hf_dtype == "float32" else v  # the stock weights it applies to
                       for k, v in hf.tensors(models.flat_params(net), cfg).items()}
            merged_hf = lora.apply_peft(base_hf, adapter, scale)  # PEFT's own arithmetic: base + adapter == hf/
            report["files"]["adapter"] = str(out / "adapter")
            report["base_plus_adapter_vs_tunix_merge"] = max_difference(merged_hf, hf.tensors(tunix_merged, cfg))
            print(f"adapter: {out / 'adapter'}; base + adapter vs the merge in Tunix's layout: max |difference| "
                  f"{report['base_plus_adapter_vs_tunix_merge']:.2e}", file=sys.stderr)
        else:
            merged_hf = hf.tensors(tunix_merged, cfg)
            print("adapter: none (this run's adapter applies to a full fine-tune, not to the stock model)",
                  file=sys.stderr)
        plain = lora.merge(net, cfg, mesh, scale)
        save_orbax(out / "ckpts" / "actor" / str(step) / "model_params", nnx.state(net, nnx.LoRAParam))
        report["files"]["tunix_adapters"] = str(out / "ckpts" / "actor" / str(step) / "model_params")
    else:
        plain, merged_hf = net, hf.tensors(models.flat_params(net), cfg)
        if run:  # a full fine-tune's actor checkpoint is every weight
            save_orbax(out / "ckpts" / "actor" / str(step) / "model_params", nnx.state(net))
    hf.write_tensors(merged_hf, cfg, str(out / "hf"), source.path, hf_dtype, ids)
    save_orbax(out / "ckpts" / "merged" / str(step) / "model_params", nnx.state(plain))
    report["files"].update(hf=str(out / "hf"), tunix_merged=str(out / "ckpts" / "merged" / str(step) / "model_params"))
    print(f"hf: {out / 'hf'} ({hf_dtype}); orbax: {out / 'ckpts'}", file=sys.stderr)
    if args.gguf:
        report["gguf"] = write_gguf(out, args.gguf, merged_hf, cfg, tok, ids, gguf_name(source.name, args.ckpt),
                                    source.path)
    if not args.no_verify:
        reload_cfg = hf.model_config(hf.read_config(str(out / "hf")), hf_dtype)
        if hf_dtype == dtype:
            diff = compare_logits(plain, str(out / "hf"), reload_cfg, mesh, ids)
            report["reloaded_hf_vs_merged_logits"] = diff
            print(f"verify: hf/ reloaded through Tunix's loader, max |logit difference| {diff:.2e}", file=sys.stderr)
            if diff > LOGIT_TOLERANCE.get(dtype, 1e-3):
                raise UserError(f"the exported model's logits differ from the merged model's by {diff:.2e}")
        if spec:  # what merging into hf/'s dtype lost of the model that was trained
            lost = compare_logits(net, str(out / "hf"), reload_cfg, mesh, ids)
            report["reloaded_hf_vs_trained_logits"] = lost
            # Not zero even in float32: the trained model computes in the base's dtype, hf/ in its own.
            print(f"verify: hf/ vs the trained model (base + adapter, unmerged): max |logit difference| {lost:.2e}",
                  file=sys.stderr)
    write_json(out / "export.json", report)


def write_adapter(folder: Path, tensors: dict, spec: dict, base: str) -> None:
    import json

    import safetensors.numpy

    from tunixhack.train import lora

    folder.mkdir(parents=True, exist_ok=True)
    from tunixhack.train.model import NAMED

    base = NAMED[base][0] if base in NAMED else base
    safetensors.numpy.save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps(lora.peft_config(spec["rank"], spec["alpha"], base),
                                                           indent=2) + "\n")


def gguf_name(model: str, ckpt: str | None) -> str:
    """gguf/<name>-<type>.gguf: the model's short name, and the run's folder name when a run is exported."""
    stem = Path(model.removeprefix("lmstudio:").split("@")[0]).name.removesuffix(".gguf")
    return f"{stem}-{Path(ckpt).resolve().name}" if ckpt else stem


def write_gguf(out: Path, kind: str, tensors: dict, cfg, tok, ids: dict, name: str, source_dir: str) -> dict:
    """gguf/<name>-<kind>.gguf, read back: its weights against hf/'s and its tokenizer against ours."""
    from tunixhack.student import render_completion, render_prompt
    from tunixhack.train import gguf_out, hf

    added = hf.read_tokenizer_config(source_dir).get("added_tokens_decoder")
    (out / "gguf").mkdir(parents=True, exist_ok=True)
    path = out / "gguf" / f"{name}-{kind}.gguf"
    gguf_out.write(str(path), tensors, cfg, tok, ids, kind, name, added)
    texts = [render_prompt("What is 12 * 7?"), render_completion({"reasoning": "12 * 7 = 84", "answer": "84"}),
             "The quick brown fox jumps over the lazy dog.", "def f(x):\n\treturn x  # caf\u00e9 \U0001f98a"]
    check = gguf_out.read_back(str(path), tensors, tok, texts)
    print(f"gguf: {path} ({kind}); read back: max |weight difference| {check['max_weight_difference']:.2e}, "
          f"tokenizer agrees on {check['tokenizer_agrees']} texts", file=sys.stderr)
    if kind == "f32" and (check["max_weight_difference"] != 0 or check["norm_difference_in_roundings"] > 1):
        raise UserError(f"the f32 GGUF does not hold hf/'s weights (max difference {check['max_weight_difference']:.2e}"
                        f", norms {check['norm_difference_in_roundings']:.2f} float32 roundings of 1 + w)")
    if check["tokenizer_agrees"] != f"{len(texts)}/{len(texts)}":
        raise UserError(f"the GGUF's tokenizer encodes {check['tokenizer_agrees']} test texts as ours does")
    return {"file": str(path), "type": kind, **check}


def max_difference(a: dict, b: dict) -> float:
    import numpy as np

    return max(float(np.max(np.abs(a[k].astype(np.float32) - b[k].astype(np.float32)))) for k in a)


def save_orbax(path: Path, state) -> None:
    import orbax.checkpoint as ocp

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path.resolve(), state)
    checkpointer.wait_until_finished()


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
