"""What the HTTP handlers of every dialect may use: one object, set on the root app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from aiohttp import web

from ..ami.ingest import AmiIngest
from ..config import Settings
from ..store.apikeys import KeyRing
from ..store.calls import CallStore


class DialError(Exception):
    """Why a click-to-call was not placed: `status` is the HTTP answer (400 unknown
    employee or bad number, 503 AMI down), `message` says it in plain words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Dialer(Protocol):
    async def call(self, employee: str, number: str, clid: str | None = None) -> str:
        """Ring the employee's phones (login or extension), then dial `number`; returns
        the call id at once (the call is tracked like any other). Raises DialError."""
        ...


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    store: CallStore
    keys: KeyRing
    # the AMI link of this bridge while it leads (click-to-call, provisioning); None as
    # standby or while Asterisk is away
    ami: Callable[[], AmiIngest | None] = field(default=lambda: None)
    dialer: Dialer | None = None  # click-to-call; None: not available on this bridge

    @property
    def pbx_id(self) -> str:
        return self.settings.pbx.id


SERVICES = web.AppKey("services", Services)


def services_of(request: web.Request) -> Services:
    """The services, from a route of the root app or of any dialect's sub-app."""
    return request.config_dict[SERVICES]
