"""One synchronous CRM request (``contact``, a direct ``rating``) in the target's profile.

The delivery workers own retries and the outbox; the look-ups here are request/answer
while a call rings, so they only need the body, the headers and, when configured, the
Standard Webhooks signature. The body read is capped: a CRM answering with a megabyte
of HTML must not cost the daemon a megabyte per ringing call.
"""

from __future__ import annotations

import time

import aiohttp

from ..config import CrmSettings
from ..crm.request import build_request

__all__ = ["MAX_ANSWER_BYTES", "CrmHttpError", "post_command"]

MAX_ANSWER_BYTES = 64 * 1024


class CrmHttpError(Exception):
    """The CRM answered, but not with a 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"CRM answered HTTP {status}")
        self.status = status


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_ANSWER_BYTES:
        chunk = await response.content.read(MAX_ANSWER_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:MAX_ANSWER_BYTES]


async def post_command(
    session: aiohttp.ClientSession,
    crm: CrmSettings,
    fields: dict[str, object],
    limits: aiohttp.ClientTimeout,
) -> bytes:
    """POST ``fields`` to the primary CRM; the (capped) body of a 2xx, else CrmHttpError."""
    if not crm.url:
        raise ValueError("no [crm] url configured")
    request = build_request(
        crm.profile,
        fields,
        crm.token or "",
        now=time.time(),
        signing_secret=crm.signing_secret,
    )
    async with session.post(
        crm.url, data=request.body, headers=request.headers, timeout=limits
    ) as resp:
        if not 200 <= resp.status < 300:
            raise CrmHttpError(resp.status)
        return await _read_capped(resp)
