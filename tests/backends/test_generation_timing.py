"""Per-generation timings against llama.cpp's own perf counters, and the speed bench's method.

Wall clock and perf counters measure the same decode, so their ratio must be close to 1 however
loaded the machine is; nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import llama_cpp
import pytest

from evalkit.backends.base import GenerationRequest
from evalkit.backends.llama_cpp import LlamaCppBackend, ModelDrafter
from evalkit.config import LlamaCppBackendConfig, SamplingConfig
from evalkit.runners.speed import Bench, BenchTest

pytestmark = pytest.mark.slow  # every test here runs a real model

PROMPT = [{"role": "user", "content": "Describe, in a few sentences, how a kettle boils water."}]


@pytest.fixture(scope="module")
def backend(smollm2_path):
    b = LlamaCppBackend(LlamaCppBackendConfig(n_threads=1, n_ctx=512), str(smollm2_path))
    yield b
    b.close()


def _perf(b):
    return llama_cpp.llama_perf_context(b.llama.ctx)


def test_prompt_and_generation_speed_match_perf_counters(backend):
    request = GenerationRequest(
        messages=PROMPT, sampling=SamplingConfig(temperature=0.8, max_tokens=24), seed=7
    )
    for _ in range(2):  # the second sample must evaluate the whole prompt again (no cache reuse)
        llama_cpp.llama_perf_context_reset(backend.llama.ctx)
        g = backend.generate(request)
        p = _perf(backend)
        assert g.cached_prompt_tokens == 0
        assert p.n_p_eval == g.prompt_tokens  # every prompt token evaluated, as one batch
        wall_pp = g.prompt_tokens / g.prompt_eval_s
        perf_pp = p.n_p_eval / (p.t_p_eval_ms / 1e3)
        assert 0.8 < wall_pp / perf_pp < 1.25, (wall_pp, perf_pp)
        # Single-token decodes: one per generated token after the first (plus the EOG's one).
        assert p.n_eval in (g.completion_tokens - 1, g.completion_tokens)
        if g.completion_tokens > 4:
            wall_tg = (g.completion_tokens - 1) / g.generation_s
            perf_tg = p.n_eval / (p.t_eval_ms / 1e3)
            # wall clock also counts sampling and detokenizing: a little slower, never faster
            assert 0.5 < wall_tg / perf_tg < 1.1, (wall_tg, perf_tg)
        assert 0 < g.prompt_eval_s <= g.ttft_s <= g.total_s


def test_bench_clears_the_cache_and_draws_fresh_tokens(backend):
    bench = Bench(backend, seed=3)
    a = bench.random_tokens(32, bos_first=True)
    b = bench.random_tokens(32, bos_first=True)
    assert a != b
    if backend.add_bos:  # llama-bench starts every prompt with BOS where the model adds one
        assert a[0] == b[0] == backend.bos_token
    assert all(0 <= t < backend.n_vocab for t in a + b)
    mem = llama_cpp.llama_get_memory(backend.llama.ctx)
    samples = bench.run(BenchTest(16, 4, 8), repetitions=2, warmup=True)
    assert len(samples) == 2 and all(s > 0 for s in samples)
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == -1  # cleared after the test
    bench.fill(8)
    bench.fill(8)  # the second fill restores the saved state instead of decoding again
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == 7
    backend.clear()


def test_draft_model_counts_add_up(smollm2_path):
    """The model drafting for itself, greedily: most drafts are accepted, counts are consistent."""
    cfg = LlamaCppBackendConfig(n_threads=1, n_ctx=512)
    drafter = ModelDrafter(
        LlamaCppBackend(cfg.model_copy(update={"chat_template": False}), str(smollm2_path)), 4
    )
    b = LlamaCppBackend(cfg, str(smollm2_path), drafter=drafter)
    try:
        g = b.generate(
            GenerationRequest(messages=PROMPT, sampling=SamplingConfig(temperature=0.0, max_tokens=24), seed=1)
        )
    finally:
        b.close()
    d = g.draft
    assert d is not None and d.draft_steps > 0
    assert 0 < d.accepted_tokens <= d.drafted_tokens <= 4 * d.draft_steps
    assert d.accepted_tokens <= g.completion_tokens
    assert d.acceptance_rate == d.accepted_tokens / d.drafted_tokens > 0.5
