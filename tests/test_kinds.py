"""A task kind is registered in one place, its module: the config's task union, the Hydra
`base_task_<kind>` nodes and the record's `task_kind` check all come from the registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run in a fresh interpreter: the union is built once per process, on RunConfig's first use.
NEW_KIND = """
from typing import Literal

from hydra.core.config_store import ConfigStore
from pydantic import Field, TypeAdapter

from evalkit.config import TaskBase, hydra_bases, register_hydra_defaults, validate_run_config
from evalkit.errors import ConfigError
from evalkit.kinds import TaskKind, register
from evalkit.records import TaskKind as KindName


class ProbeTaskConfig(TaskBase):
    kind: Literal["registry_probe"] = "registry_probe"
    words: int = Field(3, ge=1)


register(TaskKind(name="registry_probe", config=ProbeTaskConfig, run=lambda ctx: None))
job = {"model": {"name": "m", "source": "embedded", "embedded": "smollm2_135m"}, "backend": {"type": "llama_cpp"}}
run = validate_run_config({**job, "task": {"kind": "registry_probe", "name": "p"}})
assert type(run.task) is ProbeTaskConfig and run.task.words == 3
try:
    validate_run_config({**job, "task": {"kind": "registry_probe", "name": "p", "words": 0}})
except ConfigError as exc:
    print(exc)
assert hydra_bases()["task"]["registry_probe"] is ProbeTaskConfig
register_hydra_defaults()
assert ConfigStore.instance().load("task/base_task_registry_probe.yaml").node.words == 3
assert TypeAdapter(KindName).validate_python("registry_probe") == "registry_probe"
print("ok")
"""


def test_a_kind_registered_outside_any_central_list_is_validated_based_and_recorded():
    out = subprocess.run([sys.executable, "-c", NEW_KIND], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # the union's tag is dropped from the location, as for the shipped kinds
    assert out.stdout.splitlines() == ["invalid config: task.words: Input should be greater than or equal to 1 (got 0)", "ok"]


def test_a_config_whose_tag_is_not_the_kind_name_is_refused():
    from typing import Literal

    from evalkit.config import TaskBase
    from evalkit.kinds import TaskKind, register

    class Mislabelled(TaskBase):
        kind: Literal["other"] = "other"

    with pytest.raises(ValueError, match="its config needs `kind: Literal\\['mislabelled'\\]"):
        register(TaskKind(name="mislabelled", config=Mislabelled, run=lambda ctx: None))
