"""evalkit-llama against an independent computation from the model's own logits.

The reference is llama-cpp-python's high-level `Llama` with logits_all=True: every position's
logits for the whole text in one evaluation, log-softmax in float64 here, no evalkit code.
"""

import numpy as np
import pytest
from lm_eval.api.instance import Instance

from evalkit.backends.llama_cpp import LlamaCppBackend
from evalkit.config import LlamaCppBackendConfig
from evalkit.harness.llama_lm import LlamaCppLM

pytestmark = pytest.mark.slow  # every test here runs a real model

CONTEXT = "The capital of France is"
CHOICES = [" Paris", " London", " Berlin, the capital of Germany"]


@pytest.fixture(scope="module")
def backend(smollm2_path):
    b = LlamaCppBackend(LlamaCppBackendConfig(n_ctx=512, n_threads=1, chat_template=False), str(smollm2_path))
    yield b
    b.close()


@pytest.fixture(scope="module")
def reference(smollm2_path):
    import llama_cpp

    ref = llama_cpp.Llama(
        str(smollm2_path), n_ctx=512, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False
    )
    yield ref
    ref.close()


def ref_logprobs(ref, tokens):
    """log p(tokens[i] | tokens[:i]) for i >= 1, and whether each token is the argmax."""
    ref.reset()
    ref.eval(tokens)
    scores = np.array(ref.scores[: len(tokens)], dtype=np.float64)
    m = scores.max(axis=1, keepdims=True)
    logsm = scores - m - np.log(np.exp(scores - m).sum(axis=1, keepdims=True))
    lp = np.array([logsm[i - 1, tokens[i]] for i in range(1, len(tokens))])
    greedy = np.array([scores[i - 1].argmax() == tokens[i] for i in range(1, len(tokens))])
    return lp, greedy


def req(kind, args, idx=0):
    return Instance(request_type=kind, doc={}, arguments=args, idx=idx)


def test_loglikelihood_is_exact_and_is_greedy_is_the_argmax(backend, reference):
    lm = LlamaCppLM(backend)
    got = lm.loglikelihood([req("loglikelihood", (CONTEXT, c), i) for i, c in enumerate(CHOICES)])
    n_ctx_tokens = len(reference.tokenize(CONTEXT.encode(), add_bos=False))
    for (lp, greedy), choice in zip(got, CHOICES):
        tokens = reference.tokenize((CONTEXT + choice).encode(), add_bos=False)
        ref_lp, ref_greedy = ref_logprobs(reference, tokens)
        cont = slice(n_ctx_tokens - 1, None)
        assert lp == pytest.approx(ref_lp[cont].sum(), abs=1e-3)
        assert greedy == bool(ref_greedy[cont].all())
    # " Paris" is the model's own answer: greedy (-0.26 nats), and the most likely of the three.
    assert got[0][1] and got[0][0] == max(g[0] for g in got)
    # The three choices share the context: it was decoded once, then reused from the KV cache.
    assert lm.stats.tokens_reused >= 2 * (n_ctx_tokens - 1)


def test_prefix_reuse_changes_no_value(backend):
    reqs = [req("loglikelihood", (CONTEXT, c), i) for i, c in enumerate(CHOICES)]
    with_reuse = LlamaCppLM(backend).loglikelihood(reqs)
    plain_lm = LlamaCppLM(backend, reuse_prefix=False)
    plain = plain_lm.loglikelihood(reqs)
    assert plain_lm.stats.tokens_reused == 0
    for (a, ga), (b, gb) in zip(with_reuse, plain):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_rolling_loglikelihood_scores_every_token_once(backend, reference):
    """A text longer than the window (32 tokens here): several windows, each token predicted once."""
    text = "The quick brown fox jumps over the lazy dog. " * 7
    lm = LlamaCppLM(backend, max_length=32)
    (total,) = lm.loglikelihood_rolling([req("loglikelihood_rolling", (text,))])
    tokens = reference.tokenize(text.encode(), add_bos=False)
    assert lm.stats.tokens_scored == len(tokens) > 2 * lm.max_length
    # Independently: the windows lm-eval defines, each scored from the reference's logits.
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    expected, n_windows = 0.0, 0
    windows = get_rolling_token_windows(tokens, prefix_token=lm.prefix_token_id, max_seq_len=32, context_len=1)
    for ctx, cont in map(make_disjoint_window, windows):
        lp, _ = ref_logprobs(reference, list(ctx) + list(cont))
        expected += lp[len(ctx) - 1 :].sum()
        n_windows += 1
    assert n_windows >= 3
    assert total == pytest.approx(expected, abs=1e-3)


def test_generate_until_is_greedy_and_stops_at_the_stop_sequence(backend, reference):
    prompt = "Q: What is 2 + 3?\nA: 5\n\nQ: What is 6 + 7?\nA:"
    lm = LlamaCppLM(backend)
    (out,) = lm.generate_until([req("generate_until", (prompt, {"until": ["\n"], "max_gen_toks": 12, "do_sample": False}))])
    ref = reference.create_completion(prompt, max_tokens=12, temperature=0.0, stop=["\n"])["choices"][0]["text"]
    assert "\n" not in out and out == ref
    assert lm.stats.generate_requests == 1 and lm.stats.tokens_generated >= 1


def test_task_generation_kwargs_override_evalkit_sampling(backend):
    from evalkit.config import SamplingConfig

    lm = LlamaCppLM(backend, sampling=SamplingConfig(temperature=0.0, top_k=5), max_gen_toks=7)
    s = lm.sampling_for({"until": "END", "temperature": 0.7, "do_sample": True, "num_beams": 1})
    assert s.temperature == 0.7 and s.top_k == 5 and s.max_tokens == 7 and s.stop == ["END"]
    assert lm.sampling_for({"do_sample": False, "temperature": 0.9}).temperature == 0.0
    assert "num_beams" in lm.stats.ignored_gen_kwargs


def test_chat_template_is_the_ggufs(backend):
    lm = LlamaCppLM(backend)
    text = lm.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}])
    assert "<|im_start|>user\nWhat is 2 + 2?<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    # Its special tokens are parsed as such, not spelled out as text.
    assert lm.tok_encode("<|im_start|>")[0] == lm.prefix_token_id
