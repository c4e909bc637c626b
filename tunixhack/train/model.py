"""Gemma3 for training: where the weights come from, the tokenizer, the mesh (LoRA: tunixhack/train/lora.py).

`--model` is one of:
  tiny           a tiny random Gemma3 and a SentencePiece tokenizer trained on the spot, written once as a
                 Hugging Face folder in the cache (TUNIXHACK_CACHE, default ~/.cache/tunixhack), then
                 loaded exactly like the real model. For CPU runs and tests.
  gemma3-1b-it, gemma3-270m, gemma3-270m-it
                 google/gemma-3-1b-it (...): the Hugging Face cache or Hub (HF_TOKEN from the environment),
                 else the Kaggle Flax checkpoint google/gemma-3/flax/<name> (kagglehub).
  FILE.gguf      a Gemma 3 GGUF (llama.cpp, LM Studio), any type `gguf` dequantizes: gguf_in.py.
  lmstudio:KEY   the Gemma 3 GGUF of that model in LM Studio's models folder: lmstudio_models.py.
  PATH           a Hugging Face folder (config.json, *.safetensors, tokenizer.model) or a Kaggle Flax
                 checkpoint folder (tokenizer.model and the Orbax checkpoint folder, e.g. gemma3-1b-it/).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil

from tunixhack.train import gguf_in, hf, lmstudio_models
from tunixhack.errors import UserError

# The named models: (Hugging Face repo, Kaggle Flax handle, what messages call it)
NAMED = {"gemma3-1b-it": ("google/gemma-3-1b-it", "google/gemma-3/flax/gemma3-1b-it", "Gemma3-1B-it"),
         "gemma3-270m": ("google/gemma-3-270m", "google/gemma-3/flax/gemma3-270m", "Gemma3-270M"),
         "gemma3-270m-it": ("google/gemma-3-270m-it", "google/gemma-3/flax/gemma3-270m-it", "Gemma3-270M-it")}
MODEL_FORMS = ("tiny | gemma3-1b-it | gemma3-270m | gemma3-270m-it | FILE.gguf | lmstudio:KEY | a Hugging Face "
               "folder | a Kaggle Flax checkpoint folder")
# The tiny model: 2 layers, the real head layout (4 query heads, 1 KV head), a 512-token vocabulary.
TINY = dict(num_hidden_layers=2, vocab_size=512, hidden_size=64, intermediate_size=128, num_attention_heads=4,
            head_dim=16, num_key_value_heads=1, sliding_window=32)
TINY_VERSION = "4"
TINY_EMBED_STD = 0.25  # see _write_tiny_weights
# What the tiny tokenizer learns its pieces from; byte fallback covers every other character.
TINY_CORPUS = [
    "<start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n",
    "<reasoning>48 / 2 = 24 and 48 + 24 = 72.</reasoning><answer>72</answer>",
    "<reasoning>The correct option is C.</reasoning><answer>C</answer>", "Think step by step inside the reasoning tags, then give the final answer inside the answer tags.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May? 48 / 2 = 24 and 48 + 24 = 72.",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.",
    "What is the process by which plants make food from sunlight? Photosynthesis uses light energy.",
    "The answer is 42. The total is 3 + 4 = 7, so the result is 7 * 6 = 42.",
    "Write a python function to find the minimum cost path. def min_cost(cost, m, n): return 0",
    "assert add(2, 3) == 5", "import math", "for i in range(n): total += i", "return sorted(set(items))",
    "A) mitochondria B) nucleus C) ribosome D) chloroplast", "Options: A, B, C or D. The correct option is C.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle on a stormy night.",
    "Brainstorm ten ideas for a science fair project about water, energy, plants and the weather.",
    "Rewrite the following sentence in a formal tone: we gotta finish this stuff by friday, ok?",
    "Summarize the paragraph in one sentence. The quick brown fox jumps over the lazy dog.",
    "First, we compute the cost of each item. Then we add them together. Therefore the answer is",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 = + - * / ( ) [ ] { } < > , . ; : ! ? ' \" # $ % & _ \\",
]
# Gemma's own SentencePiece model has these two as pieces of their own (notes/gguf.md). Our tags are not: the
# real vocabulary splits each into 3-4 pieces merged with the punctuation beside them (".</", "><"), and the
# tiny one learns the same layout from the completions above, so the tiny tests see what the real model sees.
TURN_PIECES = ["<start_of_turn>", "<end_of_turn>"]


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str   # "hf" or "kaggle"
    path: str   # the folder
    name: str   # what the user asked for (recorded in run.json)


# --- where the weights are -------------------------------------------------------------------------
def resolve(spec: str) -> Source:
    if spec == "tiny":
        return Source("hf", tiny_folder(), "tiny")
    if os.path.isdir(spec):
        kind = folder_kind(spec)
        if kind is None:
            raise UserError(f"--model {spec!r} is a folder but neither a Hugging Face model (config.json + "
                            f"*.safetensors + tokenizer.model) nor a Kaggle Flax checkpoint (tokenizer.model + "
                            f"an Orbax folder)")
        return Source(kind, os.path.abspath(spec), os.path.abspath(spec))
    if spec.startswith(lmstudio_models.PREFIX):
        return Source("hf", gguf_in.cached_folder(lmstudio_models.find(spec)), spec)
    if os.path.isfile(spec):
        if not gguf_in.is_gguf(spec):
            raise UserError(f"--model {spec!r} is a file but not a GGUF; a model file must be a Gemma 3 .gguf")
        return Source("hf", gguf_in.cached_folder(spec), os.path.abspath(spec))
    for name, (repo, handle, title) in NAMED.items():
        if spec in (name, repo):
            return Source(*_download_gemma(repo, handle, title), spec)
    raise UserError(f"--model must be {MODEL_FORMS}, got {spec!r}")


def folder_kind(path: str) -> str | None:
    has_tok = os.path.exists(os.path.join(path, hf.TOKENIZER))
    if os.path.exists(os.path.join(path, hf.CONFIG)) and glob.glob(os.path.join(path, "*.safetensors")):
        return "hf" if has_tok else None
    return "kaggle" if has_tok and _orbax_dir(path) else None


def _orbax_dir(path: str) -> str | None:
    for name in sorted(os.listdir(path)):
        sub = os.path.join(path, name)
        if os.path.isdir(sub) and any(os.path.exists(os.path.join(sub, m)) for m in
                                      ("_METADATA", "_CHECKPOINT_METADATA", "checkpoint", "manifest.ocdbt")):
            return sub
    return None


def _download_gemma(repo: str, handle: str, title: str) -> tuple[str, str]:
    """The Hugging Face cache, then the Hub, then kagglehub; one clear error when none has the weights."""
    tried = []
    try:
        from huggingface_hub import snapshot_download

        from tunixhack.generate.offline import hub_offline

        patterns = ["*.json", "*.safetensors", "tokenizer.model"]
        for local in (True, False):
            if not local and (why := hub_offline()):  # asked once, no retries
                tried.append(f"Hugging Face Hub: {why}")
                continue
            try:
                return "hf", snapshot_download(repo, allow_patterns=patterns, local_files_only=local)
            except Exception as e:  # noqa: BLE001 - every failure means "not here", reported below
                tried.append(f"Hugging Face {'cache' if local else 'Hub'}: {type(e).__name__}")
    except ImportError:
        tried.append("huggingface_hub not installed")
    try:
        import kagglehub

        path = kagglehub.model_download(handle)
        if folder_kind(path) == "kaggle":
            return "kaggle", path
        tried.append(f"Kaggle: {path} has no Orbax checkpoint")
    except Exception as e:  # noqa: BLE001
        tried.append(f"Kaggle: {type(e).__name__}")
    raise UserError(f"no {title} weights found ({'; '.join(tried)}): pass --model PATH (a Hugging Face folder, "
                    f"the Kaggle Flax checkpoint or a GGUF), set HF_TOKEN for the gated {repo}, or run on Kaggle "
                    f"with the model attached")


# --- the tokenizer -----------------------------------------------------------------------------------
def load_tokenizer(source: Source):
    import sentencepiece as spm

    tok = spm.SentencePieceProcessor(model_file=os.path.join(source.path, hf.TOKENIZER))
    if tok.pad_id() < 0:
        raise UserError(f"{source.path}/{hf.TOKENIZER} has no pad token; Gemma's has pad id 0")
    return tok


def token_ids(tok) -> dict:
    end = tok.piece_to_id("<end_of_turn>")
    if end == tok.unk_id():
        raise UserError("the tokenizer has no <end_of_turn> piece: not a Gemma chat tokenizer")
    return {"pad": tok.pad_id(), "bos": tok.bos_id(), "eos": tok.eos_id(), "end_of_turn": end}


# --- the mesh ----------------------------------------------------------------------------------------
def make_mesh(spec: str | None, num_heads: int = 4):
    """`fsdp,tp`; by default every device, with the largest tp (<= 4) that divides the heads."""
    import jax

    n = jax.device_count()
    if spec:
        try:
            fsdp, tp = (int(x) for x in spec.split(","))
        except ValueError:
            raise UserError(f"--mesh must be FSDP,TP (two integers), got {spec!r}") from None
    else:
        tp = next(t for t in (4, 2, 1) if n % t == 0 and num_heads % t == 0)
        fsdp = n // tp
    if fsdp < 1 or tp < 1 or num_heads % tp:
        raise UserError(f"--mesh FSDP,TP: both >= 1 and tp must divide the {num_heads} attention heads, "
                        f"got {fsdp},{tp}")
    if fsdp * tp > n:
        raise UserError(f"--mesh {fsdp},{tp} needs {fsdp * tp} devices, this machine has {n}")
    axis_types = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh((fsdp, tp), ("fsdp", "tp"), axis_types=axis_types, devices=jax.devices()[: fsdp * tp])


# --- the model ---------------------------------------------------------------------------------------
def load_base(source: Source, mesh, dtype: str = "auto"):
    """(Gemma3 model placed on the mesh, ModelConfig). dtype auto: the checkpoint's own (Kaggle: bfloat16)."""
    if source.kind == "hf":
        from tunix.models.gemma3 import params_safetensors

        config = hf.read_config(source.path)
        dtype = config.get("torch_dtype", "bfloat16") if dtype == "auto" else dtype
        cfg = hf.model_config(config, dtype)
        model = params_safetensors.create_model_from_safe_tensors(source.path, cfg, mesh, dtype=cfg.param_dtype)
        return model, cfg
    from tunix.models.gemma3 import params

    dtype = "bfloat16" if dtype == "auto" else dtype
    cfg = kaggle_config(_orbax_dir(source.path), dtype)
    model = params.create_model_from_checkpoint(_orbax_dir(source.path), cfg, mesh=mesh, dtype=cfg.param_dtype)
    return model, cfg


def kaggle_config(orbax_dir: str, dtype: str):
    """The ModelConfig of a Kaggle (upstream Flax) Gemma3 checkpoint, read from its tensor shapes.

    The shapes give the sizes; the local window and rope frequencies are Gemma3-1B's (512, 10k / 1M),
    as a checkpoint does not record them.
    """
    import re

    import orbax.checkpoint as ocp

    tree = ocp.StandardCheckpointer().metadata(orbax_dir).item_metadata.tree
    shape = lambda key, name: tuple(tree[f"transformer/{key}"][name].shape)  # noqa: E731
    vocab, d = shape("embedder", "input_embedding")
    layers = len({m.group(1) for k in tree if (m := re.match(r"transformer/layer_(\d+)/", k))})
    heads, _, head_dim = shape("layer_0/attn/q_einsum", "w")
    kv_heads = shape("layer_0/attn/kv_einsum", "w")[1]
    hidden = shape("layer_0/mlp/gating_einsum", "w")[1]
    return hf.model_config(dict(vocab_size=vocab, hidden_size=d, intermediate_size=hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                                sliding_window=512, rope_theta=1_000_000, rope_local_base_freq=10_000), dtype)


def flat_params(model) -> dict:
    """{path tuple: host numpy array} of the model's plain parameters (LoRA adapters left out)."""
    import numpy as np
    from flax import nnx

    state = nnx.state(model, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam)))
    return {path: np.asarray(v.get_value()) for path, v in nnx.to_flat_state(state)}


# --- the tiny model ----------------------------------------------------------------------------------
def tiny_folder() -> str:
    """The tiny model's Hugging Face folder, made once per cache (creating it takes about a second)."""
    cache = os.environ.get("TUNIXHACK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tunixhack")
    path = os.path.join(cache, f"tiny-gemma3-v{TINY_VERSION}")
    if folder_kind(path) == "hf":
        return path
    os.makedirs(cache, exist_ok=True)
    work = f"{path}.build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    _train_tiny_tokenizer(work)
    _write_tiny_weights(work)
    try:
        os.replace(work, path)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(work, ignore_errors=True)
    return path


def _train_tiny_tokenizer(folder: str) -> None:
    """A 512-piece SentencePiece model with Gemma's special ids (pad 0, eos 1, bos 2, unk 3)."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TINY_CORPUS * 4), model_prefix=os.path.join(folder, "tokenizer"),
        vocab_size=512, model_type="bpe", byte_fallback=True, character_coverage=1.0,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=TURN_PIECES, add_dummy_prefix=False,
        remove_extra_whitespaces=False, normalization_rule_name="identity", split_digits=True, num_threads=1,
        hard_vocab_limit=False,
        minloglevel=2)
    os.remove(os.path.join(folder, "tokenizer.vocab"))


def _write_tiny_weights(folder: str) -> None:
    import numpy as np
    import sentencepiece as spm
    from flax import nnx
    from tunix.models.gemma3 import model as gemma3

    config = dict(TINY, torch_dtype="float32")
    cfg = hf.model_config(config, "float32")
    model = gemma3.Gemma3(cfg, rngs=nnx.Rngs(params=0))
    state = flat_params(model)
    rng = np.random.default_rng(0)
    for path, value in state.items():  # Gemma3 starts RMSNorm scales and MLP kernels at 0: a dead MLP would
        if not value.any():            # give its LoRA adapters no gradient, so randomise whatever is all zero
            std = 0.1 if path[-1] == "scale" else 1 / np.sqrt(value.shape[0])
            state[path] = rng.normal(0, std, value.shape).astype(np.float32)
    # The output layer is the embedding (tied). At Gemma3's initial scale (std 0.01, rows of norm 0.08 over 64
    # dimensions) logits stay within about +-0.6 of each other, so no training of the layers can make a
    # prediction confident and sampled text stays noise. Rows of norm 2 let logits reach about +-16, like a
    # trained model's.
    embedding = ("embedder", "input_embedding")
    state[embedding] = rng.normal(0, TINY_EMBED_STD, state[embedding].shape).astype(np.float32)
    tok = spm.SentencePieceProcessor(model_file=os.path.join(folder, hf.TOKENIZER))
    staging = os.path.join(folder, "weights")
    hf.write_folder(state, cfg, staging, folder, "float32", token_ids(tok))
    for name in (hf.WEIGHTS, hf.CONFIG, "generation_config.json", "tokenizer_config.json"):
        os.replace(os.path.join(staging, name), os.path.join(folder, name))
    shutil.rmtree(staging)
