"""The Asterisk side of FastAGI, and a CRM, for tests and the benchmark.

- :func:`dialplan_agi` reads ``config/asterisk/crm_bridge_dialplan.conf`` and finds the
  ``AGI()`` line of a context, so the environment the tests send is the one Asterisk
  sends for that very line (context, extension, priority, URL, arguments).
- :func:`asterisk_env` builds that environment in res_agi.c's order: ``agi_network``,
  ``agi_network_script``, then ``setup_env()``'s keys, then ``agi_arg_N``, a blank line.
- :func:`agi_call` plays the channel: sends the environment, answers ``GET VARIABLE`` /
  ``SET VARIABLE`` as Asterisk does (``200 result=1 (value)``, ``200 result=0``), can hang
  up (``HANGUP``, then close, or stay in dead mode) and times the whole conversation.
- :class:`FakeCrm` is a real aiohttp server answering ``contact`` and recording requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
DIALPLAN = REPO / "config" / "asterisk" / "crm_bridge_dialplan.conf"

# --------------------------------------------------------------------------- dialplan


@dataclass(frozen=True)
class DialplanAgi:
    """One ``AGI(url,args...)`` line of the sample dialplan, where Asterisk would run it."""

    context: str
    extension: str
    priority: int
    url: str
    args: tuple[str, ...]

    @property
    def script(self) -> str:
        """What res_agi sends as ``agi_network_script``: the URL after ``host[:port]/``."""
        return self.url.split("://", 1)[1].partition("/")[2]


def _split_top(text: str) -> list[str]:
    """Split application arguments on commas outside ``${...}``, ``$[...]`` and ``(...)``."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def dialplan_agi(context: str, path: Path = DIALPLAN) -> DialplanAgi:
    """The (first) AGI() line of ``context``, with its priority counted like Asterisk does."""
    current, exten, priority = "", "", 0
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if header := re.fullmatch(r"\[([^\]]+)\]", line):
            current, exten, priority = header[1], "", 0
            continue
        match = re.fullmatch(r"(exten|same)\s*=>\s*(.*)", line)
        if match is None or current != context:
            continue
        rest = match[2]
        if match[1] == "exten":
            exten, rest = rest.split(",", 1)
        prio, app = rest.split(",", 1)
        prio = prio.split("(", 1)[0].strip()
        priority = priority + 1 if prio == "n" else int(prio)
        if app.startswith("AGI("):
            url, *args = _split_top(app[len("AGI(") : app.rindex(")")])
            return DialplanAgi(context, exten, priority, url, tuple(args))
    raise LookupError(f"no AGI() line in [{context}] of {path}")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """``${NAME}`` -> its value (empty when unset), as Asterisk substitutes plain variables."""
    return re.sub(r"\$\{([A-Za-z0-9_()]+)\}", lambda m: variables.get(m[1], ""), text)


def asterisk_env(
    line: DialplanAgi,
    *,
    variables: Mapping[str, str],
    channel: str = "PJSIP/trunk-00000007",
    uniqueid: str = "1763805600.12",
    callerid: str = "89101234567",
    calleridname: str = "unknown",
    dnid: str = "74957654321",
) -> list[tuple[str, str]]:
    """The environment res_agi.c sends for ``line`` (launch_netscript + setup_env)."""
    env = [
        ("agi_network", "yes"),
        ("agi_network_script", line.script),
        ("agi_request", line.url),
        ("agi_channel", channel),
        ("agi_language", "en"),
        ("agi_type", channel.split("/", 1)[0]),
        ("agi_uniqueid", uniqueid),
        ("agi_version", "22.1.0"),
        ("agi_callerid", callerid),
        ("agi_calleridname", calleridname),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", dnid),
        ("agi_rdnis", "unknown"),
        ("agi_context", line.context),
        ("agi_extension", line.extension),
        ("agi_priority", str(line.priority)),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "140153872373440"),
    ]
    env += [(f"agi_arg_{n}", expand(arg, variables)) for n, arg in enumerate(line.args, 1)]
    return env


def encode_env(env: list[tuple[str, str]]) -> bytes:
    return "".join(f"{key}: {value}\n" for key, value in env).encode() + b"\n"


# --------------------------------------------------------------------------- the channel


def parse_args(command: str) -> list[str]:
    """res_agi.c ``parse_args``: whitespace splits, ``"`` groups, ``\\`` escapes one char."""
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in command:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                argv.append("".join(cur))
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
        cur.append(ch)
        escaped = False
    if cur is not None:
        argv.append("".join(cur))
    return argv


@dataclass
class AgiCall:
    """What happened on the channel side of one FastAGI conversation."""

    commands: list[str] = field(default_factory=list)
    set_vars: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # connect -> the server closed (or we did, after a hang-up)
    closed_by_server: bool = False


async def agi_call(
    port: int,
    env: list[tuple[str, str]] | bytes,
    *,
    variables: Mapping[str, str] | None = None,
    hangup_after: float | None = None,
    exit_on_hangup: bool = True,
    on_command: Callable[[str], str | None] | None = None,
    limit: float = 10.0,
) -> AgiCall:
    """Play Asterisk's side of one FastAGI conversation against ``127.0.0.1:port``.

    ``variables`` answer ``GET VARIABLE``; ``on_command`` may return a raw reply (one or
    more lines) to override the default answer. ``hangup_after`` seconds after the
    environment, send ``HANGUP`` and close (``exit_on_hangup``) or keep answering as a
    dead channel. Returns when the server closes the connection.
    """
    values = dict(variables or {})
    call = AgiCall()
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env if isinstance(env, bytes) else encode_env(env))
    await writer.drain()
    hangup_at = None if hangup_after is None else started + hangup_after
    dead = False
    try:
        while (left := limit - (time.perf_counter() - started)) > 0:
            wait = left  # a silent server fails the call at `limit` too
            if hangup_at is not None and not dead:
                wait = min(left, max(0.0, hangup_at - time.perf_counter()))
            try:
                async with asyncio.timeout(wait):
                    raw = await reader.readline()
            except TimeoutError:
                if hangup_at is None or dead or time.perf_counter() < hangup_at:
                    continue  # the limit: the loop's condition says so
                writer.write(b"HANGUP\n")
                await writer.drain()
                dead = True
                if exit_on_hangup:
                    call.seconds = time.perf_counter() - started
                    return call
                continue
            if not raw:
                call.closed_by_server = True
                call.seconds = time.perf_counter() - started
                return call
            command = raw.decode().rstrip("\n")
            call.commands.append(command)
            reply = on_command(command) if on_command else None
            if reply is None:
                reply = _answer(command, values, call)
            writer.write(reply.encode())
            await writer.drain()
        raise AssertionError(f"server kept the connection open for {limit} s")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def give_rating(port: int, callid: str, digit: str, limit: float = 10.0) -> AgiCall:
    """The shipped dialplan's survey for call ``callid`` (employee 1001): its rating AGI()
    line, as Asterisk runs it after ``Read()``."""
    env = asterisk_env(
        dialplan_agi("crm-bridge-rating"),
        variables={
            "CRM_RATING": digit,
            "DIALEDPEERNAME": "PJSIP/1001-00000001",
            "CHANNEL(linkedid)": callid,
        },
    )
    return await agi_call(port, env, limit=limit)


def _answer(command: str, values: dict[str, str], call: AgiCall) -> str:
    argv = parse_args(command)
    words = [a.upper() for a in argv[:2]]
    if words == ["GET", "VARIABLE"] and len(argv) == 3:
        value = values.get(argv[2])
        return "200 result=0\n" if value is None else f"200 result=1 ({value})\n"
    if words == ["SET", "VARIABLE"] and len(argv) == 4:
        values[argv[2]] = argv[3]
        call.set_vars[argv[2]] = argv[3]
        return "200 result=1\n"
    return "510 Invalid or unknown command\n"


async def raw_exchange(port: int, data: bytes, limit: float = 10.0) -> tuple[bytes, float]:
    """Send raw bytes, read until the server closes; (what it sent, seconds it took)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    received = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return received, time.perf_counter() - started


# --------------------------------------------------------------------------- the CRM


@dataclass
class CrmRequest:
    fields: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float


class FakeCrm:
    """A CRM webhook receiver on a real port: ``contacts`` maps a phone to the raw answer.

    ``delay`` holds every answer that long (a slow CRM); ``status`` answers that code,
    after the codes queued in ``statuses`` (one per request) are used up. Requests are
    recorded when they arrive (``requests``); ``answered`` counts the answers sent.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.contacts: dict[str, str] = {}
        self.default = "{}"
        self.delay = 0.0
        self.status = 200
        self.statuses: list[int] = []
        self.requests: list[CrmRequest] = []
        self.answered = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pbx/webhook"

    def of(self, cmd: str) -> list[CrmRequest]:
        return [r for r in self.requests if r.fields.get("cmd") == cmd]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_type == "application/json":
            fields = {k: str(v) for k, v in json.loads(body).items()}
        else:
            fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.requests.append(CrmRequest(fields, dict(request.headers), body, time.perf_counter()))
        if self.delay:
            await asyncio.sleep(self.delay)
        self.answered += 1
        status = self.statuses.pop(0) if self.statuses else self.status
        if fields.get("cmd") != "contact":
            return web.Response(status=status, text="")
        answer = self.contacts.get(fields.get("phone", ""), self.default)
        return web.Response(status=status, text=answer, content_type="application/json")

    async def start(self) -> FakeCrm:
        app = web.Application()
        app.router.add_post("/pbx/webhook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
