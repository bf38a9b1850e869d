"""Quality rows of pair reports: pass rates paired by prompt and seed, KLD by token, accuracy by item.

Runs are real results.json / samples.jsonl / per_token.npz / items.jsonl files written through
evalkit's records (report_fixtures), read back by the leaderboard CLI: terminal, JSON, CSV, HTML.
"""

import contextlib
import io
import json
import math

import numpy as np
import polars as pl
import pytest

from report_fixtures import write_run

from evalkit.metrics.intervals import mcnemar_exact_p
from evalkit.records import LmEvalItem
from evalkit.report.load import load_runs
from evalkit.report.pairs import build_pairs

# Six prompts x 5 samples; A passes 28 of 30, B 19 of 30: 11 A-only, 2 B-only discordant pairs.
TIMES = {f"p{i}": [(300 + 10 * j, 3.0 + 0.1 * j) for j in range(5)] for i in range(6)}
PASS_A = {f"p{i}": [True, True, True, True, i % 3 != 0] for i in range(6)}
PASS_B = {k: list(v) for k, v in PASS_A.items()}
for pid, j in (("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1), ("p2", 0), ("p2", 1), ("p3", 0), ("p3", 1), ("p4", 0),
               ("p4", 1), ("p5", 0)):  # fmt: skip
    PASS_B[pid][j] = False
PASS_B["p0"][4] = True  # A failed here, B passed
PASS_B["p3"][4] = True


def _kld_run(root, model, variant, kld_tokens, chunk):
    d = write_run(root, model=model, variant=variant, file_type=variant, bpw=4.5 if variant != "Q8_0" else 8.5,
                  size_bytes=10**8, task="kld", kind="kld",
                  kld={"reference": "m F16", "reference_sha256": "r" * 64, "reference_variant": "F16",
                       "kld_mean": float(kld_tokens.mean()), "corpus": "embedded", "corpus_sha256": "c" * 64,
                       "n_ctx": 512, "n_scored": int(kld_tokens.size), "n_chunks": int(np.unique(chunk).size)})  # fmt: skip
    np.savez_compressed(d / "per_token.npz", kld=kld_tokens.astype(np.float32), chunk=chunk.astype(np.int32))


def _lmeval_run(root, model, variant, correct):
    d = write_run(root, model=model, variant=variant, file_type=variant, bpw=4.5 if variant != "Q8_0" else 8.5,
                  size_bytes=10**8, task="lm_eval", kind="lm_eval",
                  lm_eval={"tasks": {"arc_easy": {"metric": "acc", "value": float(np.mean(correct)), "stderr": 0.07, "n": len(correct)}},
                           "lm_eval_version": "0.4.13", "model_type": "evalkit-llama"})  # fmt: skip
    items = [LmEvalItem(task="arc_easy", doc_id=i, doc_hash=f"h{i}", metric="acc", score=float(c), correct=bool(c),
                        prediction="x", target="x") for i, c in enumerate(correct)]  # fmt: skip
    (d / "items.jsonl").write_text("".join(it.model_dump_json() + "\n" for it in items))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("pq") / "outputs"
    write_run(root, model="m", variant="Q4_K_M", file_type="Q4_K_M", bpw=4.9, size_bytes=10**8, samples=TIMES,
              passed=PASS_A)  # fmt: skip
    write_run(root, model="m", variant="Q8_0", file_type="Q8_0", bpw=8.5, size_bytes=2 * 10**8, samples=TIMES,
              passed=PASS_B)  # fmt: skip
    rng = np.random.default_rng(0)
    chunk = np.repeat(np.arange(8), 64)
    base = np.exp(rng.standard_normal(chunk.size)) * 0.01
    _kld_run(root, "m", "Q4_K_M", base * 3 + 0.01, chunk)  # the 4-bit side drifts further from F16
    _kld_run(root, "m", "Q8_0", base, chunk)
    correct_b = [1] * 30 + [0] * 20
    correct_a = [1] * 24 + [0] * 6 + [1] * 2 + [0] * 18  # 6 lost, 2 gained
    _lmeval_run(root, "m", "Q4_K_M", correct_a)
    _lmeval_run(root, "m", "Q8_0", correct_b)
    return root


def test_quality_rows_pass_rate_kld_and_accuracy(tree):
    (rep,) = build_pairs(load_runs([tree]).runs, "m:Q4_K_M=m:Q8_0", [])
    rows = {q.metric: q for q in rep.quality}
    pr = rows["pass rate (all checks)"]
    assert (pr.n, pr.a_only, pr.b_only) == (30, 11, 2)
    assert pr.a == pytest.approx(28 / 30) and pr.b == pytest.approx(19 / 30) and pr.diff == pytest.approx(9 / 30)
    assert pr.p == pytest.approx(mcnemar_exact_p(11, 2)) and pr.lo > 0 and pr.verdict == "distinguishable"
    kld = rows["KLD vs F16 (embedded)"]
    assert kld.n == 512 and kld.clusters == 8 and kld.diff > 0 and kld.lo > 0
    acc = rows["arc_easy accuracy"]
    assert (acc.n, acc.a_only, acc.b_only) == (50, 2, 6) and acc.diff == pytest.approx(-4 / 50)
    assert acc.p == pytest.approx(mcnemar_exact_p(2, 6)) and acc.lo < 0 < acc.hi
    assert acc.verdict == "not distinguishable from noise"
    # the pair still differs in more than quantization? no: only the compared factor
    assert not any("KV-cache" in c or "sampling" in c for c in rep.confounds)


def test_leaderboard_cli_shows_quality_in_terminal_json_csv_and_html(tree, tmp_path):
    from evalkit.leaderboard import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as ex:
        main([str(tree), "--pair", "m:Q4_K_M=m:Q8_0", "--json", str(tmp_path / "r.json"),
              "--pair-csv", str(tmp_path / "pairs.csv"), "--html", str(tmp_path / "r.html")])  # fmt: skip
    assert ex.value.code == 0
    text = out.getvalue()
    assert "pass rate (all checks)" in text and "McNemar" in text and "arc_easy accuracy" in text
    assert "+30.0 pts" in text and "(11 A only, 2 B only)" in text
    pair = json.loads((tmp_path / "r.json").read_text())["pairs"][0]
    q = {r["metric"]: r for r in pair["quality"]}
    assert q["pass rate (all checks)"]["a_only"] == 11 and q["pass rate (all checks)"]["verdict"] == "distinguishable"
    assert pair["total"]["chars_per_s"]["detectable"] is not None
    csv = pl.read_csv(tmp_path / "pairs.csv")
    assert set(csv["kind"]) == {"speed", "quality"}
    row = csv.filter(pl.col("metric") == "pass rate (all checks)").row(0, named=True)
    assert row["a_only"] == 11 and row["b_only"] == 2 and math.isclose(row["effect"], 0.3)
    page = (tmp_path / "r.html").read_text()
    assert "pair-quality" in page and "pass rate (all checks)" in page and "McNemar" in page


def test_a_confounded_pair_keeps_its_flags_beside_quality(tmp_path):
    root = tmp_path / "outputs"
    write_run(root, model="x", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**8, samples=TIMES,
              passed=PASS_A, type_k="q8_0")  # fmt: skip
    write_run(root, model="y", variant="Q4_0", file_type="Q4_0", bpw=4.5, size_bytes=10**8, samples=TIMES,
              passed=PASS_B)  # fmt: skip
    (rep,) = build_pairs(load_runs([root]).runs, "x=y", [])
    assert any(q.metric == "pass rate (all checks)" for q in rep.quality)
    assert any("KV-cache types" in c for c in rep.confounds)
