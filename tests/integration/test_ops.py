"""What ops sees and does: delivery metrics scraped as Prometheus parses them, the outbox
backlog, and retention of delivered rows."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.observability.metrics import BacklogCollector
from bridge.store import outbox
from bridge.store.retention import prune
from tests.support.delivery import EXTERNAL, settled, store_scenarios


def scrape(*collectors: object) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {labels: value}} as a Prometheus server would read them."""
    registry = CollectorRegistry()
    for c in collectors:
        registry.register(c)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


async def test_delivery_metrics_per_target(running, crm) -> None:
    pool, rows, start = running
    crm.fail_next(3, status=503)
    await store_scenarios(pool, rows)
    delivery = await start()
    await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=20)
    await settled(pool)
    backlog = await outbox.backlog(pool, "lab")
    got = scrape(delivery.metrics, BacklogCollector(lambda: backlog))
    attempts = got["bridge_webhook_attempts_total"]
    sent = attempts[(("outcome", "sent"), ("target", "primary"))]
    retried = attempts[(("outcome", "retry"), ("target", "primary"))]
    assert sent == delivery.stats.sent == len(crm.received) - 3
    assert retried == 3
    latency_count = got["bridge_webhook_latency_seconds_count"][(("target", "primary"),)]
    assert latency_count == sent + retried, "every answered attempt is timed"
    assert got["bridge_webhook_latency_seconds_sum"][(("target", "primary"),)] > 0
    assert got["bridge_webhook_backlog"] == {(("target", "primary"),): 0.0}
    assert got["bridge_webhook_dead"] == {(("target", "primary"),): 0.0}


async def test_backlog_grows_and_ages_while_the_crm_is_down(running, crm) -> None:
    pool, rows, start = running
    await crm.go_away()
    await store_scenarios(pool, rows, ["in_answered", "out_busy"])
    await start()
    await asyncio.sleep(1.2)
    backlog = await outbox.backlog(pool, "lab")
    got = scrape(BacklogCollector(lambda: backlog))
    key = (("target", "primary"),)
    waiting = await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state <> 'sent'")
    assert got["bridge_webhook_backlog"][key] == waiting > 0
    assert got["bridge_webhook_backlog_oldest_seconds"][key] >= 1.0
    assert got["bridge_webhook_history_oldest_seconds"][key] >= 1.0


async def test_prune_deletes_only_what_is_old_enough(running, crm) -> None:
    pool, rows, start = running
    await store_scenarios(pool, rows)
    await start()
    await crm.wait_for(lambda: len(crm.history().unique) >= EXTERNAL, timeout=20)
    await settled(pool)
    total = await pool.fetchval("SELECT count(*) FROM webhook_outbox")
    calls = await pool.fetchval("SELECT count(*) FROM calls")
    # the recorded calls ended on the day of their trace: as if they had ended now (the
    # test must not depend on the day it runs), like the rows sent now
    await pool.execute("UPDATE calls SET ended_at = now()")
    kept = await prune(pool, "lab", sent_days=1, attempts_days=1, calls_days=1)
    assert (kept.sent_rows, kept.attempts, kept.calls) == (0, 0, 0), "nothing old enough"
    await age(pool, days=2)
    done = await prune(pool, "lab", sent_days=1, attempts_days=0, calls_days=0, slice_size=7)
    assert done.sent_rows == total, "in slices of 7, all of them"
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 0, "cascade"
    assert await pool.fetchval("SELECT count(*) FROM calls") == calls, "calls kept by default"
    assert (await prune(pool, "lab", sent_days=1, attempts_days=1, calls_days=3)).calls == 0
    done = await prune(pool, "lab", sent_days=1, attempts_days=1, calls_days=1)
    assert done.calls == calls
    for table in ("calls", "call_events", "call_legs"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_prune_keeps_dead_letters_but_drops_their_old_attempts(running, crm) -> None:
    pool, rows, start = running
    crm.set_mode(("status", 400))
    await store_scenarios(pool, rows, ["in_answered"])
    await start()
    async with asyncio.timeout(20):
        while await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state = 'dead'") < 1:
            await asyncio.sleep(0.05)
    await age(pool, days=40)
    done = await prune(pool, "lab", sent_days=7, attempts_days=30)
    assert done.attempts > 0
    assert await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state = 'dead'") >= 1


async def age(pool: asyncpg.Pool, days: int) -> None:
    """Everything stored so far happened `days` ago."""
    shift = f"interval '{days} days'"
    await pool.execute(
        f"UPDATE webhook_outbox SET created_at = created_at - {shift}, sent_at = sent_at - {shift}"
    )
    await pool.execute(f"UPDATE webhook_attempts SET at = at - {shift}")
    await pool.execute(f"UPDATE calls SET ended_at = ended_at - {shift}")
