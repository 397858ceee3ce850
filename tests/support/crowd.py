"""An attacker in a process of its own: ``python -m tests.support.crowd PORT N``.

Opens N idle TCP connections to 127.0.0.1:PORT, prints ``{"event": "opened", ...}``, then
reconnects every connection the server closes (a crowd that stays N strong) until SIGTERM,
and prints ``{"event": "stopped", "reconnects": ...}``. Its own event loop and file
descriptors: the test that measures the server beside it is not slowed by the crowd.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from tests.support.hostile import IdleCrowd, open_files_limit


async def main(port: int, n: int) -> None:
    crowd = IdleCrowd()
    started = time.perf_counter()
    await crowd.open(port, n, limit=20)
    opened = time.perf_counter() - started
    await asyncio.sleep(0.2)  # what the server closes at once (making room) shows up
    event = {"event": "opened", "seconds": opened, "closed_by_server": crowd.closed_by_server()}
    print(json.dumps(event), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    reconnects = await crowd.keep_up(port, stop)
    crowd.close()
    print(json.dumps({"event": "stopped", "reconnects": reconnects}), flush=True)


if __name__ == "__main__":
    with open_files_limit(4 * int(sys.argv[2]) + 100):
        asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
