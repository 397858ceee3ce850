"""Shared pytest fixtures (Postgres ones live in tests/support/pg.py), and Hypothesis's
profiles: `ci` (the default) replays the same examples on every run, so a red CI is a
bug and not a draw; `HYPOTHESIS_PROFILE=explore` draws new ones (run it locally)."""

import os

from hypothesis import settings

from tests.support.log_state import restore_logging
from tests.support.pg import migrated_dsn, migrated_template, pg_cluster, pg_dsn, store_pool

__all__ = [
    "migrated_dsn",
    "migrated_template",
    "pg_cluster",
    "pg_dsn",
    "restore_logging",
    "store_pool",
]

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
