"""Brainstorming: open-ended requests for ideas, answered as a list of distinct ones.

Source: https://huggingface.co/datasets/Wanfq/Explore_Instruct_Brainstorming_10k (one JSON array file, split
train, about 10,000 rows; CC BY-NC 4.0). Example row:
    {"instruction": "Generate ideas for reducing food waste in a university cafeteria.",
     "input": "The cafeteria serves 2,000 students a day and throws away about 15% of the food it prepares.",
     "output": "- Switch from trays to plates only ...\\n- Track leftovers daily ..."}

`input` is "" when the request stands alone; otherwise it is shown as the request's reference text.
`output` (another model's answer) is kept as the row's reference and never sent to the teacher.
Nothing to verify: a reply must pass the shared quality checks and hold at least MIN_IDEAS ideas; an
optional --judge scores it.
    python brainstorming/generate.py --limit 500 --shuffle
"""

from tunixhack import run
from tunixhack.generate.recipe import InstructionRecipe
from tunixhack.verify.quality import check_answer

MIN_IDEAS = 3    # a brainstorm of one or two ideas is not one
MIN_WORDS = 10   # a list of short names can be brief


class Brainstorming(InstructionRecipe):
    name = "brainstorming"
    dataset = "Wanfq/Explore_Instruct_Brainstorming_10k"
    split = "train"
    splits = ("train",)
    category = "brainstorming"
    version = "1"

    def parse(self, row, reply):
        answer = check_answer(reply.content, minimum_words=MIN_WORDS, minimum_ideas=MIN_IDEAS)
        return {"reasoning": reply.reasoning, "answer": answer}


if __name__ == "__main__":
    run(Brainstorming())
