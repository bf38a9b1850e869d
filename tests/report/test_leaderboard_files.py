"""The leaderboard CLI on constructed outputs trees: merging, exports, bad files, HTML in Chromium."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from conftest import assert_one_line_error, CliResult, find_chromium, requires_chromium
from report_fixtures import HW_B, write_run

from evalkit.report import columns
from evalkit.report.columns import COLUMNS, FAMILIES

ROOT = Path(__file__).resolve().parents[2]
KLD = {"reference": "g12 f16", "reference_sha256": "r" * 64, "kld_mean": 0.031, "kld_p99": 0.4, "same_top_pct": 91.9,
       "ppl": 8.1, "ppl_se": 0.05, "n_scored": 4096, "corpus": "embedded", "corpus_sha256": "c" * 64}  # fmt: skip
SPEED = {"tests": [
    {"name": "pp512", "n_prompt": 512, "n_gen": 0, "depth": 0, "repetitions": 5, "tokens_per_s_mean": 250.0,
     "tokens_per_s_sd": 3.0, "samples_tokens_per_s": [250.0] * 5},
    {"name": "tg128", "n_prompt": 0, "n_gen": 128, "depth": 0, "repetitions": 5, "tokens_per_s_mean": 21.5,
     "tokens_per_s_sd": 0.4, "samples_tokens_per_s": [21.5] * 5},
]}  # fmt: skip
LM_EVAL = {
    "tasks": {"arc_easy": {"metric": "acc", "value": 0.62, "stderr": 0.02, "n": 500},
              "hellaswag": {"metric": "acc_norm", "value": 0.41, "stderr": 0.01, "n": 1000}},
    "flips": {"arc_easy": {"n_common": 500, "n_flips": 23, "to_correct": 9, "to_incorrect": 14, "reference": "g12 f16"}},
    "lm_eval_version": "0.4.13", "model_type": "evalkit-llama",
}  # fmt: skip
GEN = {"p1": [(400, 4.0), (420, 4.2)], "p2": [(100, 1.0), (120, 1.1)]}


def leaderboard(*args) -> CliResult:
    """The CLI in this process (fast); test_real_cli runs it as `python -m evalkit.leaderboard`."""
    from evalkit.leaderboard import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code or 0
    return CliResult(code, out.getvalue(), err.getvalue(), ROOT)


def test_real_cli(tree, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "evalkit.leaderboard", str(tree), "--csv", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "leaderboard" in proc.stdout and "recommendation" in proc.stdout and len(pl.read_csv(tmp_path / "x.csv")) == 3
    proc = subprocess.run([sys.executable, "-m", "evalkit.leaderboard", str(tmp_path / "none")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert_one_line_error(CliResult(proc.returncode, proc.stdout, proc.stderr, tmp_path), "no such directory")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """One variant measured by three task kinds on hardware A, the same variant on hardware B."""
    root = tmp_path_factory.mktemp("lb") / "outputs"
    common = dict(model="g12_q4", variant="Q4_K", file_type="Q4_K", bpw=4.9, size_bytes=6_300_000_000, family="g12")
    write_run(root, **common, samples=GEN, passed={"p1": [True, False], "p2": [True, True]})
    write_run(root, **common, task="kld", kind="kld", kld=KLD, peak_rss=9_000_000_000)
    write_run(root, **common, task="speed", kind="speed", speed=SPEED, peak_rss=6_900_000_000)
    write_run(root, **common, task="lm_eval", kind="lm_eval", lm_eval=LM_EVAL, peak_rss=8_000_000_000)
    write_run(root, **common, samples={"p1": [(400, 2.0)]}, hw=HW_B)  # another machine: its own row
    write_run(root, model="g12_q8", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=12 * 10**9, family="g12",
              samples=GEN, passed={"p1": [True, True], "p2": [True, True]}, peak_rss=13 * 10**9)  # fmt: skip
    return root


def test_rows_merge_task_kinds_but_never_hardware(tree, tmp_path):
    r = leaderboard(tree, "--csv", tmp_path / "lb.csv", "--parquet", tmp_path / "lb.parquet",
                    "--json", tmp_path / "lb.json", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    df = pl.read_csv(tmp_path / "lb.csv")
    assert len(df) == 3
    row = df.filter((pl.col("model") == "g12_q4") & (pl.col("hardware_fingerprint") != HW_B.fingerprint)).to_dicts()[0]
    assert row["tasks"] == "kld+lm_eval+speed+stress" and row["runs"] == 4
    assert row["bench_arc_easy_acc"] == pytest.approx(0.62) and row["bench_arc_easy_stderr"] == pytest.approx(0.02)
    assert row["bench_arc_easy_n"] == 500 and row["bench_arc_easy_flips"] == 23
    assert row["bench_hellaswag_acc_norm"] == pytest.approx(0.41) and row["bench_hellaswag_flips"] is None
    assert row["kld_mean"] == pytest.approx(0.031) and row["same_top_pct"] == pytest.approx(91.9)
    assert row["ppl"] == pytest.approx(8.1) and row["ppl_source"] == "kld"
    assert row["pp_tokens_per_s"] == 250.0 and row["tg_tokens_per_s"] == 21.5 and row["tg_test"] == "tg128"
    assert row["tg_tokens_per_s_sd"] == pytest.approx(0.4) and row["speed_repetitions"] == 5
    assert row["gen_samples"] == 4 and row["pass_strict"] == pytest.approx(0.75) and row["pass_loose"] == 1.0
    assert row["check_word_count_strict"] == pytest.approx(0.75)
    assert row["output_chars_total"] == 1040 and row["output_chars_mean"] == pytest.approx(260)
    assert row["chars_per_s_total"] == pytest.approx(1040 / 10.3)
    # peak memory comes from the generation and speed runs, not the kld run's reference cache
    assert row["peak_rss_gb"] == pytest.approx(6.9) and row["rss_delta_gb"] == pytest.approx(6.8)
    assert row["memory_gb"] == pytest.approx(6.8)  # no GPU: what loading the variant added
    assert row["size_gb"] == pytest.approx(6.3) and row["bits_per_weight"] == pytest.approx(4.9)
    other = df.filter(pl.col("hardware_fingerprint") == HW_B.fingerprint).to_dicts()[0]
    assert other["gen_samples"] == 1 and other["chars_per_s"] == pytest.approx(200.0), "not averaged with A"
    assert other["frontier_group"] != row["frontier_group"]
    pq = pl.read_parquet(tmp_path / "lb.parquet")
    assert pq.columns == df.columns and len(pq) == 3
    payload = json.loads((tmp_path / "lb.json").read_text())
    assert len(payload["rows"]) == 3 and payload["recommendations"] and payload["warnings"] == []


def test_recommendation_and_budgets_from_the_cli(tree, tmp_path):
    r = leaderboard(tree, "--min-pass-rate", "0.8", "--quality", "pass_strict")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "g12_q8:Q8_0 [llama_cpp n_threads=8] is the fastest" in text and "pass_strict >= 0.8" in text
    assert "g12_q4:Q4_K [llama_cpp n_threads=8] (pass rate 75% < 80%)" in text
    r = leaderboard(tree, "--quality", "bench:arc_easy", "--json", tmp_path / "b.json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "b.json").read_text())["frontier"]["quality_metric"] == "bench_arc_easy_acc"


def test_every_fixed_column_is_documented():
    doc = (ROOT / "docs" / "leaderboard.md").read_text()
    missing = [c.name for c in COLUMNS if f"`{c.name}`" not in doc] + [f.pattern for f in FAMILIES if f"`{f.pattern}`" not in doc]
    assert not missing, f"undocumented columns: {missing}"
    assert columns.documented(doc) == columns.markdown(), (
        "docs/leaderboard.md's column reference differs from the catalogue: "
        "run python -m evalkit.report.columns --update docs/leaderboard.md"
    )


def test_bad_files_are_skipped_by_name_and_good_rows_stay(tmp_path):
    root = tmp_path / "outputs"
    good = write_run(root, model="m", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**9, samples=GEN)
    old = write_run(root, model="old", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=10**9, samples=GEN)
    data = json.loads((old / "results.json").read_text())
    data["schema_version"] = 0
    (old / "results.json").write_text(json.dumps(data))
    broken = write_run(root, model="cut", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=10**9, samples=GEN)
    text = (broken / "results.json").read_text()
    (broken / "results.json").write_text(text[: len(text) // 2])  # a half-written JSON file
    nomodel = write_run(root, model="nm", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=10**9, samples=GEN)
    data = json.loads((nomodel / "results.json").read_text())
    del data["model"]
    (nomodel / "results.json").write_text(json.dumps(data))
    killed = root / "stress" / "k-q4_0" / "llama_cpp-0000000000"
    killed.mkdir(parents=True)
    (killed / "samples.jsonl").write_text((good / "samples.jsonl").read_text().splitlines()[0] + "\n{\"key\": \"ab")
    stopped = write_run(root, model="st", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=10**9, samples=GEN,
                        status="interrupted")  # fmt: skip
    with (good / "samples.jsonl").open("a") as fh:
        fh.write('{"schema_version": 1, "key": "half-writ')  # a killed writer's last line

    r = leaderboard(root, "--csv", tmp_path / "lb.csv", "--pair", "m=m", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    err = r.stderr
    assert f"skipped {old / 'results.json'}: schema_version 0, this evalkit reads 1" in err
    assert f"skipped {broken / 'results.json'}: unreadable JSON" in err
    assert f"skipped {nomodel / 'results.json'}: does not validate (model: Field required" in err
    assert f"skipped {killed}: samples.jsonl but no results.json" in err
    assert f"skipped {stopped}: status interrupted" in err
    assert f"{good / 'samples.jsonl'}: skipped 1 broken line(s)" in err
    df = pl.read_csv(tmp_path / "lb.csv")
    assert df["model"].to_list() == ["m"] and df["gen_samples"].to_list() == [4]
    assert (good / "samples.jsonl").read_text().endswith("half-writ"), "the report never rewrites run files"

    r = leaderboard(root, "--include-incomplete", "--csv", tmp_path / "all.csv", "--quiet")
    df = pl.read_csv(tmp_path / "all.csv")
    assert set(df["model"]) == {"m", "st"}
    assert df.filter(pl.col("model") == "st")["status"].to_list() == ["incomplete: stress:interrupted"]
    assert df.filter(pl.col("model") == "st")["recommended"].to_list() == [False]


def test_nothing_to_show_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(leaderboard(tmp_path / "empty"), "no complete runs", str(tmp_path / "empty"))
    assert_one_line_error(leaderboard(tmp_path / "nope"), "no such directory")
    bad = tmp_path / "bad" / "stress" / "x" / "y"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text('{"schema_version": 1, "run_id": "trunc')
    r = leaderboard(tmp_path / "bad")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("evalkit: error: no complete runs") and "1 skipped" in lines[-1]
    assert "unreadable JSON" in lines[0]
    assert_one_line_error(leaderboard(tmp_path / "empty", "--min-pass-rate", "80"), "--min-pass-rate")


def test_cli_errors_on_pairs_and_metrics(tree):
    assert_one_line_error(leaderboard(tree, "--pair", "nope=g12_q8", "--quiet"), "no complete runs of 'nope'")
    assert_one_line_error(leaderboard(tree, "--quality", "vibes", "--quiet"), "unknown quality metric 'vibes'")
    assert_one_line_error(leaderboard(tree, "--pair", "g12_q4", "--quiet"), "--pair wants A=B")


@pytest.mark.slow  # a real headless Chromium: an integration test, not the fast tier
@requires_chromium
def test_html_report_renders_in_chromium(tree, tmp_path):
    chromium = find_chromium()
    html_path = tmp_path / "report.html"
    r = leaderboard(tree, "--html", html_path, "--pair", "g12_q4:Q4_K=g12_q8", "--quiet")
    # g12_q4 has rows on two machines; the pair takes the one on the same hardware as g12_q8
    assert r.returncode == 0, r.stderr
    page = html_path.read_text()
    # self-contained: no scripts, no external stylesheets, images or fonts
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?https?:", page)
    assert "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none';" in page  # the browser refuses any fetch
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([chromium, *flags, "--dump-dom", html_path.as_uri()], capture_output=True, text=True,
                         timeout=120, env=env).stdout  # fmt: skip
    assert '<table id="leaderboard">' in dom and "g12_q4" in dom
    assert re.search(r"<div class=\"plot frontier-plot\"[^>]*>.*?<svg", dom, re.S), "the frontier plot is inline SVG"
    assert "pair-table" in dom and "bit width" in dom and "not distinguishable from noise" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,1000", html_path.as_uri()],
                   capture_output=True, timeout=120, env=env)  # fmt: skip
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] == 1000 and img.shape[1] == 1400
    assert img[..., :3].std() > 0.05, "the screenshot is not blank"
