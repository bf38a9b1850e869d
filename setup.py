"""Ships conf/ and tasks/ inside the wheel as evalkit/_data/{conf,tasks}.

They stay at the repository's top level (where users read and edit them); this build step copies
them into the package so a non-editable install (`pip install .`, a wheel) finds its configs from
any directory. Editable installs read the source tree directly (evalkit/paths.py). All metadata
lives in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = ("conf", "tasks")


class build_py_with_data(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA:
            target = Path(self.build_lib) / "evalkit" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(HERE / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_data})
