"""Signed, expiring recording links (`link` of `history`), served by the bridge itself.

`{public_url}/recordings/{callid}?expires=<unix>&sig=<HMAC-SHA256(secret, "callid:expires")>`:
a CRM can store and play the link until it expires, without an API key; nobody can forge
a link to another call or stretch one's life.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def _sig(secret: str, callid: str, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"{callid}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def recording_link(public_url: str, secret: str, callid: str, expires: int) -> str:
    return (
        f"{public_url.rstrip('/')}/recordings/{quote(callid, safe='')}"
        f"?expires={expires}&sig={_sig(secret, callid, expires)}"
    )


def link_is_valid(secret: str, callid: str, expires: str, sig: str, now: float) -> str | None:
    """None when the link may be served, else why not (for the 403 message)."""
    try:
        until = int(expires)
    except ValueError:
        return "bad expiry"
    if not hmac.compare_digest(_sig(secret, callid, until).encode(), sig.encode()):
        return "bad signature"
    if now > until:
        return "link expired"
    return None
