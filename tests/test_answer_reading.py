"""Reading a whole completion (toolkit/answer_reading.py) on what real teachers wrote (issues 20, 25).

Every expected value is written by hand; completions quoted in the issues are used verbatim."""

from __future__ import annotations

import pytest

from toolkit.answer_reading import Reading, option_by_text, read_completion, stated_answer
from toolkit.answers import extract_strict

CITIES = ("Michigan", "New York", "Paris", "Venice")
PLANETS = ("Venus", "Mars", "Jupiter", "Saturn")
SENTIMENT = ("positive", "negative")

# issue 20: the answer first, as Llama-2 and many instruct models write it
VENICE_FIRST = (
    "The answer is D) Venice. Venice, Italy is known for its canals; A) Michigan and B) New York are in the USA…"
)
VENICE_MIDDLE = (
    "Venice, Italy is known for its canals. The answer is D) Venice. A) Michigan and B) New York are in the "
    "USA, and C) Paris has the Seine but no canals to speak of."
)
VENICE_LAST = "Venice, Italy is known for its canals; A) Michigan and B) New York are in the USA.\nThe answer is D) Venice."
RED_PLANET = "Iron oxide dust covers its surface, so it is called the Red Planet.\nAnswer: B"


# --- issue 20.1: the teacher's reasoning stays ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "row"),
    [
        (VENICE_FIRST, VENICE_FIRST),  # reasoning after the answer: all of it kept, as written
        (VENICE_MIDDLE, VENICE_MIDDLE),
        (VENICE_LAST, "Venice, Italy is known for its canals; A) Michigan and B) New York are in the USA.\nThe answer is D."),
    ],
)
def test_the_reasoning_survives_wherever_the_answer_is_stated(text, row):
    assert read_completion(text, "option", CITIES) == Reading("D", "strict", ("D",), True, row)


def test_verbatim_keeps_the_closing_statement_as_written():
    assert read_completion(RED_PLANET, "option", PLANETS, answer_line="verbatim").text == RED_PLANET
    assert read_completion(VENICE_LAST, "option", CITIES, answer_line="verbatim").text == VENICE_LAST


# --- issue 25.1: answers written the way the prompt invites --------------------------------------


@pytest.mark.parametrize(
    ("text", "choices", "value", "rule", "row"),
    [
        (RED_PLANET, PLANETS, "B", "strict",
         "Iron oxide dust covers its surface, so it is called the Red Planet.\nThe answer is B."),
        ("Mars looks red because of iron oxide.\n**Final Answer:** B", PLANETS, "B", "strict",
         "Mars looks red because of iron oxide.\nThe answer is B."),
        ("Venice is built on a lagoon and its streets are canals.\nThe correct answer is: D) Venice", CITIES, "D",
         "strict", "Venice is built on a lagoon and its streets are canals.\nThe answer is D."),
        # the option's own text, matched as the paper matched it (difflib ratio >= 0.6)
        ("Venice is built on a lagoon and its streets are canals.\nVenice", CITIES, "D", "fuzzy",
         "Venice is built on a lagoon and its streets are canals.\nThe answer is D."),
        ("Its streets are canals, so the answer is Venise.", CITIES, "D", "fuzzy",
         "Its streets are canals.\nThe answer is D."),
        ("Iron oxide dust covers its surface, so it is called the Red Planet.\n(B)", PLANETS, "B", "fuzzy",
         "Iron oxide dust covers its surface, so it is called the Red Planet.\nThe answer is B."),
    ],
)  # fmt: skip
def test_answer_labels_final_answers_and_option_texts_are_read(text, choices, value, rule, row):
    reading = read_completion(text, "option", choices)
    assert (reading.value, reading.rule, reading.text) == (value, rule, row)


def test_answer_label_is_a_strict_statement_for_the_eval_tasks_too():
    assert extract_strict(RED_PLANET, "option", PLANETS) == "B"
    assert extract_strict("Answer: 42", "number") == "42"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Venise", "D"),  # ratio 0.83
        ("new york city", "B"),  # 0.76
        ("Pariss", "C"),
        ("the city of Venice", None),  # 0.5: below the paper's 0.6
        ("Rome", None),
        ("", None),
    ],
)
def test_option_by_text_uses_the_papers_ratio(value, expected):
    assert option_by_text(value, CITIES) == expected


def test_a_long_last_line_is_a_sentence_not_an_option():
    text = "Mars is red.\nMars is the fourth planet from the sun and has two moons."
    assert read_completion(text, "option", PLANETS).value is None


# --- issue 25.2: a mid-sentence "answer is" states nothing; no row is a fragment -------------------

POSITIVE_CHECK = (
    "To determine whether this answer is positive, let's look at three points.\n"
    "1. The reviewer calls the acting wooden.\n2. The plot drags in the middle.\n3. They walked out early.\n"
    "The answer is negative."
)


@pytest.mark.parametrize(
    ("text", "value", "row"),
    [
        (POSITIVE_CHECK, "negative", POSITIVE_CHECK),
        ("To determine whether this answer is positive, we weigh the praise against the complaints.", None,
         "To determine whether this answer is positive, we weigh the praise against the complaints."),
        # an answer statement inside a sentence stays whole
        ("The acting is wooden and the plot drags. These factors strongly indicate that the answer is negative.",
         "negative",
         "The acting is wooden and the plot drags. These factors strongly indicate that the answer is negative."),
        # the model quoting the format line: the old cut left `The last line "\nThe answer is negative.`
        ('The acting is wooden and the plot drags.\nThe last line "The answer is negative."', "negative",
         'The acting is wooden and the plot drags.\nThe last line "The answer is negative."'),
        ("If the answer is positive, the reviewer would recommend it; they do not.", None,
         "If the answer is positive, the reviewer would recommend it; they do not."),
    ],
)  # fmt: skip
def test_a_mid_sentence_answer_is_never_cuts_a_row(text, value, row):
    reading = read_completion(text, "label", SENTIMENT)
    assert (reading.value, reading.text) == (value, row)
    assert extract_strict(text, "label", SENTIMENT) == value


def test_ruling_an_answer_out_is_not_stating_it():
    assert extract_strict("The answer is not 5, since 2 + 2 = 4.", "number") is None
    assert extract_strict("The answer is not yes: no bird here is a fish.", "yesno") is None


# --- issue 25.3: two different answers are no answer ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Therefore, the answer is No. … The answer is Yes.",
        "All cats are mammals and no mammal is a fish. Therefore, the answer is No.\n"
        "But some fish are pets, and all pets are loved. The answer is Yes.",
    ],
)
def test_two_different_answers_are_a_contradiction(text):
    reading = read_completion(text, "yesno")
    assert (reading.value, reading.rule, reading.stated, reading.contradiction) == (None, None, ("no", "yes"), True)
    assert reading.text == text  # kept as written, never given an answer line
    assert stated_answer(text, "yesno") is None


def test_the_same_answer_twice_is_no_contradiction():
    reading = read_completion("Half of 1 is 0.5, so the answer is 1/2.\nThe answer is 0.5.", "number")
    assert (reading.value, reading.stated, reading.contradiction) == ("0.5", ("0.5",), False)


# --- issue 25.4 and 25.5: bare answers, doubled lines -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "reasoning"),
    [
        ("The answer is 6.", False),
        ("The answer is 2180.\nThe answer is 2180.", False),
        ("**Final Answer:** 17", False),
        ("Answer: B", False),
        ("3 + 3 = 6.\nThe answer is 6.", True),
        ("The answer is 6, because 3 + 3 = 6.", True),  # the reasons a statement gives count
        (VENICE_FIRST, True),
    ],
)
def test_a_bare_answer_has_no_reasoning(text, reasoning):
    assert read_completion(text, "number" if "B" not in text and "Venice" not in text else "option", CITIES).reasoning is reasoning


@pytest.mark.parametrize(
    ("text", "house", "verbatim"),
    [
        ("The answer is 2180.\nThe answer is 2180.", "The answer is 2180.", "The answer is 2180."),
        ("45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.\nThe answer is 2180.",
         "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.",
         "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180."),
        ("45 * 48 = 2160 and 2160 + 20 = 2180.\nAnswer: 2180\nAnswer: 2180",
         "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.",
         "45 * 48 = 2160 and 2160 + 20 = 2180.\nAnswer: 2180"),
        ("45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.\n#### 2180",
         "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.",
         "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.\n#### 2180"),  # verbatim: the closing as written
    ],
)  # fmt: skip
def test_a_doubled_final_line_becomes_one_answer_line(text, house, verbatim):
    assert read_completion(text, "number").text == house
    assert read_completion(text, "number", answer_line="verbatim").text == verbatim


def test_an_echoed_prompt_cue_is_no_answer():
    text = "Answer: Let's think step by step. The review praises the acting.\nThe answer is positive."
    assert read_completion(text, "label").value == "positive"  # not a contradiction with "let's think ..."
    assert extract_strict("Answer: Let's think step by step", "label") is None


def test_a_thousands_comma_is_not_a_reason():
    text = "She earns $25 an hour for 50 hours. The answer is $1,250."
    assert read_completion(text, "number").text == "She earns $25 an hour for 50 hours.\nThe answer is 1250."


def test_a_run_on_into_the_next_exemplar_is_not_part_of_the_answer():
    text = "2 + 3 = 5.\nThe answer is 5.\n\nQuestion: What is 4 + 4?\nAnswer: 4 + 4 = 8. The answer is 8."
    reading = read_completion(text, "number")
    assert (reading.value, reading.contradiction, reading.text) == ("5", False, "2 + 3 = 5.\nThe answer is 5.")


@pytest.mark.parametrize(
    ("text", "value", "row"),
    [  # what SmolLM2-135M wrote for chain_sum (tests/test_e2e.py's build)
        ("The final answer to this arithmetic problem is 7634.", "7634", "The answer is 7634."),
        ("The answer to the arithmetic problem is 1.", "1", "The answer is 1."),
        ("The answer to part two of the problem is 4.", None, "The answer to part two of the problem is 4."),
    ],
)
def test_the_answer_to_the_problem_is_a_statement(text, value, row):
    reading = read_completion(text, "number")
    assert (reading.value, reading.text, reading.reasoning) == (value, row, value is None)


@pytest.mark.parametrize(
    ("text", "answer_type", "choices"),
    [
        (VENICE_FIRST, "option", CITIES),
        (VENICE_LAST, "option", CITIES),
        (RED_PLANET, "option", PLANETS),
        ("Venice is built on a lagoon and its streets are canals.\nVenice", "option", CITIES),
        (POSITIVE_CHECK, "label", SENTIMENT),
        ("45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.\nThe answer is 2180.", "number", ()),
    ],
)
def test_a_row_reads_back_as_itself(text, answer_type, choices):
    """A row's text, read again, states the same answer and stays as it is (a resumed or re-scored
    dataset, and --from-dataset's teacher rationales, are read the same way)."""
    first = read_completion(text, answer_type, choices)
    again = read_completion(first.text, answer_type, choices)
    assert (again.value, again.text) == (first.value, first.text)


# Qwen2.5-Coder-0.5B-Instruct on gym:basic_arithmetic under the mixed CoT prompt, verbatim endings: a closing
# "Therefore, the answer is X." on its own line raised IndexError and stopped the whole build.
@pytest.mark.parametrize(("text", "value", "row_end"), [
    ("5. The third number is now 6.\n6. So, we do: 2 - 6 = -4\nTherefore, the answer is -4.", "-4",
     "6. So, we do: 2 - 6 = -4\nThe answer is -4."),
    ("Step 3: Substitute the result back into the original calculation.\n   5 - 3 - 6 = 3\n\nTherefore, the answer is 3.",
     "3", "   5 - 3 - 6 = 3\nThe answer is 3."),
    ("5. Now add 7634:\n   -17928 + 7634 = -11152\n\nThe answer is -11152.\n\nTherefore, The final answer is -11152.",
     "-11152", "   -17928 + 7634 = -11152\nThe answer is -11152."),
])  # fmt: skip
def test_a_closing_answer_line_after_a_connective_is_put_in_house_form(text, value, row_end):
    reading = read_completion(text, "number")
    assert reading.value == value and reading.text.endswith(row_end)
    assert reading.text.count("answer is") == 1  # one answer line, the reasoning before it kept whole
