"""Sweeps run by Hydra launcher plugins (SLURM, Ray, submitit_local): what the CLI needs to know.

With the basic launcher every job runs in the sweeping process, which collects the exit codes.
A plugin runs jobs in other processes or on other machines: a failed job's one-line message must
travel back as an exception, and the launcher name is checked before anything is submitted.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException

from evalkit.errors import ConfigError, EvalkitError


class JobFailed(EvalkitError, CompactHydraException):
    """A job run by a launcher plugin failed; Hydra prints this message alone and exits 1."""

    exit_code = 1


def launched_elsewhere() -> bool:
    """True inside a job that a launcher plugin (not the basic launcher) started."""
    from hydra.core.hydra_config import HydraConfig

    try:
        target = str(HydraConfig.get().launcher.get("_target_", ""))
    except Exception:
        return False
    return not target.endswith("BasicLauncher")


def uses_launcher_plugin(argv: list[str]) -> bool:
    """`hydra/launcher=<x>` other than basic: the jobs' exit codes live in other processes."""
    return any(a.startswith("hydra/launcher=") and a.split("=", 1)[1] != "basic" for a in argv)


def check_launcher(name: str) -> None:
    """`hydra/launcher=<name>`: one of conf/hydra/launcher/*.yaml or an installed plugin's."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    from evalkit.paths import CONF_DIR

    Plugins.instance()  # discovers installed launcher plugins, which register their configs
    known = {p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml")}
    known |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list("hydra/launcher")}
    if name not in known:
        hint = " (pip install 'evalkit[slurm]' or 'evalkit[ray]' for cluster launchers)"
        raise ConfigError(f"unknown hydra/launcher '{name}'; available: {', '.join(sorted(known))}{hint}")
