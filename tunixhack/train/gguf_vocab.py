"""Gemma's tokenizer between a GGUF vocabulary and a SentencePiece model, both ways.

A GGUF of Gemma 3 (tokenizer.ggml.model `llama`) lists every piece with its score and type; llama.cpp's
converter (convert_hf_to_gguf.py, `_create_vocab_sentencepiece`) made that list from tokenizer.model and
changed two things, which `sentencepiece_model` undoes and `gguf_vocab` redoes:
- pieces Hugging Face marks special (tokenizer_config.json's added_tokens_decoder) became CONTROL, e.g.
  `<start_of_turn>` and `<end_of_turn>`; SentencePiece keeps only pad, eos and bos as control pieces (so
  that the text "<start_of_turn>" encodes to its one id, as llama.cpp does with special parsing on);
- the other added pieces became USER_DEFINED with U+2581 (SentencePiece's space) written as a plain space.
The SentencePiece model is BPE over those scores with byte fallback, no dummy prefix and no normalisation:
llama.cpp's SPM tokenizer (`add_space_prefix` false for Gemma 3) on the same vocabulary.
"""

from __future__ import annotations

import dataclasses

SPACE = "\u2581"  # SentencePiece's visible space
# gguf.TokenType, which is SentencePiece's ModelProto.SentencePiece.Type numbering too
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# Gemma's special pieces by name, for a tokenizer that carries no added_tokens_decoder (the tiny model's)
GEMMA_SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>")


@dataclasses.dataclass
class Vocab:
    """A GGUF vocabulary: parallel lists, plus the special ids."""
    tokens: list[str]
    scores: list[float]
    types: list[int]
    ids: dict  # bos, eos, unk, pad

    def added_tokens_decoder(self) -> dict:
        """tokenizer_config.json's record of which added pieces are special (what the GGUF says, kept), with
        SentencePiece's spaces in the others as Hugging Face writes them."""
        return {str(i): {"content": self.tokens[i] if t == CONTROL else self.tokens[i].replace(" ", SPACE),
                         "special": t == CONTROL}
                for i, t in enumerate(self.types) if t in (CONTROL, USER_DEFINED)}


def sentencepiece_model(vocab: Vocab) -> bytes:
    """A serialized SentencePiece ModelProto that encodes text as llama.cpp does with this vocabulary."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    keep_control = {vocab.ids["bos"], vocab.ids["eos"], vocab.ids["pad"]}
    for i, (piece, score, kind) in enumerate(zip(vocab.tokens, vocab.scores, vocab.types)):
        if i == vocab.ids["unk"]:
            kind = UNKNOWN
        elif kind == CONTROL and i not in keep_control:
            kind = USER_DEFINED
        elif kind == USER_DEFINED:
            piece = piece.replace(" ", SPACE)
        model.pieces.add(piece=piece, score=score, type=kind)
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = len(vocab.tokens)
    spec.byte_fallback = True
    spec.allow_whitespace_only_pieces = True
    spec.split_by_whitespace = False
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = (vocab.ids[k] for k in ("unk", "bos", "eos", "pad"))
    for name in ("unk", "bos", "eos", "pad"):
        setattr(spec, f"{name}_piece", vocab.tokens[vocab.ids[name]])
    norm = model.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix = False
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True
    return model.SerializeToString()


def gguf_vocab(tok, added_tokens_decoder: dict | None = None) -> Vocab:
    """The GGUF vocabulary of a SentencePiece processor, as llama.cpp's converter writes it.

    `added_tokens_decoder` (from tokenizer_config.json) says which added pieces are special; without one (the
    tiny model's tokenizer), SentencePiece's control and unknown pieces and Gemma's special pieces by name are.
    Added pieces get the converter's score, -1000.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(tok.serialized_model_proto())
    tokens = [p.piece for p in proto.pieces]
    scores = [float(p.score) for p in proto.pieces]
    types = [int(p.type) for p in proto.pieces]
    if added_tokens_decoder is None:
        added_tokens_decoder = {str(i): {"content": tokens[i], "special": types[i] != USER_DEFINED or
                                         tokens[i] in GEMMA_SPECIAL}
                                for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED, UNKNOWN)}
    for key, added in added_tokens_decoder.items():
        i = int(key)
        if i < len(tokens):
            special = bool(added.get("special"))
            types[i] = CONTROL if special else USER_DEFINED
            tokens[i] = added["content"] if special else added["content"].replace(SPACE, " ")
            scores[i] = -1000.0
    ids = {"bos": tok.bos_id(), "eos": tok.eos_id(), "unk": tok.unk_id(), "pad": tok.pad_id()}
    return Vocab(tokens, scores, types, ids)
