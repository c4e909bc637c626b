"""The student's format, defined and parsed here only: `<reasoning>...</reasoning><answer>...</answer>`.

What the student sees (a Gemma chat turn with the format instruction), what it learns to write, and how a reply
in that format is read back: by the mix's length budget, SFT, GRPO rewards, evaluation, and the generation
engine when a teacher is asked to write the tags itself (--style written).
"""

from __future__ import annotations

import re

FORMAT_INSTRUCTION = ("Think step by step inside <reasoning></reasoning>, then give your final answer inside "
                      "<answer></answer>.")
PROMPT_TEMPLATE = "<start_of_turn>user\n{prompt}\n\n{instruction}<end_of_turn>\n<start_of_turn>model\n"

TAGGED = re.compile(r"<reasoning>(.*?)</reasoning>\s*<answer>(.*?)(?:</answer>|$)", re.DOTALL)
STRICT = re.compile(r"\s*<reasoning>(?P<reasoning>.*?\S.*?)</reasoning>\s*<answer>(?P<answer>.*?\S.*?)</answer>\s*",
                    re.DOTALL)
END_TOKENS = re.compile(r"(?:<end_of_turn>|<eos>)+\s*$")


def render_prompt(prompt: str) -> str:
    return PROMPT_TEMPLATE.format(prompt=prompt.strip(), instruction=FORMAT_INSTRUCTION)


def render_completion(row: dict) -> str:
    """What the student learns to write (DESIGN.md): the reasoning, then the answer, in tags."""
    return f"<reasoning>{row.get('reasoning') or ''}</reasoning><answer>{row.get('answer') or ''}</answer>"


def split_tagged(text: str) -> tuple[str, str] | None:
    """(reasoning, answer) of a reply in the format, or None when the tags are missing.

    A missing final `</answer>` is tolerated (the reply ended right after the answer); the last tagged pair wins.
    """
    matches = TAGGED.findall(text or "")
    if not matches:
        return None
    reasoning, answer = matches[-1]
    return reasoning.strip(), answer.strip()


def clean(completion) -> str:
    """The completion without the end-of-turn marker a decoder may leave at the end."""
    return END_TOKENS.sub("", str(completion))


def answer_of(completion) -> str | None:
    """The text inside <answer>...</answer> (a missing final </answer> is tolerated), or None."""
    tagged = split_tagged(clean(completion))
    return tagged[1] if tagged and tagged[1] else None


def format_compliant(completion) -> bool:
    """Exactly `<reasoning>non-empty</reasoning><answer>non-empty</answer>`, nothing around it."""
    return STRICT.fullmatch(clean(completion)) is not None
