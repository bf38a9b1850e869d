"""Statistics over records: pure functions, no I/O."""
