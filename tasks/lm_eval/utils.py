"""Loads this folder's JSONL files for lm-eval (`custom_dataset: !function utils.load_jsonl`).

Paths resolve against this file, not the working directory, and nothing touches the network:
the suite runs offline wherever evalkit is started from.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def load_jsonl(file: str, split: str = "test", **_metadata) -> datasets.DatasetDict:
    path = Path(file) if Path(file).is_absolute() else HERE / file
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)})
