"""Split a teacher's output into reasoning and answer.

Servers disagree on where the thinking goes (see ../shared/notes/teachers.md): a separate
`reasoning_content` or `reasoning` field, `<think>...</think>` inside the content, or only a lone
`</think>` when the chat template opened the tag inside the prompt. The order of preference is that one.
"""

from __future__ import annotations


THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


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

