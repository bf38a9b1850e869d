"""evalkit's task=kld against llama.cpp's own llama-perplexity --kl-divergence, side by side.

Same GGUF files (evalkit's ladder), same corpus (written to a file for `-f`), same n_ctx, chunks,
threads, flash attention (llama-perplexity's default is "auto", which turns it on for the CPU;
evalkit's backend default is off, and the two give PPLs 0.1-0.6% apart, so both get the same
explicit setting) and batch size (-b n_ctx: one sequence per batch, which is what evalkit does;
pass --lp-batch 2048 to give llama-perplexity its default of packing 4 sequences per batch).
llama-perplexity is built by scripts/llama-tools.sh with the same CMake flags as evalkit's
llama-cpp-python. evalkit runs through its CLI in a scratch EVALKIT_CACHE whose ladder/ is a
link to the real one (variants are not rebuilt, the reference cache is), so its reference pass
is timed like llama-perplexity's --kl-divergence-base pass.

Throughput is scored tokens per second of scoring: for llama-perplexity from its own log
timestamps (from its "computing over N chunks" line to the process's end), for evalkit its
timing.scoring_s (decode + logits maths, synchronized); both exclude process start, model load
and tokenization, which are also shown as whole-process walls. Each variant runs --repeat times
per tool in alternating order (lp, ek, ek, lp, ...) and the medians are compared, so a noisy
neighbour on the machine hits both tools alike.

    .venv/bin/python benchmarks/kld_vs_llama_perplexity.py --chunks 20 --threads 2 --repeat 2
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ladder_options import ladder_parser  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.corpus import load_corpus  # noqa: E402
from evalkit.models import load_model_config, resolve_model  # noqa: E402
from evalkit.paths import cache_dir  # noqa: E402

_NUM = r"([-+]?[\d.]+(?:e[-+]?\d+)?)"
PATTERNS = {
    "ppl": rf"Mean PPL\(Q\)\s*:\s*{_NUM}",
    "ppl_ref": rf"Mean PPL\(base\)\s*:\s*{_NUM}",
    "ln_ppl_ratio_mean": rf"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s*:\s*{_NUM}",
    "kld_mean": rf"Mean\s+KLD:\s*{_NUM}",
    "kld_p99": rf"99\.0%\s+KLD:\s*{_NUM}",
    "kld_median": rf"Median\s+KLD:\s*{_NUM}",
    "dp_rms_pct": rf"RMS Δp\s*:\s*{_NUM}",
    "same_top_pct": rf"Same top p:\s*{_NUM}",
}


def llama_bin() -> Path:
    from evalkit.llama_tools import build_tools

    try:
        return build_tools(ROOT)
    except RuntimeError as exc:
        sys.exit(str(exc))


def timed(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{(proc.stderr or proc.stdout)[-2000:]}")
    return wall, proc.stdout + proc.stderr


_STAMP = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) ", re.M)


def lp_scoring_s(text: str, wall: float) -> float:
    """Seconds from llama-perplexity's "computing over N chunks" log line to the process's end.

    Its log lines carry timestamps from process start; nothing timestamped follows the loop (the
    statistics are plain LOG lines), so the end is the process wall: exit teardown is included.
    """
    for line in text.splitlines():
        if re.search(r"(computing|calculating perplexity) over \d+ chunks", line):
            m = _STAMP.match(line)
            if m:
                mi, se, ms, us = (int(g) for g in m.groups())
                return wall - (60 * mi + se + ms / 1e3 + us / 1e6)
    sys.exit("no timestamped 'computing over N chunks' line in llama-perplexity's output")


def parse_lp(text: str) -> dict[str, float]:
    out = {}
    for key, pat in PATTERNS.items():
        m = re.search(pat, text)
        if m is None:
            sys.exit(f"llama-perplexity output has no '{key}':\n{text[-2000:]}")
        out[key] = float(m.group(1))
    return out


def base_file_tokens(path: Path) -> np.ndarray:
    """The token ids llama-perplexity stored in its --kl-divergence-base file."""
    with path.open("rb") as fh:
        assert fh.read(8) == b"_logits_"
        n_ctx, n_vocab, n_chunk = np.frombuffer(fh.read(12), dtype=np.int32)
        return np.frombuffer(fh.read(4 * int(n_ctx) * int(n_chunk)), dtype=np.int32)


def main() -> None:
    ap = ladder_parser(__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--lp-batch", type=int, default=None, help="llama-perplexity -b (default: n_ctx)")
    ap.add_argument("--flash-attn", choices=("off", "on"), default="off")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and variant (medians compared)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    lp_batch = args.lp_batch or args.n_ctx

    bindir = llama_bin()
    corpus = load_corpus(args.corpus)
    ref = resolve_model(load_model_config(args.model, quant=args.reference))
    quants = [q for q in args.quants.split(",") if q]
    files = {q: resolve_model(load_model_config(args.model, quant=q)).path for q in quants}

    work = Path(tempfile.mkdtemp(prefix="kld_vs_lp_"))
    text_file = work / "corpus.txt"
    text_file.write_text(corpus.text, encoding="utf-8")
    scratch = work / "evalkit_cache"
    scratch.mkdir()
    (scratch / "ladder").symlink_to(cache_dir() / "ladder")
    env = {**os.environ, "EVALKIT_CACHE": str(scratch), "PYTHONUNBUFFERED": "1"}
    common = ["-f", str(text_file), "-c", str(args.n_ctx), "-b", str(lp_batch), "--chunks", str(args.chunks),
              "-t", str(args.threads), "-tb", str(args.threads), "-fa", args.flash_attn]
    ek_common = [f"task.n_ctx={args.n_ctx}", f"task.chunks={args.chunks}", f"task.corpus={text_file}",
                 f"backend.n_threads={args.threads}", f"backend.flash_attn={args.flash_attn == 'on'}",
                 "print_table=false", "progress=false"]
    print(f"corpus {corpus.name} ({corpus.sha256[:12]}), n_ctx {args.n_ctx}, {args.chunks} chunks, "
          f"{args.threads} threads, flash attention {args.flash_attn}, llama-perplexity -b {lp_batch}; "
          f"reference {ref.name} [{ref.variant}]", flush=True)

    def evalkit(quant: str) -> tuple[float, dict]:
        wall, _ = timed([sys.executable, "-m", "evalkit", f"model={args.model}", f"model.quant={quant}", "task=kld",
                         f"task.reference={args.reference}", *ek_common], env=env, cwd=work)
        found = [json.loads(p.read_text()) for p in (work / "outputs").rglob("results.json")]
        res = [r for r in found if r["model"]["variant"] == quant and r["kld"]]
        return wall, max(res, key=lambda r: r["finished_at"])

    base = work / "base.kld"
    lp_ref_wall, _ = timed([str(bindir / "llama-perplexity"), "-m", str(ref.path), *common, "--kl-divergence-base", str(base)])
    ek_ref_wall, ek_ref = evalkit(args.reference)  # builds evalkit's reference cache (and scores f16 vs itself)
    n_scored = ek_ref["kld"]["n_scored"]
    lp_tokens = base_file_tokens(base)
    cache_tokens = _cache_tokens(Path(ek_ref["kld"]["cache"]["path"]), ek_ref["kld"])
    same_tokens = lp_tokens.size == cache_tokens.size and bool(np.all(_unbos(lp_tokens, ek_ref, args.n_ctx) == cache_tokens))
    print(f"token ids identical to llama-perplexity's: {same_tokens} ({lp_tokens.size} tokens in {args.chunks} chunks)")
    print(f"reference pass: llama-perplexity {lp_ref_wall:.1f} s process wall ({base.stat().st_size / n_scored:.0f} B/token "
          f"stored); evalkit {ek_ref['kld']['cache']['build_s']:.1f} s building its cache "
          f"({ek_ref['kld']['cache']['bytes_per_token']:.0f} B/token stored), {ek_ref_wall:.1f} s process wall including "
          f"scoring {args.reference} against itself (KLD {ek_ref['kld']['kld_mean']:.2e}, same top "
          f"{ek_ref['kld']['same_top_pct']:.2f}%)", flush=True)
    lp_self = parse_lp(timed([str(bindir / "llama-perplexity"), "-m", str(ref.path), *common, "--kl-divergence-base",
                              str(base), "--kl-divergence"])[1])
    print(f"reference PPL: llama-perplexity {lp_self['ppl_ref']:.4f}, evalkit {ek_ref['kld']['ppl_ref']:.4f}", flush=True)

    rows = []
    hdr = (f"{'variant':8} | {'PPL lp':>9} {'PPL ek':>9} {'Δ%':>6} | {'KLD lp':>9} {'KLD ek':>9} {'Δ%':>6} | "
           f"{'top lp':>6} {'top ek':>6} {'Δpp':>5} | {'lp tok/s':>8} {'ek tok/s':>8} {'ratio':>5} | "
           f"{'lp wall':>7} {'ek wall':>7}")
    print(hdr)
    print("-" * len(hdr))
    lp_cmd = lambda q: [str(bindir / "llama-perplexity"), "-m", str(files[q]), *common,  # noqa: E731
                        "--kl-divergence-base", str(base), "--kl-divergence"]
    for q in quants:
        lp_runs, ek_runs = [], []
        for r in range(args.repeat):
            order = ("lp", "ek") if r % 2 == 0 else ("ek", "lp")
            for tool in order:
                if tool == "lp":
                    wall, out = timed(lp_cmd(q))
                    lp_runs.append((wall, lp_scoring_s(out, wall), parse_lp(out)))
                else:
                    ek_runs.append(evalkit(q))
        lp = lp_runs[-1][2]
        k = ek_runs[-1][1]["kld"]
        n = k["n_scored"]
        lp_wall = statistics.median(w for w, _, _ in lp_runs)
        ek_wall = statistics.median(w for w, _ in ek_runs)
        lp_tps = statistics.median(n / s for _, s, _ in lp_runs)
        ek_tps = statistics.median(e["kld"]["timing"]["tokens_per_s"] for _, e in ek_runs)
        row = {
            "variant": q, "lp": lp, "n_scored": n,
            "ek": {key: k[key] for key in ("ppl", "ppl_ref", "ln_ppl_ratio_mean", "kld_mean", "kld_median", "kld_p99",
                                            "same_top_pct", "dp_rms")},
            "lp_walls_s": [w for w, _, _ in lp_runs], "lp_scoring_s": [s for _, s, _ in lp_runs],
            "ek_walls_s": [w for w, _ in ek_runs], "ek_scoring_s": [e["kld"]["timing"]["scoring_s"] for _, e in ek_runs],
            "lp_tokens_per_s": lp_tps, "ek_tokens_per_s": ek_tps,
        }
        rows.append(row)
        d_ppl = 100 * (k["ppl"] / lp["ppl"] - 1)
        d_kld = 100 * (k["kld_mean"] / lp["kld_mean"] - 1)
        d_top = k["same_top_pct"] - lp["same_top_pct"]
        print(f"{q:8} | {lp['ppl']:9.4f} {k['ppl']:9.4f} {d_ppl:+6.2f} | {lp['kld_mean']:9.6f} {k['kld_mean']:9.6f} "
              f"{d_kld:+6.2f} | {lp['same_top_pct']:6.2f} {k['same_top_pct']:6.2f} {d_top:+5.2f} | "
              f"{lp_tps:8.1f} {ek_tps:8.1f} {ek_tps / lp_tps:5.2f} | {lp_wall:7.1f} {ek_wall:7.1f}", flush=True)
    print("lp = llama-perplexity, ek = evalkit; tok/s = scored tokens / scoring seconds (median of the repeats); "
          "walls = whole processes (start, load, tokenize, score)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows,
                                         "same_tokens": same_tokens, "lp_ref_wall_s": lp_ref_wall,
                                         "ek_ref_wall_s": ek_ref_wall}, indent=1, default=str))


def _cache_tokens(path: Path, kld: dict) -> np.ndarray:
    from evalkit.refcache import RefCache, _read_header

    cache = RefCache(path, _read_header(path))
    toks = np.concatenate([np.asarray(cache.chunk(i).tokens) for i in range(cache.n_chunks)])
    cache.close()
    return toks


def _unbos(tokens: np.ndarray, ek_ref: dict, n_ctx: int) -> np.ndarray:
    """llama-perplexity stores chunks without the BOS it substitutes at decode time; evalkit stores them as decoded."""
    if not ek_ref["kld"]["add_bos"]:
        return tokens
    t = tokens.copy()
    bos = int(np.asarray(tokens)[0])  # the corpus's first token is BOS when the model adds one
    t[::n_ctx] = bos
    return t


if __name__ == "__main__":
    main()
