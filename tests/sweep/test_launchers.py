"""The shipped launcher configs compose, and the SLURM one becomes a valid sbatch script.

A SLURM cluster and a Ray cluster are not available here: the configs are composed exactly as
`python -m evalkit -m hydra/launcher=<name>` would, and the SLURM parameters are turned into the
sbatch script by submitit's own generator. (A real multi-process run through submitit's local
executor is in test_sweep_resume.py.)
"""

import pytest
from hydra import compose, initialize_config_dir

from evalkit.__main__ import register_resolvers
from evalkit.paths import CONF_DIR


@pytest.fixture(scope="module")
def hydra_cfg():
    register_resolvers()

    def get(launcher: str, *overrides: str):
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            return compose("config", overrides=[f"hydra/launcher={launcher}", *overrides], return_hydra_config=True)

    return get


def test_slurm_config_composes_into_an_sbatch_script(hydra_cfg, tmp_path):
    cfg = hydra_cfg("slurm", "hydra.launcher.partition=gpu", "model.quant=q8_0")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.max_num_timeout == 3
    assert cfg.hydra.sweep.dir == "outputs"  # every job writes into the one outputs tree
    from submitit.slurm.slurm import _make_sbatch_string

    script = _make_sbatch_string(
        command="python -m evalkit", folder=tmp_path, job_name=launcher.name, partition=launcher.partition,
        time=launcher.timeout_min, nodes=launcher.nodes, ntasks_per_node=launcher.tasks_per_node,
        cpus_per_task=launcher.cpus_per_task, gpus_per_node=launcher.gpus_per_node, mem=f"{launcher.mem_gb}GB",
        signal_delay_s=launcher.signal_delay_s, setup=list(launcher.setup), array_parallelism=launcher.array_parallelism,
        additional_parameters=dict(launcher.additional_parameters), map_count=40,
    )  # fmt: skip
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --exclusive",
                 "#SBATCH --time=240", "#SBATCH --array=0-39%32", "#SBATCH --job-name=evalkit"):  # fmt: skip
        assert line in script, script


def test_ray_config_composes(hydra_cfg):
    cfg = hydra_cfg("ray_cluster", "hydra.launcher.ray.remote.num_gpus=0", "hydra.launcher.ray.init.address=null")
    ray = cfg.hydra.launcher
    assert ray._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert ray.ray.init.address is None and ray.ray.remote.num_gpus == 0 and ray.ray.remote.num_cpus == 8


def test_cli_prints_the_launcher_config(any_cli):
    from conftest import assert_one_line_error

    r = any_cli("hydra/launcher=slurm", "model.quant=q8_0", "--cfg", "hydra", "--package", "hydra.launcher")
    assert r.returncode == 0, r.stderr
    assert "SlurmLauncher" in r.stdout and "exclusive: true" in r.stdout
    # Hydra cannot print a config of a multirun; say so in one line instead of its traceback
    assert_one_line_error(any_cli("-m", "hydra/launcher=slurm", "model.quant=q8_0,q4_0", "--cfg", "hydra"), "drop -m")


def test_bad_launcher_name_fails_in_one_line(any_cli):
    from conftest import assert_one_line_error

    r = any_cli("-m", "hydra/launcher=nope", "task=constraints")
    assert_one_line_error(r, "unknown hydra/launcher 'nope'", "slurm", "ray_cluster", "submitit_local")
