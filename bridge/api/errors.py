"""Every error an HTTP client sees is JSON with a message, never a traceback.

Each dialect answers in its own error shape (VPBX `{"message": ...}`, Issabel
`{"status": "fail", "errors": [...]}`, ...): `error_middleware(shape)` turns aiohttp's
HTTP exceptions and unexpected failures into that shape. The root application's own
middleware covers paths no dialect owns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..observability.logs import get_logger

log = get_logger("bridge.api")

Shape = Callable[[int, str], Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def message_shape(status: int, message: str) -> dict[str, str]:
    return {"message": message}


class ApiError(web.HTTPException):
    """An error with the status and message a client should see."""

    def __init__(self, status: int, message: str) -> None:
        self.status_code = status
        super().__init__(reason=None, text=message)
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str = "Not found") -> ApiError:
    return ApiError(404, message)


_PLAIN = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method Not Allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    500: "Internal error",
    503: "Service unavailable",
    504: "Timed out",
}


def json_error(shape: Shape, status: int, message: str, **headers: str) -> web.Response:
    return web.json_response(shape(status, message), status=status, headers=headers or None)


def error_middleware(shape: Shape = message_shape, timeout: float = 30.0) -> Any:
    """Errors of the routes below it, in `shape`; a handler has `timeout` seconds to give
    its response head (a streamed export then goes on as long as it needs)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            async with asyncio.timeout(timeout):
                return await handler(request)
        except ApiError as exc:
            return json_error(shape, exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects and the like are not errors
            headers = {}
            if exc.status == 405 and "Allow" in exc.headers:
                headers["Allow"] = exc.headers["Allow"]
            message = _PLAIN.get(exc.status, exc.reason)
            return json_error(shape, exc.status, message, **headers)
        except TimeoutError:
            log.warning("api_request_timed_out", path=request.path, seconds=timeout)
            return json_error(shape, 504, _PLAIN[504])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("api_request_failed", path=request.path, method=request.method)
            return json_error(shape, 500, _PLAIN[500])

    return errors
