"""Issabel's answers (its pbxapi models/rest.php): values as strings, errors as a list.

- success: `{"status": "success", "results": [...]}`, every value a string (Issabel runs
  `strval` over the whole answer; lists stay lists of strings);
- errors: `{"status": "fail", "errors": [{"status": "404", "detail": "Record not found"}]}`
  with the HTTP status of the error ("error" instead of "fail" for a 500), `source` naming
  the field a validation error is about.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class IssabelError(Exception):
    """Answered in Issabel's error shape (by the dialect's error middleware)."""

    def __init__(self, status: int, detail: str, *, source: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.source = source


def error_body(status: int, detail: str, source: str | None = None) -> dict[str, Any]:
    error = {"status": str(status), "detail": detail}
    if source is not None:
        error = {"status": str(status), "source": source, "detail": detail}
    return {"status": "error" if status >= 500 else "fail", "errors": [error]}


def issabel_shape(status: int, message: str) -> dict[str, Any]:
    return error_body(status, message)


def strings(value: Any) -> Any:
    """Every scalar as Issabel's strval() leaves it: booleans "1"/"", None ""."""
    if isinstance(value, dict):
        return {k: strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strings(v) for v in value]
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    return str(value)


def success(
    results: list[dict[str, Any]] | list[str],
    status: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body = {"status": "success", "results": results, **extra}
    return web.json_response(strings(body), status=status, headers=headers)
