"""`crm-bridge apply`: render the directory and apply it now, over an AMI link of its own
(the daemon may hold its own meanwhile: the provisioning lock makes them take turns).
Also writes AstDB what the black list, DND and recording settings say."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from ..ami.ingest import AmiIngest
from ..config import Settings
from ..store.errors import DB_ERRORS_OR_TIMEOUT
from ..store.migrations import migrate
from ..wiring import open_pool
from .apply import ProvisionError

LOGIN_WITHIN = 10.0  # seconds to log in to AMI


async def apply_now(settings: Settings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """0: Asterisk runs the directory; 1: it does not (why on stderr)."""
    from . import Provisioning

    a = settings.asterisk
    ingest = AmiIngest(
        a.host,
        a.port,
        a.username,
        a.secret or "",
        ping_interval=a.ping_interval,
        ping_timeout=a.ping_timeout,
        wants=lambda _name, _text: False,  # no events wanted: answers to actions only
    )
    pool = await open_pool(settings, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await ingest.start()
        try:
            async with asyncio.timeout(LOGIN_WITHIN):
                await ingest.logged_in.wait()
        except TimeoutError:
            pass
        provisioning = Provisioning(settings, pool, lambda: ingest if ingest.connected else None)
        synced = await provisioning.runtime.sync()
        result = await provisioning.apply("crm-bridge apply")
    except ProvisionError as exc:
        print(f"crm-bridge apply: {exc.message}", file=err)
        return 1
    except DB_ERRORS_OR_TIMEOUT as exc:
        print(f"crm-bridge apply: database error: {type(exc).__name__}: {exc}", file=err)
        return 1
    finally:
        await ingest.stop()
        await pool.close()
    for warning in result.warnings:
        print(f"crm-bridge apply: warning: {warning}", file=err)
    if not synced.applied:
        print(f"crm-bridge apply: AstDB: {synced.message}", file=err)
    if not result.applied:
        print(f"crm-bridge apply: {result.message}", file=err)
        return 1
    written = ", ".join(result.files) if result.files else "no file changed"
    print(f"{result.status}: {result.message} ({written})", file=out)
    return 0 if synced.applied else 1
