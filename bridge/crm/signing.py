"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature`.

`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`; a secret written `whsec_<base64>`
is the base64 key (the convention of the spec's libraries), any other string is used as is.
The id stays the same across retries, so a receiver can drop duplicates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        # strict: a lenient decoder drops what is not base64 and signs with another key
        # than a receiver whose decoder refuses it (Go's) or keeps it
        return base64.b64decode(secret[len("whsec_") :], validate=True)
    return secret.encode()


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (used by our tests' CRM)."""
    try:
        expected = signature(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    except (KeyError, ValueError):
        return False
    given = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, g) for g in given)
