from evalkit.checks import compile_check, run_check
from evalkit.checks.markup import find_markup


def check(params, text):
    c, p = compile_check("forbidden_markup", params)
    return run_check(c, p, text)


def test_each_kind_is_found():
    text = (
        "Plain intro with **bold** and *italic* words.\n"
        "- a bullet\n"
        "2. a numbered item\n"
        "## A header\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
        "```python\nprint(1)\n```\n"
    )
    found = find_markup(text)
    for kind in ("bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"):
        assert found[kind] >= 1, kind


def test_plain_prose_passes():
    text = "A sentence with a hyphen-word, 3*4 math, snake_case names and 2. as in 'item 2.'"
    strict, loose = check({}, text)
    assert strict.passed and loose, strict.reason


def test_only_listed_kinds_are_forbidden():
    text = "Some **bold** text.\n- and a bullet"
    strict, _ = check({"kinds": ["bullets"]}, text)
    assert not strict.passed and strict.value == {"bullets": 1}
    strict, _ = check({"kinds": ["headers"]}, text)
    assert strict.passed


def test_loose_mode_forgives_asterisk_emphasis_only():
    strict, loose = check({"kinds": ["bold"]}, "This is **very** important.")
    assert not strict.passed and loose
    strict, loose = check({"kinds": ["bullets"]}, "Intro.\n- one\n- two\n- three\nEnd.")
    assert not strict.passed and not loose


def test_code_fence_contents_are_not_markup():
    text = "Here:\n```\n- not a bullet\n# not a header\n```"
    found = find_markup(text)
    assert found["code_fences"] == 1 and found["bullets"] == 0 and found["headers"] == 0
