"""Reply-quality checks (tunixhack/verify/quality.py) and the shared category templates (tunixhack/generate/prompts.py)."""

import pytest

from tunixhack.generate import prompts

from tunixhack.verify import quality
from tunixhack.errors import Reject

ESSAY = (
    "Cities grew along rivers because water meant trade, food and defence. Over centuries the river ports "
    "became markets, the markets became towns, and the towns learned to tax what floated past them. "
    "Railways later broke that monopoly, yet the old quarters still crowd the banks."
)
LOOPED = ESSAY + " " + "and the river kept flowing past the old mill " * 12
PASTED_TWICE = " ".join([ESSAY] * 3)


def reason(check, *args, **kwargs):
    """The reject reason a check gives, or None when it accepts."""
    try:
        check(*args, **kwargs)
    except Reject as r:
        return r.reason
    return None


@pytest.mark.parametrize("text, expected", [
    (ESSAY, None),
    ("", "empty_answer"),
    ("   \n\t ", "empty_answer"),
    (None, "empty_answer"),
    ("Too short.", "too_short"),
    (LOOPED, "repetition_loop"),
    (PASTED_TWICE, "repetition_loop"),
    ("ha" * 40, "repetition_loop"),
    ("As an AI language model, I think cities grew along rivers. " + ESSAY, "meta_talk"),
    ("Sure! Here is the essay you asked for:\n\n" + ESSAY, "meta_talk"),
    ("Here's a rewritten version:\n" + ESSAY, "meta_talk"),
    ("Here is the revised text.\n" + ESSAY, "meta_talk"),
    ("I cannot write that essay.\n" + ESSAY, "meta_talk"),
    ("I'm sorry, but I can't help with that. " + ESSAY, "meta_talk"),
    (ESSAY + " The instructions say to keep it short, so I stopped here.", "meta_talk"),
    (ESSAY + "\n\nI hope this helps! Let me know if you'd like any changes.", "meta_talk"),
    (ESSAY + "\n\n(Word count: 48)", "meta_talk"),
    # Stories and emails that only look like meta-talk are kept.
    ('"Sure," she said, and set the lamp down. ' + ESSAY, None),
    ("Here is the town where I was born. " + ESSAY, None),
    ("I cannot remember the winter the river froze. " + ESSAY, None),
    (ESSAY + " Let me know if you have any questions about the schedule.", None),
    ("Chorus: we sail at dawn, we sail at dawn. " * 3 + ESSAY, None),
])
def test_check_answer(text, expected):
    assert reason(quality.check_answer, text, minimum_words=20) == expected


def test_check_answer_returns_the_stripped_answer():
    assert quality.check_answer(f"\n  {ESSAY}  \n", minimum_words=5) == ESSAY


def test_reject_detail_names_the_problem():
    with pytest.raises(Reject) as info:
        quality.min_words("one two three", 5)
    assert info.value.detail == "3 words, fewer than 5"
    with pytest.raises(Reject) as info:
        quality.no_repetition(LOOPED)
    # found where a stream would stop it: before the 12th time, naming the words that loop
    assert "'and the river kept flowing past the old' 6 times" in info.value.detail


@pytest.mark.parametrize("text, ideas", [
    ("1. Plant trees\n2. Paint murals\n3. Start a library", 3),
    ("- plant trees\n  - oaks\n  - maples\n- paint murals", 2),   # sub-bullets are not ideas of their own
    ("* one\n* two\n* three\n* four", 4),
    ("1) one\n2) two", 2),
    ("### 1. Community garden\nGrow food.\n### 2. Tool library\nLend tools.\n### 3. Repair cafe\nFix things.", 3),
    ("**Community garden:** grow food\n**Tool library:** lend tools\n**Repair cafe**: fix things", 3),
    ("Idea 1: a garden\nIdea 2: a library\nIdea 3: a cafe\nIdea 4: a market", 4),
    ("\u2022 a\n\u2022 b\n\u2022 c", 3),
    ("One long paragraph with one idea in it.", 1),
    ("First idea, in prose.\n\nSecond idea, in prose.\n\nThird idea.", 3),
    ("Ideas:\n\n1. garden\n2. library\n\nBoth are cheap.", 2),
])
def test_count_ideas(text, ideas):
    assert quality.count_ideas(text) == ideas


def test_min_ideas_rejects_short_lists():
    assert reason(quality.check_answer, "1. garden\n2. library", minimum_ideas=3) == "too_few_ideas"
    assert reason(quality.check_answer, "1. garden\n2. library\n3. market", minimum_ideas=3) is None


@pytest.mark.parametrize("answer, source, expected", [
    ("The cat sat.", "The  cat\nsat.", "unchanged"),
    ("the cat sat.", "The cat sat.", "unchanged"),
    ("A cat was sitting.", "The cat sat.", None),
])
def test_differs_from(answer, source, expected):
    assert reason(quality.differs_from, answer, source) == expected


@pytest.mark.parametrize("answer_words, expected", [(1, "length_off"), (2, None), (50, None), (51, "length_off")])
def test_length_ratio(answer_words, expected):
    assert reason(quality.length_ratio, "w " * answer_words, "w " * 10, 0.2, 5) == expected


# --- prompts ------------------------------------------------------------------------------------

def test_every_category_has_a_template_and_the_question_comes_first():
    for category in prompts.CATEGORIES:
        text = prompts.instruction_for(category, "Name three rivers.")
        assert text.startswith("Name three rivers.\n\n")
        assert prompts.GUIDANCE[category] in text and prompts.NO_PREAMBLE in text


def test_context_is_labelled_per_category_and_left_out_when_empty():
    assert prompts.question_with_context("closed_qa", "Who?", "Hamlet is by Shakespeare.") == (
        "Who?\n\nReference text:\nHamlet is by Shakespeare.")
    assert prompts.question_with_context("rewriting", "Make it formal.", "hey u") == "Make it formal.\n\nText to rewrite:\nhey u"
    assert prompts.question_with_context("open_qa", " Who? ", "  ") == "Who?"
    assert prompts.instruction_for("summarization", "Sum up.", "Long text.").startswith("Sum up.\n\nText:\nLong text.\n\n")


@pytest.mark.parametrize("category, instruction", [("poetry", "Write."), ("open_qa", "  ")])
def test_bad_category_or_empty_instruction(category, instruction):
    with pytest.raises(ValueError, match="category must be creative_writing|empty instruction"):
        prompts.instruction_for(category, instruction)


def test_template_text_changes_with_the_templates_a_category_uses(monkeypatch):
    before = {c: prompts.template_text(c) for c in (None, "open_qa", "rewriting")}
    monkeypatch.setitem(prompts.GUIDANCE, "open_qa", "Answer in one word.")
    assert prompts.template_text() != before[None]
    assert prompts.template_text("open_qa") != before["open_qa"]
    assert prompts.template_text("rewriting") == before["rewriting"]   # an unrelated edit does not block resume
