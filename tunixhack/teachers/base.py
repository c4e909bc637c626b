"""What every teacher backend returns, and the sampling parameters it is given."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .watch import Budget


@dataclass(frozen=True)
class Sampling:
    """Qwen3 thinking-mode defaults: never greedy (greedy decoding loops)."""

    max_tokens: int = 32768
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    timeout: float = 1800.0  # seconds for one whole request; it is cancelled past that
    budget: Budget = field(default_factory=Budget)  # where a streaming reply is cut (teachers/watch.py)

    def as_dict(self) -> dict:
        """The sampling parameters (the budget is not one: it decides which replies are kept, not how they are made)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "budget"}  # asdict would copy the
        # budget's tokenizer on every row


@dataclass
class Reply:
    """One teacher completion, with the reasoning already separated from the answer."""

    content: str                 # the text after the thinking (the teacher's answer), tags stripped
    reasoning: str               # the teacher's thinking, tags stripped
    finish: str                  # stop | length | error | cancelled | other
    thinking_closed: bool        # False when the thinking never ended (usually with finish == "length")
    model: str = ""
    endpoint: str = ""
    backend: str = ""
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, reasoning_tokens, seconds, tokens_per_second
    stopped: str | None = None   # why the watch cancelled it mid-stream ("repetition_loop: ...", "too_long: ...")


def usage_dict(prompt_tokens, completion_tokens, seconds, reasoning_tokens=None, tokens_per_second=None) -> dict:
    """Normalised usage: the same keys from every backend, None where a server did not say."""
    if tokens_per_second is None and completion_tokens and seconds:
        tokens_per_second = completion_tokens / seconds
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "reasoning_tokens": reasoning_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens_per_second, 2) if tokens_per_second else None,
    }
