"""SciQ: crowd-sourced science exam questions with four options and, mostly, a supporting passage.

Source: https://huggingface.co/datasets/allenai/sciq (train 11,679, validation 1,000, test 1,000; CC BY-NC 3.0).
Example row:
    {"question": "What type of organism is commonly used in preparation of foods such as cheese and yogurt?",
     "distractor1": "viruses", "distractor2": "protozoa", "distractor3": "gymnosperms",
     "correct_answer": "mesophilic organisms", "support": "Mesophiles grow best in moderate temperature, ..."}

The student sees the passage (unless --no-support), the question and options A-D, shuffled with a seed kept
in the row (`option_seed`, `options`). The seed comes from the question and the set of options, never from
which one is correct, so the prompt says nothing about the gold. Options are lowercased, since
`correct_answer` always is and some distractors are not; a correct answer repeated among the distractors is
shown once. The teacher answers with the letter in \\boxed{}.
    python SciQA/generate.py --split validation --limit 100 --concurrency 8
"""

import hashlib
import random

from tunixhack import Recipe, run
from tunixhack.errors import Reject
from tunixhack.verify.choice import extract_choice

LETTERS = "ABCD"
SUPPORT = "{support}\n\n"
QUESTION = "{support}Question: {question}\n\n{options}"
OPTION = "{letter}. {text}"
INSTRUCTION = "{prompt}\n\nChoose the correct option. End your answer with its letter in \\boxed{{}}."


def shown(text: str) -> str:
    return " ".join(text.split()).lower()


class SciQ(Recipe):
    name = "sciq"
    dataset = "allenai/sciq"
    split = "train"
    splits = ("train", "validation", "test")
    category = "science"
    version = "1"
    columns = ("question", "distractor1", "distractor2", "distractor3", "correct_answer", "support")
    use_support = True

    def add_arguments(self, parser):
        parser.add_argument("--no-support", action="store_true", help="leave the supporting passage out of the prompt")

    def configure(self, args):
        super().configure(args)
        self.use_support = not args.no_support

    def fingerprint(self, **parts):
        return super().fingerprint(support=self.use_support, **parts)

    def extra(self, row):
        correct = shown(row["correct_answer"])
        distractors = [shown(row[f"distractor{i}"]) for i in (1, 2, 3)]
        texts = list(dict.fromkeys(t for t in [correct, *distractors] if t))  # repeats and blanks shown once
        if not correct or len(texts) < 2:
            raise ValueError(f"needs a correct answer and a distinct distractor, got {texts}")
        texts.sort()  # the order before shuffling must not depend on which option is correct either
        seed = int(hashlib.sha256("\n".join([shown(row["question"]), *texts]).encode()).hexdigest()[:8], 16)
        random.Random(seed).shuffle(texts)
        return {"options": dict(zip(LETTERS, texts)), "option_seed": seed}

    def prompt(self, row):
        question = row["question"].strip()
        if not question:
            raise ValueError("empty question")
        support = (row["support"] or "").strip() if self.use_support else ""
        options = "\n".join(OPTION.format(letter=k, text=v) for k, v in self.extra(row)["options"].items())
        return QUESTION.format(support=SUPPORT.format(support=support) if support else "", question=question,
                               options=options)

    def teacher_prompt(self, row):
        return INSTRUCTION.format(prompt=self.prompt(row))

    def reference(self, row):
        options = self.extra(row)["options"]
        letter = next(k for k, v in options.items() if v == shown(row["correct_answer"]))
        return OPTION.format(letter=letter, text=options[letter])

    def parse(self, row, reply):
        choice = extract_choice(reply.content, self.extra(row)["options"])
        if choice is None:
            raise Reject("no_choice", "the answer names no option")
        return {"reasoning": reply.reasoning, "answer": reply.content.strip(), "choice": choice}

    def check(self, row):
        options = self.extra(row)["options"]
        return {"kind": "choice", "options": options, "answer": self.reference(row).split(".", 1)[0]}


if __name__ == "__main__":
    run(SciQ())
