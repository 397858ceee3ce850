"""JSON from a client, as every API reader takes it: whatever is not JSON (bytes that are
not UTF-8, nesting deeper than the parser goes) is a ValueError, which each reader turns
into its dialect's 400."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:  # json raises it for deep nesting; UnicodeDecodeError is a ValueError
        raise ValueError("nested deeper than JSON is read") from None
