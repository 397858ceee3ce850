"""`crm-bridge`: run, migrate, check-config, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

DEFAULT_CONFIG = "/etc/crm-bridge/bridge.toml"


def _load(path: str | None, *, for_daemon: bool):  # type: ignore[no-untyped-def]
    from .config import ConfigError, load_settings

    try:
        return load_settings(path, for_daemon=for_daemon)
    except ConfigError as exc:
        print(f"crm-bridge: {path or 'configuration'} is not usable:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import check_config_file

    problems = check_config_file(args.file, for_daemon=not args.replay_only)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .ami.trace import TraceError
    from .replay import write_replay
    from .wiring import tracker_from

    settings = _load(args.config, for_daemon=False)
    if not Path(args.trace).is_file():
        print(f"crm-bridge replay: no such trace file: {args.trace}", file=sys.stderr)
        return 2
    try:
        write_replay(
            args.trace,
            tracker_from(settings.pbx),
            sys.stdout,
            send_internal=settings.pbx.send_internal,
        )
    except TraceError as exc:
        print(f"crm-bridge replay: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from .store.migrations import migrate

    settings = _load(args.config, for_daemon=False)
    url = args.database_url or settings.database.url
    if not url:
        print(
            "crm-bridge migrate: no [database] url in the config (or --database-url)",
            file=sys.stderr,
        )
        return 2

    async def go() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run_bridge
    from .observability.logs import configure_logging

    settings = _load(args.config, for_daemon=True)
    configure_logging(settings.log.level, cache_loggers=True)
    asyncio.run(run_bridge(settings))
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from .daemon import run_delivery
    from .observability.logs import configure_logging

    settings = _load(args.config, for_daemon=True)
    configure_logging(settings.log.level, cache_loggers=True)
    asyncio.run(run_delivery(settings))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    import asyncpg

    from .store import outbox, targets

    settings = _load(args.config, for_daemon=False)
    if not settings.database.url:
        print("crm-bridge outbox: no [database] url in the config", file=sys.stderr)
        return 2

    async def go() -> int:
        conn = await asyncpg.connect(settings.database.url)
        pbx = settings.pbx.id
        try:
            if args.action == "list":
                state = "dead" if args.dead else args.state
                for r in await outbox.list_rows(conn, pbx, state, args.limit):
                    print(json.dumps({k: outbox.iso(v) for k, v in r.items()}, ensure_ascii=False))
                print(json.dumps({"counts": await outbox.counts(conn, pbx)}), file=sys.stderr)
            elif args.action == "retry":
                if not args.all_dead and not args.ids:
                    print("crm-bridge outbox retry: give row ids or --all-dead", file=sys.stderr)
                    return 2
                n = await outbox.redrive(conn, pbx, None if args.all_dead else args.ids)
                print(f"re-driven: {n}")
            elif args.action == "enable":
                ok = await targets.enable_target(conn, pbx, args.target)
                print("enabled" if ok else f"no target named {args.target!r}")
                return 0 if ok else 1
            return 0
        finally:
            await conn.close()

    return asyncio.run(go())


def cmd_targets(args: argparse.Namespace) -> int:
    import asyncpg

    from .store import targets

    settings = _load(args.config, for_daemon=False)
    if not settings.database.url:
        print("crm-bridge targets: no [database] url in the config", file=sys.stderr)
        return 2

    async def go() -> int:
        conn = await asyncpg.connect(settings.database.url)
        try:
            pbx = settings.pbx.id
            if args.action == "list":
                for r in await targets.list_targets(conn, pbx):
                    print(json.dumps(r, ensure_ascii=False))
            elif args.action == "add":
                try:
                    sub = targets.Subscription(
                        args.name,
                        args.url,
                        token=args.token,
                        profile=args.profile,
                        commands=tuple(c for c in args.commands.split(",") if c),
                        direction=args.direction,
                        signing_secret=args.signing_secret,
                    )
                    await targets.add_target(conn, pbx, sub)
                except ValueError as exc:
                    print(f"crm-bridge targets add: {exc}", file=sys.stderr)
                    return 2
                print(f"subscribed {args.name}")
            elif args.action == "remove":
                ok = await targets.remove_target(conn, pbx, args.name)
                print("removed" if ok else f"no subscription named {args.name!r}")
                return 0 if ok else 1
            return 0
        finally:
            await conn.close()

    return asyncio.run(go())


def cmd_prune(args: argparse.Namespace) -> int:
    from .store.retention import prune
    from .wiring import open_pool

    settings = _load(args.config, for_daemon=False)
    if not settings.database.url:
        print("crm-bridge prune: no [database] url in the config", file=sys.stderr)
        return 2
    r = settings.retention

    async def go() -> int:
        pool = await open_pool(settings, max_size=2)
        try:
            done = await prune(
                pool,
                settings.pbx.id,
                sent_days=r.sent_days if args.sent_days is None else args.sent_days,
                attempts_days=r.attempts_days if args.attempts_days is None else args.attempts_days,
                calls_days=r.calls_days if args.calls_days is None else args.calls_days,
            )
        finally:
            await pool.close()
        print(
            f"pruned: {done.sent_rows} delivered webhooks, {done.attempts} attempts, "
            f"{done.calls} calls"
        )
        return 0

    return asyncio.run(go())


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo

    return demo(speed=args.speed, traces=args.traces)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="follow AMI and keep every call in PostgreSQL")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("migrate", help="apply the SQL migrations")
    p.add_argument("--config", default=None)
    p.add_argument("--database-url", default=None)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("check-config", help="validate a config file, in plain words")
    p.add_argument("file")
    p.add_argument(
        "--replay-only",
        action="store_true",
        help="only what `replay` needs (no [asterisk] secret, no database)",
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("replay", help="print the CRM payloads of a recorded AMI trace")
    p.add_argument("trace")
    p.add_argument("--config", default=None)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("deliver", help="webhook delivery workers only (scale-out)")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_deliver)

    p = sub.add_parser("outbox", help="list and re-drive webhooks")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    osub = p.add_subparsers(dest="action", required=True)
    o = osub.add_parser("list", help="newest rows first (JSON lines)")
    o.add_argument("--dead", action="store_true", help="dead letters only")
    o.add_argument("--state", choices=["pending", "leased", "sent", "dead", "expired"])
    o.add_argument("--limit", type=int, default=50)
    o = osub.add_parser("retry", help="send dead letters again")
    o.add_argument("ids", nargs="*", type=int)
    o.add_argument("--all-dead", action="store_true")
    o = osub.add_parser("enable", help="switch a target on again (after a 410)")
    o.add_argument("target", help="target name, e.g. primary")
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("targets", help="webhook subscriptions (besides the config's [crm])")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    tsub = p.add_subparsers(dest="action", required=True)
    tsub.add_parser("list")
    t = tsub.add_parser("add", help="add or replace a subscription")
    t.add_argument("name")
    t.add_argument("url")
    t.add_argument("--token", default="")
    t.add_argument("--profile", default="vpbx", choices=["vpbx", "vpbx-legacy", "json"])
    t.add_argument("--commands", default="history,event,rating")
    t.add_argument("--direction", default="both", choices=["in", "out", "both"])
    t.add_argument("--signing-secret", default=None)
    t = tsub.add_parser("remove")
    t.add_argument("name")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("prune", help="delete rows older than the [retention] ages")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--sent-days", type=float, default=None, help="override [retention] sent_days")
    p.add_argument(
        "--attempts-days", type=float, default=None, help="override [retention] attempts_days"
    )
    p.add_argument("--calls-days", type=float, default=None, help="override [retention] calls_days")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("demo", help="everything on localhost, no Asterisk needed (Ctrl-C stops)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="replay speed factor (1 = recorded pace)"
    )
    p.add_argument("traces", nargs="*", help="traces to replay (default: traces/asterisk22)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
