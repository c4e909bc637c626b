"""Watch a reply while it streams: a repetition loop is stopped at once, and so is a reply past a token budget.

A looping reply runs to --max-tokens (32,768 by default: minutes of a GPU slot) and is thrown away after.
The backends feed each streamed piece to a Watch (thinking and answer apart); the first time it returns a
reason, the backend cancels the request on the wire (LM Studio: the SDK's cancel; OpenAI-compatible: the
stream is closed, and the server frees the slot) and returns what it had, with `Reply.stopped` set.

With --budget-from (a RowBudget), the thinking and the answer are also counted in the student's unit as they
stream (tokens.StreamCount: each character encoded once, in segments of ~200 characters), and the reply is cut
once they pass what the budget leaves after the row's prompt: up to one segment late (~200 characters, about
50 tokens), which the runner's exact check of the whole row after the reply makes up for.

RepetitionWatch holds the rules of tunixhack.verify.quality.no_repetition (which calls it on a whole text),
made incremental: each piece costs time in its own length, nothing streamed before is scanned again.
- an 8-word run seen more than 6 times, ending a stretch of 16 words whose every 8-word run was seen before:
  a loop (the stretch keeps text that returns to one phrase, as GSM8K's Socratic solutions ask "How many
  balls did Rory retrieve in the ..." seven times, from counting as one: a loop repeats a whole passage);
- once there are 80 words, more than 40% of all 8-word runs are repeats: pasted-again paragraphs;
- a unit of 1-30 non-space characters, with a letter in it, 16 times in a row ("hahaha..."; not 0.33333...).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, replace

from ..tokens import StreamCount, completion_length, prompt_length

NGRAM = 8
MAX_NGRAM_REPEATS = 6          # the same 8 words more often than this: a loop,
MIN_REPEAT_STRETCH = 16        # if this many words in a row ended 8-word runs seen before (a repeated passage)
MAX_DUPLICATE_SHARE = 0.4      # more than this share of all 8-word runs are repeats: pasted-again paragraphs
MIN_WORDS_FOR_SHARE = 80       # the share is meaningless on short texts
CHAR_UNIT, CHAR_REPEATS = 30, 16
CHAR_LOOP = re.compile(r"(\S{1,%d}?)\1{%d,}" % (CHAR_UNIT, CHAR_REPEATS - 1))
CHAR_SPAN = CHAR_UNIT * CHAR_REPEATS   # the longest stretch a character loop must be seen over
WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
OPEN_WORD_TAILS = ("", "'", "\u2019")   # a word at the end of a piece may go on in the next ("don" + "'t")
MAX_PENDING = 4096             # a "word" longer than this is taken as ended (no text is one word that long)


class RepetitionWatch:
    """Feed a text piece by piece; `feed` returns the loop's description once one is found (and from then on)."""

    def __init__(self):
        self.found: str | None = None
        self.words = 0
        self._pending = ""      # the tail not yet split into words
        self._run = ""          # the last CHAR_SPAN characters of the current run of non-space characters
        self._window: deque[str] = deque(maxlen=NGRAM)
        self._grams: dict[int, int] = {}  # hash of each 8-word run -> times seen (hashes: flat memory)
        self._runs = 0          # 8-word runs seen
        self._stretch = 0       # words in a row whose 8-word run was seen before

    def feed(self, text: str) -> str | None:
        if self.found is None and text:
            self._characters(text)
            if self.found is None:
                self._split_words(text.lower())
        return self.found

    def _characters(self, text: str) -> None:
        """A character loop lies inside one run of non-space characters: look only where this piece adds to one."""
        pieces = text.split()
        if not pieces:
            self._run = ""
            return
        for i, piece in enumerate(pieces):
            new = len(piece)
            if i == 0 and not text[0].isspace():
                piece = pieces[0] = self._run + piece  # the run goes on from the last piece
            if len(piece) < CHAR_REPEATS:
                continue
            for match in CHAR_LOOP.finditer(piece[-(new + CHAR_SPAN):]):
                if any(ch.isalpha() for ch in match.group(1)):  # 0.3333... is a number, "?!?!" is noise
                    self.found = f"{match.group(1)!r} repeated {len(match.group(0)) // len(match.group(1))} times"
                    return
        self._run = "" if text[-1].isspace() else pieces[-1][-CHAR_SPAN:]

    def _split_words(self, text: str) -> None:
        text = self._pending + text
        for match in WORD.finditer(text):
            if text[match.end():] in OPEN_WORD_TAILS and len(text) - match.start() < MAX_PENDING:
                break  # may go on in the next piece
            self._word(match.group())
            if self.found:
                return
        else:
            self._pending = ""
            return
        self._pending = text[match.start():]

    def _word(self, word: str) -> None:
        self.words += 1
        self._window.append(word)
        if len(self._window) < NGRAM:
            return
        key = hash(tuple(self._window))
        count = self._grams.get(key, 0) + 1
        self._grams[key] = count
        self._runs += 1
        self._stretch = self._stretch + 1 if count > 1 else 0
        if count > MAX_NGRAM_REPEATS and self._stretch >= MIN_REPEAT_STRETCH:
            self.found = f"{' '.join(self._window)!r} repeated {count} times"
        elif self.words >= MIN_WORDS_FOR_SHARE and 1 - len(self._grams) / self._runs > MAX_DUPLICATE_SHARE:
            self.found = f"{1 - len(self._grams) / self._runs:.0%} of {NGRAM}-word runs are repeats" + (
                f", {' '.join(self._window)!r} {count} times" if count > 1 else "")

    def finish(self) -> str | None:
        """The end of the text: its last word is complete."""
        if self.found is None and self._pending:
            pending, self._pending = self._pending, ""
            for match in WORD.finditer(pending):
                self._word(match.group())
                if self.found:
                    break
        return self.found


@dataclass(frozen=True)
class RowBudget:
    """--budget-from: the whole training row within `total` in the student counter's unit (tunixhack/tokens.py),
    as crap.py mix and SFT count it, and with `prompt_total` the GRPO prompt too (the mix drops a row whose prompt
    is over its max_prompt_tokens). `room` and `prompt` are set per row: what `total` leaves for the streamed
    text after the row's chat prompt and the fixed overhead (<bos>, the tags, <end_of_turn>), and the prompt's
    own length as the mix counts it."""

    total: int
    counter: object                              # tokens.student_counter: Gemma's SentencePiece, or words
    parts: tuple[str, ...] = ("reasoning", "answer")  # the streamed parts the row is made of (--style written:
    room: int | None = None                           # the answer alone, which holds the tags itself)
    prompt_total: int | None = None                   # None: no prompt cut (--budget-from N)
    prompt: int | None = None

    def for_prompt(self, prompt: str) -> "RowBudget":
        length = prompt_length(prompt, self.counter)
        return replace(self, prompt=length, room=self.total - length - completion_length("", "", self.counter))

    def unfit_prompt(self) -> str | None:
        """Why no reply to this row's prompt could make a row the mix keeps (so the teacher need not be asked), or
        None. The mix drops a row over either budget."""
        if self.room <= 0:
            return (f"the prompt alone is {self.total - self.room:,} of the {self.total:,} {self.counter.unit} the "
                    "training row may have")
        if self.prompt_total is not None and self.prompt > self.prompt_total:
            return (f"the prompt is {self.prompt:,} {self.counter.unit}, over the {self.prompt_total:,} a GRPO prompt "
                    "may have (the mix's max_prompt_tokens)")
        return None


@dataclass(frozen=True)
class Budget:
    """Where a reply is cut; None: no cut (the default). reasoning and answer count the teacher's tokens as it
    streams them; row counts the student's (--budget-from)."""

    reasoning: int | None = None
    answer: int | None = None
    row: RowBudget | None = None


class Watch:
    """One reply's watch: its thinking and its answer, each with its loop detector and token count, and with a
    row budget, their length in the student's unit."""

    def __init__(self, budget: Budget | None = None):
        self.budget = budget or Budget()
        self.loops = {"reasoning": RepetitionWatch(), "answer": RepetitionWatch()}
        self.tokens = {"reasoning": 0, "answer": 0}
        row = self.budget.row
        self.student = {part: StreamCount(row.counter) for part in row.parts} if row and row.room is not None else {}
        self.stop: str | None = None   # why the reply must be stopped: "repetition_loop: ..." or "too_long: ..."

    def feed(self, part: str, text: str, tokens: int = 1) -> str | None:
        """part: "reasoning" or "answer"; tokens: how many tokens this piece is (servers stream one an event)."""
        if self.stop is not None:
            return self.stop
        self.tokens[part] += tokens
        found = self.loops[part].feed(text)
        if found:
            self.stop = f"repetition_loop: {found} in the {'thinking' if part == 'reasoning' else 'answer'}"
            return self.stop
        budget, have = self.budget, self.tokens
        for name, limit, count in (("thinking", budget.reasoning, have["reasoning"]),
                                   ("answer", budget.answer, have["answer"])):
            if limit is not None and count > limit:
                self.stop = f"too_long: {name} past {limit} tokens"
                return self.stop
        if part in self.student:
            self.student[part].feed(text)
            row = budget.row
            if sum(c.total for c in self.student.values()) > row.room:
                self.stop = (f"too_long: the training row past {row.total} {row.counter.unit} "
                             f"({max(row.room, 0)} left after the prompt)")
        return self.stop

    @property
    def completion_tokens(self) -> int:
        return self.tokens["reasoning"] + self.tokens["answer"]
