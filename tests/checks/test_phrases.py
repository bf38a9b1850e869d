import pytest

from evalkit.checks import compile_check, run_check


def forbidden(text, **params):
    c, p = compile_check("forbidden_phrases", params)
    return run_check(c, p, text)


@pytest.mark.parametrize(
    "text",
    [
        "Well, it depends.",
        "It all depends on the budget.",
        "That depends on who you ask.",
        "The answer depends on the load.",
        "IT REALLY DEPENDS.",
        "Depending on the team, pick either.",
    ],
)
def test_it_depends_variants_are_caught(text):
    strict, loose = forbidden(text, phrases=["it depends"])
    assert not strict.passed and not loose, text


def test_clean_text_passes():
    strict, _ = forbidden("Choose Python. It is easier to read.", phrases=["it depends"])
    assert strict.passed


def test_variants_can_be_switched_off():
    assert forbidden("It all depends.", phrases=["it depends"], variants=False)[0].passed
    assert not forbidden("Yes, it depends.", phrases=["it depends"], variants=False)[0].passed


def test_whole_words_only_and_case_insensitive():
    assert forbidden("Bluebell woods.", phrases=["blue"], variants=False)[0].passed
    assert not forbidden("BLUE skies.", phrases=["blue"], variants=False)[0].passed


def test_scope_last_paragraph():
    text = "In the end we start.\n\nThe story goes on and on."
    assert forbidden(text, phrases=["in the end"], scope="last_paragraph")[0].passed
    assert not forbidden(text, phrases=["in the end"], scope="all")[0].passed


def test_required_keywords():
    c, p = compile_check("required_keywords", {"keywords": ["neon", "rain"]})
    strict, _ = run_check(c, p, "Neon signs in the rain.")
    assert strict.passed and strict.value == {"neon": 1, "rain": 1}
    strict, _ = run_check(c, p, "Neon signs in the fog.")
    assert not strict.passed and "rain" in strict.reason


def test_required_keyword_in_last_paragraph():
    c, p = compile_check(
        "required_keywords", {"keywords": ["Recommendation:"], "scope": "last_paragraph"}
    )
    assert run_check(c, p, "Analysis.\n\nRecommendation: option B.")[0].passed
    assert not run_check(c, p, "Recommendation: option B.\n\nMore analysis.")[0].passed


def test_unknown_check_is_a_load_error():
    from evalkit.errors import TaskError

    with pytest.raises(TaskError, match="unknown check 'word_cuont'"):
        compile_check("word_cuont", {"max": 3})
    with pytest.raises(TaskError, match="phrases"):
        compile_check("forbidden_phrases", {"phrasez": ["x"]})
