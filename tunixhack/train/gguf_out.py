"""The trained student as a Gemma 3 GGUF, for llama.cpp, LM Studio (`lms import`) and Ollama: export.py --gguf.

What llama.cpp's converter (convert_hf_to_gguf.py, Gemma3Model) writes for a Hugging Face Gemma 3, written here
from the merged weights through ggml-org's `gguf` writer, so that gguf_in.py reads it back to the same model:
the Gemma 3 metadata, norms stored plus 1, gguf-py's tensor names, 1-D tensors in F32 and matrices in the
chosen type; the tokenizer as the converter lists it (gguf_vocab.py); and a chat template in the student's
format (the format instruction after each user message) whose turns end on `<end_of_turn>`, the end-of-turn
stop token, so a chat in LM Studio prompts the model as training did.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tunixhack.student import FORMAT_INSTRUCTION
from tunixhack.train import gguf_in, gguf_vocab

TYPES = ("f32", "f16", "bf16", "q8_0")
NORM_ROUNDING = 2.0 ** -24  # float32 rounds 1 + w to within this much times |1 + w|
CONTEXT_LENGTH = 32768
# Gemma's own template (a system message joins the first user turn), with the student's format instruction
# after each user message as PROMPT_TEMPLATE in tunixhack/student.py puts it.
CHAT_TEMPLATE = (
    "{{ bos_token }}{%- set ns = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{%- set ns.system = ns.system + message['content'] | trim + '\\n\\n' -%}"
    "{%- else -%}{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' }}"
    "{%- if role == 'user' -%}{{ ns.system + message['content'] | trim + '\\n\\n' + INSTRUCTION }}"
    "{%- set ns.system = '' -%}{%- else -%}{{ message['content'] | trim }}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
).replace("INSTRUCTION", json.dumps(FORMAT_INSTRUCTION))


def write(path: str, tensors: dict[str, np.ndarray], cfg, tok, ids: dict, kind: str, name: str,
          added_tokens_decoder: dict | None = None) -> None:
    """Write the Hugging Face tensors of a Gemma 3 (`hf.tensors`) and its tokenizer as a GGUF of type `kind`.

    `kind` is one of TYPES (what export offers), or any other type `gguf` can quantize (q4_0, q5_0, ...: tests).
    """
    import gguf

    qtype = gguf.GGMLQuantizationType[kind.upper()]
    file_type = gguf.LlamaFileType.ALL_F32 if kind == "f32" else gguf.LlamaFileType[f"MOSTLY_{kind.upper()}"]
    partial = f"{path}.partial"
    writer = gguf.GGUFWriter(partial, gguf_in.ARCH)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_license("gemma")  # a Gemma derivative carries the Gemma terms
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_hparams(writer, cfg)
    add_tokenizer(writer, gguf_vocab.gguf_vocab(tok, added_tokens_decoder), ids)
    names = {hf_name: gguf_name for gguf_name, hf_name in gguf_in.hf_names(cfg.num_layers).items()}
    for hf_name, values in tensors.items():
        values = np.asarray(values, np.float32)
        if hf_name.endswith("norm.weight"):
            values = values + np.float32(1.0)  # llama.cpp's RMSNorm scales by w, Gemma's by 1 + w
        if values.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(names[hf_name], values)
        else:
            writer.add_tensor(names[hf_name], gguf.quants.quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, path)


def add_hparams(writer, cfg) -> None:
    import gguf

    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(cfg.embed_dim)
    writer.add_block_count(cfg.num_layers)
    writer.add_feed_forward_length(cfg.hidden_dim)
    writer.add_head_count(cfg.num_heads)
    writer.add_head_count_kv(cfg.num_kv_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(float(cfg.global_base_frequency))
    if cfg.sliding_window_size:
        writer.add_sliding_window(cfg.sliding_window_size)
    if cfg.global_scale_factor != 1.0:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(cfg.global_scale_factor)


def add_tokenizer(writer, vocab: gguf_vocab.Vocab, ids: dict) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_bos_token_id(ids["bos"])
    writer.add_eos_token_id(ids["eos"])
    writer.add_unk_token_id(vocab.ids["unk"])
    writer.add_pad_token_id(ids["pad"])
    writer.add_eot_token_id(ids["end_of_turn"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def read_back(path: str, tensors: dict[str, np.ndarray], tok, texts: list[str]) -> dict:
    """Read the GGUF back as gguf_in.py does: the largest difference from `tensors` in the matrices and in the
    norms (relative to float32's rounding of 1 + w: llama.cpp stores w + 1, which keeps fewer bits of a small w),
    and on how many of `texts` its tokenizer agrees with `tok`."""
    import sentencepiece as spm

    reader = gguf_in.open_gemma3(path)
    back = gguf_in.hf_tensors(reader, int(gguf_in.field(reader, f"{gguf_in.ARCH}.block_count")))
    matrices, norms = 0.0, 0.0
    for name, value in tensors.items():
        value = np.asarray(value, np.float32)
        diff = float(np.max(np.abs(back[name] - value)))
        if name.endswith("norm.weight"):
            norms = max(norms, diff / (NORM_ROUNDING * (1 + float(np.max(np.abs(value))))))
        else:
            matrices = max(matrices, diff)
    rebuilt = spm.SentencePieceProcessor(model_proto=gguf_vocab.sentencepiece_model(gguf_in.read_vocab(reader)))
    same = sum(rebuilt.encode(t) == tok.encode(t) for t in texts)
    return {"max_weight_difference": matrices, "norm_difference_in_roundings": norms,
            "tokenizer_agrees": f"{same}/{len(texts)}"}
