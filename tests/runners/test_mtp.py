"""In-process MTP (backend.speculative=mtp) on the synthetic Gemma 4 pair: lossless, counted, checked.

Real llama.cpp, one thread. The pair is built so that the drafter is right often but not always,
so both the accept and the reject path of the verify loop run.
"""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error
from evalkit.backends.base import GenerationRequest
from evalkit.backends.llama_cpp import LlamaCppBackend
from evalkit.backends.llama_cpp.mtp import MtpDrafter
from evalkit.config import LlamaCppBackendConfig, SamplingConfig
from evalkit.errors import BackendError
from evalkit.models.synthetic import Gemma4TinySpec, build_gemma4_tiny
from evalkit.records import RunResult, SampleRecord

pytestmark = pytest.mark.slow  # every test here runs a real model

N_CTX = 1024
PROMPTS = [
    "Hello there, how are you?",
    "List three colours.",
    # 250+ prompt tokens: prompt and output run well past the 128-token sliding window.
    "Write a poem about the sea and the wind over the harbour. " * 20,
]


@pytest.fixture(scope="module")
def pair():
    return build_gemma4_tiny()


@pytest.fixture(scope="module")
def plain(pair):
    b = LlamaCppBackend(LlamaCppBackendConfig(n_threads=1, n_ctx=N_CTX), str(pair[0]))
    yield b
    b.close()


@pytest.fixture(scope="module")
def mtp(pair):
    b = LlamaCppBackend(LlamaCppBackendConfig(n_threads=1, n_ctx=N_CTX, speculative="mtp"), str(pair[0]))
    b.drafter = MtpDrafter(b, str(pair[1]), "gemma4_tiny_assistant", 3)
    yield b
    b.close()


def _request(text: str, temperature: float = 0.0, max_tokens: int = 200, seed: int = 1):
    sampling = SamplingConfig(temperature=temperature, max_tokens=max_tokens)
    return GenerationRequest(messages=[{"role": "user", "content": text}], sampling=sampling, seed=seed)


def test_greedy_output_is_the_targets_and_acceptance_is_partial(plain, mtp):
    drafted = accepted = 0
    for text in PROMPTS:
        want, got = plain.generate(_request(text)), mtp.generate(_request(text))
        assert got.text == want.text and got.completion_tokens == want.completion_tokens
        assert got.draft is not None and 0 <= got.draft.accepted_tokens <= got.draft.drafted_tokens
        assert got.draft.drafted_tokens <= 3 * got.draft.draft_steps
        drafted += got.draft.drafted_tokens
        accepted += got.draft.accepted_tokens
    long = PROMPTS[-1]
    assert len(mtp.prompt_tokens([{"role": "user", "content": long}])) + 200 > 2 * Gemma4TinySpec().sliding_window
    assert 0 < accepted < drafted  # both the accept and the reject path ran


def test_samples_are_independent(mtp):
    """The KV cache (the drafter reads the target's) is cleared between samples."""
    first = mtp.generate(_request(PROMPTS[0]))
    mtp.generate(_request(PROMPTS[2]))
    again = mtp.generate(_request(PROMPTS[0]))
    assert again.text == first.text and again.draft == first.draft


def test_sampling_at_temperature_drafts_and_is_reproducible(mtp):
    """At temperature > 0 every emitted token is still one draw of the target's sampler.

    Not compared with plain decoding text for text: the verify batch's logits differ from
    single-token decoding's by ~1e-5 (batch kernels), which can flip a draw that lands on a
    boundary of a flat distribution (docs/mtp.md).
    """
    req = _request(PROMPTS[1], temperature=0.8, max_tokens=120, seed=2)
    first, again = mtp.generate(req), mtp.generate(req)
    assert again.text == first.text and again.draft == first.draft
    assert 0 < first.draft.accepted_tokens < first.draft.drafted_tokens


def test_drafter_for_another_n_embd_is_refused(tmp_path, monkeypatch, pair):
    from evalkit.models import synthetic

    monkeypatch.setattr(synthetic, "cache_dir", lambda: tmp_path)
    _, other = build_gemma4_tiny(Gemma4TinySpec(n_embd=96))
    b = LlamaCppBackend(LlamaCppBackendConfig(n_threads=1, n_ctx=256, speculative="mtp"), str(pair[0]))
    try:
        with pytest.raises(BackendError, match="built for a target with n_embd 96, but this model's n_embd is 128"):
            MtpDrafter(b, str(other), "other", 3)
    finally:
        b.close()


ARGS = ["task=constraints", "task.prompts=[no_lists]", "task.sampling.max_tokens=8", "backend.n_threads=1"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["model=gemma4_tiny", "backend.speculative=mtp", "backend.draft_model=smollm2_135m"], "is not an MTP drafter"),
        (["model=smollm2_135m", "backend.speculative=mtp", "backend.draft_model=gemma4_tiny_assistant"], "n_embd"),
        (["model=smollm2_135m", "backend.speculative=mtp"], "needs an MTP drafter"),
        (["model=gemma4_tiny_assistant"], "is an MTP drafter (gemma4-assistant)"),
    ],
)
def test_mismatched_drafters_are_one_line_errors(cli, args, needle):
    assert_one_line_error(cli(*args, *ARGS), needle)


def test_sweep_pairs_mtp_with_plain_decoding(cli):
    """The issue's command, capped: identical outputs, partial acceptance, the pair block."""
    res = cli(
        "-m",
        "model=gemma4_tiny",
        "backend.speculative=none,mtp",
        "task=constraints",
        "task.sampling.temperature=0",
        "task.prompts=[no_lists,one_sentence,two_paragraphs]",
        "task.samples=2",
        "task.sampling.max_tokens=48",
        "backend.n_threads=1",
        "progress=false",
    )
    assert res.returncode == 0, res.stderr
    runs = {}
    for d in res.run_dirs("constraints"):
        r = RunResult.read(d)
        runs[r.config["backend"]["speculative"]] = (d, r)
    assert set(runs) == {"none", "mtp"}
    run_dir, result = runs["mtp"]
    s = result.speculative
    assert s is not None and s.method == "mtp" and s.draft_model == "gemma4_tiny_assistant"
    assert s.n_pairs == 6 and s.n_identical_outputs == 6
    assert 0 < s.accepted_tokens < s.drafted_tokens and 0 < s.acceptance_rate < 1
    samples = [SampleRecord.model_validate_json(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(x.drafted_tokens is not None for x in samples)
    assert sum(x.drafted_tokens for x in samples) == s.drafted_tokens
    m = result.memory
    assert m.draft_file_size_bytes and m.draft_model_buffer_bytes and m.draft_kv_cache_bytes == 0
    assert result.model.synthetic and "RANDOM WEIGHTS" in result.model.synthetic
    assert result.backend.settings["draft_model"] == "gemma4_tiny_assistant"
    assert "speculative (mtp)" in res.stdout and "(6 with identical text)" in res.stdout
