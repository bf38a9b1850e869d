"""`python -m evalkit.leaderboard OUTPUTS... [--csv F] [--parquet F] [--json F] [--html F] [--pair A=B]`

Reads the runs under one or more outputs trees (several machines' trees may be given, or merged
into one): one row per model, variant, backend settings and hardware; Pareto flags; the fastest
variant within the given quality and memory budgets; pairwise QAT-vs-regular style comparisons.
"""

from __future__ import annotations

import argparse
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


def run(argv: list[str]) -> int:
    from rich.console import Console

    from evalkit.report import formats
    from evalkit.report.frontier import frontier
    from evalkit.report.html import render
    from evalkit.report.load import load_runs
    from evalkit.report.pairs import build_pairs, print_pair
    from evalkit.report.rows import build_rows, require_rows, to_frame
    from evalkit.report.tables import leaderboard_columns, print_leaderboard

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
    columns = leaderboard_columns(df, args.columns, args.wide)  # a wrong --columns is an error even with --quiet
    if not args.quiet:
        dropped = print_leaderboard(df, console, columns, fit=not args.wide,
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
        formats.write_csv(df, args.csv)
        written.append(str(args.csv))
    if args.parquet:
        formats.write_parquet(df, args.parquet)
        written.append(str(args.parquet))
    if args.pair_csv:
        formats.write_pair_csv(pairs, args.pair_csv)
        written.append(str(args.pair_csv))
    if args.json:
        formats.write_json(args.json, formats.json_payload(df, front, pairs, grid, warnings))
        written.append(str(args.json))
    if args.html:
        page = render(df, front, pairs, list(dict.fromkeys(warnings)), [str(p) for p in args.outputs], runs=loaded.runs)
        formats.write_text(args.html, page)
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
