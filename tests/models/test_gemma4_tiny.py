"""The synthetic Gemma 4 pair: built offline from the embedded Gemma 3 tokenizer, once, atomically."""

from __future__ import annotations

import pytest

from evalkit.config import ModelConfig
from evalkit.errors import ModelError
from evalkit.models import load_model_config, resolve_model
from evalkit.models import synthetic
from evalkit.models.identity import gguf_info
from evalkit.models.synthetic import Gemma4TinySpec, build_gemma4_tiny, read_tokenizer


def test_built_once_into_a_folder_keyed_by_the_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "cache_dir", lambda: tmp_path)
    target, drafter = build_gemma4_tiny()
    assert target.is_file() and drafter.is_file() and target.parent == drafter.parent
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert build_gemma4_tiny() == (target, drafter)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # a no-op
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    other, _ = build_gemma4_tiny(Gemma4TinySpec(seed=1))
    assert other.parent != target.parent and other.read_bytes() != target.read_bytes()


def test_files_are_a_gemma4_target_and_its_assistant():
    target, drafter = build_gemma4_tiny()
    t, d = gguf_info(target), gguf_info(drafter)
    assert (t.architecture, d.architecture) == ("gemma4", "gemma4-assistant")
    assert t.n_vocab == d.n_vocab == Gemma4TinySpec().n_vocab
    assert t.n_embd == Gemma4TinySpec().n_embd and d.n_embd == Gemma4TinySpec().d_embd
    assert t.sliding_window == Gemma4TinySpec().sliding_window


def test_tokenizer_is_gemma3s_truncated_with_a_gemma3_chat_template():
    target, _ = build_gemma4_tiny()
    tok = read_tokenizer(target, 8192)
    tokens = tok["arrays"]["tokenizer.ggml.tokens"][1]
    assert len(tokens) == 8192 and tokens[:4] == [b"<pad>", b"<eos>", b"<bos>", b"<unk>"]
    assert tokens[105:107] == [b"<start_of_turn>", b"<end_of_turn>"]
    template = tok["scalars"]["tokenizer.chat_template"][1]
    assert "<start_of_turn>" in template and "model" in template


def test_records_say_the_weights_are_random():
    cfg = load_model_config("gemma4_tiny")
    assert cfg.source == "synthetic" and cfg.mtp_drafter == "gemma4_tiny_assistant"
    resolved = resolve_model(cfg)
    assert resolved.synthetic and "RANDOM WEIGHTS" in resolved.synthetic
    assert resolved.provenance == resolved.synthetic
    assert resolved.gguf.architecture == "gemma4"


def test_bad_synthetic_configs():
    with pytest.raises(ValueError, match="source=synthetic needs model.synthetic"):
        ModelConfig(name="x", source="synthetic")
    with pytest.raises(ModelError, match="unknown synthetic model 'nope'"):
        resolve_model(ModelConfig(name="x", source="synthetic", synthetic="nope"))


@pytest.mark.slow
def test_kld_and_speed_tasks_run_on_it(cli):
    """The stand-in goes through the quantization ladder (q8_0 against its f16) and llama-bench's tests."""
    common = ["model=gemma4_tiny", "backend.n_threads=1", "progress=false"]
    kld = cli(*common, "model.quant=q8_0", "task=kld", "task.chunks=2", "task.n_ctx=256")
    assert kld.returncode == 0, kld.stderr
    (result,) = kld.results("kld")
    assert result["model"]["variant"] == "q8_0" and "RANDOM WEIGHTS" in result["model"]["synthetic"]
    assert result["kld"]["kld_mean"] > 0 and "RANDOM WEIGHTS" in result["kld"]["reference_provenance"]
    speed = cli(*common, "task=speed", "task.pp=[32]", "task.tg=[8]", "task.repetitions=1")
    assert speed.returncode == 0, speed.stderr
    (result,) = speed.results("speed")
    tests = result["speed"]["tests"]
    assert {t["name"] for t in tests} == {"pp32", "tg8"} and all(t["tokens_per_s_mean"] > 0 for t in tests)
