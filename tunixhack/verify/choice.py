"""Multiple-choice answers: which option did a reply pick, and is it the correct one."""

from __future__ import annotations

import re

from .math import last_boxed

# A bare letter must be a capital: "the answer is a mitochondrion" names no option A; "(a)" does.
LETTER_PATTERNS = [
    re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\(([A-Z])\)", re.IGNORECASE),   # "(d)" is a letter
    re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\(?\**((?-i:[A-Z]))\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(?\**([A-Z])\**\)?(?:[.):]|\s*$)"),
]
LETTERED = re.compile(r"^\s*\(?([A-Za-z])[.):]\s*(.+)$", re.DOTALL)   # "B. carbon", "(B) carbon"


def normalise(text: str) -> str:
    return re.sub(r"[\s.*]+", " ", text).strip().lower()


def extract_choice(text: str | None, options: dict[str, str]) -> str | None:
    """The letter a reply picked: \\boxed{B}, 'the answer is (B)', a leading 'B.', or the text of exactly one option."""
    if not text:
        return None
    letters = {k.upper() for k in options}
    boxed = last_boxed(text)
    candidates = [boxed] if boxed else []
    candidates.append(text)
    for candidate in candidates:
        if candidate.strip().upper().strip("().*") in letters:
            return candidate.strip().upper().strip("().*")
        for pattern in LETTER_PATTERNS:
            for match in reversed(pattern.findall(candidate)):
                if match.upper() in letters:
                    return match.upper()
        said = normalise(candidate)
        named = [k for k, v in options.items() if normalise(v) and re.search(rf"\b{re.escape(normalise(v))}\b", said)]
        # "carbon dioxide" also contains the option "carbon": the longer option is the one named.
        named = [k for k in named if not any(k != o and normalise(options[k]) in normalise(options[o]) for o in named)]
        if len(named) == 1:
            return named[0].upper()
        exact = [k for k, v in options.items() if normalise(v) == said]
        if exact:
            return exact[0].upper()
    return None


def correct_letter(correct: str, options: dict[str, str]) -> str | None:
    """The letter of the correct option, given as a letter ("B"), its text, or both ("B. carbon")."""
    correct = correct.strip()
    letters = {k.upper(): v for k, v in options.items()}
    if correct.upper() in letters:
        return correct.upper()
    lettered = LETTERED.match(correct)
    if lettered and normalise(letters.get(lettered.group(1).upper(), "")) == normalise(lettered.group(2)):
        return lettered.group(1).upper()
    return next((k.upper() for k, v in options.items() if normalise(v) == normalise(correct)), None)


def verify_choice(text: str | None, correct: str | None, options: dict[str, str]) -> bool | None:
    """True when the reply picked the correct option. None when the correct option is unknown."""
    if not correct or not options:
        return None
    want = correct_letter(correct, options)
    if want is None:
        return None
    return extract_choice(text, options) == want
