"""Creative writing: essays reconstructed from their summaries, and stories from writing prompts.

Source: https://huggingface.co/datasets/sam-paech/essays-creative-writing-prompts (train, 4,000 rows;
licence not stated). Example row:
    {"conversations": [{"from": "human", "value": "Write the original essay that generated the following
                        summary: The author argues that cities should ..."}]}

There is nothing to verify against: replies pass the shared quality checks (not empty, no talk about the
task, no repetition loop, long enough for the variant), and an optional --judge scores them.
The variants (essay or story, read off the prompt) live in this folder's prompts.py.
    python CreativeWriting/generate.py --limit 200 --judge lmstudio --min-score 7
"""

import json

from tunixhack import Recipe, run
from tunixhack.generate.prompts import template_text
from tunixhack.verify.quality import check_answer

from prompts import GUIDANCE, MIN_WORDS, teacher_prompt, variant  # this folder's prompts.py


class CreativeWriting(Recipe):
    name = "creative_writing"
    dataset = "sam-paech/essays-creative-writing-prompts"
    split = "train"
    splits = ("train",)
    category = "creative_writing"
    version = "1"
    columns = ("conversations",)

    def prompt(self, row):
        turns = row["conversations"]
        if len(turns) != 1 or turns[0]["from"] != "human":
            raise ValueError(f"expected one human turn, got {[turn.get('from') for turn in turns]}")
        text = turns[0]["value"].strip()
        if not text:
            raise ValueError("empty prompt")
        return text

    def teacher_prompt(self, row):
        return teacher_prompt(self.prompt(row))

    def extra(self, row):
        return {"variant": variant(self.prompt(row))}

    def parse(self, row, reply):
        minimum = MIN_WORDS[variant(self.prompt(row))]
        return {"reasoning": reply.reasoning, "answer": check_answer(reply.content, minimum_words=minimum)}

    def template_text(self):
        # The variants live in prompts.py: editing one must change the fingerprint too.
        return super().template_text() + template_text(self.category) + json.dumps([GUIDANCE, MIN_WORDS])


if __name__ == "__main__":
    run(CreativeWriting())
