"""Rewriting: rewrite a given text as instructed (formal, simpler, shorter, another tone...).

Source: https://huggingface.co/datasets/Wanfq/Explore_Instruct_Rewriting_10k (one JSON array file, split train,
about 10,000 rows; CC BY-NC 4.0). Example row:
    {"instruction": "Rewrite this email to make it more formal.",
     "input": "hey team, cant make it tmrw, can someone cover my shift? thx",
     "output": "Dear team, I am unable to attend tomorrow. Could someone cover my shift? Thank you."}

The text to rewrite (`input`) is part of the prompt; `output` (another model's answer) is kept as the row's
reference and never sent to the teacher. Rejected: the shared quality failures, an answer that is the input
again (whitespace and case aside), and one wildly off in length (outside MIN_RATIO-MAX_RATIO times the input)
unless the instruction asks to shorten or to expand.
    python rewriting/generate.py --limit 500 --judge lmstudio
"""

import re

from tunixhack import run
from tunixhack.generate.recipe import InstructionRecipe
from tunixhack.verify.quality import check_answer, differs_from, length_ratio, words

SHORTER = (r"\b(?:shorten|shorter|summari[sz]e|summary|condense|concise|brief|briefly|reduce|trim|cut|tl;?dr"
           r"|one sentence|single sentence|one line|fewer words|tweet|headline|title|slogan)\b")
LONGER = r"\b(?:expand|longer|lengthen|elaborate|more detail|more detailed|flesh out|extend|add (?:more )?details)\b"
MIN_RATIO, MAX_RATIO = 0.2, 5.0
MIN_INPUT_WORDS = 8   # below this a length ratio says nothing ("hi" -> "Good morning, everyone" is 3x)


class Rewriting(InstructionRecipe):
    name = "rewriting"
    dataset = "Wanfq/Explore_Instruct_Rewriting_10k"
    split = "train"
    splits = ("train",)
    category = "rewriting"
    version = "1"

    def parse(self, row, reply):
        answer = check_answer(reply.content)
        source = (row["input"] or "").strip()
        if source:
            differs_from(answer, source)
        if len(words(source)) >= MIN_INPUT_WORDS:
            low = 0.0 if re.search(SHORTER, row["instruction"], re.IGNORECASE) else MIN_RATIO
            high = float("inf") if re.search(LONGER, row["instruction"], re.IGNORECASE) else MAX_RATIO
            length_ratio(answer, source, low, high)
        return {"reasoning": reply.reasoning, "answer": answer}


if __name__ == "__main__":
    run(Rewriting())
