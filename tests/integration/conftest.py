"""Fixtures of the delivery tests, shared by every integration test module."""

from tests.support.delivery import crm, running

__all__ = ["crm", "running"]
