"""Runners: one module per task kind, registered in evalkit.run.RUNNERS."""
