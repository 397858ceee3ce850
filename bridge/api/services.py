"""What the HTTP handlers of every dialect may use: one object, set on the root app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from ..ami.ingest import AmiIngest
from ..config import Settings
from ..store.apikeys import KeyRing
from ..store.calls import CallStore


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    store: CallStore
    keys: KeyRing
    # the AMI link of this bridge while it leads (click-to-call, provisioning); None as
    # standby or while Asterisk is away
    ami: Callable[[], AmiIngest | None] = field(default=lambda: None)

    @property
    def pbx_id(self) -> str:
        return self.settings.pbx.id


SERVICES = web.AppKey("services", Services)


def services_of(request: web.Request) -> Services:
    """The services, from a route of the root app or of any dialect's sub-app."""
    return request.config_dict[SERVICES]
