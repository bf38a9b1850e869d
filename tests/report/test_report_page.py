"""The report people read: outputs side by side with highlighted failures, per-check counts, the KLD
distribution, speed by depth; terminal tables whose cells are never split; the page in Chromium."""

import html as htmlmod
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from conftest import find_chromium, requires_chromium
from report_fixtures import write_run
from test_leaderboard_files import leaderboard

from evalkit.metrics.kld import KLD_QUANTILE_LEVELS

CHECKS = [("forbidden_markup", {}), ("forbidden_phrases", {"phrases": ["it depends", "in conclusion"]}),
          ("word_count", {"max": 120})]  # fmt: skip
CLEAN = "Paris is the capital of France. It sits on the Seine and has about two million residents."
MARKUP = "## Answer\n\n- **Paris** is the capital.\n- It depends on who you ask, in conclusion."
LONG = ("The answer is Paris. " * 80).strip()  # 1,679 chars: folded
TEXTS = {
    "q8_0": {"capital": [CLEAN, CLEAN], "advice": [CLEAN, "Well, it depends on the day."]},
    "q4_k_m": {"capital": [CLEAN, MARKUP], "advice": [LONG + " In conclusion, Paris.", CLEAN]},
    "q2_k": {"capital": [MARKUP, MARKUP], "advice": [MARKUP, LONG]},
}
BPW = {"q8_0": 8.5, "q4_k_m": 5.1, "q2_k": 3.3}


def _kld(scale: float) -> dict:
    qs = [scale * (1e-3 + q**6) for q in KLD_QUANTILE_LEVELS]
    return {"reference": "sm f16", "reference_sha256": "r" * 64, "kld_mean": scale * 0.14, "kld_p99": qs[99],
            "kld_median": qs[50], "same_top_pct": 100 - 40 * scale, "ppl": 10 + scale, "ppl_se": 0.1, "n_scored": 4096,
            "corpus": "embedded", "corpus_sha256": "c" * 64, "kld_quantile_levels": KLD_QUANTILE_LEVELS,
            "kld_quantiles": qs}  # fmt: skip


def _speed(tg: float) -> dict:
    tests = []
    for depth in (0, 512):
        slow = 1 + depth / 1024
        tests += [
            {"name": "pp64" + (f" @ d{depth}" if depth else ""), "n_prompt": 64, "n_gen": 0, "depth": depth, "repetitions": 2,
             "tokens_per_s_mean": 10 * tg / slow, "tokens_per_s_sd": 1.25, "samples_tokens_per_s": [10 * tg / slow] * 2},
            {"name": "tg16" + (f" @ d{depth}" if depth else ""), "n_prompt": 0, "n_gen": 16, "depth": depth, "repetitions": 2,
             "tokens_per_s_mean": tg / slow, "tokens_per_s_sd": 0.5, "samples_tokens_per_s": [tg / slow] * 2},
        ]  # fmt: skip
    return {"tests": tests}


@pytest.fixture(scope="module")
def page_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("page") / "outputs"
    for i, (variant, texts) in enumerate(TEXTS.items()):
        common = dict(model="smollm2_135m", variant=variant, file_type=variant.upper(), bpw=BPW[variant],
                      size_bytes=int(BPW[variant] * 17_000_000), family="smollm2")  # fmt: skip
        gen = {p: [(len(t), 2.0 + 0.1234 * k) for k, t in enumerate(ts)] for p, ts in texts.items()}
        write_run(root, **common, task="constraints", samples=gen, texts=texts, checks=CHECKS)
        write_run(root, **common, task="kld", kind="kld", kld=_kld([0.004123, 0.0881, 0.71][i]))
        write_run(root, **common, task="speed", kind="speed", speed=_speed([41.7, 55.3, 61.02][i]))
    return root


def test_outputs_side_by_side_in_the_page(page_tree, tmp_path):
    out = tmp_path / "r.html"
    r = leaderboard(page_tree, "--html", out, "--quiet")
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    for sid in ("outputs", "quality", "kld-distribution", "speed-depth", "leaderboard-section", "frontier"):
        assert f"id='{sid}'" in page
    # every in-page link lands on an element of the page
    ids = set(re.findall(r"""id=['"]([^'"]+)['"]""", page))
    links = re.findall(r"""href=['"]#([^'"]+)['"]""", page)
    assert links and all(link in ids for link in links), sorted(set(links) - ids)
    for anchor in ("out-constraints-capital-s0", "out-constraints-capital-s1", "out-constraints-advice-s1"):
        assert f"id='{anchor}'" in page and f"href='#{anchor}'" in page
    # the capital prompt, sample 1: three columns in leaderboard order, q4_k_m's markup highlighted
    sample = page.split("id='out-constraints-capital-s1'")[1].split("<div class='sample'")[0].split("</section>")[0]
    assert [m for m in re.findall(r"<div class='ahead'><b>([^<]+)</b>", sample)] == ["q8_0", "q4_k_m", "q2_k"]
    marks = [htmlmod.unescape(m) for m in re.findall(r"<mark class='fail' title='[^']*'>(.*?)</mark>", sample)]
    # per failing answer: the header, the bullets (holding bold) and the forbidden phrases, merged where they overlap
    assert marks == ["## Answer", "- **Paris** is the capital.", "- It depends on who you ask, in conclusion."] * 2
    assert "forbidden markup found: 2 bullets, 1 bold, 1 headers" in sample and "✘ <b>forbidden_markup</b>" in sample
    assert sample.count("badge ok'>pass") == 1 and sample.count("badge bad'>fail") == 2
    # a long answer is folded, and a failure in its hidden part is announced and still highlighted
    adv = page.split("id='out-constraints-advice-s0'")[1].split("<div class='sample'")[0]
    fold = re.search(r"<summary>show the remaining (\d+) characters, 1 highlighted</summary>(.*?)</details>", adv, re.S)
    assert fold and "<mark class='fail' title='forbidden_phrases'>In conclusion</mark>" in fold.group(2)
    # per-check counts k/n, the KLD curve and the speed-by-depth plot
    table = page.split("id='check-table'")[1].split("</table>")[0]
    assert re.search(r"forbidden_markup</td><td class='ok'>4/4.*?<td class=''>3/4.*?<td class='bad'>1/4", table)
    assert re.search(r"<div class='plot kld-plot' id='kld-plot'><svg", page)
    assert "q2_k (mean 0.09940)" not in page and "q2_k (mean 0.0994)" in page  # legend text is in the SVG as paths
    assert re.search(r"<div class='plot depth-plot' id='depth-plot'><svg", page)
    assert "pp64 @ d512" in page and "tg16 @ d0" in page
    assert "MTP" not in page.split("id='speed-depth'")[1].split("id='outputs'")[0], "the grid hook adds nothing yet"


def test_samples_prints_one_prompt_side_by_side(page_tree):
    r = leaderboard(page_tree, "--samples", "capital", "--quiet", "--width", "120")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "constraints:capital" in out and "sample 1 · seed 1001" in out
    assert all(v in out for v in TEXTS) and "FAIL" in out and "PASS" in out
    assert "✘ forbidden_markup: forbidden markup" in out and "~ forbidden_phrases: forbidden" in out
    assert "- **Paris** is the capital." in out and out.count("✔ word_count") == 6
    r = leaderboard(page_tree, "--samples", "constraints:nope", "--quiet")
    assert r.returncode == 2 and "no prompt 'constraints:nope'" in r.stderr and "constraints:capital" in r.stderr
    assert "Traceback" not in r.stderr


def _cells_whole(out: str, cells: list[str], width: int) -> None:
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width
    for c in cells:
        assert any(c in line for line in lines), f"{c!r} is split across lines at width {width}:\n{out}"


@pytest.mark.parametrize("width", [80, 100, 140])
def test_terminal_tables_never_split_a_cell(page_tree, width):
    from evalkit.report.columns import COMPACT, format_cell, header, view
    from evalkit.report.frontier import frontier
    from evalkit.report.rows import build_rows, to_frame
    from evalkit.report.load import load_runs
    from evalkit.report.pairs import build_pairs
    from evalkit.report.tables import pair_table, print_leaderboard

    loaded = load_runs([page_tree])
    df = frontier(to_frame(build_rows(loaded.runs, []))).frame
    console = Console(width=width, record=True, file=io.StringIO())
    dropped = print_leaderboard(df, console, view(COMPACT))
    out = console.export_text()
    shown = [c for c in view(COMPACT) if c in df.columns and df[c].drop_nulls().len() > 0 and c not in dropped and c not in ("model", "settings")]
    assert {"variant", "tg_tokens_per_s", "kld_mean"} <= set(shown)
    if width >= 100:
        assert not dropped, f"the compact set fits {width} columns"
    cells = [header(c) for c in shown] + [format_cell(v, c) for c in shown for v in df[c].to_list()]
    assert "0.0005772" in cells and "0.6692" in cells and "61.02" in cells
    _cells_whole(out, cells, width)

    (pair,) = build_pairs(loaded.runs, "smollm2_135m:q2_k=smollm2_135m:q8_0", [], n_boot=200, seed=0)
    table, dropped = pair_table(pair, width)
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    out = console.export_text()
    cells = [str(col.header) for col in table.columns] + [str(c) for col in table.columns for c in col.cells]
    assert any(re.fullmatch(r"\d+\.\d\dx.*", c) for c in cells), "the ratios are shown"
    _cells_whole(out, cells, width)

    from evalkit.report.pair_quality import fmt_quality, print_quality

    assert pair.quality, "paired pass rates per check"
    console = Console(width=width, record=True, file=io.StringIO())
    print_quality(pair.quality, console)
    out = console.export_text()
    shown = out.split("┃")  # the header row names the columns that fit
    heads = ["metric", "n", "A", "B", "A - B [95% CI]", "test", "detectable"]
    kept = [h for h in heads if any(part.strip() == h for part in shown)]
    assert {"metric", "A - B [95% CI]"} <= set(kept)
    _cells_whole(out.split("pass rates: Newcombe")[0], [c for q in pair.quality for c in (q.metric, fmt_quality(q)[2])], width)
    assert (width >= 140) == (not dropped) or width >= 140


def test_wide_and_columns_flags(page_tree):
    r = leaderboard(page_tree, "--width", "100")
    assert r.returncode == 0 and "more columns: --wide, or --columns" in r.stdout
    r = leaderboard(page_tree, "--width", "100", "--wide")
    assert r.returncode == 0 and "pareto" not in r.stdout and "front mem" in r.stdout
    r = leaderboard(page_tree, "--columns", "variant,kld_se,kld_mean", "--width", "80")
    assert r.returncode == 0
    head = next(line for line in r.stdout.splitlines() if "variant" in line)
    assert head.index("variant") < head.index("kld se") < head.index("KLD")
    r = leaderboard(page_tree, "--columns", "variant,nope", "--quiet")
    assert r.returncode == 2 and "unknown column(s) nope" in r.stderr


CHROMIUM = find_chromium()
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip

# Injected into a copy of the page (the report itself has no script): what overflows the viewport
# outside a scroll container, what was fetched, and what the Content-Security-Policy refused.
PROBE = """<script>
var blocked = [];
document.addEventListener('securitypolicyviolation', function (e) { blocked.push(e.blockedURI); });
window.addEventListener('load', function () { setTimeout(function () {
  var vw = document.documentElement.clientWidth, over = [];
  document.querySelectorAll('body *').forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1) return;
    for (var p = el.parentElement; p; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') return;
    }
    over.push(el.tagName + '.' + el.className + '#' + el.id + ' right=' + Math.round(r.right));
  });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({vw: vw, scrollW: document.documentElement.scrollWidth, overflow: over,
    resources: performance.getEntriesByType('resource').map(function (e) { return e.name; }), blocked: blocked});
  document.body.appendChild(pre);
}, 50); });
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180, env=env)  # type: ignore[list-item]


def _probe(tmp_path: Path, page: str, name: str, width: int, csp: bool) -> dict:
    if csp:  # the report's own policy, plus the probe script itself
        page = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    else:
        page = re.sub(r"<meta http-equiv='Content-Security-Policy'[^>]*>", "", page)
    copy = tmp_path / name
    copy.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path, f"--window-size={width},900", "--virtual-time-budget=3000", "--dump-dom", copy.as_uri()).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    return json.loads(htmlmod.unescape(m.group(1)))


@pytest.mark.slow  # a real headless Chromium: an integration test, not the fast tier
@requires_chromium
def test_report_in_chromium_fits_and_fetches_nothing(page_tree, tmp_path):
    out = tmp_path / "report.html"
    assert leaderboard(page_tree, "--html", out, "--quiet").returncode == 0
    page = out.read_text()
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and not re.search(r"url\(\s*['\"]?(?!#)", page)
    assert "default-src 'none'; img-src data:; style-src 'unsafe-inline'" in page
    dom = _chromium(tmp_path, "--dump-dom", out.as_uri()).stdout
    for sid in ("outputs", "quality", "kld-distribution", "speed-depth", "check-table", "kld-plot", "depth-plot"):
        assert f'id="{sid}"' in dom, sid
    assert dom.count('<mark class="fail"') >= 10 and dom.count('<div class="answer">') == 12
    for width in (390, 1400):  # a phone and a desktop
        seen = _probe(tmp_path, page, f"probe-{width}.html", width, csp=False)
        assert seen["overflow"] == [] and seen["scrollW"] <= seen["vw"], seen
        assert seen["resources"] == [], "the page requests nothing, even without its policy"
    seen = _probe(tmp_path, page.replace("</body>", "<img src='http://127.0.0.1:9/x.png'></body>"), "leak.html", 1400, csp=True)
    # the probe sees its own planted URL refused by the report's policy (a failed entry may still be listed)
    assert any("127.0.0.1" in b for b in seen["blocked"]), "the policy blocks a stray URL"
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", out.as_uri())
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[:2] == (1000, 1400) and img[..., :3].std() > 0.05


@pytest.mark.parametrize("width", [80, 100, 140])
def test_run_end_generation_table_keeps_cells_whole(page_tree, width):
    from evalkit.records import RunResult
    from evalkit.report.tables import fmt_stat, pct, print_generation

    path = next(p for p in page_tree.rglob("results.json") if "constraints" in p.parts)
    result = RunResult.model_validate_json(path.read_text())
    console = Console(width=width, record=True, file=io.StringIO())
    print_generation(result, console)
    out = console.export_text()
    table = out.split("results:")[0]
    g = result.generation
    cells = ["prompt", "strict", "gen tok/s", "capital", "advice", pct(g.pass_rate_strict), f"{g.total_chars}",
             fmt_stat(g.gen_tokens_per_s), *(pct(p.pass_rate_loose) for p in g.per_prompt.values())]  # fmt: skip
    _cells_whole(table, cells, width)
    assert ("not shown at this width" in out) == (width < 100) or width >= 100
