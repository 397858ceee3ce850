"""Shared pytest fixtures (Postgres ones live in tests/support/pg.py)."""

from tests.support.log_state import restore_logging
from tests.support.pg import migrated_dsn, migrated_template, pg_cluster, pg_dsn

__all__ = ["migrated_dsn", "migrated_template", "pg_cluster", "pg_dsn", "restore_logging"]
