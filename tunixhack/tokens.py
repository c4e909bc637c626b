"""Count text length in the student's tokens when its tokenizer is at hand, else in words.

`--tokenizer PATH` is a SentencePiece model file (Gemma3's tokenizer.model) or a Hugging Face tokenizer
folder that holds one. Without it, the student's own tokenizer is taken from the Hugging Face cache, where
train/ finds Gemma3-1B-it (nothing is downloaded); words are the fallback, and said so. Every report says
which unit it counts in, so words are never read as tokens.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .student import render_completion, render_prompt


GEMMA_REPO = "google/gemma-3-1b-it"  # the student: tunixhack/train/model.py's HF_REPO
MAX_PROMPT_TOKENS = 256  # the GRPO prompt's budget by default: train/grpo.py --max-prompt-len, crap.py mix's too
SEGMENT_CHARS = 200      # StreamCount encodes a streamed text in pieces of about this many characters
LONGEST_WORD = 1000      # a run without whitespace longer than this is encoded as it stands (no seam to wait for)
WHITESPACE = " \n\t"


class WordCounter:
    unit = "words"
    note = ""  # why words, when tokens were wanted

    def count(self, text: str) -> int:
        return len((text or "").split())


class SentencePieceCounter:
    note = ""

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


def cached_gemma_tokenizer() -> str | None:
    """The student's tokenizer.model in the Hugging Face cache (where train/ keeps the weights), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(GEMMA_REPO, "tokenizer.model")
    return found if isinstance(found, str) else None


def student_counter(path: str | None):
    """The counter for --tokenizer PATH; without one, Gemma3's tokens when its tokenizer is in the cache (so the
    mix's budgets count what SFT's --max-len counts), else words with a note saying so."""
    if path:
        return token_counter(path)
    found = cached_gemma_tokenizer()
    if found:
        try:
            counter = SentencePieceCounter(Path(found), found)
            counter.unit = f"tokens ({GEMMA_REPO}, from the Hugging Face cache)"
            return counter
        except UserError:  # no sentencepiece on the generation side: words, said so below
            pass
    words = WordCounter()
    words.note = (f"note: lengths in words, not the student's tokens: no --tokenizer given and no {GEMMA_REPO} "
                  "tokenizer.model in the Hugging Face cache (or no sentencepiece); train/sft.py --max-len counts "
                  "tokens, about 1.3 a word in English")
    return words


def specials(counter) -> int:
    """<bos> before the prompt, and <end_of_turn> after the completion, each one token the trainer adds as an id
    (nothing in words)."""
    return 0 if isinstance(counter, WordCounter) else 1


def prompt_length(prompt: str, counter) -> int:
    """The student's chat prompt with <bos>: what GRPO's --max-prompt-len bounds."""
    return specials(counter) + counter.count(render_prompt(prompt))


def completion_length(reasoning: str, answer: str, counter) -> int:
    """What the student learns to write: `<reasoning>..</reasoning><answer>..</answer>` and <end_of_turn>."""
    return counter.count(render_completion({"reasoning": reasoning, "answer": answer})) + specials(counter)


def row_length(prompt: str, reasoning: str, answer: str, counter) -> int:
    """The whole SFT example, chat prompt and completion: what SFT's --max-len and crap.py mix's max_tokens
    bound (and --budget-from in generation)."""
    return prompt_length(prompt, counter) + completion_length(reasoning, answer, counter)


class StreamCount:
    """A streamed text's length in a counter's unit, each character encoded once, whatever the chunks.

    Finished segments are counted and added: once SEGMENT_CHARS characters or a newline have come, the text up to
    its last whitespace is encoded, the rest waits for more. So `total` lags the text by at most the waiting tail
    (under SEGMENT_CHARS characters, or one word up to LONGEST_WORD); and as every segment starts at a whitespace,
    SentencePiece encodes it as it would in the whole text, but for a piece or so at a seam. Words add exactly.
    """

    def __init__(self, counter):
        self.counter, self.total, self._tail = counter, 0, ""

    def feed(self, text: str) -> int:
        self._tail += text
        if len(self._tail) >= SEGMENT_CHARS or "\n" in text:
            cut = max(self._tail.rfind(c) for c in WHITESPACE)
            if cut <= 0 and len(self._tail) > LONGEST_WORD:
                cut = len(self._tail)
            if cut > 0:
                self.total += self.counter.count(self._tail[:cut])
                self._tail = self._tail[cut:]
        return self.total

    def finish(self) -> int:
        """The text has ended: count the tail too."""
        if self._tail:
            self.total += self.counter.count(self._tail)
            self._tail = ""
        return self.total
