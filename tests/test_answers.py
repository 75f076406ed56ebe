"""Answer extraction and checking, table-tested on outputs like a small model's."""

from __future__ import annotations

import threading

import pytest

from tests.assertions import raises_one_line
from toolkit.answer_reading import stated_answer
from toolkit.answers import (
    Extraction,
    ensure_answer_line,
    extract_answer,
    extract_flexible,
    extract_strict,
    format_answer_line,
    is_correct,
    normalize_answer,
    option_letters,
)
from toolkit.records import ANSWER_TYPES

FOUR = ("40", "42 apples", "44", "46")
NLI = ("entailment", "neutral", "contradiction", "not entailment")
SENTIMENT = ("positive", "negative")


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 + 7 = 19\n\nThe answer is 19.", Extraction("19", True)),
        ("Let's think... so she has $1,250 left. The answer is $1,250.", Extraction("1250", True)),
        ("She pays 3.5 per hour for 1 hour. The answer is 3.5.", Extraction("3.5", True)),
        ("**The answer is 42**", Extraction("42", True)),
        ("The answer is: 42", Extraction("42", True)),
        ("The answer is:\n\n**42**", Extraction("42", True)),
        ("The answer is $42.", Extraction("42", True)),
        ("the answer is 5 apples.", Extraction("5", True)),
        ("The final answer is 19.0", Extraction("19", True)),
        ("The answer is 72.00.", Extraction("72", True)),
        ("The answer is -5 degrees.", Extraction("-5", True)),
        ("Thus the answer is -$5.", Extraction("-5", True)),
        ("The answer is −12.", Extraction("-12", True)),
        ("The answer is 3/4 of a cup.", Extraction("3/4", True)),
        ("The answer is .5", Extraction("0.5", True)),
        ("The answer is 1,000,000 dollars.", Extraction("1000000", True)),
        ("The answer is 12 + 7 = 19.", Extraction("19", True)),
        ("The answer is 19, since 12 + 7 = 19.", Extraction("19", True)),
        ("The answer is 2.5e3 joules.", Extraction("2500", True)),
        ("The answer is 50%.", Extraction("50", True)),
        ("**Final Answer:** 17", Extraction("17", True)),
        ("The answer is \\boxed{42}", Extraction("42", True)),
        ("So $x = \\boxed{\\frac{1}{2}}$", Extraction("1/2", True)),
        ("The answer is $-\\frac{3}{4}$.", Extraction("-3/4", True)),
        ("The final answer is $2\\sqrt{3}$.", Extraction("2\\sqrt{3}", True)),
        ("Total: 30 + 12 = 42 \\text{ apples}.\n\\[\\boxed{42 \\text{ apples}}\\]", Extraction("42", True)),
        # last statement wins; a later box beats an earlier statement
        ("The answer is 5.\nWait, 5 + 1 = 6. The answer is 6.", Extraction("6", True)),
        ("The answer is 5. Let me double check: \\boxed{6}", Extraction("6", True)),
        # a truncated last statement gives way to the last complete one
        ("The answer is 7.\n\nQuestion: Tom has 3 apples. The answer is", Extraction("7", True)),
        ("The answer is unknown, but 3 + 4 makes 7", Extraction("7", False)),
        # no convention: the last number
        ("First we add 3 and 4 to get 7, then multiply by", Extraction("7", False)),
        ("She had 20 and spent $1,250", Extraction("1250", False)),
        ("10-3=7", Extraction("7", False)),
        ("It is 3, 4, or 5", Extraction("5", False)),
        ("The version is 1.2.3 and then 8", Extraction("8", False)),
        ("I cannot solve this problem.", None),
        ("", None),
        ("   \n ", None),
        (None, None),
    ],
)
def test_extract_number(text, expected):
    assert extract_answer(text, "number") == expected


@pytest.mark.parametrize(
    ("text", "strict", "flexible"),
    [
        ("12 + 7 = 19\nThe answer is 19.", "19", "19"),
        ("12 + 7 = 19, so 19 apples in all", None, "19"),
        ("The answer is 4. Then 4 * 2 = 8", "4", "8"),
        ("The answer is twenty.", None, None),
    ],
)
def test_strict_and_flexible_are_separate(text, strict, flexible):
    assert extract_strict(text, "number") == strict
    assert extract_flexible(text, "number") == flexible
    assert extract_answer(text, "number", flexible=False) == (Extraction(strict, True) if strict else None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19", "19"),
        ("19.0", "19"),
        ("0019", "19"),
        ("-0", "0"),
        ("1,234", "1234"),
        ("$1,234.50", "1234.5"),
        ("3.50 dollars", "3.5"),
        ("-3/4", "-3/4"),
        ("\\frac{3}{4}", "3/4"),
        ("\\dfrac{3}{4}", "3/4"),
        ("  **42**. ", "42"),
        ("x = 5", "5"),
        ("#### 72", "72"),
        ("-0.00", "0"),
        ("1e6", "1000000"),
        ("12345678901234567890123456789012.5", "12345678901234567890123456789012.5"),
        ("7" * 5000, "7" * 5000),  # a digit loop: past Python's int() string limit
        ("\\sqrt{12}", "\\sqrt{12}"),
        ("5 m^2", "5"),
        ("25 \\text{cm}^{2}", "25"),
        ("9.8 m/s^2", "9.8"),
        ("10^3", "10^3"),
        ("x^2 + 3", None),  # not a number
        ("2^" + "a " * 60, None),  # a degenerate output is not sent to sympy
        ("1/0", None),
        ("banana", None),
        ("\\sqrt{", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_number(value, expected):
    assert normalize_answer(value, "number") == expected


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("72.00", "72", True),
        ("72", "72.0", True),
        ("1/2", "0.5", True),
        ("\\frac{1}{2}", "0.5", True),
        ("$1,250", "1250", True),
        ("3/4", "0.75", True),
        ("1234567.0000001", "1234567", True),
        ("5 apples", "5", True),
        ("-3", "3", False),
        ("100.01", "100", False),
        ("19", "91", False),
        # LaTeX expressions go to math-verify
        ("2\\sqrt{3}", "\\sqrt{12}", True),
        ("2\\sqrt{3}", "2\\sqrt{2}", False),
        ("10^3", "1000", True),
        ("25 cm^2", "25", True),
        ("\\frac{\\pi}{2}", "\\pi/2", True),
        (None, "5", False),
        ("", "5", False),
        ("banana", "5", False),
        ("5", "banana", False),
    ],
)
def test_is_correct_number(pred, gold, expected):
    assert is_correct(pred, gold, "number") is expected


def test_plain_numbers_never_reach_math_verify(monkeypatch):
    def slow_path(gold, pred):
        raise AssertionError(f"math-verify called for {gold!r} vs {pred!r}")

    monkeypatch.setattr("toolkit.answers._expressions_equal", slow_path)
    assert is_correct("72.00", "72", "number")
    assert is_correct("\\frac{1}{2}", "0.5", "number")
    assert not is_correct("71", "72", "number")


def test_math_verify_runs_outside_the_main_thread():
    # math-verify's timeout uses signal.alarm, which raises in any other thread (lm-eval and the
    # builders may check answers in worker threads).
    results: list[object] = []

    def check():
        try:
            results.append(is_correct("3\\sqrt{3}", "\\sqrt{27}", "number"))
        except Exception as error:  # noqa: BLE001 - reported below
            results.append(error)

    worker = threading.Thread(target=check)
    worker.start()
    worker.join()
    assert results == [True]


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("... Therefore, the answer is (B) 42 apples.", Extraction("B", True)),
        ("The answer is B.", Extraction("B", True)),
        ("The answer is: **C**", Extraction("C", True)),
        ("The answer is option D", Extraction("D", True)),
        ("The answer is b)", Extraction("B", True)),
        ("The answer is C: 44", Extraction("C", True)),
        ("The answer is 42 apples.", Extraction("B", True)),
        ("The answer is 44.", Extraction("C", True)),
        ("The answer is \\boxed{A}", Extraction("A", True)),
        ("The answer is A because 40 is the smallest.", Extraction("A", True)),
        # letters past the last option are not answers
        ("The answer is (E).", None),
        ("The answer is (C). Oops, the answer is (E).", Extraction("C", True)),
        # flexible: the last bracketed, bold, cued or lone letter
        ("Checking (A) and (C), the best fit is (c)", Extraction("C", False)),
        ("I think B) is right", Extraction("B", False)),
        ("Comparing the sums ... **D**", Extraction("D", False)),
        ("So we pick option b", Extraction("B", False)),
        ("Answer: C", Extraction("C", True)),  # "Answer: X" opening a line is a statement (issue 25)
        ("40 is too small.\nD", Extraction("D", False)),
        # an article is not an option
        ("A farmer has 12 apples. A friend gives him 3.", None),
        ("A farmer has 12 apples. A friend gives him 3, so he has 44", Extraction("C", False)),
        ("A store sells pens. The answer", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_option(text, expected):
    assert extract_answer(text, "option", FOUR) == expected


def test_option_letters_without_choices_are_any_capital():
    assert extract_answer("The answer is (H).", "option") == Extraction("H", True)
    assert extract_answer("A farmer has 12 apples.", "option") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(b)", "B"),
        ("[C]", "C"),
        ("B)", "B"),
        ("B.", "B"),
        ("**B**", "B"),
        ("option B", "B"),
        ("Option: C", "C"),
        ("B: 42 apples", "B"),
        ("42 Apples", "B"),
        ("46", "D"),
        ("E", None),
        ("a dog", None),
        ("48", None),
        ("", None),
    ],
)
def test_normalize_option(value, expected):
    assert normalize_answer(value, "option", FOUR) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("(B) 42 apples", "B", True),
        ("b", "B", True),
        ("B", "42 apples", True),
        ("C", "B", False),
        ("E", "E", False),
        (None, "B", False),
    ],
)
def test_is_correct_option(pred, gold, expected):
    assert is_correct(pred, gold, "option", FOUR) is expected


def test_choices_may_be_a_list():
    # lm-eval hands choices over as a list; the caches underneath need tuples.
    assert extract_answer("so it is 44", "option", list(FOUR)) == Extraction("C", False)
    assert is_correct("Neutral", "neutral", "label", list(NLI))


def test_option_text_wins_over_a_leading_article():
    choices = ("A dog", "A cat")
    assert normalize_answer("A cat sleeping on the mat", "option", choices) == "B"
    assert normalize_answer("a cat", "option", choices) == "B"


def test_too_many_options_is_a_user_error():
    assert option_letters(4) == ("A", "B", "C", "D")
    assert option_letters(0) == ()
    with raises_one_line(match="at most 26"):
        option_letters(27)


# --- yes / no -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Birds can fly. The answer is yes.", Extraction("yes", True)),
        ("The answer is: **No**", Extraction("no", True)),
        ("The answer is True.", Extraction("yes", True)),
        ("The answer is false", Extraction("no", True)),
        ("The answer is Yes, because all men are mortal.", Extraction("yes", True)),
        ("The answer is no. Hmm, actually the answer is yes.", Extraction("yes", True)),
        ("**No**, Socrates is not a cat", Extraction("no", False)),
        ("There is no cat here, so yes", Extraction("yes", False)),
        ("The answer is maybe.", None),
        ("Let me think about whether", None),
        (None, None),
    ],
)
def test_extract_yesno(text, expected):
    assert extract_answer(text, "yesno") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Yes", "yes"),
        ("yes,", "yes"),
        ("TRUE", "yes"),
        ("No.", "no"),
        ("False", "no"),
        ("nope", None),
        ("", None),
    ],
)
def test_normalize_yesno(value, expected):
    assert normalize_answer(value, "yesno") == expected


HEDGE_CHOICES = ("entailment", "neutral", "contradiction")


@pytest.mark.parametrize(
    ("text", "answer_type", "choices", "expected"),
    [
        # an answer statement that offers two different answers commits to neither
        ("The answer is yes or no.", "yesno", (), None),
        ("The answer is Yes/No.", "yesno", (), None),
        ("The answer is no or yes.", "yesno", (), None),
        ("The answer is yes and no.", "yesno", (), None),
        ("The answer is A or B.", "option", ("x", "y", "z"), None),
        ("The answer is (A)/(C).", "option", ("x", "y", "z"), None),
        ("The answer is 3 or 4.", "number", (), None),
        ("The answer is entailment or contradiction.", "label", HEDGE_CHOICES, None),
        # ... and a later statement that commits is still read
        ("The answer is yes or no.\nIt follows, so the answer is yes.", "yesno", (), "yes"),
        # not hedges: reasoning after the answer, fractions, the same answer twice, an option's own text
        ("The answer is yes, since no fish or bird is a mammal.", "yesno", (), "yes"),
        ("The answer is no, because all A and some B are C.", "yesno", (), "no"),
        ("The answer is 3/4.", "number", (), "3/4"),
        ("The answer is 5 (or 5.0).", "number", (), "5"),
        ("The answer is 7 or seven.", "number", (), "7"),
        ("The answer is B) red or blue.", "option", ("green", "red or blue", "yellow"), "B"),
    ],
)
def test_a_statement_offering_two_answers_is_no_answer(text, answer_type, choices, expected):
    assert extract_strict(text, answer_type, choices) == expected
    stated = stated_answer(text, answer_type, choices)
    assert (stated.value if stated else None) == expected


def test_is_correct_yesno():
    assert is_correct("True", "yes", "yesno")
    assert not is_correct("no", "yes", "yesno")
    assert not is_correct("maybe", "yes", "yesno")


# --- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        ("The premise implies it. The answer is Entailment.", NLI, Extraction("entailment", True)),
        ("The answer is **not entailment**", NLI, Extraction("not entailment", True)),
        ("The answer is neutral, since nothing is said.", NLI, Extraction("neutral", True)),
        ("The answer is positive.", SENTIMENT, Extraction("positive", True)),
        ("The answer is mixed.", SENTIMENT, None),
        ("It is not negative; the review is positive", SENTIMENT, Extraction("positive", False)),
        ("so this is not entailment", NLI, Extraction("not entailment", False)),
        ("The reviewer seems positively", SENTIMENT, None),
        ("The answer is Positive.", (), Extraction("positive", True)),
        ("The answer is Positive, because the food was great.", (), Extraction("positive", True)),
        ("The review is positive", (), None),
        ("", NLI, None),
        (None, NLI, None),
    ],
)
def test_extract_label(text, choices, expected):
    assert extract_answer(text, "label", choices) == expected


@pytest.mark.parametrize(
    ("value", "choices", "expected"),
    [
        ("  Positive ", SENTIMENT, "positive"),
        ("NEGATIVE.", SENTIMENT, "negative"),
        ("neutral", SENTIMENT, None),
        ("Not Entailment", NLI, "not entailment"),
        ("Some Label", (), "some label"),
        ("!!!", (), None),
        ("", (), None),
    ],
)
def test_normalize_label(value, choices, expected):
    assert normalize_answer(value, "label", choices) == expected


def test_is_correct_label():
    assert is_correct("Positive", "positive", "label", SENTIMENT)
    assert not is_correct("negative", "positive", "label", SENTIMENT)
    assert not is_correct("entailment", "not entailment", "label", NLI)


# --- every type -----------------------------------------------------------------------------------


@pytest.mark.parametrize("answer_type", ANSWER_TYPES)
@pytest.mark.parametrize("text", [None, "", "  \n\t "])
def test_nothing_extracts_nothing(answer_type, text):
    assert extract_strict(text, answer_type) is None
    assert extract_flexible(text, answer_type) is None
    assert extract_answer(text, answer_type) is None
    assert normalize_answer(text, answer_type) is None


def test_unknown_answer_type_is_a_bug():
    with pytest.raises(ValueError, match="unknown answer type"):
        normalize_answer("5", "score")  # type: ignore[arg-type]


# --- the answer line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("42", "The answer is 42."), (" 42. ", "The answer is 42."), ("(B)", "The answer is (B).")],
)
def test_format_answer_line(answer, expected):
    assert format_answer_line(answer) == expected


@pytest.mark.parametrize(
    ("rationale", "expected"),
    [
        ("12 + 7 = 19", "12 + 7 = 19\nThe answer is 19."),
        ("12 + 7 = 19.\nThe answer is 19.", "12 + 7 = 19.\nThe answer is 19."),
        ("12 + 7 = 19.\nThe answer is 19", "12 + 7 = 19.\nThe answer is 19."),
        ("12 + 7 = 19. Therefore, the answer is 19.", "12 + 7 = 19.\nThe answer is 19."),
        ("She has 19 left, so the answer is 19", "She has 19 left.\nThe answer is 19."),
        ("12 + 7 = 19.\n**The answer is 18.**", "12 + 7 = 19.\nThe answer is 19."),
        ("12 + 7 = 19\n#### 19", "12 + 7 = 19\nThe answer is 19."),
        ("12 + 7 = 19\nFinal answer: 19", "12 + 7 = 19\nThe answer is 19."),
        ("12 + 7 = 19\n\n**Final Answer**\n\\[\\boxed{19}\\]", "12 + 7 = 19\nThe answer is 19."),
        ("So the total is $\\boxed{19}$.", "So the total is $19$.\nThe answer is 19."),
        ("12 + 7 = 19\nThe answer is 19.\n#### 19", "12 + 7 = 19\nThe answer is 19."),
        ("12 + 7 = 19\nThe answer is 19. Hope this helps!", "12 + 7 = 19\nThe answer is 19."),
        # an earlier statement that the reasoning moved past stays where it is
        ("The answer is 18.\nNo: 12 + 7 = 19.", "The answer is 18.\nNo: 12 + 7 = 19.\nThe answer is 19."),
        ("  \n\n  12 + 7 = 19  \n\n", "12 + 7 = 19\nThe answer is 19."),
        ("", "The answer is 19."),
        ("The answer is 19.", "The answer is 19."),
    ],
)
def test_ensure_answer_line(rationale, expected):
    result = ensure_answer_line(rationale, "19")
    assert result == expected
    assert ensure_answer_line(result, "19") == result  # idempotent: never a second answer line
    assert extract_strict(result, "number") == "19"


@pytest.mark.parametrize(
    ("answer", "answer_type", "choices"),
    [
        ("1,250", "number", ()),
        ("3.5", "number", ()),
        ("-3/4", "number", ()),
        ("B", "option", FOUR),
        ("no", "yesno", ()),
        ("not entailment", "label", NLI),
    ],
)
def test_written_answers_extract_back(answer, answer_type, choices):
    text = ensure_answer_line("First, some reasoning with 2 numbers like 7.\nThe answer is 8.", answer)
    assert extract_strict(text, answer_type, choices) == normalize_answer(answer, answer_type, choices)
