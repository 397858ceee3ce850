"""Shared pytest fixtures (Postgres ones live in tests/support/pg.py)."""

from tests.support.pg import pg_cluster, pg_dsn

__all__ = ["pg_cluster", "pg_dsn"]
