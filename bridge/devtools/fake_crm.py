"""A real CRM webhook receiver (aiohttp) for the tests and the demo.

Why: delivery has to be proven against a receiver that behaves like real CRMs do: it parses
the form body (or JSON), checks the token and the Standard Webhooks signature, answers 400
to unknown fields like the 2017 strict receivers, and can fail, hang, answer 410/429/500 or
vanish from the network (the port refuses). A mocked client session cannot do the last ones.

Faults, first match wins: ``fail_next`` (a countdown), then the mode of the command, then
the global mode; with no fault the receiver checks token, signature and fields and answers
200 (``contact``: ``contact_answer``). ``delay`` applies to every answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Self

from aiohttp import web

from bridge.crm import profiles, signing

__all__ = ["LEGACY_FIELDS", "FakeCrm", "Histories", "Mode", "Received"]

# What the VPBX 2017 receivers know: per command, the fields of the spec minus the newer
# ones (no `rating` command at all). Anything else gets a 400.
LEGACY_FIELDS: dict[str, frozenset[str]] = {
    cmd: frozenset(names) - profiles.LEGACY_LEFT_OUT.get(cmd, frozenset())
    for cmd, names in profiles.FIELDS.items()
    if profiles.sends("vpbx-legacy", cmd)
}

Mode = Literal["ok", "hang"] | tuple[Literal["status"], int]
HUNG = 0  # status_answered of a request that never got an answer


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the CRM saw it."""

    at: float  # time.time() on arrival
    cmd: str
    fields: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes
    status_answered: int  # what the CRM decided to answer (after any delay); 0: hung

    @property
    def accepted(self) -> bool:
        return 200 <= self.status_answered < 300

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


@dataclass(frozen=True, slots=True)
class Histories:
    unique: list[Received]  # accepted, one per webhook-id (callid when unsigned), first wins
    raw: list[Received]  # every history request in arrival order: failures, repeats


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int  # HUNG: never answer
    retry_after: str | None = None


class _Reject(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


class FakeCrm:
    """``async with FakeCrm(token="t") as crm: post to crm.url``; see the module doc."""

    def __init__(
        self,
        *,
        token: str | None = None,
        strict: bool = False,
        signing_secret: str | None = None,
        signature_tolerance: float | None = 300.0,
        contact_answer: dict[str, object] | str | None = None,
        print_payloads: bool = False,
    ) -> None:
        self.token = token  # None: no check; else crm_token (body) or X-CRM-Token must match
        self.strict = strict  # a vpbx-legacy receiver: 400 to fields not in LEGACY_FIELDS
        self.signing_secret = signing_secret  # None: signatures are not checked
        # Standard Webhooks receivers refuse stale timestamps: a retry must be signed anew.
        self.signature_tolerance = signature_tolerance
        self.contact_answer: dict[str, object] | str = contact_answer or {}  # str: raw body
        self.print_payloads = print_payloads
        self.received: list[Received] = []
        self._fail_next: list[tuple[str | None, _Fault, list[int]]] = []
        self._modes: dict[str | None, _Fault | None] = {}
        self._delays: dict[str | None, float] = {}
        self._ratio, self._ratio_fault = 0.0, _Fault(503)  # see fail_ratio
        self._random = random.Random(1)
        self._released = asyncio.Event()
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the URL to post to (any path is accepted)."""
        self._host, self._port = host, port
        await self.come_back()
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}/crm"

    async def stop(self) -> None:
        await self.go_away()

    async def go_away(self) -> None:
        """The CRM host vanishes: the port refuses, open connections drop, hung requests
        are cut without an answer."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def come_back(self) -> None:
        """Listen again, on the same port as before."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # A short shutdown timeout: go_away() must cut in-flight requests, not wait for them.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- behaviour controls (cmd=None: every command) -------------------------------------

    def fail_next(
        self, n: int, status: int = 500, retry_after: str | None = None, cmd: str | None = None
    ) -> None:
        """The next ``n`` requests (of ``cmd``) answer ``status`` (with ``Retry-After``)."""
        self._fail_next.append((cmd, _Fault(status, retry_after), [n]))

    def set_mode(self, mode: Mode, cmd: str | None = None, retry_after: str | None = None) -> None:
        """``"ok"``, ``"hang"`` or ``("status", 410)``: how every later request is answered."""
        if mode == "ok":
            self._modes[cmd] = None
        elif mode == "hang":
            self._modes[cmd] = _Fault(HUNG)
        elif isinstance(mode, tuple) and mode[0] == "status" and 100 <= mode[1] <= 599:
            self._modes[cmd] = _Fault(mode[1], retry_after)
        else:
            raise ValueError(f"unknown mode {mode!r}")

    def hang(self, cmd: str | None = None) -> None:
        """Requests are read and recorded, never answered (until ``release`` or go_away)."""
        self.set_mode("hang", cmd)

    def release(self) -> None:
        """End every hang: hung requests are dropped unanswered, later ones answered again."""
        self._modes = {c: f for c, f in self._modes.items() if f is None or f.status != HUNG}
        self._released.set()
        self._released = asyncio.Event()

    def delay(self, seconds: float, cmd: str | None = None) -> None:
        """Answer (whatever the answer) only after ``seconds``: a slow CRM."""
        self._delays[cmd] = seconds

    def reset(self) -> None:
        """Back to a healthy CRM (the records stay)."""
        self.release()
        self._fail_next.clear()
        self._modes.clear()
        self._delays.clear()

    # --- what was received --------------------------------------------------------------

    def requests(self, cmd: str | None = None, *, accepted: bool = False) -> list[Received]:
        return [
            r
            for r in self.received
            if (cmd is None or r.cmd == cmd) and (r.accepted or not accepted)
        ]

    def history(self) -> Histories:
        raw = self.requests("history")
        seen: set[str] = set()
        unique = []
        for r in raw:
            key = r.webhook_id or r.fields.get("callid", "")
            if r.accepted and key not in seen:
                seen.add(key)
                unique.append(r)
        return Histories(unique, raw)

    def events_by_call(self) -> dict[str, list[Received]]:
        """Accepted events per callid in arrival order, repeats (same webhook-id) dropped."""
        out: dict[str, list[Received]] = {}
        seen: set[str] = set()
        for r in self.requests("event", accepted=True):
            if r.webhook_id is not None:
                if r.webhook_id in seen:
                    continue
                seen.add(r.webhook_id)
            out.setdefault(r.fields.get("callid", ""), []).append(r)
        return out

    # A timeout parameter on purpose (ASYNC109): a waiting test must never wait forever, and
    # its failure should say what did arrive.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Until ``predicate()`` holds, checked after every request; TimeoutError otherwise."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._arrived.wait()
        except TimeoutError:
            raise TimeoutError(
                f"fake CRM: condition not met after {timeout} s; received "
                f"{[(r.cmd, r.status_answered) for r in self.received]}"
            ) from None

    async def wait_count(
        self,
        cmd: str,
        n: int,
        *,
        accepted: bool = True,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[Received]:
        """Until ``n`` requests of ``cmd`` (by default: answered 2xx) have arrived."""
        await self.wait_for(lambda: len(self.requests(cmd, accepted=accepted)) >= n, timeout)
        return self.requests(cmd, accepted=accepted)

    # --- the receiver -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        fields: dict[str, str] = {}
        try:
            fields = await self._parse(request, body)
            fault = self._fault_for(fields.get("cmd", ""))
            if fault is None:
                self._check(fields, headers, body)
        except _Reject as reject:
            fault, answer = _Fault(reject.status), reject.text
        else:
            answer = self._answer(fields.get("cmd", "")) if fault is None else "injected fault"
        cmd = fields.get("cmd", "")
        status = 200 if fault is None else fault.status
        self._record(Received(time.time(), cmd, fields, headers, body, status))
        seconds = self._delays.get(cmd, self._delays.get(None, 0.0))
        if seconds > 0:
            await asyncio.sleep(seconds)
        if status == HUNG:
            await self._released.wait()
            if request.transport is not None:
                request.transport.abort()  # cut without an answer
            return web.Response(status=503)  # never written: the connection is gone
        retry_after = fault.retry_after if fault is not None else None
        return web.Response(
            status=status,
            text=answer,
            content_type="application/json" if status == 200 else "text/plain",
            headers={"Retry-After": retry_after} if retry_after else None,
        )

    async def _parse(self, request: web.Request, body: bytes) -> dict[str, str]:
        """Like the receivers: a form (PHP's ``$_POST``) or a JSON object; values as text."""
        if request.content_type == "application/x-www-form-urlencoded":
            fields: dict[str, str] = {}
            for name, value in (await request.post()).items():
                fields.setdefault(name, str(value))
            return fields
        if request.content_type == "application/json":
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise _Reject(400, f"bad JSON: {exc}") from None
            if not isinstance(data, dict):
                raise _Reject(400, "the JSON body is not an object")
            return {str(k): "" if v is None else str(v) for k, v in data.items()}
        raise _Reject(415, f"unsupported content type {request.content_type!r}")

    def fail_ratio(self, ratio: float, status: int = 503, seed: int = 1) -> None:
        """Answer ``status`` to a random ``ratio`` of requests (a flaky CRM, for benchmarks)."""
        self._ratio, self._ratio_fault = ratio, _Fault(status)
        self._random = random.Random(seed)

    def _fault_for(self, cmd: str) -> _Fault | None:
        if self._ratio and self._random.random() < self._ratio:
            return self._ratio_fault
        for i, (only, fault, left) in enumerate(self._fail_next):
            if only is None or only == cmd:
                left[0] -= 1
                if left[0] <= 0:
                    del self._fail_next[i]
                return fault
        return self._modes.get(cmd, self._modes.get(None))

    def _check(self, fields: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        if self.token is not None and self.token not in (
            fields.get("crm_token"),
            headers.get("x-crm-token"),
        ):
            raise _Reject(401, "bad or missing crm_token")
        if self.signing_secret is not None:
            if not signing.verify(self.signing_secret, headers, body):
                raise _Reject(401, "bad or missing webhook signature")
            sent_at = float(headers["webhook-timestamp"])
            if self.signature_tolerance is not None:
                if abs(time.time() - sent_at) > self.signature_tolerance:
                    raise _Reject(401, "webhook-timestamp too old or too new")
        if self.strict:
            cmd = fields.get("cmd", "")
            if cmd not in LEGACY_FIELDS:
                raise _Reject(400, f"unknown cmd {cmd!r}")
            unknown = sorted(set(fields) - LEGACY_FIELDS[cmd])
            if unknown:
                raise _Reject(400, f"unknown field(s) for {cmd}: {', '.join(unknown)}")

    def _answer(self, cmd: str) -> str:
        if cmd != "contact":
            return "{}"
        if isinstance(self.contact_answer, str):
            return self.contact_answer
        return json.dumps(self.contact_answer, ensure_ascii=False)

    def _record(self, r: Received) -> None:
        self.received.append(r)
        self._arrived.set()
        self._arrived = asyncio.Event()
        if self.print_payloads:
            shown = {k: v for k, v in r.fields.items() if k != "crm_token"}
            line = {"answered": r.status_answered, **shown}
            if r.webhook_id:
                line["webhook_id"] = r.webhook_id
            print(json.dumps(line, ensure_ascii=False), file=sys.stdout, flush=True)
