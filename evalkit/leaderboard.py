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
    p.add_argument("--quality", default="auto", help="auto (kld, else pass_strict, else ppl), kld, kld_resp, pass_strict, "
                   "pass_loose, ppl, same_top or bench:<task>")  # fmt: skip
    p.add_argument("--speed", default="auto", help="auto, tg, gen, chars or pp")
    p.add_argument("--memory", default="auto", help="auto, peak (memory_gb: GPU memory, else resident memory added) or size (file size)")
    p.add_argument("--max-kld", type=float, help="quality budget: mean KLD at most this")
    p.add_argument("--min-pass-rate", type=float, help="quality budget: strict pass rate at least this (0..1)")
    p.add_argument("--max-memory-gb", type=float, help="memory budget in GB (10^9 bytes)")
    p.add_argument("--pair", action="append", default=[], metavar="A=B",
                   help="compare A against B (model names or name:variant); repeatable")  # fmt: skip
    p.add_argument("--pair-csv", type=Path, help="write the pair reports' speed and quality rows as CSV")
    p.add_argument("--bootstrap", type=int, default=2000, help="ignored: pair intervals are t intervals now (kept for old command lines)")
    p.add_argument("--seed", type=int, default=0, help="ignored, as --bootstrap")
    p.add_argument("--grid", action="store_true",
                   help="print the plain/MTP x QAT grid (printed anyway when the runs form one)")  # fmt: skip
    p.add_argument("--include-incomplete", action="store_true", help="show interrupted/failed runs too")
    p.add_argument("--quiet", action="store_true", help="no table on stdout")
    p.add_argument("--columns", metavar="A,B,C", help="leaderboard columns to print (any column of --csv)")
    p.add_argument("--wide", action="store_true", help="print the wide column set, however wide the terminal")
    p.add_argument("--width", type=int, help="terminal width to fit the tables to (default: the terminal's, "
                   "else $COLUMNS, else 160)")  # fmt: skip
    p.add_argument("--samples", metavar="PROMPT", help="print the outputs of every variant for this prompt "
                   "(id or task:id) side by side, with each check's verdict")  # fmt: skip
    p.add_argument("--sample-chars", type=int, default=600, help="with --samples: characters of each output shown")
    args = p.parse_args(argv)
    from evalkit.report.load import ReportError

    if args.min_pass_rate is not None and not 0 <= args.min_pass_rate <= 1:
        raise ReportError("--min-pass-rate is a share between 0 and 1 (e.g. 0.8)")
    if args.width is not None and args.width < 40:
        raise ReportError("--width must be at least 40")
    if args.bootstrap < 100:
        raise ReportError("--bootstrap needs at least 100 resamples")
    for flag in ("max_kld", "max_memory_gb"):
        v = getattr(args, flag)
        if v is not None and v < 0:
            raise ReportError(f"--{flag.replace('_', '-')} must not be negative")
    return args


# The terminal leaderboard's column sets. COMPACT fits 100 columns for a typical ladder; columns
# that still do not fit are dropped (never cut), rightmost in PRIORITY first, and named.
COMPACT = ["model", "variant", "settings", "memory_gb", "pp_tokens_per_s", "tg_tokens_per_s", "pass_strict",
           "kld_mean", "kld_p99", "same_top_pct", "recommended"]  # fmt: skip
PRIORITY = ["variant", "model", "tg_tokens_per_s", "gen_tokens_per_s", "kld_mean", "pass_strict", "memory_gb",
            "recommended", "pp_tokens_per_s", "kld_p99", "same_top_pct", "size_gb", "ppl", "settings"]  # fmt: skip
WIDE = ["model", "variant", "settings", "size_gb", "bits_per_weight", "memory_gb", "pp_tokens_per_s",
        "tg_tokens_per_s", "gen_tokens_per_s", "chars_per_s", "ttft_s", "pass_strict", "pass_loose",
        "output_chars_mean", "ppl", "kld_mean", "kld_p99", "same_top_pct", "gen_samples", "pareto_speed",
        "pareto_memory", "recommended"]  # fmt: skip
HEADERS = {
    "size_gb": "size GB", "bits_per_weight": "bpw", "memory_gb": "mem GB", "pp_tokens_per_s": "pp tok/s",
    "tg_tokens_per_s": "tg tok/s", "gen_tokens_per_s": "gen tok/s", "chars_per_s": "chars/s", "ttft_s": "ttft s",
    "pass_strict": "strict", "pass_loose": "loose", "output_chars_mean": "chars", "kld_mean": "KLD",
    "kld_p99": "KLD p99", "same_top_pct": "top %", "gen_samples": "n gen", "pareto_speed": "front",
    "pareto_memory": "front mem", "recommended": "rec",
}  # fmt: skip


def table_columns(df, spec: str | None, wide: bool) -> list[str]:
    """The columns asked for: --columns a,b,c (any leaderboard column), --wide, or the compact set."""
    from evalkit.report.load import ReportError

    if spec:
        cols = [c.strip() for c in spec.split(",") if c.strip()]
        unknown = [c for c in cols if c not in df.columns]
        if unknown or not cols:
            raise ReportError(f"--columns: unknown column(s) {', '.join(unknown) or '(none given)'}; "
                              "see the column reference in docs/leaderboard.md or --csv")  # fmt: skip
        return cols
    if wide:
        return WIDE
    if "tg_tokens_per_s" not in df.columns or df["tg_tokens_per_s"].drop_nulls().len() == 0:  # no task=speed
        return [("gen_tokens_per_s" if c == "tg_tokens_per_s" else c) for c in COMPACT]
    return COMPACT


def _print_table(df, console, columns: list[str], fit: bool = True, explicit: bool = False) -> list[str]:
    """The chosen columns per machine; columns equal on every row go into the title. Cells are
    whole: a column that does not fit the console is dropped (returned), never cut. Dropped first:
    the last of PRIORITY, or with --columns the last named."""
    from evalkit.report.html import _fmt
    from evalkit.report.tables import fit_columns, fitted_table, table_width

    dropped_all: list[str] = []
    for hw in df["hardware"].unique(maintain_order=True).to_list():
        part = df.filter(df["hardware"] == hw)
        cols = [c for c in columns if c in part.columns and (explicit or part[c].drop_nulls().len() > 0)]
        same = [c for c in ("model", "settings") if c in cols and part[c].n_unique() == 1 and len(part) > 1]
        title = " · ".join([f"leaderboard · {hw}", *(f"{c} {part[c][0]}" for c in same)])
        cols = [c for c in cols if c not in same]
        rank = {c: i for i, c in enumerate([] if explicit else PRIORITY)}
        priority = sorted(range(len(cols)), key=lambda i: rank.get(cols[i], len(rank) + i))
        rows = list(part.iter_rows(named=True))
        data = [(HEADERS.get(c, c.replace("_", " ")), [_fmt(row.get(c), c) for row in rows]) for c in cols]
        width = console.width if fit else max(console.width, table_width(data))
        shown, dropped = fit_columns(data, width, keep=1, priority=priority)
        left = {HEADERS.get(c, c) for c in ("model", "variant", "settings")}
        table, _ = fitted_table(title, [data[i] for i in shown], width, left=left)
        narrow = console.width
        console.width = width  # --wide: as wide as the table, however wide the terminal
        console.print(table)
        console.width = narrow
        dropped_all += [cols[i] for i in dropped if cols[i] not in dropped_all]
    return dropped_all


def run(argv: list[str]) -> int:
    from rich.console import Console

    from evalkit.report.html import render
    from evalkit.report.leaderboard import build_rows, frontier, require_rows, to_frame
    from evalkit.report.load import load_runs
    from evalkit.report.pairs import build_pairs, print_pair

    args = parse_args(argv)
    console = Console(highlight=False, width=_width(args.width))
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

    shown = _warn(warnings, shown)
    columns = table_columns(df, args.columns, args.wide)  # a wrong --columns is an error even with --quiet
    if not args.quiet:
        dropped = _print_table(df, console, columns, fit=not args.wide,
                               explicit=bool(args.columns))  # fmt: skip
        if dropped:
            console.print(f"not shown (too wide for {console.width} columns): {', '.join(dropped)}; "
                          "--wide, --columns a,b,c or --width N shows them", markup=False)  # fmt: skip
        elif not args.columns and not args.wide:
            console.print("more columns: --wide, or --columns a,b,c (any column of --csv)", markup=False)
        for note in front.notes:
            console.print(f"note: {note}", markup=False)
        for rec in front.recommendations:
            console.print(f"recommendation {rec.reason}", markup=False)
            if rec.excluded:
                console.print("  excluded: " + "; ".join(rec.excluded), markup=False)
        for p in pairs:
            print_pair(p, console)
    if args.samples:
        from evalkit.report.outputs import collect_outputs, print_outputs

        print_outputs(collect_outputs(loaded.runs, warnings), args.samples, console, args.sample_chars)
        _warn(warnings, shown)
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
    if args.pair_csv:
        import polars as pl

        from evalkit.report.pairs import pair_rows

        _parent(args.pair_csv)
        pl.DataFrame([r for p in pairs for r in pair_rows(p)], infer_schema_length=None).write_csv(args.pair_csv)
        written.append(str(args.pair_csv))
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
        page = render(df, front, pairs, list(dict.fromkeys(warnings)), [str(p) for p in args.outputs], runs=loaded.runs)
        args.html.write_text(page, encoding="utf-8")
        written.append(str(args.html))
    if written and not args.quiet:
        console.print("wrote " + ", ".join(written))
    return 0


def _width(asked: int | None) -> int | None:
    """--width, else the terminal's own, else $COLUMNS, else 160 (a pipe or a file)."""
    import os

    if asked:
        return asked
    if sys.stdout.isatty():
        return None
    env = os.environ.get("COLUMNS", "")
    return int(env) if env.isdigit() and int(env) >= 40 else 160


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
