"""task=kld and task=perplexity on the real embedded SmolLM2 ladder (tiny sizes: n_ctx 128).

Everything the module builds (ladder variants, reference caches) goes into one temporary
EVALKIT_CACHE, so the tests start from nothing and leave nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from evalkit.config import LlamaCppBackendConfig, RunConfig
from evalkit.models import load_model_config, resolve_model
from evalkit.run import execute
from evalkit.runners.kld import KldTaskConfig
from evalkit.runners.perplexity import PerplexityTaskConfig

pytestmark = pytest.mark.slow  # every test here runs a real model

N_CTX, CHUNKS = 128, 2
LADDER = ("f16", "q8_0", "q4_k_m", "q2_k")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private EVALKIT_CACHE with the ladder built once for the whole module."""
    path = tmp_path_factory.mktemp("evalkit_cache")
    old = os.environ.get("EVALKIT_CACHE")
    os.environ["EVALKIT_CACHE"] = str(path)
    try:
        for q in LADDER:
            resolve_model(load_model_config("smollm2_135m", quant=q))
        yield path
    finally:
        if old is None:
            os.environ.pop("EVALKIT_CACHE", None)
        else:
            os.environ["EVALKIT_CACHE"] = old


def run_kld(out: Path, quant: str, **task):
    cfg = RunConfig(
        model=load_model_config("smollm2_135m", quant=quant),
        backend=LlamaCppBackendConfig(),
        task=KldTaskConfig(name="kld", n_ctx=N_CTX, chunks=CHUNKS, **task),
        print_table=False,
        progress=False,
    )
    return execute(cfg, out / f"kld-{quant}-{task.get('exact', False)}")


@pytest.fixture(scope="module")
def ladder_runs(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for q in LADDER:
        runs[q] = run_kld(out, q)
    for q in ("q8_0", "q2_k"):  # the smallest and the largest divergence
        runs[f"{q}/exact"] = run_kld(out, q, exact=True)
    return out, runs


def test_variant_against_itself_is_zero(ladder_runs):
    _, runs = ladder_runs
    k = runs["f16"].kld
    assert runs["f16"].status == "complete"
    assert abs(k.kld_mean) < 1e-6 and k.kld_max < 1e-5
    assert k.same_top_pct == 100.0 and k.dp_rms < 1e-6  # p(t) is cached as float32
    assert k.ppl == pytest.approx(k.ppl_ref, rel=1e-6) and abs(k.ln_ppl_ratio_mean) < 1e-6
    assert k.n_scored == CHUNKS * (N_CTX - 1 - N_CTX // 2) and k.n_chunks == CHUNKS
    assert "f16 of the shipped Q4_1 weights" in k.reference and k.reference_variant == "f16"


def test_ladder_orders_and_compact_matches_exact(ladder_runs):
    _, runs = ladder_runs
    kld = {q: runs[q].kld for q in ("q8_0", "q4_k_m", "q2_k")}
    assert 0 < kld["q8_0"].kld_mean < kld["q4_k_m"].kld_mean < kld["q2_k"].kld_mean
    assert kld["q8_0"].same_top_pct > kld["q2_k"].same_top_pct
    for q in ("q8_0", "q2_k"):
        k, exact = kld[q], runs[f"{q}/exact"].kld
        assert exact.exact and not k.exact
        # Same tokens, same reference pass: everything but the tail estimate is identical.
        assert k.ppl == pytest.approx(exact.ppl, rel=1e-12) and k.ppl_ref == pytest.approx(exact.ppl_ref, rel=1e-9)
        assert k.same_top_pct == exact.same_top_pct
        # 126 tokens here; on 5,100 tokens every variant is within 0.2% (docs/kld.md).
        assert abs(k.kld_mean / exact.kld_mean - 1) < 0.02, (q, k.kld_mean, exact.kld_mean)
        assert k.cache.bytes_per_token < 1024 and exact.cache.bytes_per_token > 49152 * 4
        assert k.kld_se_clustered is not None and k.kld_p99 <= k.kld_max


def test_results_and_per_token_file(ladder_runs):
    out, runs = ladder_runs
    r = runs["q4_k_m"]
    data = np.load(out / "kld-q4_k_m-False" / "per_token.npz")
    assert data["kld"].shape == (r.kld.n_scored,)
    assert float(data["kld"].astype(np.float64).mean()) == pytest.approx(r.kld.kld_mean, rel=1e-5)
    assert r.kld.cache.built is False  # the f16 run built it, later variants reuse it
    assert runs["f16"].kld.cache.built is True


def test_perplexity_matches_kld_ppl(cache, ladder_runs, tmp_path):
    _, runs = ladder_runs
    cfg = RunConfig(
        model=load_model_config("smollm2_135m", quant="q4_k_m"),
        backend=LlamaCppBackendConfig(),
        # n_batch 48: each chunk decodes in three pieces, the scored half spanning two of them.
        task=PerplexityTaskConfig(name="perplexity", n_ctx=N_CTX, chunks=CHUNKS, n_batch=48),
        print_table=False,
        progress=False,
    )
    result = execute(cfg, tmp_path / "ppl")
    p = result.perplexity
    # llama.cpp rounds a context up to a multiple of 256; chunks stay N_CTX tokens.
    assert result.backend.settings["n_batch"] == 48 and result.backend.settings["n_ctx"] >= N_CTX
    assert p.ppl == pytest.approx(runs["q4_k_m"].kld.ppl, rel=1e-6)
    assert p.n_scored == runs["q4_k_m"].kld.n_scored and len(p.corpus_sha256) == 64


def test_broken_cache_is_rebuilt_not_used(ladder_runs, tmp_path):
    from evalkit.refcache import CacheKey, _read_header, open_cache

    _, runs = ladder_runs
    before = runs["q8_0"].kld
    path = Path(before.cache.path)
    key: CacheKey = _read_header(path).key
    size = path.stat().st_size
    with path.open("r+b") as fh:  # same size, one flipped byte in the payload
        fh.seek(size - 5)
        b = fh.read(1)
        fh.seek(size - 5)
        fh.write(bytes([b[0] ^ 0xFF]))
    cache, why = open_cache(path, key)
    assert cache is None and "sha256" in why
    assert open_cache(path, key.model_copy(update={"n_ctx": 256}))[1].startswith("its header belongs")
    with path.open("r+b") as fh:  # truncated: a killed copy, a full disk
        fh.truncate(size - 1000)
    again = run_kld(tmp_path, "q8_0").kld
    assert again.cache.built and "truncated" in again.cache.rebuilt_because
    assert again.kld_mean == before.kld_mean and path.stat().st_size == size
    assert open_cache(path, key)[0] is not None


def test_ladder_build_is_cached(cache, monkeypatch):
    from evalkit.models import ladder

    built = sorted(p.name for p in (cache / "ladder").rglob("*.gguf"))
    assert len(built) == len(LADDER) and not list((cache / "ladder").rglob("*.tmp"))

    def refuse(*a, **k):
        raise AssertionError("a cached variant was built again")

    monkeypatch.setattr(ladder, "_quantize", refuse)
    for q in LADDER:
        assert resolve_model(load_model_config("smollm2_135m", quant=q)).variant == q
    assert sorted(p.name for p in (cache / "ladder").rglob("*.gguf")) == built
