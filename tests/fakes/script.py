"""Scripted Qwen3-style replies for the fake teacher servers, chosen by prompt text.

Replies are keyed by a substring of the last user message, never by call order, so any number of
concurrent requests get the same answers. A rule can also misbehave, to test the runner:

    {"match": "Natalia", "reasoning": "48/2 = 24 ...", "content": "\\boxed{72}"}
    {"match": "flaky",   "content": "ok", "fail": 2, "status": 500}     # first 2 calls: HTTP 500, then ok
    {"match": "limited", "content": "ok", "fail": 1, "status": 429}
    {"match": "dropme",  "content": "ok", "fail": 1, "drop": true}     # first call: connection cut mid-reply
    {"match": "stuck",   "hang": true}                                  # never answers
    {"match": "ramble",  "reasoning": "hmm hmm", "unclosed": true}     # thinking never closes: finish=length
    {"match": "slow",    "rate": 50}                                    # one word an event, 50 words a second
    {"match": "loops",   "loop": "Wait, let me check that again."}     # thinking repeats it up to max_tokens
    {"match": "loopsans", "loop": "and again", "loop_in": "answer"}      # the answer does
    {"match": "retry", "contents": ["wrong", "right"]}                  # call n gets contents[n] (then the last)

Replies that stream at a rate or loop come one word (one "token") an event, as llama.cpp and vLLM send them;
a loop goes on until the request's max_tokens, then ends with finish "length", as a real server's would.

A script file is JSON: {"models": [...], "latency": seconds, "rules": [...], "default": {...}}.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace


@dataclass
class Rule:
    match: str = ""
    reasoning: str = "Let me think about this."
    content: str = "I am not sure."
    latency: float | None = None   # seconds before the reply starts (None: the script's default)
    fail: int = 0                  # how many first calls misbehave (status or drop)
    status: int = 500
    drop: bool = False
    hang: bool = False
    unclosed: bool = False
    chunks: int = 4                # how many pieces a streamed reply comes in
    rate: float | None = None      # words (tokens) a second, one an event; None: at once, in `chunks` pieces
    loop: str = ""                 # repeated after the text until max_tokens: a sampling loop
    loop_in: str = "reasoning"     # where the loop is: reasoning | answer
    loop_calls: int = 0            # only the first N calls loop (0: every call), to test resampling
    contents: list[str] = field(default_factory=list)  # call n's content (the last one after), to test resampling

    @property
    def word_by_word(self) -> bool:
        return bool(self.rate or self.loop)

    def words(self, max_tokens: int) -> Iterator[tuple[str, str]]:
        """(reasoning | answer, word and its space) one token at a time, at most max_tokens of them."""
        def stream(part: str, text: str, loop: str) -> Iterator[tuple[str, str]]:
            for word in text.split():
                yield part, word + " "
            while loop:
                for word in loop.split():
                    yield part, word + " "

        sent = 0
        reasoning = stream("reasoning", self.reasoning, self.loop if self.loop_in == "reasoning" else "")
        answer = stream("answer", self.content, self.loop if self.loop_in == "answer" else "")
        for piece in itertools.chain(reasoning, () if self.unclosed else answer):
            if sent >= max_tokens:
                return
            sent += 1
            yield piece

    def runs_out(self) -> bool:
        """Whether the reply ends at max_tokens (finish length) rather than by itself."""
        return bool(self.loop) or self.unclosed


@dataclass
class Script:
    rules: list[Rule] = field(default_factory=list)
    default: Rule = field(default_factory=Rule)
    models: list[str] = field(default_factory=lambda: ["qwen3-14b"])
    latency: float = 0.0
    calls: list[str] = field(default_factory=list)   # every user prompt received, in arrival order

    def __post_init__(self):
        self._lock = threading.Lock()
        self._seen: dict[int, int] = {}

    @classmethod
    def from_dict(cls, data: dict) -> "Script":
        return cls(
            rules=[Rule(**r) for r in data.get("rules", [])],
            default=Rule(**data.get("default", {})),
            models=data.get("models", ["qwen3-14b"]),
            latency=data.get("latency", 0.0),
        )

    @classmethod
    def load(cls, path) -> "Script":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def pick(self, messages: list[dict]) -> tuple[Rule, bool]:
        """The rule for these messages, and whether this call is one that must misbehave."""
        prompt = last_user_text(messages)
        rule = next((r for r in self.rules if r.match and r.match in prompt), self.default)
        with self._lock:
            self.calls.append(prompt)
            n = self._seen.get(id(rule), 0)
            self._seen[id(rule)] = n + 1
        misbehave = n < rule.fail
        if rule.loop_calls and n >= rule.loop_calls:
            rule = replace(rule, loop="")
        if rule.contents:
            rule = replace(rule, content=rule.contents[min(n, len(rule.contents) - 1)])
        return rule, misbehave

    def delay(self, rule: Rule) -> float:
        return self.latency if rule.latency is None else rule.latency


def last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # OpenAI content parts
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


def split_chunks(text: str, n: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, n)))
    return [text[i : i + size] for i in range(0, len(text), size)]
