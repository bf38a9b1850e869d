"""The in-process backend on the real embedded model."""

import pytest

from evalkit.backends.base import GenerationRequest
from evalkit.backends.llama_cpp import LlamaCppBackend, PromptLookupDrafter
from evalkit.config import LlamaCppBackendConfig, SamplingConfig

pytestmark = pytest.mark.slow  # every test here runs a real model

MSG = [{"role": "user", "content": "Repeat after me exactly: one two three four five six seven eight nine ten, one two three four five six seven eight nine ten."}]


@pytest.fixture(scope="module")
def backend(smollm2_path):
    b = LlamaCppBackend(LlamaCppBackendConfig(n_ctx=1024), str(smollm2_path))
    yield b
    b.close()


def req(seed, **sampling):
    return GenerationRequest(messages=MSG, sampling=SamplingConfig(**sampling), seed=seed)


def test_same_seed_same_text_other_seed_other_text(backend):
    a = backend.generate(req(7, max_tokens=24))
    b = backend.generate(req(7, max_tokens=24))
    c = backend.generate(req(8, max_tokens=24))
    d = backend.generate(req(9, max_tokens=24))
    assert a.text == b.text
    assert len({a.text, c.text, d.text}) > 1


def test_timings_are_consistent(backend):
    g = backend.generate(req(1, max_tokens=32))
    assert g.prompt_tokens > 10 and 1 <= g.completion_tokens <= 32
    assert 0 < g.prompt_eval_s <= g.ttft_s <= g.total_s
    assert g.generation_s is None or 0 <= g.generation_s <= g.total_s
    assert g.finish_reason in ("stop", "length")
    if g.finish_reason == "length":
        assert g.completion_tokens == 32


def test_greedy_is_deterministic_and_stop_strings_cut(backend):
    a = backend.generate(req(1, temperature=0, max_tokens=24))
    b = backend.generate(req(2, temperature=0, max_tokens=24))
    assert a.text == b.text and a.text
    word = a.text.split()[1] if len(a.text.split()) > 1 else a.text.split()[0]
    c = backend.generate(req(1, temperature=0, max_tokens=24, stop=[word]))
    assert word not in c.text and c.finish_reason == "stop"


def test_prompt_lookup_speculation_counts_add_up(smollm2_path, backend):
    spec = LlamaCppBackend(
        LlamaCppBackendConfig(n_ctx=1024, speculative="prompt_lookup", num_pred_tokens=8),
        str(smollm2_path),
        drafter=PromptLookupDrafter(8),
    )
    try:
        plain = backend.generate(req(3, temperature=0, max_tokens=48))
        fast = spec.generate(req(3, temperature=0, max_tokens=48))
    finally:
        spec.close()
    d = fast.draft
    assert d is not None and d.draft_steps > 0
    assert 0 <= d.accepted_tokens <= d.drafted_tokens
    assert d.accepted_tokens <= fast.completion_tokens
    # Greedy verification must reproduce plain greedy decoding token for token.
    assert fast.text == plain.text


def test_it_satisfies_every_protocol_it_declares_and_state_round_trips(backend):
    """The contract runners rely on, on the real model: a saved state restores the same logits,
    trimming the cache and re-decoding gives the same row, the chat template renders."""
    import numpy as np

    from evalkit.backends import StateAccess, TextGeneration, TokenAccess
    from evalkit.backends.base import Capability

    assert backend.capabilities == frozenset(Capability)
    assert isinstance(backend, TextGeneration) and isinstance(backend, TokenAccess) and isinstance(backend, StateAccess)
    tokens = backend.tokenize("The capital of France is")
    more = backend.tokenize(" Paris", add_bos=False)
    backend.clear()
    backend.decode(tokens, 0, logits="last")
    state = backend.save_state()
    backend.decode(more, len(tokens), logits="last")
    want = backend.logits(1)[0].copy()
    assert backend.trim(len(tokens))  # drop " Paris", decode it again: the same row
    backend.decode(more, len(tokens), logits="last")
    assert np.allclose(backend.logits(1)[0], want, atol=1e-3)
    backend.clear()
    assert backend.restore_state(state)  # the prompt comes back without decoding it
    backend.decode(more, len(tokens), logits="last")
    assert np.allclose(backend.logits(1)[0], want, atol=1e-3)
    assert "{{" in backend.chat_template_source() or "{%" in backend.chat_template_source()
    rendered = backend.render_chat([{"role": "user", "content": "hi there"}])
    assert "hi there" in rendered and rendered != "hi there"
    facts = backend.model_facts()
    assert facts["model_n_params"] > 100_000_000 and facts["model_size_bytes"] > 0
