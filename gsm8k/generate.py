"""GSM8K: grade-school math word problems with a checkable final answer.

Source: https://huggingface.co/datasets/openai/gsm8k (config main; train 7,473, test 1,319; MIT).
Example row:
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many
                  clips in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\n... \\n#### 72"}

The teacher sees only the question; the text after '####' (commas stripped) is the gold answer, checked with
math-verify (check kind math).
    python gsm8k/generate.py --split test --limit 100 --concurrency 8
"""

from tunixhack import Recipe, run
from tunixhack.verify.math import gsm8k_gold

INSTRUCTION = "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


class GSM8K(Recipe):
    name = "gsm8k"
    dataset = "openai/gsm8k"
    config = "main"
    split = "train"
    splits = ("train", "test")
    category = "math"
    version = "1"
    columns = ("question", "answer")

    def prompt(self, row):
        question = row["question"].strip()
        if not question:
            raise ValueError("empty question")
        return question

    def teacher_prompt(self, row):
        return INSTRUCTION.format(question=self.prompt(row))

    def reference(self, row):
        return gsm8k_gold(row["answer"])

    def check(self, row):
        return {"kind": "math", "gold": self.reference(row)}


if __name__ == "__main__":
    run(GSM8K())
