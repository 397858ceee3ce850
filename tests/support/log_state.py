"""configure_logging() changes process-wide state: a fixture that puts it back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from bridge.observability import logs


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test configures, the next one finds logging as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(logs, "_setup", logs.log_setup())
    monkeypatch.setattr(logs, "_output", logs._output)
    yield
    logs.close_output(0.5)  # a background output's thread, if the test started one
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
