"""Runners on the in-memory fake backend (tests/fake_backend.py): the task-kind plumbing, the
backend contract and the capability check in milliseconds, no model loaded. The real-model
tests beside these (test_kld.py, test_speed.py, ../test_generation_e2e.py) stay the evidence."""

from __future__ import annotations

import json

import pytest
import yaml

import fake_backend
from evalkit.backends import TextGeneration, TokenAccess, capabilities
from evalkit.backends.base import Capability
from evalkit.config import LlamaCppBackendConfig, RunConfig
from evalkit.errors import ConfigError
from evalkit.kinds import get_kind, kinds
from evalkit.models import load_model_config
from evalkit.paths import CONF_DIR
from evalkit.run import execute
from evalkit.runners.generation import GenerationTaskConfig
from evalkit.runners.perplexity import PerplexityTaskConfig
from evalkit.runners.speed import SpeedTaskConfig

PROMPTS = ["under_fifty_words", "two_paragraphs"]


def config(task) -> RunConfig:
    return RunConfig(model=load_model_config("smollm2_135m"), backend=LlamaCppBackendConfig(n_threads=1),
                     task=task, print_table=False, progress=False)


def test_the_fake_satisfies_the_protocols_it_declares():
    b = fake_backend.FakeBackend()
    assert isinstance(b, TextGeneration) and isinstance(b, TokenAccess)
    assert b.detokenize(b.tokenize("héllo", add_bos=False)) == "héllo"


def test_every_kind_is_registered_once_with_its_config_type():
    found = kinds()
    # exactly the kinds the shipped task configs start from: none lost, none without a config
    # (and a new kind, which brings its YAML, needs no edit here)
    shipped = {yaml.safe_load(p.read_text())["defaults"][0].removeprefix("base_task_")
               for p in (CONF_DIR / "task").glob("*.yaml")}  # fmt: skip
    assert set(found) == shipped and {"generation", "perplexity", "kld", "speed", "lm_eval"} <= shipped
    for name, kind in found.items():
        assert kind.config.model_fields["kind"].default == name
        assert Capability.TEXT_GENERATION in kind.requires or Capability.TOKEN_ACCESS in kind.requires


def test_generation_runs_checks_and_resumes_on_the_fake(monkeypatch, tmp_path):
    opened = fake_backend.install(monkeypatch)
    cfg = config(GenerationTaskConfig(name="constraints", file="constraints", samples=2, prompts=PROMPTS))
    result = execute(cfg, tmp_path / "run")
    assert result.status == "complete" and result.task_kind == "generation"
    g = result.generation
    assert (g.n_prompts, g.n_samples, g.n_failed) == (2, 4, 0)
    # The echo of "Explain what a compiler does in fewer than 50 words." is one paragraph of 10
    # words: it passes under_fifty_words and fails two_paragraphs, on both samples.
    assert g.per_prompt["under_fifty_words"].pass_rate_strict == 1.0
    assert g.per_prompt["two_paragraphs"].pass_rate_strict == 0.0
    assert g.pass_rate_strict == 0.5
    lines = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(ln)["prompt_id"] for ln in lines} == set(PROMPTS)
    assert opened[0].calls == ["generate"] * 4 and opened[0].closed
    again = execute(cfg, tmp_path / "run")  # every sample is stored: nothing is generated twice
    assert again.generation.n_samples == 4 and opened[1].calls == []


def test_perplexity_of_the_uniform_fake_is_its_vocabulary_size(monkeypatch, tmp_path):
    opened = fake_backend.install(monkeypatch)
    cfg = config(PerplexityTaskConfig(name="perplexity", n_ctx=64, n_batch=24, chunks=3))
    result = execute(cfg, tmp_path / "ppl")
    p = result.perplexity
    assert result.status == "complete" and p.n_chunks == 3 and p.n_scored == 3 * (64 - 32 - 1)
    assert p.ppl == pytest.approx(fake_backend.N_VOCAB, rel=1e-9)
    assert opened[0].n_ctx == 64 and opened[0].n_batch == 24  # the kind's backend overrides arrived


def test_a_backend_without_the_capability_is_refused_before_it_opens(monkeypatch, tmp_path):
    opened = fake_backend.install(monkeypatch, capabilities=frozenset({Capability.TEXT_GENERATION}))
    assert capabilities("llama_cpp") == {Capability.TEXT_GENERATION}
    with pytest.raises(ConfigError, match=r"task=perplexity needs token_access, which backend=llama_cpp does not"):
        execute(config(PerplexityTaskConfig(name="perplexity", n_ctx=64)), tmp_path / "no")
    with pytest.raises(ConfigError, match=r"task=speed needs model_facts, state, token_access"):
        execute(config(SpeedTaskConfig(name="speed")), tmp_path / "no")
    assert opened == [] and not (tmp_path / "no" / "results.json").exists()


def test_an_unknown_kind_is_one_line():
    with pytest.raises(ConfigError, match="unknown task kind 'nope'; available: ") as exc:
        get_kind("nope")
    assert str(exc.value).endswith(", ".join(sorted(kinds()))) and "\n" not in str(exc.value)


def test_memory_facts_come_only_from_a_backend_that_declares_them(monkeypatch, tmp_path):
    cfg = config(GenerationTaskConfig(name="constraints", file="constraints", samples=1, prompts=PROMPTS[:1]))
    facts = {"kv_cache_bytes": 4096, "draft_kv_cache_bytes": 0}
    monkeypatch.setattr(fake_backend.FakeBackend, "memory_facts", lambda self: facts, raising=False)
    fake_backend.install(monkeypatch)  # it has the method but does not declare it: not asked
    assert execute(cfg, tmp_path / "undeclared").memory.kv_cache_bytes is None
    declared = fake_backend.FakeBackend.capabilities | {Capability.MEMORY_FACTS}
    fake_backend.install(monkeypatch, capabilities=declared)
    m = execute(cfg, tmp_path / "declared").memory
    assert (m.kv_cache_bytes, m.draft_kv_cache_bytes, m.compute_buffer_bytes) == (4096, 0, None)


def test_backends_declare_what_run_and_lm_eval_ask_of_them():
    assert {Capability.MEMORY_FACTS, Capability.OPENAI_API} <= capabilities("llama_server")
    assert Capability.OPENAI_API in capabilities("openai") and Capability.MEMORY_FACTS not in capabilities("openai")
    assert capabilities("llama_cpp") == frozenset(Capability)
