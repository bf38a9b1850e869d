"""conf/ YAMLs (task, backend, model) hold only what differs from the pydantic schemas' defaults
(evalkit/config.py; a task kind's own in its runner module)."""

from __future__ import annotations

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from evalkit.__main__ import register_resolvers
from evalkit.config import hydra_base, hydra_bases, validate_run_config
from evalkit.paths import CONF_DIR

BASES = hydra_bases()
FILES = [(g, p) for g in BASES for p in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "path"), FILES, ids=[f"{g}/{p.stem}" for g, p in FILES])
def test_yaml_starts_from_its_schema_and_restates_no_default(group, path):
    raw = yaml.safe_load(path.read_text())
    defaults = raw.pop("defaults")
    assert defaults[-1] == "_self_" and len(defaults) == 2, defaults
    type_ = defaults[0].removeprefix(f"base_{group}_")
    base = hydra_base(BASES[group][type_])
    for key, value in raw.items():
        if isinstance(value, dict):
            restated = {k: v for k, v in value.items() if base.get(key, {}).get(k, object()) == v}
            assert not restated, f"{path.name}: {key} restates its defaults {restated}"
        else:
            assert base.get(key, object()) != value or key == "description", f"{path.name}: {key} restates its default"


@pytest.fixture(scope="module")
def composed():
    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        yield lambda *o: OmegaConf.to_container(compose("config", overrides=list(o)), resolve=True)


@pytest.mark.parametrize("task", sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml")))
def test_every_task_composes_to_its_schemas_values(composed, task):
    for backend in sorted(p.stem for p in (CONF_DIR / "backend").glob("*.yaml")):
        data = composed(f"task={task}", f"backend={backend}")
        run = validate_run_config(data)
        for group in ("task", "backend"):
            dumped = getattr(run, group).model_dump()
            assert {k: dumped[k] for k in data[group]} == data[group]
            # every schema default is in the composed config: overridable without a `+`
            assert set(hydra_base(type(getattr(run, group)))) <= set(data[group])


def test_a_default_is_overridable_and_validated(composed):
    data = composed("task=stress_quick", "task.sampling.max_tokens=16", "backend.n_ctx=512")
    assert data["task"]["sampling"]["max_tokens"] == 16 and data["backend"]["n_ctx"] == 512
    assert composed("task=stress_quick")["task"]["sampling"]["max_tokens"] == 768


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
def test_every_model_composes_to_its_schemas_values(composed, model):
    from evalkit.models import load_model_config

    whole = composed(f"model={model}")
    data, run = whole["model"], validate_run_config(whole)
    dumped = run.model.model_dump()
    assert {k: dumped[k] for k in data} == data
    assert set(hydra_base(type(run.model))) <= set(data)
    # read outside Hydra (references, drafters): the same model
    assert load_model_config(model).model_dump() == dumped
