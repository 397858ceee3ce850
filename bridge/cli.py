"""`crm-bridge`: run, migrate, check-config, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
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
    from .replay import tracker_for, write_replay

    settings = _load(args.config, for_daemon=False)
    if not Path(args.trace).is_file():
        print(f"crm-bridge replay: no such trace file: {args.trace}", file=sys.stderr)
        return 2
    try:
        write_replay(
            args.trace,
            tracker_for(settings.pbx),
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


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(speed=args.speed, traces=args.traces))


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

    p = sub.add_parser("demo", help="everything on localhost, no Asterisk needed")
    p.add_argument("--speed", type=float, default=4.0, help="replay speed factor")
    p.add_argument("traces", nargs="*", help="traces to replay (default: the shared ones)")
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
