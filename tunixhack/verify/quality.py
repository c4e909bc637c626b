"""Reply-quality checks for answers with nothing to verify against (writing, brainstorming, rewriting, open QA).

Each check raises tunixhack.errors.Reject(reason, detail) and returns nothing; `check_answer` runs the usual
set and returns the stripped answer. Reasons are stable names (they are counted in the run summary):

    empty_answer, too_short, repetition_loop, meta_talk, too_few_ideas, unchanged, length_off

Thinking that never closed and truncated replies are rejected by the runner before a recipe's parse.
"""

from __future__ import annotations

import re
from ..errors import Reject
from ..teachers.watch import RepetitionWatch

# Meta-talk: the answer talks about its instructions or itself instead of doing the task.
META_ANYWHERE = re.compile(
    r"\bas an ai\b|\bas a(?:n ai)? language model\b|\bi(?:'m| am) (?:just |only )?an ai\b"
    r"|\bthe (?:instructions?|prompt) (?:says?|asks?|wants?|requires?|specif(?:y|ies))\b"
    r"|\baccording to (?:the|your|these) instructions\b|\bthe user (?:asked|asks|wants|requested|is asking)\b"
    r"|\(?\bword count:?\s*\d",
    re.IGNORECASE,
)
# Openings are checked on the first line only, and shaped so that a story opening with dialogue
# ("Sure," she said) or with "Here is the town where..." is not taken for a preface.
META_OPENING = re.compile(
    r"^\W*(?:sure|certainly|of course|absolutely|okay|ok)[,!.]?\s+(?:here|i|i'll|i'd|let|below|this)\b"
    r"|^\W*great question\b"
    r"|^\W*(?:here(?:'s| is| are)|below (?:is|are))\b.*(?::\W*$|\byou\b|\byour\b|\brequested\b)"
    r"|^\W*(?:here(?:'s| is| are)|below (?:is|are)) (?:a|an|the|my) (?:[\w-]+ ){0,3}"
    r"(?:rewritten|revised|rewrite|version|draft|response|answer)\b"
    r"|^\W*(?:i|we) (?:cannot|can't|can not|won't|am unable to|'m unable to|am not able to) (?:help|write|create"
    r"|provide|fulfil|fulfill|assist|comply|generate|produce|do that|complete|rewrite)\b"
    r"|^\W*(?:i'm sorry|i am sorry|i apologi[sz]e),? but\b|^\W*i(?:'d| would) be (?:happy|glad) to\b",
    re.IGNORECASE,
)
# Closing offers, shaped so that an email that ends "Let me know if you have questions" is not one.
META_CLOSING = re.compile(
    r"\bi hope (?:this|that) (?:helps|meets|fits|works|is helpful|was helpful)\b|\bi hope you enjoy (?:this|the|reading)\b"
    r"|\bwould you like me to\b|\blet me know if you(?:'d| would)? (?:like|want) (?:me to|any|another|a different|more)\b"
    r"|\bfeel free to (?:adjust|modify|tweak|customi[sz]e|ask for)\b|\bhappy to help\b",
    re.IGNORECASE,
)
CLOSING_CHARS = 240   # how far from the end a closing offer is looked for

LIST_ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?:[-*+\u2022\u2013]\s+|\(?\d{1,3}[.)]\s+|#{1,6}\s+(?:\d{1,3}[.):]?\s+|\*\*)"
    r"|\*\*\d{1,3}[.)]|(?:idea|option|suggestion)\s+\d{1,3}\s*[:.)-]|\*\*[^*\n]{2,80}(?::\*\*|\*\*\s*[:\u2014-]))",
    re.IGNORECASE | re.MULTILINE,
)


def words(text: str) -> list[str]:
    return re.findall(r"\w+(?:['\u2019]\w+)*", text.lower())


def normalise_space(text: str) -> str:
    return " ".join((text or "").split())


def require_text(text: str | None) -> str:
    if not (text or "").strip():
        raise Reject("empty_answer")
    return text.strip()


def min_words(text: str, minimum: int) -> None:
    count = len(words(text))
    if count < minimum:
        raise Reject("too_short", f"{count} words, fewer than {minimum}")


def no_repetition(text: str) -> None:
    """A repetition loop: the rules of tunixhack.teachers.watch (which stops one while it streams), on a whole text.
    Normal prose almost never repeats an 8-word run more than a couple of times; a chorus a few times, a
    sampling loop dozens."""
    watch = RepetitionWatch()
    watch.feed(text)
    found = watch.finish()
    if found:
        raise Reject("repetition_loop", found)


def no_meta_talk(text: str) -> None:
    text = text.strip()
    first_line = text.split("\n", 1)[0]
    for pattern, part in ((META_ANYWHERE, text), (META_OPENING, first_line), (META_CLOSING, text[-CLOSING_CHARS:])):
        found = pattern.search(part)
        if found:
            raise Reject("meta_talk", repr(found.group(0).strip()))


def count_ideas(text: str) -> int:
    """Top-level list items (bullets, numbers, numbered headings); for an answer with no list, its paragraphs."""
    items = [m.group("indent").expandtabs(4) for m in LIST_ITEM.finditer(text)]
    if items:
        top = min(len(indent) for indent in items)
        return sum(len(indent) == top for indent in items)
    return len([p for p in re.split(r"\n\s*\n", text) if p.strip()])


def min_ideas(text: str, minimum: int) -> None:
    count = count_ideas(text)
    if count < minimum:
        raise Reject("too_few_ideas", f"{count} ideas, fewer than {minimum}")


def differs_from(text: str, source: str) -> None:
    """For rewriting: an answer that only repeats its input (whitespace and case aside) did no work."""
    if normalise_space(text).casefold() == normalise_space(source).casefold():
        raise Reject("unchanged", "the answer is the input text")


def length_ratio(text: str, source: str, low: float, high: float) -> None:
    """The answer's length in words must be within [low, high] times the source's."""
    have, base = len(words(text)), max(1, len(words(source)))
    ratio = have / base
    if not low <= ratio <= high:
        raise Reject("length_off", f"{have} words for {base} in the input ({ratio:.2f}x; allowed {low:g}-{high:g}x)")


def check_answer(text: str | None, *, minimum_words: int = 1, minimum_ideas: int | None = None) -> str:
    """The usual set: not empty, no meta-talk, no repetition loop, enough ideas if asked, long enough."""
    text = require_text(text)
    no_meta_talk(text)
    no_repetition(text)
    if minimum_ideas:  # before the length: "2 ideas" says more about a short list than "9 words"
        min_ideas(text, minimum_ideas)
    min_words(text, minimum_words)
    return text
