"""Bad input: one line on stderr, a non-zero exit, never a traceback."""

import shutil

from conftest import assert_one_line_error


def test_bad_override_names_the_field(cli):
    r = cli("backend.n_ctx=-5")
    assert_one_line_error(r, "backend.n_ctx")
    r = cli("task.samples=0")
    assert_one_line_error(r, "task.samples")


def test_unknown_config_names_list_what_exists(cli):
    r = cli("model=no_such_model")
    assert_one_line_error(r, "unknown model 'no_such_model'", "smollm2_135m")
    r = cli("task=nope")
    assert_one_line_error(r, "unknown task 'nope'", "constraints")
    r = cli("backend=nope")
    assert_one_line_error(r, "unknown backend 'nope'", "llama_cpp")


def test_unknown_key_and_bad_syntax(cli):
    assert_one_line_error(cli("backend.n_ctxx=10"), "backend.n_ctxx")
    assert_one_line_error(cli("model=="), "bad override")


def test_sweep_values_need_multirun(cli):
    assert_one_line_error(cli("model.quant=f16,q8_0"), "--multirun")


def test_a_bad_point_in_a_sweep_fails_before_anything_runs(cli):
    r = cli("-m", "model=smollm2_135m,missing_one", "task=constraints")
    assert_one_line_error(r, "unknown model 'missing_one'")
    assert not (r.cwd / "outputs").exists()


def test_missing_model_file(cli, tmp_path):
    r = cli(f"model.path={tmp_path}/nope.gguf", "task=constraints")
    assert_one_line_error(r, "model file not found", "nope.gguf")


def test_truncated_gguf_is_caught(cli, tmp_path, smollm2_path):
    broken = tmp_path / "broken.gguf"
    shutil.copyfile(smollm2_path, broken)
    with broken.open("r+b") as fh:
        fh.truncate(smollm2_path.stat().st_size // 3)
    r = cli(f"model.path={broken}", "task=constraints")
    assert_one_line_error(r, "broken.gguf", "truncated or corrupt")


def test_not_a_gguf_at_all(cli, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"definitely not a model" * 100)
    assert_one_line_error(cli(f"model.path={junk}"), "junk.gguf", "not a valid GGUF")


def test_unknown_check_in_user_task_file(cli, tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nprompts:\n  - id: a\n    category: x\n    prompt: hi\n    checks:\n      - wordcount: {max: 3}\n")
    assert_one_line_error(cli("task=constraints", f"task.file={f}"), "unknown check 'wordcount'")


def test_offline_hub_model_says_how_to_pass_a_local_path(cli, tmp_path):
    r = cli(
        "model=gemma4_12b_qat",
        "task=constraints",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        timeout=120,
    )
    assert_one_line_error(r, "unsloth/gemma-4-12B-it-qat-GGUF", "model.path=")


def test_credentials_in_a_server_url_are_refused(cli):
    r = cli("backend=openai", "backend.base_url=http://user:s3cret@127.0.0.1:9/v1", "task=constraints")
    assert_one_line_error(r, "backend.base_url", "api_key_env")
    assert "s3cret" not in r.stderr


def test_a_task_kind_the_backend_cannot_serve_is_refused_by_capability(cli):
    """Before anything loads: the kind names the capability it needs and a backend that has it."""
    r = cli("task=kld", "backend=llama_server")
    assert_one_line_error(r, "task=kld needs token_access", "backend=llama_server does not have", "use backend=llama_cpp")
    r = cli("task=speed", "backend=openai")
    assert_one_line_error(r, "task=speed needs", "state", "backend=openai does not have")
    assert not (r.cwd / "outputs").exists()
