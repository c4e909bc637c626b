"""Creative-writing variants: half of the dataset asks to reconstruct an essay from its summary, half for a story.

The variant is read off the prompt's own text; each has its guidance for the teacher and a minimum length
(a reconstructed essay that is shorter than a page has not developed its summary).
"""

import re

from tunixhack.generate.prompts import NO_PREAMBLE, TEACHER_PROMPT

ESSAY_PROMPT = re.compile(r"\boriginal essay\b|\bfollowing summary\b", re.IGNORECASE)

ESSAY = (
    "Write the complete essay in its author's voice: a clear thesis, paragraphs that develop every point of the "
    "summary with arguments and examples, and a conclusion. Do not mention the summary or that it is a reconstruction."
)
STORY = (
    "Write the complete story: a vivid opening, characters with wants, rising tension and an ending that pays it "
    "off. Show rather than tell; keep every constraint the prompt sets."
)
GUIDANCE = {"essay": ESSAY, "story": STORY}
MIN_WORDS = {"essay": 250, "story": 150}


def variant(prompt: str) -> str:
    """'essay' for an essay-reconstruction prompt, else 'story'."""
    return "essay" if ESSAY_PROMPT.search(prompt) else "story"


def teacher_prompt(prompt: str) -> str:
    return TEACHER_PROMPT.format(question=prompt, guidance=GUIDANCE[variant(prompt)], no_preamble=NO_PREAMBLE)
