"""Fixtures shared by the integration tests: delivery and the HTTP API."""

from tests.support.api import api, scenarios_dsn, scenarios_template
from tests.support.delivery import crm, running

__all__ = ["api", "scenarios_dsn", "scenarios_template", "crm", "running"]
