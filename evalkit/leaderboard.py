"""`python -m evalkit.leaderboard OUTPUTS... [--csv F] [--parquet F] [--json F] [--html F] [--pair A=B]`

Reads the runs under one or more outputs trees (several machines' trees may be given, or merged
into one): one row per model, variant, backend settings and hardware; Pareto flags; the fastest
variant within the given quality and memory budgets; pairwise QAT-vs-regular style comparisons.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evalkit.errors import EvalkitError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m evalkit.leaderboard",
        description="Leaderboard, frontier, recommendation and pair reports from evalkit outputs.",
    )
    p.add_argument("outputs", nargs="+", type=Path, help="outputs tree(s) to read (e.g. outputs/)")
    p.add_argument("--csv", type=Path, help="write the leaderboard as CSV")
    p.add_argument("--parquet", type=Path, help="write the leaderboard as parquet")
    p.add_argument("--json", type=Path, help="write rows, recommendations, pairs and warnings as JSON")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report")
    p.add_argument("--quality", default="auto", help="auto (kld, else pass_strict, else ppl), kld, pass_strict, "
                   "pass_loose, ppl, same_top or bench:<task>")  # fmt: skip
    p.add_argument("--speed", default="auto", help="auto, tg, gen, chars or pp")
    p.add_argument("--memory", default="auto", help="auto, peak (memory_gb: GPU memory, else resident memory added) or size (file size)")
    p.add_argument("--max-kld", type=float, help="quality budget: mean KLD at most this")
    p.add_argument("--min-pass-rate", type=float, help="quality budget: strict pass rate at least this (0..1)")
    p.add_argument("--max-memory-gb", type=float, help="memory budget in GB (10^9 bytes)")
    p.add_argument("--pair", action="append", default=[], metavar="A=B",
                   help="compare A against B (model names or name:variant); repeatable")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for pair intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--grid", action="store_true",
                   help="print the plain/MTP x QAT grid (printed anyway when the runs form one)")  # fmt: skip
    p.add_argument("--include-incomplete", action="store_true", help="show interrupted/failed runs too")
    p.add_argument("--quiet", action="store_true", help="no table on stdout")
    args = p.parse_args(argv)
    from evalkit.report.load import ReportError

    if args.min_pass_rate is not None and not 0 <= args.min_pass_rate <= 1:
        raise ReportError("--min-pass-rate is a share between 0 and 1 (e.g. 0.8)")
    if args.bootstrap < 100:
        raise ReportError("--bootstrap needs at least 100 resamples")
    for flag in ("max_kld", "max_memory_gb"):
        v = getattr(args, flag)
        if v is not None and v < 0:
            raise ReportError(f"--{flag.replace('_', '-')} must not be negative")
    return args


def _print_table(df, console) -> None:
    """The key columns per machine; columns equal on every row go into the title."""
    from rich.table import Table

    from evalkit.report.html import _fmt

    wanted = ["model", "variant", "settings", "size_gb", "memory_gb", "pp_tokens_per_s", "tg_tokens_per_s",
              "gen_tokens_per_s", "chars_per_s", "ttft_s", "pass_strict", "pass_loose", "output_chars_mean",
              "ppl", "kld_mean", "kld_p99", "same_top_pct", "gen_samples", "pareto_speed", "pareto_memory",
              "recommended"]  # fmt: skip
    for hw in df["hardware"].unique(maintain_order=True).to_list():
        part = df.filter(df["hardware"] == hw)
        cols = [c for c in wanted if c in part.columns and part[c].drop_nulls().len() > 0]
        same = [c for c in ("model", "settings") if c in cols and part[c].n_unique() == 1 and len(part) > 1]
        title = " · ".join([f"leaderboard · {hw}", *(f"{c} {part[c][0]}" for c in same)])
        table = Table(title=title, title_justify="left")
        cols = [c for c in cols if c not in same]
        for c in cols:
            header = c.replace("_tokens_per_s", " tok/s").replace("_per_s", "/s").replace("_", " ")
            left = c in ("model", "variant", "settings")
            table.add_column(header, justify="left" if left else "right", overflow="fold", no_wrap=c == "variant")
        for row in part.iter_rows(named=True):
            table.add_row(*[_fmt(row.get(c), c) for c in cols])
        console.print(table)


def run(argv: list[str]) -> int:
    from rich.console import Console

    from evalkit.report.html import render
    from evalkit.report.leaderboard import build_rows, frontier, require_rows, to_frame
    from evalkit.report.load import load_runs
    from evalkit.report.pairs import build_pairs, print_pair

    args = parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    loaded = load_runs(args.outputs, include_incomplete=args.include_incomplete)
    warnings = loaded.warnings
    shown = _warn(warnings, 0)  # what was skipped is said before anything can fail
    rows = build_rows(loaded.runs, warnings)
    require_rows(rows, warnings, [str(p) for p in args.outputs])
    front = frontier(
        to_frame(rows),
        quality=args.quality,
        speed=args.speed,
        memory=args.memory,
        max_kld=args.max_kld,
        min_pass_rate=args.min_pass_rate,
        max_memory_gb=args.max_memory_gb,
    )
    df = front.frame
    pairs = []
    for spec in args.pair:
        pairs.extend(build_pairs(loaded.runs, spec, warnings, n_boot=args.bootstrap, seed=args.seed))

    _warn(warnings, shown)
    if not args.quiet:
        _print_table(df, console)
        for note in front.notes:
            console.print(f"note: {note}", markup=False)
        for rec in front.recommendations:
            console.print(f"recommendation {rec.reason}", markup=False)
            if rec.excluded:
                console.print("  excluded: " + "; ".join(rec.excluded), markup=False)
        for p in pairs:
            print_pair(p, console)
    from evalkit.report.mtp_grid import grid_rows, print_grid

    grid = grid_rows(loaded.runs)
    if not args.quiet and grid:
        print_grid(grid, console)
    elif not args.quiet and args.grid:
        console.print(
            "no grid: it needs generation runs of >= 2 models of one family, each with "
            "backend.speculative=none and another method, same task, backend and machine",
            markup=False,
        )

    written = []
    if args.csv:
        _parent(args.csv)
        df.write_csv(args.csv)
        written.append(str(args.csv))
    if args.parquet:
        _parent(args.parquet)
        df.write_parquet(args.parquet)
        written.append(str(args.parquet))
    if args.json:
        _parent(args.json)
        payload = {
            "rows": df.to_dicts(),
            "frontier": {"quality_metric": front.quality, "notes": front.notes},
            "recommendations": [
                {"group": r.group, "row": _row_id(r.row), "reason": r.reason, "excluded": r.excluded}
                for r in front.recommendations
            ],
            "pairs": [p.to_dict() for p in pairs],
            "mtp_grid": [r.model_dump() for r in grid],
            "warnings": list(dict.fromkeys(warnings)),
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        written.append(str(args.json))
    if args.html:
        _parent(args.html)
        page = render(df, front, pairs, list(dict.fromkeys(warnings)), [str(p) for p in args.outputs])
        args.html.write_text(page, encoding="utf-8")
        written.append(str(args.html))
    if written and not args.quiet:
        console.print("wrote " + ", ".join(written))
    return 0


def _warn(warnings: list[str], start: int) -> int:
    """Print the warnings added since `start`, each once (pairs re-check what rows checked)."""
    for i, w in enumerate(warnings[start:], start):
        if w not in warnings[:i]:
            print(f"evalkit: warning: {w}", file=sys.stderr)
    return len(warnings)


def _row_id(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {k: row.get(k) for k in ("model", "variant", "settings", "hardware")}


def _parent(path: Path) -> None:
    from evalkit.report.load import ReportError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except EvalkitError as exc:
        print(f"evalkit: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OSError as exc:
        print(f"evalkit: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


if __name__ == "__main__":
    main()
