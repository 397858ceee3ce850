"""Fixtures shared by the integration tests: delivery and the HTTP API."""

from tests.support.api import api
from tests.support.delivery import crm, running

__all__ = ["api", "crm", "running"]
