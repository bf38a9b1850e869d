"""The report from real runs of the embedded model: recorded spans, the kept KLD curve, the page."""

import re
import subprocess
import sys

import pytest

from evalkit.metrics.kld import KLD_QUANTILE_LEVELS
from evalkit.records import RunResult, SampleRecord

pytestmark = pytest.mark.slow  # every test here runs a real model


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("real")
    common = ["model=smollm2_135m", "backend.n_threads=1"]
    for task in (
        ["task=constraints", "task.prompts=[no_lists,no_emphasis_no_headers]", "task.samples=2", "task.sampling.max_tokens=64"],
        ["task=kld", "task.chunks=1"],
    ):  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", "evalkit", *common, *task], cwd=cwd, capture_output=True,
                              text=True, timeout=900)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    return cwd / "outputs"


def test_real_runs_record_spans_and_the_kld_curve(real_tree):
    (gen_dir,) = [p.parent for p in real_tree.rglob("samples.jsonl")]
    samples = [SampleRecord.model_validate_json(line) for line in (gen_dir / "samples.jsonl").read_text().splitlines()]
    outcomes = [(s.output, o) for s in samples for o in s.checks if o.check == "forbidden_markup"]
    assert len(outcomes) == 4
    for text, o in outcomes:
        if o.passed:
            assert o.spans is None
        else:  # every span lies in the text and holds markup
            assert o.spans and all(0 <= a < b <= len(text) for a, b in o.spans)
            assert all(re.search(r"[*_#|`\d-]", text[a:b]) for a, b in o.spans)
    (kld_file,) = [p for p in real_tree.rglob("results.json") if "kld" in p.parts]
    k = RunResult.model_validate_json(kld_file.read_text()).kld
    assert k.kld_quantile_levels == KLD_QUANTILE_LEVELS and len(k.kld_quantiles) == len(KLD_QUANTILE_LEVELS)
    assert k.kld_quantiles == sorted(k.kld_quantiles) and k.kld_quantiles[-1] == pytest.approx(k.kld_max)
    assert k.kld_quantiles[KLD_QUANTILE_LEVELS.index(0.99)] == pytest.approx(k.kld_p99)


def test_real_report_page_and_samples(real_tree, tmp_path):
    from test_leaderboard_files import leaderboard

    out = tmp_path / "report.html"
    r = leaderboard(real_tree, "--html", out, "--samples", "no_lists", "--width", "100")
    assert r.returncode == 0, r.stderr
    assert "constraints:no_lists" in r.stdout and "sample 1 · seed" in r.stdout
    page = out.read_text()
    assert re.search(r"<div class='plot kld-plot' id='kld-plot'><svg", page)
    samples = [SampleRecord.model_validate_json(line) for p in real_tree.rglob("samples.jsonl") for line in p.read_text().splitlines()]
    failed = sum(1 for s in samples for o in s.checks if not o.passed and o.spans)
    assert page.count("<mark class='fail'") >= failed  # at least one highlight per located failure
    for s in samples:
        assert f"id='out-constraints-{s.prompt_id.replace('_', '-')}-s{s.sample_index}'" in page
