"""Count text length in the student's tokens when its tokenizer is at hand, else in words.

`--tokenizer PATH` is a SentencePiece model file (Gemma3's tokenizer.model) or a Hugging Face tokenizer
folder that holds one. Every report says which unit it counts in, so words are never read as tokens.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


class WordCounter:
    unit = "words"

    def count(self, text: str) -> int:
        return len((text or "").split())


class SentencePieceCounter:
    def __init__(self, model_file: Path, label: str):
        try:
            import sentencepiece
        except ImportError:
            raise UserError("--tokenizer needs sentencepiece: pip install sentencepiece (it comes with the [train] "
                            "extra)") from None

        try:
            self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        except (OSError, RuntimeError) as e:
            raise UserError(f"--tokenizer {label} is not a SentencePiece model: {str(e).splitlines()[0]}")
        self.unit = f"tokens ({label})"

    def count(self, text: str) -> int:
        # No BOS/EOS: the count is of the text itself; chat markup is the trainer's to add.
        return len(self.processor.encode(text or ""))


def token_counter(path: str | None):
    """The counter for --tokenizer PATH (None: words)."""
    if not path:
        return WordCounter()
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.model"
        if not p.is_file():
            raise UserError(f"--tokenizer {path} has no tokenizer.model; give a SentencePiece .model file "
                            "or a Hugging Face tokenizer folder that holds one")
    elif not p.is_file():
        raise UserError(f"--tokenizer not found: {path}")
    return SentencePieceCounter(p, path)
