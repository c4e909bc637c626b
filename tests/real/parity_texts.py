"""The texts tests/real/test_gemma_parity.py gives to our Gemma 3 and to llama.cpp, made here, deterministically.

- `tokenizer_strings()`: templates x fillers in seven kinds (English, digits, indented code, unicode and emoji,
  whitespace runs, the chat template, our tags beside punctuation), each kind a few dozen strings.
- `short_prompts()` and `long_prompts()`: prompts built from the repository's dataset fixtures (Dolly, GSM8K,
  SciQ, MBPP rows), as plain text, as questions, as code and as the student's chat turn; the long ones are
  passages past Gemma 3's 512-token sliding window.
"""

from __future__ import annotations

import itertools
import json

from tests.helpers import FIXTURES
from tunixhack.student import FORMAT_INSTRUCTION, render_prompt

TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
PUNCTUATION = (".", ",", ":", ";", "!", "?", "(", ")", '"', "'", "-", "*", "`", "[", "]", "/", "#", " ", "\n", "\n\n")


def fill(templates, **fillers) -> list[str]:
    """Every template with every combination of its fillers."""
    names = list(fillers)
    return [t.format(**dict(zip(names, values))) for t in templates for values in itertools.product(*fillers.values())]


def english() -> list[str]:
    subjects = ["The quick brown fox", "Natalia", "A train leaving Chicago", "Photosynthesis", "The committee's report",
                "Nobody", "Her grandmother's recipe"]
    return fill(["{s} jumps over the lazy dog.", "Why did {s} stop?", "{s}, however, didn't -- not really.",
                 '"{s}," she said.', "{s} isn't what we'd expected; it's better!"], s=subjects)


def digits() -> list[str]:
    numbers = ["0", "7", "42", "100", "1234", "12,345.67", "3.14159", "-0.5", "1e-9", "2024-01-31", "$1,000,000",
               "007", "99%", "1/3", "10^6", "0x1F"]
    return fill(["{n}", "x = {n}", "{n} + {n} = ?", "Answer: {n}.", "#### {n}"], n=numbers)


def code() -> list[str]:
    indents = ["  ", "    ", "        ", "\t", "\t\t", " \t", "   "]
    numbers = ["2", "10"]
    return fill(["def f(x):\n{i}return x * {k}\n", "for i in range({k}):\n{i}if i % 2:\n{i}{i}print(i)\n",
                 "class A:\n{i}def __init__(self):\n{i}{i}self.items = [{k}, {k}]\n",
                 "```python\n{i}total += {k}  # running sum\n```",
                 "{{\n{i}\"key\": {k},\n{i}\"list\": [\n{i}{i}{k}\n{i}]\n}}"],
                i=indents, k=numbers)


def unicode() -> list[str]:
    words = ["café", "naïve", "Ångström", "日本語のテキスト", "中文字符", "한국어", "Ελληνικά", "русский текст", "العربية",
             "עברית", "हिन्दी", "🦊", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "e\u0301", "a\u200bb", "ﬁnal", "½ ¾", "25°C",
             "€5", "∑∫√∞", "🙂🙂🙂", "\u00a0nbsp"]
    return fill(["{u}", "The word {u} here.", "({u})", "{u}{u}", "\n{u}\n"], u=words)


def whitespace() -> list[str]:
    runs = [c * n for c in (" ", "\n", "\t", "\r\n", " \n") for n in (1, 2, 3, 5, 8, 16, 31, 64)]
    return fill(["a{w}b", "{w}", "{w}x", "end.{w}"], w=runs)


def chat() -> list[str]:
    questions = [row["question"] for row in rows("gsm8k/test.jsonl")] + [row["instruction"] for row in
                                                                          rows("dolly/databricks-dolly-15k.jsonl")[:8]]
    replies = ["<reasoning>48 / 2 = 24, and 48 + 24 = 72.</reasoning><answer>72</answer>",
               "<reasoning>\nFirst, the total.\n</reasoning>\n<answer>\nC\n</answer>"]
    turns = [render_prompt(q) for q in questions]
    turns += [render_prompt(q) + r + "<end_of_turn>\n" for q, r in itertools.product(questions[:6], replies)]
    turns += [f"<start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n" for q in questions]
    return turns + [FORMAT_INSTRUCTION, "<start_of_turn>", "<end_of_turn>\n", "<start_of_turn>model\n"]


def tags() -> list[str]:
    near = fill(["{p}{t}", "{t}{p}", "x{p}{t}42{p}"], t=TAGS, p=PUNCTUATION)
    return near + ["<reasoning>2 + 2 = 4.</reasoning><answer>4</answer>", "(<answer>B)</answer>)",
                   "<reasoning></reasoning><answer></answer>", '"<answer>yes</answer>".']


KINDS = {"english": english, "digits": digits, "code": code, "unicode": unicode, "whitespace": whitespace,
         "chat": chat, "tags": tags}


def tokenizer_strings() -> dict[str, list[str]]:
    """{kind: distinct strings}."""
    return {kind: list(dict.fromkeys(make())) for kind, make in KINDS.items()}


# --- prompts for the model --------------------------------------------------------------------------------
def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def short_prompts(count: int) -> list[str]:
    """`count` prompts spread evenly over: Dolly instructions, GSM8K and SciQ questions, MBPP code, the student's
    chat turn, famous openings."""
    dolly = rows("dolly/databricks-dolly-15k.jsonl")
    gsm8k = rows("gsm8k/test.jsonl")
    sciq = rows("sciq/train.jsonl")
    mbpp = rows("mbpp/full.jsonl")
    prompts = [row["instruction"] for row in dolly]
    prompts += [f"Question: {row['question']}\nAnswer:" for row in gsm8k + sciq]
    prompts += [f"# {row['text']}\n{row['code'].splitlines()[0].strip()}\n" for row in mbpp]
    prompts += [render_prompt(row["question"]) for row in gsm8k[:4]]
    prompts += ["The quick brown fox jumps over the", "Water boils at", "1, 1, 2, 3, 5, 8, 13,"]
    prompts = list(dict.fromkeys(prompts))
    return [prompts[i * len(prompts) // count] for i in range(count)]


def long_prompts(tok, count: int, min_tokens: int = 520, step: int = 12) -> list[str]:
    """`count` passages of min_tokens, min_tokens + step, ... tokens: Dolly contexts, SciQ supports and GSM8K
    solutions, each passage starting at a different row, ending on a question about it."""
    passages = [row["context"] for row in rows("dolly/databricks-dolly-15k.jsonl") if row["context"]]
    passages += [row["support"] for row in rows("sciq/train.jsonl") if row["support"]]
    passages += [f"{row['question']}\n{row['answer']}" for row in rows("gsm8k/test.jsonl")]
    out = []
    for i in range(count):
        target = min_tokens + step * i
        ids: list[int] = []
        for passage in itertools.islice(itertools.cycle(passages), i, None):
            ids += tok.encode(passage + "\n\n")
            if len(ids) >= target:
                break
        out.append(tok.decode(ids[:target]) + "\n\nIn one sentence, the passage above is about")
    return out
