"""Runners: one module per task kind; each defines its task config and registers its `TaskKind` (evalkit.kinds)."""
