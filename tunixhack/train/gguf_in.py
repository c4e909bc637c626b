"""A Gemma 3 GGUF (llama.cpp's format, LM Studio's models) as a model to train: `--model FILE.gguf`.

The file is read once with ggml-org's `gguf` package and written to the cache (TUNIXHACK_CACHE/gguf/) as a
Hugging Face folder, which Tunix then loads like any other: float32 weights exactly as `gguf` dequantizes
them, config.json from the GGUF metadata, tokenizer.model rebuilt from its vocabulary (gguf_vocab.py) and
gguf.json saying where it came from. A second load of the same file (same path, size and mtime) reads the cache.

llama.cpp's converter (convert_hf_to_gguf.py, class Gemma3Model) changed the Hugging Face checkpoint in
ways undone here:
- every `*norm.weight` is stored plus 1 (Gemma's RMSNorm scales by 1 + w, llama.cpp's by w); they are F32,
  so subtracting 1 gives back the original bits;
- tensor names follow gguf-py's map (blk.N.attn_q <-> model.layers.N.self_attn.q_proj, ...), inverted here
  from `gguf.get_tensor_name_map`; GGUF lists dims fastest-first, so the arrays `gguf` returns are already
  Hugging Face's (out, in), and Gemma needs no q/k permutation;
- the LM head is the embedding (tied): there is no output.weight.
What GGUF does not record (the local RoPE base, the query scaling) comes from Tunix's config of the same
size (ModelConfig.gemma3_270m, gemma3_1b_it, ...), and what it records must agree with that config.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from tunixhack.errors import UserError
from tunixhack.train import gguf_vocab, hf

ARCH = "gemma3"
PROVENANCE = "gguf.json"
# Tunix's Gemma 3 text configs, by (layers, width): the check on the metadata and what it lacks
TUNIX_CONFIGS = {(18, 640): "gemma3_270m", (26, 1152): "gemma3_1b_it", (34, 2560): "gemma3_4b_it",
                 (48, 3840): "gemma3_12b_it", (62, 5376): "gemma3_27b_it"}
CHECKED_FIELDS = ("num_layers", "embed_dim", "hidden_dim", "num_heads", "head_dim", "num_kv_heads",
                  "sliding_window_size", "global_base_frequency", "global_scale_factor")
QUANTIZED_NOTE = ("the source is quantized: training starts from its dequantized float32 weights, which differ "
                  "from the original checkpoint by the quantization error")


def is_gguf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def cached_folder(path: str) -> str:
    """The Hugging Face folder of a Gemma 3 GGUF, converted into the cache on first use."""
    path = os.path.realpath(path)
    stat = os.stat(path)
    key = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    stem = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.join(cache_root(), f"{stem}-{key}")
    if os.path.exists(os.path.join(folder, PROVENANCE)):
        return folder
    os.makedirs(cache_root(), exist_ok=True)
    work = f"{folder}.build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        convert(path, work)
        os.replace(work, folder)
    except OSError:
        if not os.path.exists(os.path.join(folder, PROVENANCE)):
            raise
    finally:  # another process finished first (its copy is kept), or this one failed
        for left in (work, f"{work}.tokenizer", f"{work}.partial"):
            shutil.rmtree(left, ignore_errors=True)
    return folder


def cache_root() -> str:
    cache = os.environ.get("TUNIXHACK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tunixhack")
    return os.path.join(cache, "gguf")


def provenance(folder: str) -> dict | None:
    """What run.json records of a GGUF source: the file, its sha256 and its quantization (None: not a GGUF)."""
    path = os.path.join(folder, PROVENANCE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# --- reading --------------------------------------------------------------------------------------------
def open_gemma3(path: str):
    """A GGUFReader on a Gemma 3 file; anything else is refused in one line."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as e:
        raise UserError(f"--model {path}: not a readable GGUF file ({e})") from None
    arch = field(reader, "general.architecture")
    if arch != ARCH:
        raise UserError(f"--model {path} is a {arch!r} GGUF; only Gemma 3 ({ARCH!r}) can be trained here")
    return reader


def field(reader, key: str, default=None):
    found = reader.get_field(key)
    return default if found is None else found.contents()


def convert(path: str, out: str) -> None:
    """Write the GGUF at `path` as a Hugging Face folder `out` (float32) with gguf.json."""
    reader = open_gemma3(path)
    vocab = read_vocab(reader)
    cfg = model_config(reader, path, len(vocab.tokens))
    tensors = hf_tensors(reader, cfg.num_layers)
    staging = f"{out}.tokenizer"
    os.makedirs(staging, exist_ok=True)
    with open(os.path.join(staging, hf.TOKENIZER), "wb") as f:
        f.write(gguf_vocab.sentencepiece_model(vocab))
    with open(os.path.join(staging, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(reader, vocab), f, indent=1)
    end = vocab.tokens.index("<end_of_turn>") if "<end_of_turn>" in vocab.tokens else vocab.ids["eos"]
    hf.write_tensors(tensors, cfg, out, staging, "float32", {**vocab.ids, "end_of_turn": end})
    shutil.rmtree(staging)
    with open(os.path.join(out, PROVENANCE), "w") as f:
        json.dump(describe(reader, path), f, indent=1)


def read_vocab(reader) -> gguf_vocab.Vocab:
    model = field(reader, "tokenizer.ggml.model")
    if model != "llama":
        raise UserError(f"the GGUF's tokenizer is {model!r}; Gemma 3's is SentencePiece ('llama')")
    ids = {name: int(field(reader, f"tokenizer.ggml.{key}_token_id"))
           for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding"))}
    return gguf_vocab.Vocab(field(reader, "tokenizer.ggml.tokens"), [float(s) for s in
                            field(reader, "tokenizer.ggml.scores")],
                            [int(t) for t in field(reader, "tokenizer.ggml.token_type")], ids)


def tokenizer_config(reader, vocab: gguf_vocab.Vocab) -> dict:
    """tokenizer_config.json: the special pieces as the GGUF marks them, and its chat template if any."""
    config = {"tokenizer_class": "GemmaTokenizer", "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token",
                                                                              True)),
              "add_eos_token": False, "added_tokens_decoder": vocab.added_tokens_decoder()}
    config.update({f"{k}_token": vocab.tokens[vocab.ids[k]] for k in ("bos", "eos", "unk", "pad")})
    template = field(reader, "tokenizer.chat_template")
    if template:
        config["chat_template"] = template
    return config


def model_config(reader, path: str, vocab_size: int):
    """Tunix's ModelConfig from the metadata, checked against Tunix's own config of that size."""
    from tunix.models.gemma3 import model as gemma3

    meta = lambda key, default=None: field(reader, f"{ARCH}.{key}", default)  # noqa: E731
    layers, width, head_dim = int(meta("block_count")), int(meta("embedding_length")), int(meta("attention.key_length"))
    heads = int(meta("attention.head_count"))
    known_name = TUNIX_CONFIGS.get((layers, width))
    known = getattr(gemma3.ModelConfig, known_name)() if known_name else None
    embed_div_heads = known is not None and known.query_pre_attn_norm == \
        gemma3.QueryPreAttentionNormalisation.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS
    factor = float(meta("rope.scaling.factor", 1.0) or 1.0)
    config = dict(num_hidden_layers=layers, hidden_size=width, intermediate_size=int(meta("feed_forward_length")),
                  num_attention_heads=heads, num_key_value_heads=int(meta("attention.head_count_kv")),
                  head_dim=head_dim, vocab_size=vocab_size, sliding_window=meta("attention.sliding_window"),
                  rope_theta=float(meta("rope.freq_base", 1_000_000)),
                  rope_local_base_freq=known.local_base_frequency if known else 10_000,
                  query_pre_attn_scalar=width // heads if embed_div_heads else head_dim,
                  rope_scaling={"rope_type": "linear", "factor": factor} if factor != 1.0 else None)
    cfg = hf.model_config(config, "float32")
    if known:
        differ = [f"{name} {getattr(cfg, name)} (Tunix: {getattr(known, name)})" for name in CHECKED_FIELDS
                  if getattr(cfg, name) != getattr(known, name)]
        if differ:
            raise UserError(f"--model {path}: its metadata disagrees with Tunix's ModelConfig.{known_name} of the "
                            f"same size: {', '.join(differ)}")
    return cfg


def hf_names(num_layers: int) -> dict[str, str]:
    """{GGUF tensor name: Hugging Face name}, the inverse of gguf-py's map for Gemma 3."""
    import gguf

    names = ["model.embed_tokens.weight", "model.norm.weight"]
    for i in range(num_layers):
        names += [f"model.layers.{i}.{part}.weight" for part in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",
            "self_attn.k_norm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
            "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")]
    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, num_layers)
    return {tensor_map.get_name(name, try_suffixes=(".weight",)): name for name in names}


def dequantized(tensor) -> np.ndarray:
    """A GGUF tensor as float32 in Hugging Face's shape, exactly as `gguf` dequantizes it."""
    from gguf import quants

    values = quants.dequantize(tensor.data, tensor.tensor_type)
    return values.reshape(tuple(int(d) for d in reversed(tensor.shape))).astype(np.float32, copy=False)


def hf_tensors(reader, num_layers: int) -> dict[str, np.ndarray]:
    names = hf_names(num_layers)
    out = {}
    for tensor in reader.tensors:
        name = names.get(tensor.name)
        if name is None:
            if tensor.name == "output.weight":
                raise UserError("the GGUF has an untied output.weight; Gemma 3 ties the LM head to the embedding")
            continue  # e.g. rope_freqs: nothing Tunix's Gemma 3 holds
        values = dequantized(tensor)
        out[name] = values - np.float32(1.0) if name.endswith("norm.weight") else values
    missing = sorted(set(names.values()) - set(out))
    if missing:
        raise UserError(f"the GGUF lacks {len(missing)} Gemma 3 tensors, e.g. {missing[0]}")
    return out


def describe(reader, path: str) -> dict:
    """gguf.json: the source file, its sha256, its quantization and what that means for training."""
    from gguf import GGMLQuantizationType, LlamaFileType

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    file_type = field(reader, "general.file_type")
    try:
        quantization = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        quantization = "+".join(sorted(types))
    exact = {GGMLQuantizationType.F32.name, GGMLQuantizationType.F16.name, GGMLQuantizationType.BF16.name}
    quantized = not set(types) <= exact
    return {"file": path, "sha256": digest.hexdigest(), "bytes": os.path.getsize(path), "quantization": quantization,
            "tensor_types": types, "name": field(reader, "general.name"), "quantized": quantized,
            "trains": QUANTIZED_NOTE if quantized else "the source's own weights, in float32"}
