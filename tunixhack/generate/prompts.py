"""Instruction templates shared by several recipes (CreativeWriting, Databricks, brainstorming, rewriting).

A teacher prompt is the student's question (the instruction, then its passage if it has one) followed by a
short guidance line for the category, so the answer comes back in the shape the student should learn and
passes the checks in tunixhack/verify/quality.py (no preamble, no talk about the task, no closing offers).

    question_with_context("closed_qa", "Who wrote it?", "Hamlet is a play by ...")   # what the student sees
    instruction_for("closed_qa", "Who wrote it?", "Hamlet is a play by ...")         # what the teacher sees

A recipe that builds its prompts here should put `template_text(category)` into its fingerprint (override
Recipe.template_text) so that editing the templates it uses is noticed on resume.
"""

from __future__ import annotations

import json

# --style written: the teacher writes the student's format itself (the original project's way).
WRITTEN_FORMAT = (
    "Answer in exactly this format:\n"
    "<reasoning>your step-by-step reasoning</reasoning>\n"
    "<answer>your final answer</answer>"
)

# Said to every category: the reply is the training target, so it must be the answer and nothing around it.
NO_PREAMBLE = (
    "Reply with the answer itself: no preface such as \"Sure\" or \"Here is\", no remarks about these "
    "instructions, no closing offer of further help."
)

CREATIVE_WRITING = "Write the piece the request asks for, in polished prose (or verse if asked), with a clear shape."
BRAINSTORMING = (
    "Give several distinct, concrete ideas as a numbered list, one idea per item, each with a sentence on "
    "why or how it works."
)
SUMMARIZATION = "Summarize the text faithfully and concisely, keeping its key points and adding nothing it does not say."
OPEN_QA = "Answer accurately and directly; explain briefly where it helps."
CLOSED_QA = "Answer from the reference text only; if the text does not contain the answer, say so."
GENERAL_QA = "Answer helpfully and accurately, with the detail the question calls for."
CLASSIFICATION = "Give the classification asked for, then one or two sentences on why."
INFORMATION_EXTRACTION = "Extract exactly the information asked for from the reference text, in the form requested."
REWRITING = (
    "Rewrite the text as instructed, keeping its meaning unless told otherwise. Reply with the rewritten "
    "text only."
)

GUIDANCE = {
    "creative_writing": CREATIVE_WRITING,
    "brainstorming": BRAINSTORMING,
    "summarization": SUMMARIZATION,
    "open_qa": OPEN_QA,
    "closed_qa": CLOSED_QA,
    "general_qa": GENERAL_QA,
    "classification": CLASSIFICATION,
    "information_extraction": INFORMATION_EXTRACTION,
    "rewriting": REWRITING,
}
CATEGORIES = tuple(GUIDANCE)

# How the passage that comes with an instruction is introduced, per category.
CONTEXT_LABELS = {"rewriting": "Text to rewrite", "summarization": "Text"}
DEFAULT_CONTEXT_LABEL = "Reference text"
QUESTION_WITH_CONTEXT = "{instruction}\n\n{label}:\n{context}"
TEACHER_PROMPT = "{question}\n\n{guidance} {no_preamble}"


def check_category(category: str) -> str:
    if category not in GUIDANCE:
        raise ValueError(f"category must be {'|'.join(CATEGORIES)}, got {category!r}")
    return category


def question_with_context(category: str, instruction: str, context: str | None = "") -> str:
    """The question as the student sees it: the instruction, then its passage when there is one."""
    check_category(category)
    instruction, context = (instruction or "").strip(), (context or "").strip()
    if not instruction:
        raise ValueError("empty instruction")
    if not context:
        return instruction
    label = CONTEXT_LABELS.get(category, DEFAULT_CONTEXT_LABEL)
    return QUESTION_WITH_CONTEXT.format(instruction=instruction, label=label, context=context)


def instruction_for(category: str, instruction: str, context: str | None = "") -> str:
    """The teacher prompt: the student's question plus the category's guidance. Never pass a reference answer."""
    question = question_with_context(category, instruction, context)
    return TEACHER_PROMPT.format(question=question, guidance=GUIDANCE[category], no_preamble=NO_PREAMBLE)


def template_text(category: str | None = None) -> str:
    """The templates one category's prompts are built from (all of them with no category), as one string:
    fold it into a recipe's fingerprint so that editing a template here is noticed on resume."""
    if category is None:
        parts = {k: v for k, v in globals().items() if k.isupper() and isinstance(v, (str, dict))}
    else:
        parts = {"guidance": GUIDANCE[check_category(category)], "no_preamble": NO_PREAMBLE,
                 "label": CONTEXT_LABELS.get(category, DEFAULT_CONTEXT_LABEL),
                 "question_with_context": QUESTION_WITH_CONTEXT, "teacher_prompt": TEACHER_PROMPT}
    return json.dumps(parts, sort_keys=True)
