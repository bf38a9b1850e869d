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


class EchoTaskConfig(TaskBase):
    kind: Literal["echo"] = "echo"
    words: int = Field(3, ge=1)


register(TaskKind(name="echo", config=EchoTaskConfig, run=lambda ctx: None))
model = {"name": "m", "source": "embedded", "embedded": "smollm2_135m"}
run = validate_run_config({"model": model, "backend": {"type": "llama_cpp"}, "task": {"kind": "echo", "name": "e"}})
assert type(run.task) is EchoTaskConfig and run.task.words == 3
try:
    validate_run_config({"model": model, "backend": {"type": "llama_cpp"}, "task": {"kind": "echo", "name": "e", "words": 0}})
except ConfigError as exc:
    print(exc)
assert hydra_bases()["task"]["echo"] is EchoTaskConfig
register_hydra_defaults()
assert ConfigStore.instance().load("task/base_task_echo.yaml").node.words == 3
assert TypeAdapter(KindName).validate_python("echo") == "echo"
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
