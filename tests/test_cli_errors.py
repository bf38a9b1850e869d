"""Bad input: one line on stderr, a non-zero exit, never a traceback.

Tests take `any_cli`: the CLI in this process (fast tier) and as a `python -m evalkit` subprocess (slow).
"""

import shutil

import pytest

from conftest import assert_one_line_error


def test_bad_override_names_the_field(any_cli):
    r = any_cli("backend.n_ctx=-5")
    assert_one_line_error(r, "backend.n_ctx")
    r = any_cli("task.samples=0")
    assert_one_line_error(r, "task.samples")


def test_unknown_config_names_list_what_exists(any_cli):
    r = any_cli("model=no_such_model")
    assert_one_line_error(r, "unknown model 'no_such_model'", "smollm2_135m")
    r = any_cli("task=nope")
    assert_one_line_error(r, "unknown task 'nope'", "constraints")
    r = any_cli("backend=nope")
    assert_one_line_error(r, "unknown backend 'nope'", "llama_cpp")


def test_unknown_key_and_bad_syntax(any_cli):
    assert_one_line_error(any_cli("backend.n_ctxx=10"), "backend.n_ctxx")
    assert_one_line_error(any_cli("model=="), "bad override")


def test_sweep_values_need_multirun(any_cli):
    assert_one_line_error(any_cli("model.quant=f16,q8_0"), "--multirun")


def test_a_bad_point_in_a_sweep_fails_before_anything_runs(any_cli):
    r = any_cli("-m", "model=smollm2_135m,missing_one", "task=constraints")
    assert_one_line_error(r, "unknown model 'missing_one'")
    assert not (r.cwd / "outputs").exists()


def test_missing_model_file(any_cli, tmp_path):
    r = any_cli(f"model.path={tmp_path}/nope.gguf", "task=constraints")
    assert_one_line_error(r, "model file not found", "nope.gguf")


def _truncated_copy_is_caught(cli, tmp_path, model) -> None:
    broken = tmp_path / "broken.gguf"
    shutil.copyfile(model, broken)
    with broken.open("r+b") as fh:
        fh.truncate(model.stat().st_size // 3)
    r = cli(f"model.path={broken}", "task=constraints")
    assert_one_line_error(r, "broken.gguf", "truncated or corrupt")


@pytest.mark.slow  # gguf's reader spends 5-10 s on the 49k-token vocabulary and merges before it fails
def test_truncated_gguf_is_caught(cli, tmp_path, smollm2_path):
    _truncated_copy_is_caught(cli, tmp_path, smollm2_path)


def test_truncated_synthetic_gguf_is_caught(any_cli, tmp_path):
    """The same check on gemma4_tiny (a real GGUF of 8k tokens that evalkit builds offline)."""
    from evalkit.models.synthetic import build_gemma4_tiny

    _truncated_copy_is_caught(any_cli, tmp_path, build_gemma4_tiny()[0])


def test_not_a_gguf_at_all(any_cli, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"definitely not a model" * 100)
    assert_one_line_error(any_cli(f"model.path={junk}"), "junk.gguf", "not a valid GGUF")


def test_unknown_check_in_user_task_file(any_cli, tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nprompts:\n  - id: a\n    category: x\n    prompt: hi\n    checks:\n      - wordcount: {max: 3}\n")
    assert_one_line_error(any_cli("task=constraints", f"task.file={f}"), "unknown check 'wordcount'")


def test_offline_hub_model_says_how_to_pass_a_local_path(cli, tmp_path):
    # a real subprocess in both tiers: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME at import
    r = cli(
        "model=gemma4_12b_qat",
        "task=constraints",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        timeout=120,
    )
    assert_one_line_error(r, "unsloth/gemma-4-12B-it-qat-GGUF", "model.path=")


def test_credentials_in_a_server_url_are_refused(any_cli):
    r = any_cli("backend=openai", "backend.base_url=http://user:s3cret@127.0.0.1:9/v1", "task=constraints")
    assert_one_line_error(r, "backend.base_url", "api_key_env")
    assert "s3cret" not in r.stderr


def test_a_task_kind_the_backend_cannot_serve_is_refused_by_capability(any_cli):
    """Before anything loads: the kind names the capability it needs and a backend that has it."""
    r = any_cli("task=kld", "backend=llama_server")
    assert_one_line_error(r, "task=kld needs token_access", "backend=llama_server does not have", "use backend=llama_cpp")
    r = any_cli("task=speed", "backend=openai")
    assert_one_line_error(r, "task=speed needs", "state", "backend=openai does not have")
    assert not (r.cwd / "outputs").exists()
