"""Runners: one module per task kind; each registers its `TaskKind` (evalkit.kinds)."""
