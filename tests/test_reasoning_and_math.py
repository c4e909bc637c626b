"""Table tests: where the reasoning is in a server's reply, and math answer extraction and comparison."""

import pytest

from tunixhack.teachers.reasoning import split_reasoning
from tunixhack.student import split_tagged
from tunixhack.verify.math import extract_answer, gsm8k_gold, verify_math


@pytest.mark.parametrize("content, field, expected", [
    ("The answer is 4.", "2+2=4", ("2+2=4", "The answer is 4.", True)),                  # reasoning_content / reasoning
    ("</think>\n\nThe answer is 4.", "2+2=4", ("2+2=4", "The answer is 4.", True)),      # stray close tag
    ("<think>\n2+2=4\n</think>\n\nThe answer is 4.", None, ("2+2=4", "The answer is 4.", True)),
    ("2+2=4\n</think>\nThe answer is 4.", None, ("2+2=4", "The answer is 4.", True)),    # template opened <think>
    ("<think>\n2+2 is... let me check again", None, ("2+2 is... let me check again", "", False)),  # never closed
    ("The answer is 4.", None, ("", "The answer is 4.", True)),                          # no thinking at all
    (None, None, ("", "", True)),
])
def test_split_reasoning(content, field, expected):
    assert split_reasoning(content, field) == expected


@pytest.mark.parametrize("text, expected", [
    ("<reasoning>2+2=4</reasoning>\n<answer>4</answer>", ("2+2=4", "4")),
    ("intro <reasoning> a </reasoning><answer> b", ("a", "b")),  # reply ended before </answer>
    ("<answer>4</answer>", None),
    ("no tags", None),
])
def test_split_tagged(text, expected):
    assert split_tagged(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("so the total is \\boxed{72}.", "72"),
    ("first \\boxed{3}, corrected: \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # the last box wins
    ("\\boxed{x^{2}+1}", "x^{2}+1"),                                     # nested braces
    ("#### 2,125", "2,125"),
    ("Therefore, the final answer is: 18 dollars.", "18 dollars"),
    ("She has 3 apples, then 5, so 8", "8"),
    ("no number here", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("reply, gold, expected", [
    ("\\boxed{72}", "72", True),
    ("\\boxed{70,000}", "70000", True),
    ("\\boxed{\\$18.00}", "18", True),
    ("\\boxed{-17}", "-17", True),
    ("\\boxed{17}", "-17", False),
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("\\boxed{520}", "540", False),
    ("I could not solve it.", "540", False),   # no answer at all is wrong, not uncheckable
    ("\\boxed{5}", None, None),                 # nothing to check against
])
def test_verify_math(reply, gold, expected):
    assert verify_math(reply, gold) is expected


def test_gsm8k_gold_takes_the_text_after_the_hashes_without_commas():
    assert gsm8k_gold("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 2,125") == "2125"


def test_math_verify_works_off_the_main_thread():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(verify_math, "\\boxed{\\frac{1}{2}}", "0.5").result() is True
