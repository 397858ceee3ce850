"""FastAGI over real TCP: a channel speaking res_agi's protocol, a real aiohttp CRM.

The environment every test sends is built from the AGI() lines of the sample dialplan
(config/asterisk/crm_bridge_dialplan.conf), so the dialplan and the server cannot drift.
Times are asserted with a clock: a slow or dead CRM must never hold a ringing call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bridge.agi import (
    AgiCollector,
    AgiServer,
    BufferedRatingSink,
    KnownCall,
    start_agi_server,
)
from bridge.agi.latency import ROUND_TRIP_BUCKETS
from bridge.agi.metrics import ROUND_TRIP_METRIC
from bridge.config import Settings
from bridge.crm.outbox_rows import OutboxRows
from bridge.crm.signing import verify
from bridge.delivery.rating import OutboxRatingSink, call_in_store
from bridge.devtools.local_postgres import LocalPostgres
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from bridge.store.targets import ensure_primary_target
from tests.support.agi_client import (
    AgiCall,
    DialplanAgi,
    FakeCrm,
    agi_call,
    asterisk_env,
    dialplan_agi,
    encode_env,
    raw_exchange,
)
from tests.support.ports import free_port

CALLER = "89101234567"  # what the carrier sends; the CRM gets 79101234567
PHONE = "79101234567"
DID = "74957654321"
UNIQUEID = "1763805600.14"  # this channel
LINKEDID = "1763805600.12"  # the call (a queue's Local channel is not the call's first)
TOKEN = "t0k"
USERS = {"101": "ivan", "102": "maria"}


class RecordingSink:
    """A RatingSink that remembers what it got (optionally slowly, like a busy database)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.ratings: list[tuple[str, int, str, str]] = []
        self.unverified: list[tuple[str, int, str, str]] = []

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        await asyncio.sleep(self.delay)
        (self.ratings if verified else self.unverified).append((callid, rating, phone, ext))


class KnownCalls:
    """The daemon's `known`: these call ids; None for all while `down` (Postgres away)."""

    def __init__(self, *ids: str, down: bool = False, delay: float = 0.0) -> None:
        self.ids = set(ids)
        self.down = down
        self.delay = delay
        self.asked: list[str] = []

    async def __call__(self, callid: str) -> bool | None:
        self.asked.append(callid)
        await asyncio.sleep(self.delay)
        return None if self.down else callid in self.ids


def settings_for(
    crm_url: str | None, *, crm: dict[str, Any] | None = None, agi: dict[str, Any] | None = None
) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"region": "RU", "users": USERS},
            "crm": {"url": crm_url, "token": TOKEN, "contact_timeout": 0.5, **(crm or {})},
            "agi": {
                "listen": f"127.0.0.1:{free_port()}",
                "breaker_failures": 3,
                "breaker_reset": 0.5,
                **(agi or {}),
            },
        }
    )


@pytest.fixture
async def crm() -> AsyncIterator[FakeCrm]:
    server = await FakeCrm().start()
    yield server
    await server.stop()


@asynccontextmanager
async def serving(
    settings: Settings, sink: Any = None, known: KnownCall | None = None
) -> AsyncIterator[AgiServer]:
    server = await start_agi_server(
        settings,
        sink if sink is not None else RecordingSink(),
        known=KnownCalls(LINKEDID) if known is None else known,
    )
    try:
        yield server
    finally:
        await server.close()


CHANNEL = {"CHANNEL(linkedid)": LINKEDID}  # what GET VARIABLE / ${...} read on the channel


def contact_env(
    callerid: str = CALLER, did: str = DID, linkedid: str = LINKEDID
) -> list[tuple[str, str]]:
    """What Asterisk sends for `Gosub(crm-bridge-contact,s,1(${EXTEN}))` on an inbound call."""
    return asterisk_env(
        dialplan_agi("crm-bridge-contact"),
        variables={"ARG1": did, "CHANNEL(linkedid)": linkedid},
        callerid=callerid,
        uniqueid=UNIQUEID,
    )


# An admin's own one-liner in the inbound context: `AGI(agi://127.0.0.1:4573/contact)`,
# no arguments, so the bridge asks the channel for the linkedid.
BARE = DialplanAgi("from-trunk", DID, 2, "agi://127.0.0.1:4573/contact", ())


def bare_env() -> list[tuple[str, str]]:
    return asterisk_env(BARE, variables={}, uniqueid=UNIQUEID)


def rating_env(
    digit: str, peer: str = "PJSIP/101-0000002a", linkedid: str = LINKEDID
) -> list[tuple[str, str]]:
    """What Asterisk sends for the AGI() line of [crm-bridge-rating] after `Read()`."""
    return asterisk_env(
        dialplan_agi("crm-bridge-rating"),
        variables={"CRM_RATING": digit, "DIALEDPEERNAME": peer, "CHANNEL(linkedid)": linkedid},
        uniqueid=UNIQUEID,
    )


async def call_contact(server: AgiServer, **kw: Any) -> AgiCall:
    env = kw.pop("env", None) or contact_env()
    return await agi_call(server.port, env, variables=kw.pop("variables", CHANNEL), **kw)


async def until(predicate: Callable[[], bool], limit: float = 3.0) -> None:
    deadline = time.perf_counter() + limit
    while not predicate():
        if time.perf_counter() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- contact


def test_the_environment_is_the_sample_dialplans() -> None:
    line = dialplan_agi("crm-bridge-contact")
    assert (line.url, line.extension, line.priority) == ("agi://127.0.0.1:4573/contact", "s", 3)
    env = dict(contact_env())
    assert env["agi_network_script"] == "contact"
    assert env["agi_request"] == "agi://127.0.0.1:4573/contact"
    assert (env["agi_context"], env["agi_arg_1"], env["agi_arg_2"]) == (
        "crm-bridge-contact",
        DID,
        LINKEDID,
    )
    rating = dialplan_agi("crm-bridge-rating")
    assert rating.args == ("${CRM_RATING}", "${DIALEDPEERNAME}", "${CHANNEL(linkedid)}")


async def test_name_and_responsible_are_set(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = json.dumps({"contact_name": 'Иван Петров "VIP"', "responsible": "ivan"})
    settings = settings_for(crm.url, crm={"signing_secret": "whsec_c2VjcmV0"})
    with capture_logs() as logs:
        async with serving(settings) as server:
            call = await call_contact(server)
    (line,) = [entry for entry in logs if entry["event"] == "agi_contact"]
    assert (line["callid"], line["source"], line["ext"]) == (LINKEDID, "crm", "101")

    assert call.closed_by_server
    assert not [c for c in call.commands if c.startswith("GET")]  # the dialplan passed it all
    assert call.set_vars == {
        "CALLERID(name)": 'Иван Петров "VIP"',
        "CRM_CONTACT_NAME": 'Иван Петров "VIP"',
        "CRM_RESPONSIBLE": "101",
    }
    (request,) = crm.of("contact")
    assert request.fields == {
        "cmd": "contact",
        "crm_token": TOKEN,
        "phone": PHONE,
        "callid": LINKEDID,
        "diversion": DID,
    }
    assert request.headers["X-CRM-Token"] == TOKEN
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verify("whsec_c2VjcmV0", request.headers, request.body)


async def test_the_calls_log_line_is_written_after_the_socket_closed(crm: FakeCrm) -> None:
    """The dialplan does not wait for the log line: it is rendered once the call is let go."""
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    closed_before: dict[str, int] = {}

    def closed_connections(
        logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # The server counts a round trip in its histogram when the socket is closed.
        if event["event"] in ("agi_contact", "agi_rating"):
            closed_before[event["event"]] = sum(h.count for h in server.latency.values())
        return event

    with capture_logs(processors=[closed_connections]) as logs:
        async with serving(settings_for(crm.url)) as server:
            await call_contact(server)
            await agi_call(server.port, rating_env("5"))
    assert closed_before["agi_contact"] == 1 and closed_before["agi_rating"] == 2
    assert [e["event"] for e in logs if e["event"].startswith("agi_")] == [
        "agi_listening",
        "agi_contact",
        "agi_rating",
        "agi_closed",
    ]


@pytest.mark.parametrize(
    ("profile", "content_type", "fields"),
    [
        ("json", "application/json", {"cmd", "crm_token", "phone", "callid", "diversion"}),
        (
            "vpbx-legacy",
            "application/x-www-form-urlencoded",
            {"cmd", "crm_token", "phone", "callid"},
        ),  # strict 2017 receivers: no diversion
    ],
)
async def test_contact_request_follows_the_profile(
    crm: FakeCrm, profile: str, content_type: str, fields: set[str]
) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    async with serving(settings_for(crm.url, crm={"profile": profile})) as server:
        call = await call_contact(server)
    assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"
    (request,) = crm.of("contact")
    assert request.headers["Content-Type"] == content_type
    assert set(request.fields) == fields and request.fields["phone"] == PHONE


async def test_without_arguments_the_call_id_is_asked_for(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server, env=bare_env())
    assert call.commands[0] == "GET VARIABLE CHANNEL(linkedid)"
    assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"
    (request,) = crm.of("contact")
    assert (request.fields["callid"], request.fields["diversion"]) == (LINKEDID, DID)  # agi_dnid


@pytest.mark.parametrize(
    ("responsible", "expected"),
    [
        ("102", "102"),
        ("MARIA", "102"),
        ("nobody", None),
        ("", None),
        ("999", None),
        ("101; EXEC System(rm -rf /)", None),
    ],
)
async def test_responsible_is_resolved_through_the_directory(
    crm: FakeCrm, responsible: str, expected: str | None
) -> None:
    crm.contacts[PHONE] = json.dumps({"contact_name": "Ivan", "responsible": responsible})
    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server)
    assert call.set_vars.get("CRM_RESPONSIBLE") == expected
    assert call.set_vars["CALLERID(name)"] == "Ivan"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("{}", {}),
        ('{"ok": true}', {}),
        (
            "{contact_name: 'Ivan', responsible: 101,}",
            {"CALLERID(name)": "Ivan", "CRM_CONTACT_NAME": "Ivan", "CRM_RESPONSIBLE": "101"},
        ),
        ('{contact_name: "Ivan"}', {"CALLERID(name)": "Ivan", "CRM_CONTACT_NAME": "Ivan"}),
        ('{"contact_name": ""}', {}),
        ("<html>502 Bad Gateway</html>", {}),
        (
            '{"contact_name": "Ivan\\nSET VARIABLE X 1"}',
            {
                "CALLERID(name)": "Ivan SET VARIABLE X 1",
                "CRM_CONTACT_NAME": "Ivan SET VARIABLE X 1",
            },
        ),
    ],
)
async def test_answers_are_read_leniently(crm: FakeCrm, answer: str, expected: dict) -> None:
    crm.contacts[PHONE] = answer
    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server)
    assert call.set_vars == expected
    # One command per line, whatever the CRM wrote: nothing smuggled onto the socket.
    assert all(c.startswith(("GET VARIABLE ", "SET VARIABLE ")) for c in call.commands)
    assert len(crm.of("contact")) == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"contact_name": "Broken, <html> {{{', "not JSON, even leniently: unterminated string"),
        ('{"contact_name": "Ivan", "responsible": "101"', "not JSON, even leniently"),
        ("<html>" + "x" * 70_000, "read limit"),  # cut at the 64 KiB the bridge reads
        ('{"contact_name": "<b>Ivan</b>"}', "contact_name contains markup characters"),
    ],
)
async def test_rejected_answers_set_nothing_and_say_why(
    crm: FakeCrm, answer: str, reason: str
) -> None:
    crm.contacts[PHONE] = answer
    with capture_logs() as logs:
        async with serving(settings_for(crm.url)) as server:
            call = await call_contact(server)
            again = await call_contact(server)  # cached as "no contact": not asked again
            stats = server.stats()
    assert call.closed_by_server and call.set_vars == {} and again.set_vars == {}
    assert len(crm.of("contact")) == 1
    assert stats["crm_contact_rejected_answers"] == 1
    (line,) = [e for e in logs if e["event"] == "crm_contact_answer_rejected"]
    assert reason in line["reason"]
    assert (line["callid"], line["phone"], line["log_level"]) == (LINKEDID, PHONE, "warning")
    assert line["start"] == answer[:60] and line["bytes"] == min(len(answer), 64 * 1024)


async def test_anonymous_caller_costs_no_crm_request(crm: FakeCrm) -> None:
    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server, env=contact_env(callerid="unknown"))
    assert call.closed_by_server and call.set_vars == {}
    assert crm.requests == []


async def test_slow_crm_never_holds_the_call_beyond_the_deadline(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Too Late"}'
    crm.delay = 5.0
    timeout = 0.5
    async with serving(settings_for(crm.url, crm={"contact_timeout": timeout})) as server:
        call = await call_contact(server)
        assert call.closed_by_server and call.set_vars == {}
        assert timeout - 0.05 <= call.seconds <= timeout + 0.4, call.seconds  # not 5 s
        assert len(crm.of("contact")) == 1  # it did ask, and gave up in time
        await until(lambda: server.stats()["crm_contact_crm_failures"] == 1)
        assert server.stats()["contact_timeout"] == 1


async def test_many_ringing_calls_wait_in_parallel(crm: FakeCrm) -> None:
    crm.delay = 0.2
    for n in range(40):
        crm.contacts[f"7910123{n:04d}"] = json.dumps({"contact_name": f"Customer {n}"})
    # a deadline with room for a loaded test machine: what is checked is parallelism
    async with serving(settings_for(crm.url, crm={"contact_timeout": 3.0})) as server:
        started = time.perf_counter()
        calls = await asyncio.gather(
            *(call_contact(server, env=contact_env(callerid=f"+7910123{n:04d}")) for n in range(40))
        )
        elapsed = time.perf_counter() - started
    assert [c.set_vars.get("CRM_CONTACT_NAME") for c in calls] == [
        f"Customer {n}" for n in range(40)
    ]
    assert elapsed < 2.5, elapsed  # 40 x 0.2 s = 8 s if the calls were serialised


async def test_dead_crm_opens_the_breaker_and_a_trial_closes_it() -> None:
    port = free_port()  # nothing listens there: connection refused, until revived below
    crm = FakeCrm(port)
    settings = settings_for(crm.url, agi={"breaker_failures": 3, "breaker_reset": 0.5})
    async with serving(settings) as server:
        for _ in range(3):
            call = await call_contact(server)
            assert call.set_vars == {} and call.seconds < 0.45  # refused, not timed out
        stats = server.stats()
        assert (stats["crm_contact_crm_requests"], stats["crm_contact_breaker_open"]) == (3, 1)

        for _ in range(2):  # open: nobody waits for a CRM known to be down
            call = await call_contact(server)
            assert call.set_vars == {} and call.seconds < 0.45
        stats = server.stats()
        assert stats["crm_contact_crm_requests"] == 3
        assert stats["crm_contact_breaker_skips"] == 2

        revived = FakeCrm(port)
        revived.contacts[PHONE] = '{"contact_name": "Back Again"}'
        await revived.start()
        try:
            await asyncio.sleep(0.55)  # breaker_reset: the next call is the trial
            call = await call_contact(server)
            assert call.set_vars["CRM_CONTACT_NAME"] == "Back Again"
            assert len(revived.of("contact")) == 1
            assert server.stats()["crm_contact_breaker_open"] == 0
        finally:
            await revived.stop()


async def test_cached_answer_is_served_at_once_and_refreshed_in_the_background(
    crm: FakeCrm,
) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    # cache_ttl 3 s: answers younger than a tenth of it (0.3 s) are served without asking
    # again; the margins are wide for a loaded test machine (a call takes milliseconds)
    settings = settings_for(crm.url, crm={"contact_timeout": 2.0}, agi={"cache_ttl": 3.0})
    async with serving(settings) as server:
        first = await call_contact(server)
        assert first.set_vars["CRM_CONTACT_NAME"] == "Ivan"
        fresh = await call_contact(server)
        assert fresh.set_vars["CRM_CONTACT_NAME"] == "Ivan" and len(crm.requests) == 1

        crm.contacts[PHONE] = '{"contact_name": "Ivan Petrov"}'
        crm.delay = 1.0  # the refresh is slow; the call must not notice
        await asyncio.sleep(0.4)  # older than refresh_after (0.3 s): stale, still served
        second = await call_contact(server, env=contact_env(linkedid="1763805700.1"))
        assert second.set_vars["CRM_CONTACT_NAME"] == "Ivan"
        assert second.seconds < 0.5, second.seconds  # the CRM takes 1 s

        await until(lambda: crm.answered == 2)
        refresh = crm.of("contact")[1]
        assert refresh.fields["callid"] == "1763805700.1"
        assert server.stats()["crm_contact_refreshes"] == 1
        await until(lambda: server.stats()["crm_contact_inflight"] == 0)  # answer cached
        crm.delay = 0.0
        third = await call_contact(server)
        assert third.set_vars["CRM_CONTACT_NAME"] == "Ivan Petrov"
        assert server.stats()["crm_contact_cache_hits"] == 3

        await asyncio.sleep(3.0)  # past cache_ttl: a miss again, asked and awaited
        crm.contacts[PHONE] = "{}"
        gone = await call_contact(server)
        assert gone.set_vars == {} and len(crm.requests) == 3


# --------------------------------------------------------------------------- hang-ups


async def test_hangup_while_waiting_for_the_crm_ends_the_session(crm: FakeCrm) -> None:
    crm.delay = 5.0
    async with serving(settings_for(crm.url, crm={"contact_timeout": 1.0})) as server:
        # Dead mode (Asterisk's default): HANGUP, then the socket stays open for us.
        call = await call_contact(server, hangup_after=0.1, exit_on_hangup=False)
        assert call.closed_by_server
        assert call.seconds < 0.5, call.seconds  # the CRM would take 5 s, the deadline is 1 s
        assert call.commands == []
        assert server.stats()["contact_hangup"] == 1

        # AGIEXITONHANGUP=yes: HANGUP and the socket closes under the server's feet.
        await call_contact(server, hangup_after=0.1, exit_on_hangup=True)
        await until(lambda: server.stats()["agi_hangups"] == 2)
        assert server.stats()["agi_errors"] == 0


async def test_hangup_before_the_reply_stops_further_commands(crm: FakeCrm) -> None:
    def hang_up_first(command: str) -> str:
        return f"HANGUP\n200 result=1 ({LINKEDID})\n"  # dead mode still answers

    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server, env=bare_env(), on_command=hang_up_first)
        assert call.closed_by_server and call.commands == ["GET VARIABLE CHANNEL(linkedid)"]
        assert call.seconds < 0.4  # the deadline is 0.5 s
        assert crm.requests == []  # nobody is left to show a name to


async def test_connection_dropped_mid_environment(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    async with serving(settings_for(crm.url)) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_env(contact_env())[:150])
        await writer.drain()
        writer.close()
        await until(lambda: server.stats()["agi_hangups"] == 1)
        call = await call_contact(server)  # and the server still serves
        assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"


# --------------------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: pbx\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
        b"agi_network: yes\n" + b"x" * 100_000,  # one endless line
        b"".join(b"agi_arg_%d: 1\n" % n for n in range(1, 400)) + b"\n",  # endless block
        b"\n",
    ],
    ids=["http", "tls", "long-line", "long-block", "empty-block"],
)
async def test_garbage_is_dropped_at_once(crm: FakeCrm, data: bytes) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    async with serving(settings_for(crm.url)) as server:
        sent, seconds = await raw_exchange(server.port, data)
        assert sent == b"" and seconds < 0.5
        assert server.stats()["agi_garbage"] == 1
        call = await call_contact(server)  # unharmed
        assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"
    assert crm.of("contact")[0].fields["phone"] == PHONE and len(crm.requests) == 1


async def test_garbage_reply_ends_the_session(crm: FakeCrm) -> None:
    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server, env=bare_env(), on_command=lambda c: "hello there\n")
        assert call.closed_by_server and call.seconds < 0.4
        assert server.stats()["agi_garbage"] == 1
        assert crm.requests == []


async def test_usage_reply_falls_back_to_the_uniqueid(crm: FakeCrm) -> None:
    usage = (
        "520-Invalid command syntax.  Proper usage follows:\n"
        "Usage: GET VARIABLE <variablename>\n"
        "520 End of proper usage.\n"
    )

    def reply(command: str) -> str | None:
        return usage if command.startswith("GET VARIABLE") else None

    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    async with serving(settings_for(crm.url)) as server:
        call = await call_contact(server, env=bare_env(), on_command=reply)
    assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"
    assert crm.of("contact")[0].fields["callid"] == UNIQUEID


async def test_unknown_route_and_silent_peer_are_closed(crm: FakeCrm) -> None:
    env = [(k, "billing" if k == "agi_network_script" else v) for k, v in contact_env()]
    settings = settings_for(crm.url, crm={"contact_timeout": 1.0})
    async with serving(settings) as server:
        call = await call_contact(server, env=env)
        # closed at once: not after contact_timeout, nor after the session's deadline
        assert call.closed_by_server and call.commands == [] and call.seconds < 0.9
        assert server.stats()["agi_unknown_route"] == 1

        sent, seconds = await raw_exchange(server.port, b"")  # connects, says nothing
        assert sent == b"" and 3.9 < seconds < 5.5  # contact_timeout + 3 s deadline
        assert server.stats()["agi_deadline_exceeded"] == 1
    assert crm.requests == []


async def test_close_ends_open_sessions(crm: FakeCrm) -> None:
    crm.delay = 5.0
    server = await start_agi_server(
        settings_for(crm.url, crm={"contact_timeout": 2.0}), RecordingSink()
    )
    call = asyncio.create_task(call_contact(server))
    await until(lambda: len(crm.requests) == 1)
    started = time.perf_counter()
    await server.close()
    assert time.perf_counter() - started < 0.5
    assert (await call).closed_by_server


async def test_a_taken_port_fails_start_up_loudly() -> None:
    settings = settings_for(None)
    async with serving(settings) as server:
        with pytest.raises(OSError):
            await start_agi_server(settings, RecordingSink())
        assert server.port == settings.agi.listen_port


# --------------------------------------------------------------------------- rating


async def test_rating_goes_to_the_sink_with_the_call_id() -> None:
    sink = RecordingSink()
    with capture_logs() as logs:
        async with serving(settings_for(None), sink) as server:
            call = await agi_call(server.port, rating_env("7"), variables=CHANNEL)
    assert call.closed_by_server and call.set_vars == {}
    assert [e["callid"] for e in logs if e["event"] == "agi_rating"] == [LINKEDID]
    assert sink.ratings == [(LINKEDID, 7, PHONE, "101")]


async def test_rating_digit_from_the_channel_variable() -> None:
    sink = RecordingSink()
    async with serving(settings_for(None), sink) as server:
        call = await agi_call(
            server.port, rating_env("", peer=""), variables={**CHANNEL, "CRM_RATING": "9"}
        )
    assert "GET VARIABLE CRM_RATING" in call.commands
    assert sink.ratings == [(LINKEDID, 9, PHONE, "")]


@pytest.mark.parametrize(
    "callid",
    [
        "1.1;DROP TABLE calls;--",
        "1763805600.12 OR 1=1",
        "'1763805600.12'",
        "1763805600",
        "abc",
        "1763805600.12\\",
        "x" * 200 + "-1763805600.12",
    ],
)
async def test_rating_for_a_malformed_call_id_goes_nowhere(callid: str) -> None:
    sink, known = RecordingSink(), KnownCalls(callid)
    with capture_logs() as logs:
        async with serving(settings_for(None), sink, known) as server:
            call = await agi_call(server.port, rating_env("5", linkedid=callid))
            stats = server.stats()
    assert call.closed_by_server
    assert (stats["rating_invalid_callid"], stats["rating_submitted"]) == (1, 0)
    assert known.asked == [] and sink.ratings == sink.unverified == []
    (line,) = [e for e in logs if e["event"] == "agi_rating_ignored"]
    assert line["reason"] == "not an Asterisk call id" and line["value"] == callid[:40]


@pytest.mark.parametrize("callid", ["1763805600.12", "pbx-1.example-1763805600.12"])
async def test_asterisk_call_ids_with_and_without_a_system_name(callid: str) -> None:
    sink = RecordingSink()
    async with serving(settings_for(None), sink, KnownCalls(callid)) as server:
        await agi_call(server.port, rating_env("5", linkedid=callid))
    assert sink.ratings == [(callid, 5, PHONE, "101")]


async def test_rating_for_a_call_the_bridge_does_not_know_goes_nowhere() -> None:
    sink, known = RecordingSink(), KnownCalls("1763805600.1")
    with capture_logs() as logs:
        async with serving(settings_for(None), sink, known) as server:
            call = await agi_call(server.port, rating_env("6"), variables=CHANNEL)
            stats = server.stats()
    assert call.closed_by_server and known.asked == [LINKEDID]
    assert sink.ratings == sink.unverified == []
    assert (stats["rating_unknown_call"], stats["rating_submitted"]) == (1, 0)
    (line,) = [e for e in logs if e["event"] == "agi_rating_ignored"]
    assert (line["callid"], line["reason"], line["rating"]) == (LINKEDID, "unknown call", 6)


@pytest.mark.parametrize(
    "known",
    [KnownCalls(LINKEDID, down=True), KnownCalls(LINKEDID, delay=5.0)],
    ids=["down", "slow"],
)
async def test_rating_the_bridge_cannot_check_goes_to_the_sink_unverified(
    known: KnownCalls,
) -> None:
    sink = RecordingSink()
    async with serving(settings_for(None), sink, known) as server:
        call = await agi_call(server.port, rating_env("3"), variables=CHANNEL)
        assert call.seconds < 0.7, call.seconds  # known_wait is 0.5 s
        assert server.stats()["rating_unverified"] == 1
    assert sink.unverified == [(LINKEDID, 3, PHONE, "101")] and sink.ratings == []


@pytest.mark.parametrize("digit", ["0", "10", "*", "x", " "])
async def test_invalid_ratings_are_ignored(digit: str) -> None:
    sink = RecordingSink()
    async with serving(settings_for(None), sink) as server:
        call = await agi_call(server.port, rating_env(digit), variables=CHANNEL)
        assert call.closed_by_server
        assert server.stats()["rating_invalid"] == 1
    assert sink.ratings == []


async def test_slow_sink_does_not_hold_the_channel() -> None:
    sink = RecordingSink(delay=1.5)
    async with serving(settings_for(None), sink) as server:
        call = await agi_call(server.port, rating_env("4"), variables=CHANNEL)
        assert 0.9 < call.seconds < 1.3, call.seconds  # the route's 1 s wait, no more
        assert sink.ratings == []
        await until(lambda: len(sink.ratings) == 1)
    assert sink.ratings == [(LINKEDID, 4, PHONE, "101")]


# --------------------------------------------------------------------------- rating, PostgreSQL

UNKNOWN_CALL = "1763805600.99"
RATING_ROWS = """
SELECT callid, dedupe_key, payload FROM webhook_outbox WHERE cmd = 'rating' ORDER BY id
"""


async def rating_store(dsn: str) -> tuple[asyncpg.Pool, BufferedRatingSink, KnownCall]:
    """The daemon's rating path: outbox sink behind the buffer, `known` = the calls table."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
        await ensure_primary_target(conn, "lab", "http://127.0.0.1:9/pbx", TOKEN, "vpbx", None)
        await conn.execute(
            "INSERT INTO calls (pbx_id, callid, born, direction, status, phone, ext, user_login, "
            "started_at) "
            "VALUES ('lab', $1, call_day($1), 'in', 'Success', $2, '101', 'ivan', now())",
            LINKEDID,
            PHONE,
        )
    store = CallStore(pool, "lab", OutboxRows("lab"))
    known = call_in_store(store)
    sink = BufferedRatingSink(OutboxRatingSink(store), known, retry_first=0.05, retry_max=0.3)
    return pool, sink, known


async def test_ratings_are_stored_and_queued_only_for_stored_calls(pg_dsn: str) -> None:
    pool, sink, known = await rating_store(pg_dsn)
    try:
        async with serving(settings_for(None), sink, known) as server:
            await agi_call(server.port, rating_env("7"))
            await agi_call(server.port, rating_env("7"))  # pressed twice: one webhook
            await agi_call(server.port, rating_env("6", linkedid=UNKNOWN_CALL))
            await agi_call(server.port, rating_env("5", linkedid="1.1;DROP TABLE calls;--"))
            stats = server.stats()
        await sink.close()
        rows = await pool.fetch(RATING_ROWS)
        assert await pool.fetchval("SELECT rating FROM calls WHERE callid = $1", LINKEDID) == 7
        assert await pool.fetchval("SELECT count(*) FROM calls") == 1
    finally:
        await pool.close()
    assert [(r["callid"], r["dedupe_key"]) for r in rows] == [(LINKEDID, "rating:7")]
    assert json.loads(rows[0]["payload"]) == {
        "cmd": "rating",
        "callid": LINKEDID,
        "rating": "7",
        "phone": PHONE,
        "user": "ivan",
        "ext": "101",
    }
    assert (stats["rating_submitted"], stats["rating_unknown_call"]) == (2, 1)
    assert (stats["rating_invalid_callid"], stats["rating_unverified"]) == (1, 0)
    assert stats["rating_sink_buffered"] == 0


async def test_without_a_known_the_outbox_sink_checks_the_store(pg_dsn: str) -> None:
    """The daemon's wiring before it passes a `known`: unverified ratings, checked on write."""
    pool, _, _ = await rating_store(pg_dsn)
    sink = OutboxRatingSink(CallStore(pool, "lab", OutboxRows("lab")))
    try:
        server = await start_agi_server(settings_for(None), sink)
        try:
            await agi_call(server.port, rating_env("4"))
            await agi_call(server.port, rating_env("6", linkedid=UNKNOWN_CALL))
            await until(lambda: server.stats()["rating_submitted"] == 2)
            assert server.stats()["rating_unverified"] == 2
        finally:
            await server.close()
        rows = await pool.fetch(RATING_ROWS)
    finally:
        await pool.close()
    assert [(r["callid"], r["dedupe_key"]) for r in rows] == [(LINKEDID, "rating:4")]
    assert sink.counts == {"written": 1, "unknown_call": 1}


async def test_a_rating_given_while_postgres_is_down_lands_once_when_it_is_back(
    tmp_path: Path,
) -> None:
    with LocalPostgres(durable=True) as pg:
        pg.start()
        pool, sink, known = await rating_store(pg.create_database("bridge"))
        try:
            async with serving(settings_for(None), sink, known) as server:
                await asyncio.to_thread(pg.stop, "fast")
                calls = [
                    await agi_call(server.port, rating_env("7")),
                    await agi_call(server.port, rating_env("7")),
                    await agi_call(server.port, rating_env("2", linkedid=UNKNOWN_CALL)),
                ]
                assert all(c.closed_by_server and c.seconds < 0.5 for c in calls), calls
                stats = server.stats()
                assert (stats["rating_unverified"], stats["rating_sink_pending"]) == (3, 3)
                await until(lambda: server.stats()["rating_sink_retries"] >= 3)

                await asyncio.to_thread(pg.start)
                await until(lambda: server.stats()["rating_sink_pending"] == 0, limit=30)
                stats = server.stats()
            await sink.close()
            rows = await pool.fetch(RATING_ROWS)
            rating = await pool.fetchval("SELECT rating FROM calls WHERE callid = $1", LINKEDID)
        finally:
            await pool.close()
    assert [(r["callid"], r["dedupe_key"]) for r in rows] == [(LINKEDID, "rating:7")]
    assert rating == 7
    assert (stats["rating_sink_flushed"], stats["rating_sink_unknown_call"]) == (2, 1)
    assert (stats["rating_sink_dropped"], stats["rating_sink_failed"]) == (0, 0)


# --------------------------------------------------------------------------- metrics


async def test_counters_reach_prometheus(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    async with serving(settings_for(crm.url)) as server:
        await call_contact(server)
        await call_contact(server)
        registry = CollectorRegistry()
        registry.register(AgiCollector(server.stats))
        text = generate_latest(registry).decode()
    assert "bridge_agi_connections_total 2.0" in text
    assert "bridge_crm_contact_cache_hits_total 1.0" in text
    assert "bridge_contact_crm_total 1.0" in text
    assert "bridge_crm_contact_breaker_open 0.0" in text


async def test_round_trips_reach_prometheus_as_a_histogram_per_route(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    crm.delay = 0.3
    async with serving(settings_for(crm.url)) as server:
        await call_contact(server)  # asks the CRM: 0.3 s
        await call_contact(server)  # cached
        await agi_call(server.port, rating_env("5"))
        await raw_exchange(server.port, b"GET / HTTP/1.1\r\n\r\n")  # no route at all
        registry = CollectorRegistry()
        registry.register(AgiCollector(server.stats, lambda: server.latency))
        text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families[ROUND_TRIP_METRIC]
    assert family.type == "histogram"
    by_route: dict[str, dict[str, dict[str, float]]] = {}
    for sample in family.samples:
        route = sample.labels["route"]
        kind = sample.name.removeprefix(ROUND_TRIP_METRIC + "_")
        key = sample.labels.get("le", "")
        by_route.setdefault(route, {}).setdefault(kind, {})[key] = sample.value
    assert set(by_route) == {"contact", "rating", "other"}
    assert {r: v["count"][""] for r, v in by_route.items()} == {
        "contact": 2,
        "rating": 1,
        "other": 1,
    }
    contact = by_route["contact"]
    bounds = [float(le) for le in contact["bucket"]]
    assert bounds == [*ROUND_TRIP_BUCKETS, float("inf")]
    counts = list(contact["bucket"].values())
    assert counts == sorted(counts) and counts[-1] == 2  # cumulative
    assert contact["bucket"]["0.25"] == 1  # the cached call; the CRM took 0.3 s
    assert contact["bucket"]["1.0"] == 2
    assert 0.3 <= contact["sum"][""] < 1.5
    assert by_route["rating"]["bucket"]["1.0"] == 1
