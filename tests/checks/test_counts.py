import pytest

from evalkit.checks import compile_check, run_check


def check(name, params, text):
    c, p = compile_check(name, params)
    return run_check(c, p, text)


THREE = "First paragraph here.\n\nSecond one,\nstill second.\n\nThird and last."


def test_paragraphs_exact_pass_and_fail():
    strict, _ = check("paragraph_count", {"exact": 3}, THREE)
    assert strict.passed and strict.value == 3
    strict, _ = check("paragraph_count", {"exact": 2}, THREE)
    assert not strict.passed and strict.value == 3 and "expected exactly 2" in strict.reason


def test_paragraphs_markdown_blocks_are_markup_not_paragraphs():
    text = "# Title\n\nOne.\n\n- a\n- b\n\nTwo.\n\n```\ncode\n\nmore code\n```\n\nThree."
    strict, _ = check("paragraph_count", {"exact": 3}, text)
    assert strict.passed, strict.reason
    assert "markup" in strict.reason


def test_paragraphs_min_max():
    assert check("paragraph_count", {"min": 2, "max": 3}, THREE)[0].passed
    assert not check("paragraph_count", {"min": 4}, THREE)[0].passed
    assert not check("paragraph_count", {"max": 2}, THREE)[0].passed


def test_single_newlines_do_not_split_paragraphs():
    strict, _ = check("paragraph_count", {"exact": 1}, "line one\nline two\nline three")
    assert strict.passed


def test_word_count_bounds():
    text = "It's a well-known fact: five words here? Seven, actually."
    strict, _ = check("word_count", {"exact": 9}, text)
    assert strict.value == 9 and strict.passed
    assert not check("word_count", {"max": 8}, text)[0].passed
    assert not check("word_count", {"min": 10}, text)[0].passed


def test_sentence_count_ignores_abbreviations():
    text = "Dr. Smith arrived late. He used e.g. a ladder! Was it safe? Yes."
    strict, _ = check("sentence_count", {"exact": 4}, text)
    assert strict.passed, strict.value
    assert not check("sentence_count", {"max": 3}, text)[0].passed


def test_bounds_need_a_bound():
    from evalkit.errors import TaskError

    with pytest.raises(TaskError, match="at least one"):
        compile_check("word_count", {})
