"""The leaderboard's files: CSV and parquet (the row frame as it is), JSON (rows, frontier,
recommendations, pairs, grid, warnings) and the pair reports' CSV. A path that cannot be written
is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from evalkit.report.load import ReportError


def parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from None


def write_csv(df: pl.DataFrame, path: Path) -> None:
    parent(path)
    df.write_csv(path)


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    parent(path)
    df.write_parquet(path)


def write_pair_csv(pairs: list, path: Path) -> None:
    from evalkit.report.pairs import pair_rows

    parent(path)
    pl.DataFrame([r for p in pairs for r in pair_rows(p)], infer_schema_length=None).write_csv(path)


def row_id(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {k: row.get(k) for k in ("model", "variant", "settings", "hardware")}


def json_payload(df: pl.DataFrame, front, pairs: list, grid: list, warnings: list[str]) -> dict[str, Any]:
    return {
        "rows": df.to_dicts(),
        "frontier": {"quality_metric": front.quality, "notes": front.notes},
        "recommendations": [
            {"group": r.group, "row": row_id(r.row), "reason": r.reason, "excluded": r.excluded}
            for r in front.recommendations
        ],
        "pairs": [p.to_dict() for p in pairs],
        "mtp_grid": [r.model_dump() for r in grid],
        "warnings": list(dict.fromkeys(warnings)),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    parent(path)
    path.write_text(json.dumps(payload, indent=2, default=str))


def write_text(path: Path, text: str) -> None:
    parent(path)
    path.write_text(text, encoding="utf-8")
