"""Split a teacher's output into reasoning and answer.

Servers disagree on where the thinking goes (see ../shared/notes/teachers.md): a separate
`reasoning_content` or `reasoning` field, `<think>...</think>` inside the content, or only a lone
`</think>` when the chat template opened the tag inside the prompt. The order of preference is that one.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TAGGED = re.compile(r"<reasoning>(.*?)</reasoning>\s*<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def split_reasoning(content: str | None, reasoning_field: str | None = None) -> tuple[str, str, bool]:
    """Return (reasoning, answer, thinking_closed).

    thinking_closed is False when the thinking was opened but never ended: the reply was cut off while
    the model was still thinking, so the answer is empty and must not be trusted.
    """
    content = content or ""
    if reasoning_field:
        # Some servers still leave a stray closing tag at the start of the content.
        answer = content.split(THINK_CLOSE, 1)[1] if THINK_CLOSE in content else content
        return reasoning_field.strip(), answer.strip(), True
    if THINK_CLOSE in content:
        before, answer = content.split(THINK_CLOSE, 1)
        reasoning = before.split(THINK_OPEN, 1)[1] if THINK_OPEN in before else before
        return reasoning.strip(), answer.strip(), True
    if THINK_OPEN in content:
        before, thinking = content.split(THINK_OPEN, 1)
        return thinking.strip(), before.strip(), False
    return "", content.strip(), True


def split_tagged(text: str) -> tuple[str, str] | None:
    """The written style: the teacher wrote `<reasoning>...</reasoning><answer>...</answer>` itself.

    Returns (reasoning, answer), or None when the tags are missing. A missing final `</answer>` is
    tolerated (the reply ended right after the answer); the last tagged pair wins.
    """
    matches = TAGGED.findall(text or "")
    if not matches:
        return None
    reasoning, answer = matches[-1]
    return reasoning.strip(), answer.strip()
