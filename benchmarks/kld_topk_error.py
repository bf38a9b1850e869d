"""How much of the reference must the cache keep? Compact KLD against exact KLD, per layout.

A layout is K top log-probs plus M tokens sampled from the tail ("K+M"; M=0 is plain top-K
with the rest mass). One reference pass keeps the full float32 log-probs (memory-mapped in a
temp dir) and the compact record of every layout; one pass per ladder variant then computes the
exact full-vocabulary KLD and the compact KLD of every layout on the same logits, with the code
the kld runner uses (evalkit.metrics.kld.reference_rows / candidate_rows).

    .venv/bin/python benchmarks/kld_topk_error.py --chunks 20 --n-ctx 512 \
        --quants q8_0,q6_k,q4_k_m,q4_0,q3_k_m,q2_k --layouts 128+0,256+0,32+32,64+64
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from ladder_options import ladder_parser  # benchmarks/, the script's own folder

from evalkit.backends import open_model_file
from evalkit.config import LlamaCppBackendConfig
from evalkit.corpus import load_corpus
from evalkit.metrics.kld import ReferenceRows, candidate_rows, reference_rows
from evalkit.models import load_model_config, resolve_model
from evalkit.scoring import Timer, chunk_corpus, chunk_tokens, score_chunk


def main() -> None:
    ap = ladder_parser(__doc__.splitlines()[0])
    ap.add_argument("--layouts", default="64+0,128+0,256+0,32+32,64+64,128+64")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    ks = [tuple(int(x) for x in lay.split("+")) for lay in args.layouts.split(",")]
    bcfg = LlamaCppBackendConfig(n_threads=args.threads)
    corpus = load_corpus(args.corpus)

    ref = resolve_model(load_model_config(args.model, quant=args.reference))
    b = open_model_file(bcfg, str(ref.path), n_ctx=args.n_ctx, n_batch=args.n_ctx)
    tokens, plan = chunk_corpus(b, corpus, args.n_ctx, args.chunks)
    n, v = plan.n_scored, b.n_vocab
    tmp = tempfile.TemporaryDirectory(prefix="kld_topk_")
    full = np.lib.format.open_memmap(Path(tmp.name) / "full.npy", mode="w+", dtype=np.float32, shape=(n, v))
    compact: dict[tuple, list] = {k: [] for k in ks}
    t0 = time.perf_counter()
    for i in range(plan.n_chunks):
        base = i * plan.n_rows

        def on_ref(r0, block, nxt, base=base):
            g = slice(base + r0, base + r0 + len(nxt))
            full[g] = reference_rows(block, nxt, 1, full=True).full_lp
            u = np.random.default_rng((base, r0)).random(len(nxt))
            for k, m in ks:
                compact[(k, m)].append(reference_rows(block, nxt, k, m, u=u))

        score_chunk(b, chunk_tokens(tokens, i, plan), plan, on_ref, Timer())
    b.close()
    print(f"reference {ref.name} [{ref.variant}]: {plan.n_chunks} chunks x {args.n_ctx}, {n} scored tokens, "
          f"corpus {corpus.name} sha256 {corpus.sha256[:12]} ({time.perf_counter() - t0:.0f} s)")
    compact = {key: ReferenceRows.concat(rs) for key, rs in compact.items()}
    for k, m in ks:
        print(f"mean tail mass outside the top {k}: {float(np.mean(np.exp(compact[(k, m)].log_rest.astype(np.float64)))):.4f}")

    names = [f"{k}+{m}" for k, m in ks]
    header = f"{'variant':8} {'exact KLD':>10} " + " ".join(f"{x:>18}" for x in names)
    print(header)
    worst = {k: 0.0 for k in ks}
    details = []
    for q in args.quants.split(","):
        cand = resolve_model(load_model_config(args.model, quant=q))
        c = open_model_file(bcfg, str(cand.path), n_ctx=args.n_ctx, n_batch=args.n_ctx)
        exact = np.empty(n)
        approx = {k: np.empty(n) for k in ks}
        for i in range(plan.n_chunks):
            base = i * plan.n_rows

            def on_cand(r0, block, nxt, base=base):
                g = slice(base + r0, base + r0 + len(nxt))
                ex = ReferenceRows(*(np.empty((0, 0)),) * 6, full_lp=full[g])
                exact[g] = candidate_rows(block, nxt, ex, exact=True).kld
                for k in ks:
                    approx[k][g] = candidate_rows(block, nxt, compact[k].rows(g)).kld

            score_chunk(c, chunk_tokens(tokens, i, plan), plan, on_cand, Timer())
        c.close()
        e = float(exact.mean())
        details.append((q, exact.copy(), {k: approx[k].copy() for k in ks}))
        cells = []
        for k in ks:
            a = float(approx[k].mean())
            rel = (a - e) / e
            worst[k] = max(worst[k], abs(rel))
            cells.append(f"{a:.6f} ({100 * rel:+.2f}%)")
        print(f"{q:8} {e:10.6f} " + " ".join(f"{x:>18}" for x in cells), flush=True)
    print("worst |relative error|: " + ", ".join(f"{k[0]}+{k[1]}: {100 * worst[k]:.2f}%" for k in ks))
    print("per-token agreement (compact vs exact): median and p99 of KLD, mean |per-token error| / mean KLD")
    for q, exact, approx in details:
        cells = []
        for k in ks:
            a = approx[k]
            cells.append(f"{k[0]}+{k[1]}: med {100 * (np.median(a) / np.median(exact) - 1):+.2f}% "
                         f"p99 {100 * (np.quantile(a, 0.99) / np.quantile(exact, 0.99) - 1):+.2f}% "
                         f"|err| {100 * np.mean(np.abs(a - exact)) / exact.mean():.2f}%")
        print(f"{q:8} " + "; ".join(cells))
    idb = 2 if v <= 65536 else 4
    print(f"cache bytes per scored token at this vocabulary ({v}): "
          + ", ".join(f"{k}+{m}: {k * (idb + 2) + m * (idb + 4) + 8}" for k, m in ks))


if __name__ == "__main__":
    main()
