"""One way to build a request to a CRM: the body and headers of its profile, the token,
a `webhook-id`, and the Standard Webhooks signature when the target has a secret.

Used by the delivery workers (webhooks from the outbox) and by the FastAGI look-ups
(`contact`, a direct `rating`), so every CRM sees the same request shape from the bridge.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from .profiles import encode
from .signing import signature_headers

USER_AGENT = "asterisk-crm-bridge/0.1"


@dataclass(frozen=True, slots=True)
class CrmRequest:
    body: bytes
    headers: dict[str, str]


def build_request(
    profile: str,
    fields: Mapping[str, object],
    token: str,
    *,
    now: float,
    webhook_id: str | None = None,
    signing_secret: str | None = None,
) -> CrmRequest:
    """`webhook_id` stays the same across retries of one webhook; a look-up gets a new one."""
    wire = encode(profile, dict(fields), token)
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    headers = {
        "Content-Type": wire.content_type,
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        **wire.headers,
    }
    if signing_secret:
        headers.update(signature_headers(signing_secret, msg_id, int(now), wire.body))
    return CrmRequest(wire.body, headers)
