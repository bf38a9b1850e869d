"""Checks say where a failure is: the offsets the report highlights point at the offending text."""

import numpy as np

from evalkit.checks import compile_check, run_check
from evalkit.metrics.kld import KLD_QUANTILE_LEVELS, kld_quantiles, kld_stats


def spans_of(name: str, params: dict, text: str) -> list[str]:
    check, p = compile_check(name, params)
    result, _ = run_check(check, p, text)
    assert not result.passed
    return [text[a:b] for a, b in result.spans]


def test_markup_spans_cover_each_kind():
    text = "Intro line.\n\n- a **bold** item\n# Head\nsome *it* text\n1. first\n```\ncode\n```\n| a | b |"
    got = spans_of("forbidden_markup", {}, text)
    assert got == ["- a **bold** item", "**bold**", "# Head", "*it*", "1. first", "```", "code", "```", "| a | b |"]
    assert spans_of("forbidden_markup", {"kinds": ["bold"]}, text) == ["**bold**"]


def test_markup_spans_survive_crlf_and_bold_before_italic():
    text = "ok\r\n**b** and *i*\r\n* item"
    assert spans_of("forbidden_markup", {"kinds": ["bold", "italic", "bullets"]}, text) == ["**b**", "*i*", "* item"]


def test_phrase_spans_are_offsets_in_the_whole_text_even_when_scoped():
    text = "It depends.\n\nWell it all depends on you, depending on X."
    assert spans_of("forbidden_phrases", {"phrases": ["it depends"]}, text) == [
        "It depends", "it all depends", "depends on", "depending on"
    ]  # fmt: skip
    got = spans_of("forbidden_phrases", {"phrases": ["it depends"], "scope": "last_paragraph"}, text)
    assert got == ["it all depends", "depends on", "depending on"]


def test_passing_checks_have_no_spans():
    check, p = compile_check("forbidden_phrases", {"phrases": ["eureka"]})
    assert run_check(check, p, "plain text")[0].spans is None


def test_kld_quantiles_are_compact_and_match_the_summary_percentiles():
    rng = np.random.default_rng(1)
    x = rng.gamma(0.3, 0.05, 20000)
    q = kld_quantiles(x)
    assert len(q) == len(KLD_QUANTILE_LEVELS) < 120
    assert q == sorted(q) and q[0] == x.min() and q[-1] == x.max()
    s = kld_stats(x + 1, x + 0.9, x, rng.random(x.size) < 0.9, rng.normal(0, 0.01, x.size), np.repeat(np.arange(20), 1000))
    lv = s["kld_quantile_levels"]
    assert s["kld_quantiles"][lv.index(0.99)] == s["kld_p99"] and s["kld_quantiles"][lv.index(0.5)] == s["kld_median"]
