"""The column catalogue: views, formats and file order all come from its entries (pure, no runs)."""

import math

import polars as pl

from evalkit.report import columns
from evalkit.report.columns import BY_NAME, COLUMNS, COMPACT, SUMMARY, WIDE, format_cell, header, keep_order, schema, view


def test_names_are_unique_and_views_name_catalogue_columns():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    for v in (COMPACT, WIDE, SUMMARY):
        assert view(v) and set(view(v)) <= set(names)
    # one reading order: every view lists its columns in the same relative order
    summary = view(SUMMARY)
    for v in (COMPACT, WIDE):
        assert view(v) == [c for c in summary if c in view(v)]
    assert set(keep_order()) >= set(view(COMPACT)) - {"tg_tokens_per_s"} | {"gen_tokens_per_s"}
    assert len({c.keep for c in COLUMNS if c.keep is not None}) == len(keep_order())


def test_cells_are_written_by_the_columns_formatter():
    assert format_cell(0.8125, "pass_strict") == "81%"
    assert format_cell(0.75, "check_word_count_loose") == "75%"  # a dynamic family
    assert format_cell(0.000577191, "kld_mean") == "0.0005772"
    assert format_cell(0.0123456, "kld_resp_cat_math") == "0.01235"
    assert format_cell(61.0234, "tg_tokens_per_s") == "61.02"
    assert format_cell(1234.5, "bench_arc_easy_acc") == "1234"  # not a share: lm-eval scores as they are
    assert format_cell(0.5, "not_a_column") == "0.5"
    assert format_cell(None, "kld_mean") == format_cell(math.nan, "ppl") == "–"
    assert (format_cell(True, "recommended"), format_cell(False, "recommended")) == ("✔", "")
    assert format_cell(12, "gen_samples") == "12"
    assert header("kld_mean") == "KLD" and header("kld_se") == "kld se"


def test_file_order_puts_dynamic_columns_after_their_section():
    names = ["bench_arc_easy_n", "check_b_loose", "check_b_strict", "kld_resp_cat_x", "bench_arc_easy_acc", "check_a_strict"]
    order = schema([*BY_NAME, *names])
    keys = list(order)
    assert keys[: len(columns.IDENTITY)] == [c.name for c in columns.IDENTITY]
    after_gen = keys.index(columns.GENERATION[-1].name) + 1
    assert keys[after_gen : after_gen + 3] == ["check_a_strict", "check_b_strict", "check_b_loose"]
    after_quality = keys.index(columns.QUALITY[-1].name) + 1
    assert keys[after_quality : after_quality + 3] == ["bench_arc_easy_acc", "bench_arc_easy_n", "kld_resp_cat_x"]
    assert keys[-len(columns.PROVENANCE) :] == [c.name for c in columns.PROVENANCE]
    assert order["bench_arc_easy_n"] == pl.Int64 and order["check_b_loose"] == pl.Float64


def test_the_documented_reference_is_generated_from_the_catalogue():
    md = columns.markdown()
    assert all(f"| `{c.name}` |" in md for c in COLUMNS)
    assert all(f"| `{f.pattern}` |" in md for f in columns.FAMILIES)
    assert len(columns.reference()) == len(COLUMNS) + len(columns.FAMILIES)
