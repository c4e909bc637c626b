"""Instruction templates shared by several recipes."""

# --style written: the teacher writes the student's format itself (the original project's way).
WRITTEN_FORMAT = (
    "Answer in exactly this format:\n"
    "<reasoning>your step-by-step reasoning</reasoning>\n"
    "<answer>your final answer</answer>"
)
