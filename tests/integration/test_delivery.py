"""Durable CRM webhooks against a real aiohttp CRM and a real PostgreSQL.

Every case checks the same promise: each expected history reaches the CRM (at least once,
the same `webhook-id` on a repeat) and, per call, the order INCOMING.. before history.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from bridge.crm import profiles
from bridge.delivery.retry import RetryPolicy
from bridge.delivery.service import Delivery
from bridge.devtools.fake_crm import FakeCrm, Received
from bridge.devtools.local_postgres import LocalPostgres
from bridge.store import outbox as admin
from bridge.store import targets
from bridge.store.calls import CallStore
from bridge.store.targets import Subscription
from tests.support.delivery import (
    EXTERNAL,
    FAST,
    check_order,
    prepare,
    settings,
    settled,
    store_scenarios,
)
from tests.support.traces import expected, scenario_names

pytestmark = pytest.mark.integration


async def test_every_webhook_arrives_in_order_in_the_vpbx_format(running, crm) -> None:
    pool, outbox, start = running
    await store_scenarios(pool, outbox)
    await start()
    await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=20)
    histories = crm.history().unique
    assert len({h.fields["callid"] for h in histories}) == EXTERNAL
    check_order(crm, histories)
    for r in crm.received:
        assert r.headers["content-type"] == "application/x-www-form-urlencoded"
        assert r.fields["crm_token"] == "tok" and r.headers["x-crm-token"] == "tok"
        names = set(profiles.FIELDS[r.cmd])
        if r.fields.get("type") != "TRANSFERRED":
            names.discard("second_callid")
        assert set(r.fields) == names, r.cmd
    statuses = {h.fields["status"] for h in histories}
    assert {"Success", "missed", "Busy", "Cancel", "NotAvailable", "NotFound"} <= statuses
    transferred = [e for e in crm.requests("event") if e.fields["type"] == "TRANSFERRED"]
    assert transferred and all("second_callid" in e.fields for e in transferred)
    await settled(pool)
    async with pool.acquire() as conn:
        assert (await admin.counts(conn, "lab")).keys() == {"sent"}
        attempts = await conn.fetchval("SELECT count(*) FROM webhook_attempts")
    assert attempts == len(crm.received)


async def test_storing_twice_enqueues_once(running, crm) -> None:
    pool, outbox, start = running
    await store_scenarios(pool, outbox, ["in_answered"])
    await store_scenarios(pool, outbox, ["in_answered"])
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM webhook_outbox") == 4


async def test_crm_down_then_back_loses_nothing(running, crm) -> None:
    pool, outbox, start = running
    await crm.go_away()
    await store_scenarios(pool, outbox)
    await start()
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT count(*) FROM webhook_attempts WHERE error <> ''") < 20:
            await asyncio.sleep(0.05)
    await crm.come_back()
    await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=30)
    histories = crm.history().unique
    assert len({h.fields["callid"] for h in histories}) == EXTERNAL
    check_order(crm, histories)
    retried = await pool.fetch("SELECT webhook_id FROM webhook_outbox WHERE attempts > 1")
    assert retried, "the retries really happened"


async def test_crm_slower_than_the_timeout(running, crm) -> None:
    pool, outbox, start = running
    crm.delay(3.0, cmd="history")  # client timeout is 2 s
    await store_scenarios(pool, outbox, ["in_answered", "out_busy"])
    await start()
    async with asyncio.timeout(10):
        while (
            await pool.fetchval("SELECT count(*) FROM webhook_attempts WHERE error = 'timeout'") < 2
        ):
            await asyncio.sleep(0.05)
    crm.reset()
    histories = await crm.wait_count("history", 2, timeout=20)
    await crm.wait_for(lambda: len(crm.requests("history")) >= 4, timeout=10)
    by_id: dict[str | None, list[Received]] = {}
    for r in crm.requests("history"):
        by_id.setdefault(r.webhook_id, []).append(r)
    assert len(by_id) == 2 and all(len(rs) >= 2 for rs in by_id.values()), "same id on a repeat"
    check_order(crm, histories)


async def test_410_disables_the_target_and_keeps_the_rows(running, crm) -> None:
    pool, outbox, start = running
    crm.set_mode(("status", 410))
    await store_scenarios(pool, outbox, ["in_answered"])
    delivery = await start()
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT enabled FROM webhook_targets"):
            await asyncio.sleep(0.05)
    async with pool.acquire() as conn:
        assert (await admin.counts(conn, "lab")) == {"pending": 4}
        before = delivery.stats.idle_waits
        await asyncio.sleep(1.0)
        # 4 workers, poll_interval 0.2 s: about 20 idle waits a second, not hundreds
        assert delivery.stats.idle_waits - before <= 30, "idle workers must not spin"
        crm.reset()
        assert await targets.enable_target(conn, "lab", "primary")
    await crm.wait_count("history", 1, timeout=10)


async def test_other_4xx_dead_letters_then_redrive(running, crm) -> None:
    pool, outbox, start = running
    crm.set_mode(("status", 422), cmd="history")
    await store_scenarios(pool, outbox, ["in_answered"])
    await start()
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state='dead'") < 1:
            await asyncio.sleep(0.05)
    assert len(crm.requests("history")) == 3  # max_client_errors
    crm.reset()
    async with pool.acquire() as conn:
        (dead,) = await admin.list_rows(conn, "lab", "dead")
        assert await admin.redrive(conn, "lab", [dead["id"]]) == 1
    (history,) = await crm.wait_count("history", 1, timeout=10)
    assert history.webhook_id == dead["webhook_id"]


async def test_event_popups_expire_histories_do_not(pg_dsn, crm) -> None:
    pool, outbox = await prepare(pg_dsn, crm.url, event_ttl=0.3)
    await crm.go_away()
    await store_scenarios(pool, outbox, ["in_ringgroup"])
    delivery = Delivery(pool, pg_dsn, settings(pg_dsn, crm.url), policy=RetryPolicy(**FAST))
    await delivery.start()
    try:
        await asyncio.sleep(0.8)
        await crm.come_back()
        await crm.wait_count("history", 1, timeout=10)
        await settled(pool)
        async with pool.acquire() as conn:
            counts = await admin.counts(conn, "lab")
        assert counts.get("expired", 0) >= 1 and counts["sent"] >= 1
        assert "dead" not in counts
    finally:
        await delivery.stop()
        await pool.close()


@pytest.mark.parametrize("profile", ["vpbx-legacy", "json"])
async def test_profiles_and_signatures(pg_dsn, profile: str) -> None:
    crm = FakeCrm(token="tok", strict=profile == "vpbx-legacy", signing_secret="whsec_c2VjcmV0")
    await crm.start()
    pool, outbox = await prepare(pg_dsn, crm.url, profile, secret="whsec_c2VjcmV0")
    delivery = Delivery(pool, pg_dsn, settings(pg_dsn, crm.url), policy=RetryPolicy(**FAST))
    try:
        await store_scenarios(pool, outbox, ["in_blind_transfer"])
        await CallStore(pool, "lab", outbox).save_rating("1795346461.28", 5)
        await delivery.start()
        await crm.wait_count("history", 1, timeout=10)
        await crm.wait_for(lambda: all(r.status_answered for r in crm.received), timeout=5)
        assert all(r.accepted for r in crm.received), [r.status_answered for r in crm.received]
        ratings = crm.requests("rating")
        if profile == "vpbx-legacy":
            assert ratings == []
            assert all("wait" not in r.fields for r in crm.requests("history"))
        else:
            await crm.wait_count("rating", 1, timeout=5)
            assert crm.requests("rating")[0].fields["rating"] == "5"
            assert all(r.headers["content-type"] == "application/json" for r in crm.received)
        assert await pool.fetchval("SELECT rating FROM calls WHERE callid = '1795346461.28'") == 5
    finally:
        await delivery.stop()
        await pool.close()
        await crm.stop()


async def test_json_profile_sends_numbers_as_numbers(pg_dsn, crm) -> None:
    """The spec types duration and rating as numbers (`"duration": 124`, `"rating": 4`):
    in JSON they are numbers, and an empty rating or missedStatus is left out."""
    pool, outbox = await prepare(pg_dsn, crm.url, "json")
    delivery = Delivery(pool, pg_dsn, settings(pg_dsn, crm.url), policy=RetryPolicy(**FAST))
    try:
        await store_scenarios(pool, outbox, ["in_noanswer", "click_to_call"])
        callback = await pool.fetchval("SELECT callid FROM calls WHERE direction = 'out'")
        await CallStore(pool, "lab", outbox).save_rating(callback, 4)
        await delivery.start()
        await crm.wait_count("history", 2, timeout=10)
        await crm.wait_count("rating", 1, timeout=10)
    finally:
        await delivery.stop()
        await pool.close()
    bodies = {(r.cmd, r.fields["callid"]): json.loads(r.body) for r in crm.received}
    missed = next(b for (cmd, c), b in bodies.items() if cmd == "history" and c != callback)
    assert (missed["duration"], type(missed["wait"])) == (0, int)
    assert "rating" not in missed and "missedStatus" not in missed
    called_back = bodies[("history", callback)]
    assert called_back["missedStatus"] == 2 and called_back["duration"] > 0
    assert "rating" not in called_back, "the rating comes later, in its own command"
    assert bodies[("rating", callback)]["rating"] == 4


# ----------------------------------------------------------------- whole processes


def write_config(tmp: Path, dsn: str, url: str, **delivery: object) -> Path:
    options = {
        "workers": 2,
        "lease": 1.0,
        "poll_interval": 0.2,
        "retry_base_delay": 0.05,
        "retry_max_delay": 0.3,
        **delivery,
    }
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    path = tmp / f"bridge-{len(list(tmp.glob('*.toml')))}.toml"
    path.write_text(f"""
[pbx]
id = "lab"
[asterisk]
secret = "unused"
[database]
url = "{dsn}"
[crm]
url = "{url}"
token = "tok"
timeout = 0.5
[delivery]
{lines}
""")
    return path


async def deliver_process(config: Path) -> asyncio.subprocess.Process:
    """`crm-bridge deliver` with its output in `<config>.log` (the child has its own copy
    of the file descriptor: ours is closed at once)."""
    with open(config.with_suffix(".log"), "ab") as log:  # noqa: ASYNC230
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            "deliver",
            "--config",
            str(config),
            stdout=log,
            stderr=log,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_bridge_killed_mid_delivery_and_restarted(pg_dsn, crm, tmp_path) -> None:
    pool, outbox = await prepare(pg_dsn, crm.url)
    await store_scenarios(pool, outbox)
    crm.delay(0.3)
    config = write_config(tmp_path, pg_dsn, crm.url)
    proc = await deliver_process(config)
    try:
        await crm.wait_count("history", 3, timeout=20)
        proc.kill()  # SIGKILL mid-delivery: its leased rows are left behind
        await proc.wait()
        leased = await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state='leased'")
        proc = await deliver_process(config)
        await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=60)
        histories = crm.history().unique
        await settled(pool)
    finally:
        await stop_process(proc)
    assert leased > 0, "the kill really left rows in flight"
    assert len({h.fields["callid"] for h in histories}) == EXTERNAL
    check_order(crm, histories)
    assert await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state <> 'sent'") == 0
    await pool.close()


async def test_two_delivery_processes_never_send_a_row_twice(pg_dsn, crm, tmp_path) -> None:
    pool, outbox = await prepare(pg_dsn, crm.url)
    await store_scenarios(pool, outbox)
    total = await pool.fetchval("SELECT count(*) FROM webhook_outbox")
    crm.delay(0.1)  # long enough a run that both processes keep claiming
    await pool.execute("UPDATE webhook_targets SET enabled = false")  # nothing claimable yet
    configs = [write_config(tmp_path, pg_dsn, crm.url, lease=30.0) for _ in range(2)]
    procs = [await deliver_process(config) for config in configs]
    try:
        async with asyncio.timeout(60):  # both up (a loaded machine starts them slowly)
            while not all("delivery_started" in c.with_suffix(".log").read_text() for c in configs):
                await asyncio.sleep(0.1)
        async with pool.acquire() as conn:
            assert await targets.enable_target(conn, "lab", "primary")
        await crm.wait_for(lambda: len(crm.received) >= total, timeout=60)
        await asyncio.sleep(0.5)  # anything sent twice would show up now
    finally:
        for p in procs:
            await stop_process(p)
    ids = [r.webhook_id for r in crm.received]
    assert len(ids) == total == len(set(ids)), "each row exactly once"
    workers = await pool.fetchval(
        "SELECT count(DISTINCT split_part(worker, ':', 2)) FROM webhook_attempts"
    )
    assert workers == 2, "both processes delivered"
    check_order(crm, crm.history().unique)
    await pool.close()


async def test_postgres_restarted_during_delivery(crm, tmp_path) -> None:
    with LocalPostgres(durable=True) as pg:
        pg.start()
        dsn = pg.create_database("bridge")
        pool, outbox = await prepare(dsn, crm.url)
        await store_scenarios(pool, outbox)
        crm.delay(0.05)
        delivery = Delivery(
            pool, dsn, settings(dsn, crm.url, workers=2), policy=RetryPolicy(**FAST)
        )
        await delivery.start()
        try:
            await crm.wait_count("history", 3, timeout=20)
            await asyncio.to_thread(pg.stop, "immediate")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(pg.start)
            await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=60)
            histories = crm.history().unique
        finally:
            await delivery.stop()
        assert len({h.fields["callid"] for h in histories}) == EXTERNAL
        check_order(crm, histories)
        assert delivery.stats.db_errors > 0, "the outage was seen"
        await pool.close()


async def test_outbox_rating_sink_stores_and_sends_the_rating(running, crm) -> None:
    from bridge.agi.ports import RatingSink
    from bridge.delivery.rating import OutboxRatingSink

    pool, outbox, start = running
    await store_scenarios(pool, outbox, ["in_queue"])
    sink = OutboxRatingSink(CallStore(pool, "lab", outbox))
    assert isinstance(sink, RatingSink)
    await sink.submit_rating("1795346445.14", 4)
    await sink.submit_rating("1795346445.14", 4)  # the caller pressed twice: one webhook
    await start()
    (rating,) = await crm.wait_count("rating", 1, timeout=10)
    assert rating.fields == {
        "cmd": "rating",
        "crm_token": "tok",
        "callid": "1795346445.14",
        "rating": "4",
        "phone": "79101234567",
        "user": "1002",
        "ext": "1002",
    }
    history = crm.requests("history")[0]
    assert history.at <= rating.at, "the rating follows its call's history"
    assert await pool.fetchval("SELECT rating FROM calls") == 4
    await settled(pool)
    assert len(crm.requests("rating")) == 1


async def test_subscriptions_get_what_they_asked_for(running, crm, pg_dsn) -> None:
    """A second target: histories of outbound calls only, JSON, signed; the primary all."""
    pool, outbox, start = running
    billing = FakeCrm(token="b-tok", signing_secret="whsec_c2VjcmV0")
    await billing.start()
    try:
        async with pool.acquire() as conn:
            with pytest.raises(ValueError, match="direction"):
                await targets.add_target(
                    conn, "lab", Subscription("billing", billing.url, direction="up")
                )
            await targets.add_target(
                conn,
                "lab",
                Subscription(
                    "billing",
                    billing.url,
                    token="b-tok",
                    profile="json",
                    commands=("history",),
                    direction="out",
                    signing_secret="whsec_c2VjcmV0",
                ),
            )
            assert [r["name"] for r in await targets.list_targets(conn, "lab")] == [
                "primary",
                "billing",
            ]
        await store_scenarios(pool, outbox)
        await start()
        outbound = sum(
            c["history"]["type"] == "out" for n in scenario_names() for c in expected(n)["calls"]
        )
        await billing.wait_for(lambda: len(billing.history().unique) >= outbound, timeout=20)
        await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=20)
        await settled(pool)
        assert {r.cmd for r in billing.received} == {"history"}
        assert {r.fields["type"] for r in billing.received} == {"out"}
        assert all(r.accepted for r in billing.received), "signed, JSON, token accepted"
        async with pool.acquire() as conn:
            assert await targets.remove_target(conn, "lab", "billing")
            assert not await targets.remove_target(conn, "lab", "primary")
    finally:
        await billing.stop()


@pytest.mark.parametrize(("between", "flag"), [([], "2"), (["in_queue"], "")])
async def test_calling_back_a_missed_customer_is_flagged(running, crm, between, flag) -> None:
    """in_noanswer (missed, +79101234567) ... click_to_call dials 79101234567 back."""
    pool, outbox, start = running
    await store_scenarios(pool, outbox, ["in_noanswer", *between, "click_to_call"])
    await start()
    await crm.wait_for(lambda: len(crm.history().unique) >= 2 + len(between), timeout=10)
    (callback,) = [h for h in crm.history().unique if h.fields["type"] == "out"]
    assert callback.fields["missedStatus"] == flag
    stored = await pool.fetchval("SELECT missed_status FROM calls WHERE direction = 'out'")
    assert stored == (2 if flag else None)
    inbound = [h for h in crm.history().unique if h.fields["type"] == "in"]
    assert all(h.fields["missedStatus"] == "" for h in inbound)
