"""Reporting: tables, leaderboard, pairs, HTML. Reads records only, never live objects."""
