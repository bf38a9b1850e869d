"""The real Gemma 4 configs name their MTP drafters; offline, the drafter's absence is one line."""

from __future__ import annotations

import pytest
import yaml

from conftest import assert_one_line_error
from evalkit.models import load_model_config, model_config_names
from evalkit.models.hub import _pick
from evalkit.paths import CONF_DIR

TARGETS = [
    n for n in model_config_names() if n.startswith("gemma4_") and "assistant" not in n and "tiny" not in n
]


def test_every_gemma4_target_names_its_familys_drafter():
    assert len(TARGETS) >= 10
    for name in TARGETS:
        cfg = load_model_config(name)
        size = cfg.family.split("_")[1]  # gemma4_12b -> 12b
        assert cfg.mtp_drafter == f"gemma4_{size}_assistant", name
        drafter = load_model_config(cfg.mtp_drafter)
        assert drafter.source == "hf" and drafter.hf_file.startswith("mtp-gemma-4-"), drafter
        assert drafter.mtp_drafter is None


@pytest.mark.parametrize("size", ["12b", "26b", "31b", "e4b"])
def test_drafter_configs_are_complete(size):
    raw = yaml.safe_load((CONF_DIR / "model" / f"gemma4_{size}_assistant.yaml").read_text())
    assert raw["hf_repo"].startswith("unsloth/gemma-4-") and raw["hf_file"].endswith(".gguf")


# A Gemma 4 repository's listing as Unsloth ships it: weights, projector, and MTP drafters both
# at the root and as higher-precision copies under MTP/.
LISTING = [
    "MTP/mtp-gemma-4-12b-it-BF16.gguf",
    "MTP/mtp-gemma-4-12b-it-Q8_0.gguf",
    "README.md",
    "gemma-4-12b-it-Q4_K_M.gguf",
    "gemma-4-12b-it-Q8_0.gguf",
    "mmproj-BF16.gguf",
    "mtp-gemma-4-12b-it.gguf",
]


def test_a_weights_glob_never_picks_the_drafter():
    assert _pick(LISTING, "*Q8_0*.gguf") == ["gemma-4-12b-it-Q8_0.gguf"]
    assert _pick(LISTING, "*Q4_K_M*.gguf") == ["gemma-4-12b-it-Q4_K_M.gguf"]


def test_the_drafter_is_picked_by_its_own_name():
    assert _pick(LISTING, "mtp-gemma-4-12b-it.gguf") == ["mtp-gemma-4-12b-it.gguf"]
    assert _pick(LISTING, "MTP/mtp-gemma-4-12b-it-Q8_0.gguf") == ["MTP/mtp-gemma-4-12b-it-Q8_0.gguf"]


@pytest.mark.slow
def test_offline_mtp_names_the_drafters_repo_and_file(cli, tmp_path, smollm2_path):
    """The target is a local file; speculative=mtp picks the family's drafter, which is not here."""
    r = cli(
        "model=gemma4_12b_qat",
        f"model.path={smollm2_path}",
        "backend.speculative=mtp",
        "backend.n_threads=1",
        "task=constraints",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        timeout=300,
    )
    assert_one_line_error(r, "unsloth/gemma-4-12B-it-qat-GGUF/mtp-gemma-4-12B-it.gguf", "model.path=")
