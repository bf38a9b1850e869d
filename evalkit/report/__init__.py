"""Reporting: reads records only, never live objects. One module per concern:

- load.py: find and validate the runs of outputs trees
- columns.py: the leaderboard's column catalogue (order, type, meaning, format, views, docs)
- rows.py: one leaderboard row per model, variant, settings and hardware, from the runs
- frontier.py: Pareto flags and the recommendation per comparable group of rows
- pairs.py, pair_quality.py: A/B comparisons, speed and quality
- formats.py: CSV, parquet and JSON files; html.py: the self-contained HTML page
- tables.py: terminal tables (run end, leaderboard); kld_tables.py, lmeval.py: per-kind run-end tables
- quality.py, outputs.py, mtp_grid.py: report sections (checks, KLD, depth; answers side by side; MTP x QAT)
"""
