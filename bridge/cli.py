"""`crm-bridge`: the daemon (run, deliver) and the operator's commands.

Every command that reads the config checks it the way ``check-config`` does and stops,
with exit status 2 and one plain-English line per problem on stderr, before doing
anything: a bad config never gets as far as a traceback or a half-started daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

    from .config import Settings

DEFAULT_CONFIG = "/etc/crm-bridge/bridge.toml"
DISTRIBUTION = "asterisk-crm-bridge"


def version() -> str:
    """The installed distribution's version; the package's own when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def _load(
    path: str | None, *, for_daemon: bool, command: str, only: frozenset[str] | None = None
) -> Settings:
    """The settings, or exit 2 with the problems (exactly what check-config reports)."""
    from .config import ConfigError, load_settings

    try:
        return load_settings(path, for_daemon=for_daemon, only=only)
    except ConfigError as exc:
        what = "not starting" if command in ("run", "deliver") else "nothing done"
        where = path or "the configuration"
        count = len(exc.problems)
        print(f"crm-bridge {command}: {where}: {count} problem(s), {what}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import REPLAY_SECTIONS, check_config_file

    if args.file and args.config_option and args.file != args.config_option:
        print("crm-bridge check-config: give the file once (FILE or --config)", file=sys.stderr)
        return 2
    path = args.file or args.config_option or DEFAULT_CONFIG
    only = REPLAY_SECTIONS if args.replay_only else None
    problems = check_config_file(path, for_daemon=not args.replay_only, only=only)
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .ami.trace import TraceError
    from .config import REPLAY_SECTIONS
    from .replay import write_replay
    from .wiring import tracker_from

    settings = _load(args.config, for_daemon=False, command=args.command, only=REPLAY_SECTIONS)
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


def _with_database(
    command: str, url: str, work: Callable[[asyncpg.Connection], Awaitable[int]]
) -> int:
    """Run `work(conn)` on one connection; a database problem is one plain line, exit 1."""
    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except asyncpg.UndefinedTableError:
        print(
            f"crm-bridge {command}: the database has no bridge tables yet "
            "(run `crm-bridge migrate` first)",
            file=sys.stderr,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"crm-bridge {command}: database error: {_plain(exc)}", file=sys.stderr)
    return 1


def _plain(exc: BaseException) -> str:
    """One line, no traceback; asyncpg's messages never carry the password."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def cmd_migrate(args: argparse.Namespace) -> int:
    from .store.migrations import migrate
    from .store.partitions import make_partitions

    settings = _load(args.config, for_daemon=False, command=args.command)
    url = args.database_url or settings.database.url
    if not url:
        print(
            "crm-bridge migrate: no [database] url in the config (or --database-url)",
            file=sys.stderr,
        )
        return 2

    async def go(conn: asyncpg.Connection) -> int:
        applied = await migrate(conn)
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
        made = await make_partitions(conn)
        if made:
            print("partitions made: " + ", ".join(made))
        return 0

    return _with_database("migrate", url, go)


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run_bridge
    from .observability.logs import close_output, configure_logging

    settings = _load(args.config, for_daemon=True, command=args.command)
    configure_logging(settings.log.level, cache_loggers=True, background=True)
    try:
        asyncio.run(run_bridge(settings))
    finally:
        close_output()
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from .daemon import run_delivery
    from .observability.logs import close_output, configure_logging

    settings = _load(args.config, for_daemon=False, command=args.command)  # no AMI needed
    if not settings.database.url:
        print("crm-bridge deliver: no [database] url in the config", file=sys.stderr)
        return 2
    configure_logging(settings.log.level, cache_loggers=True, background=True)
    try:
        asyncio.run(run_delivery(settings))
    finally:
        close_output()
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from .store import outbox, targets

    settings = _load(args.config, for_daemon=False, command=args.command)
    if not settings.database.url:
        print("crm-bridge outbox: no [database] url in the config", file=sys.stderr)
        return 2
    pbx = settings.pbx.id
    if args.action == "retry" and not args.all_dead and not args.ids:
        print("crm-bridge outbox retry: give row ids or --all-dead", file=sys.stderr)
        return 2

    async def go(conn: asyncpg.Connection) -> int:
        if args.action == "list":
            state = "dead" if args.dead else args.state
            for r in await outbox.list_rows(conn, pbx, state, args.limit):
                print(json.dumps({k: outbox.iso(v) for k, v in r.items()}, ensure_ascii=False))
            print(json.dumps({"counts": await outbox.counts(conn, pbx)}), file=sys.stderr)
        elif args.action == "retry":
            n = await outbox.redrive(conn, pbx, None if args.all_dead else args.ids)
            print(f"re-driven: {n}")
        elif args.action == "enable":
            ok = await targets.enable_target(conn, pbx, args.target)
            print("enabled" if ok else f"no target named {args.target!r}")
            return 0 if ok else 1
        return 0

    return _with_database("outbox", settings.database.url, go)


def cmd_targets(args: argparse.Namespace) -> int:
    from .store import targets

    settings = _load(args.config, for_daemon=False, command=args.command)
    if not settings.database.url:
        print("crm-bridge targets: no [database] url in the config", file=sys.stderr)
        return 2
    pbx = settings.pbx.id

    async def go(conn: asyncpg.Connection) -> int:
        if args.action == "list":
            for r in await targets.list_targets(conn, pbx):
                print(json.dumps(r, ensure_ascii=False))
        elif args.action == "add":
            sub = targets.Subscription(
                args.name,
                args.url,
                token=args.token,
                profile=args.profile,
                commands=tuple(c for c in args.commands.split(",") if c),
                direction=args.direction,
                signing_secret=args.signing_secret,
            )
            try:
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

    return _with_database("targets", settings.database.url, go)


def cmd_apikey(args: argparse.Namespace) -> int:
    from .store import apikeys

    settings = _load(args.config, for_daemon=False, command=args.command)
    if not settings.database.url:
        print("crm-bridge apikey: no [database] url in the config", file=sys.stderr)
        return 2
    pbx = settings.pbx.id

    async def go(conn: asyncpg.Connection) -> int:
        if args.action == "create":
            try:
                key = await apikeys.create_key(
                    conn, pbx, args.name, networks=args.network, dialects=args.dialect
                )
            except ValueError as exc:
                print(f"crm-bridge apikey create: {exc}", file=sys.stderr)
                return 2
            print(f"created API key {args.name!r}; it is shown only now:", file=sys.stderr)
            print(key)
        elif args.action == "list":
            for row in await apikeys.list_keys(conn, pbx):
                print(json.dumps(row, ensure_ascii=False))
        elif args.action == "revoke":
            ok = await apikeys.revoke_key(conn, pbx, args.name)
            print("revoked" if ok else f"no live key named {args.name!r}")
            return 0 if ok else 1
        return 0

    return _with_database("apikey", settings.database.url, go)


def _read_password(args: argparse.Namespace) -> str | None:
    """From stdin (--password-stdin: the first line, its line end dropped) or, at a
    terminal, asked twice without echo. Never printed."""
    if args.password_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        return None
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        print("crm-bridge login add: the passwords differ", file=sys.stderr)
        raise SystemExit(2)
    return first


def cmd_login(args: argparse.Namespace) -> int:
    from .store import logins

    settings = _load(args.config, for_daemon=False, command=args.command)
    if not settings.database.url:
        print("crm-bridge login: no [database] url in the config", file=sys.stderr)
        return 2
    pbx = settings.pbx.id
    password = ""
    if args.action == "add":
        read = _read_password(args)
        if read is None:
            print(
                "crm-bridge login add: give the password on stdin with --password-stdin",
                file=sys.stderr,
            )
            return 2
        password = read
        problem = logins.name_problem(args.name) or logins.password_problem(password)
        if problem:
            print(f"crm-bridge login add: {problem}", file=sys.stderr)
            return 2

    async def go(conn: asyncpg.Connection) -> int:
        if args.action == "add":
            try:
                await logins.create_login(
                    conn,
                    pbx,
                    args.name,
                    password,
                    dialects=args.dialect,
                    display_name=args.display_name,
                )
            except ValueError as exc:
                print(f"crm-bridge login add: {exc}", file=sys.stderr)
                return 2
            if "@" not in args.name and (not args.dialect or "billing" in args.dialect):
                print(
                    "crm-bridge login add: note: the billing API logs in by e-mail; "
                    f"{args.name!r} is not one",
                    file=sys.stderr,
                )
            print(f"added login {args.name!r}")
        elif args.action == "list":
            for row in await logins.list_logins(conn, pbx):
                print(json.dumps(row, ensure_ascii=False))
        elif args.action == "remove":
            ok = await logins.remove_login(conn, pbx, args.name)
            print("removed" if ok else f"no login named {args.name!r}")
            return 0 if ok else 1
        return 0

    return _with_database("login", settings.database.url, go)


def cmd_prune(args: argparse.Namespace) -> int:
    from .store.retention import prune
    from .wiring import open_pool

    settings = _load(args.config, for_daemon=False, command="prune")
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
            f"{done.calls} calls, {done.partitions} emptied year partitions"
        )
        return 0

    return asyncio.run(go())


def cmd_apply(args: argparse.Namespace) -> int:
    from .observability.logs import configure_logging
    from .provision.command import apply_now

    settings = _load(args.config, for_daemon=True, command="apply")
    # the log (JSON lines) on stderr, warnings and up: stdout says what was done
    configure_logging("warning", stream=sys.stderr)
    if not settings.provision.config_dir:
        print(
            "crm-bridge apply: [provision] config_dir is empty: provisioning is off",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(apply_now(settings))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo

    return demo(speed=args.speed, traces=args.traces)


CONFIG_HELP = (
    "TOML config file (default: %(default)s); BRIDGE_<SECTION>__<KEY> environment "
    "variables override its keys"
)
OPTIONAL_CONFIG_HELP = (
    "TOML config file (default: none: the built-in defaults); BRIDGE_<SECTION>__<KEY> "
    "environment variables override its keys"
)


def _add_config(parser: argparse.ArgumentParser, default: str | None = DEFAULT_CONFIG) -> None:
    help_text = CONFIG_HELP if default is not None else OPTIONAL_CONFIG_HELP
    parser.add_argument("--config", default=default, metavar="FILE", help=help_text)


def _add_leaf_config(parser: argparse.ArgumentParser) -> None:
    """``outbox list --config F`` as well as ``outbox --config F list``.

    SUPPRESS: a leaf that is not given --config must not overwrite the parent's value.
    """
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"TOML config file (default: {DEFAULT_CONFIG})",
    )


def _signing_secret_arg(value: str) -> str:
    """argparse type: a secret signing can use. ArgumentTypeError, so the value is not echoed."""
    from .config import signing_secret_problem

    problem = signing_secret_problem(value) if value else None
    if problem is not None:
        raise argparse.ArgumentTypeError(f"the signing secret {problem}")
    return value


def _http_url_arg(value: str) -> str:
    from .config import http_url_problem

    problem = http_url_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


DESCRIPTION = """\
Asterisk AMI -> CRM bridge: follows AMI, tracks every call, keeps it in PostgreSQL, sends
CRM webhooks and answers FastAGI look-ups.

`run` and `deliver` check the config the way `check-config` does and refuse to start (exit
status 2, the problems on stderr) on any problem it reports, unknown sections and keys
written outside a section included."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-bridge",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"crm-bridge {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="the daemon: follow AMI, keep every call in PostgreSQL, send webhooks, serve AGI",
        description="The daemon (systemd's ExecStart). Applies the migrations, serves "
        "FastAGI and HTTP, delivers webhooks, and follows AMI while it holds the PBX's lock. "
        "Refuses to start, with exit status 2, on any problem check-config reports.",
    )
    _add_config(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "deliver",
        help="webhook delivery workers only, on any host (scale-out)",
        description="Only the webhook delivery workers: claims outbox rows from the shared "
        "PostgreSQL and sends them. Refuses to start, with exit status 2, on any problem "
        "check-config reports except a missing [asterisk] secret (it never talks to "
        "Asterisk); it needs [database] url.",
    )
    _add_config(p)
    p.set_defaults(func=cmd_deliver)

    p = sub.add_parser(
        "migrate",
        help="apply the SQL migrations to the database (run also does it on every start)",
        description="Apply the SQL migrations that the database lacks; says which, or that "
        "it is up to date.",
    )
    _add_config(p, default=None)
    p.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="PostgreSQL URL to migrate (default: [database] url of the config)",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "check-config",
        help="validate a config file and say in plain words what is wrong",
        description="Validate a config file, with the BRIDGE_* environment applied as the "
        "daemon would: unknown sections and keys (also keys written outside any section), "
        'values of the wrong TOML type (port = 5038, not "5038"; true, not "yes"), '
        "invalid values, and what `run` needs. One line per problem; secrets are never "
        "shown. Exit status 0 when OK, 1 when not. `run` and `deliver` refuse to start on "
        "exactly these problems.",
    )
    p.add_argument(
        "file",
        nargs="?",
        default=None,
        metavar="FILE",
        help=f"the config file (default: {DEFAULT_CONFIG})",
    )
    p.add_argument(
        "--config",
        dest="config_option",
        default=None,
        metavar="FILE",
        help=f"the same as FILE (default: {DEFAULT_CONFIG})",
    )
    p.add_argument(
        "--replay-only",
        action="store_true",
        help="only the [pbx] section, all that `replay` reads (other sections are not read)",
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "replay",
        help="print the CRM payloads a recorded AMI trace produces (no database, no network)",
        description='Run a recorded AMI trace (JSON lines of {"t": seconds, "raw": '
        '"<AMI message>"}) through the call tracker and print, one JSON object per line, '
        "the event and history payloads the primary CRM would receive. Only [pbx] of the "
        "config matters.",
    )
    p.add_argument("trace", metavar="TRACE", help="the trace file (.ami.jsonl)")
    _add_config(p, default=None)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "outbox",
        help="list webhooks, re-drive dead letters, switch a target on again",
        description="The webhook outbox in PostgreSQL: every webhook, its state and tries.",
    )
    _add_config(p)
    osub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    o = osub.add_parser(
        "list",
        help="newest rows first, as JSON lines (counts per state on stderr)",
        description="Newest rows first, one JSON object per line; the counts per state go "
        "to stderr.",
    )
    o.add_argument("--dead", action="store_true", help="dead letters only (= --state dead)")
    o.add_argument(
        "--state",
        choices=["pending", "leased", "sent", "dead", "expired"],
        help="only rows in this state (default: all)",
    )
    o.add_argument("--limit", type=int, default=50, help="at most this many rows (default: 50)")
    _add_leaf_config(o)
    o = osub.add_parser(
        "retry",
        help="send dead letters again (by id, or all of them)",
        description="Put dead letters back in the queue with a fresh retry window; their "
        "webhook-id stays the same.",
    )
    o.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox row ids")
    o.add_argument("--all-dead", action="store_true", help="every dead letter")
    _add_leaf_config(o)
    o = osub.add_parser(
        "enable",
        help="switch a target on again (after its CRM answered 410)",
        description="Switch a webhook target on again; its waiting rows are sent.",
    )
    o.add_argument("target", help="target name, e.g. primary (the config's [crm])")
    _add_leaf_config(o)
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser(
        "targets",
        help="webhook subscriptions besides the config's [crm]: list, add, remove",
        description="Webhook subscriptions kept in the database, each with its own URL, "
        "token, profile, commands and direction. The config's [crm] is the target 'primary'.",
    )
    _add_config(p)
    tsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = tsub.add_parser(
        "list",
        help="every subscription, as JSON lines",
        description="Every subscription of this PBX, one JSON object per line.",
    )
    _add_leaf_config(t)
    t = tsub.add_parser(
        "add",
        help="add a subscription, or replace the one of the same name",
        description="Add a subscription, or replace the one of the same name (it is "
        "switched on again).",
    )
    t.add_argument("name", help="a name of your choice (not 'primary')")
    t.add_argument("url", type=_http_url_arg, help="the receiver's http(s) URL")
    t.add_argument("--token", default="", help="sent as crm_token and X-CRM-Token (default: none)")
    t.add_argument(
        "--profile",
        default="vpbx",
        choices=["vpbx", "vpbx-legacy", "json"],
        help="wire format (default: %(default)s)",
    )
    t.add_argument(
        "--commands",
        default="history,event,rating",
        help="comma-separated commands it receives (default: %(default)s)",
    )
    t.add_argument(
        "--direction",
        default="both",
        choices=["in", "out", "both"],
        help="calls of this direction only (default: %(default)s)",
    )
    t.add_argument(
        "--signing-secret",
        default=None,
        type=_signing_secret_arg,
        metavar="SECRET",
        help='Standard Webhooks signatures: "whsec_" + base64 of the key, or any other '
        "text used as the key as it is (default: unsigned)",
    )
    _add_leaf_config(t)
    t = tsub.add_parser(
        "remove",
        help="delete a subscription and its undelivered webhooks",
        description="Delete a subscription and its undelivered webhooks.",
    )
    t.add_argument("name", help="the subscription's name")
    _add_leaf_config(t)
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser(
        "apikey",
        help="API keys of the pull APIs: create, list, revoke",
        description="API keys for /api/v1, /crmapi/v1 (X-API-KEY) and the other dialects. "
        "A key is stored hashed and shown once, alone on the last line of `create`.",
    )
    _add_config(p)
    asub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = asub.add_parser("create", help="make a key and print it (only this once)")
    a.add_argument("name", help="who or what uses it, e.g. the CRM's name")
    a.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="CIDR",
        help="only from this address or network (repeat for more; default: any)",
    )
    a.add_argument(
        "--dialect",
        action="append",
        default=[],
        choices=["native", "vpbx", "sangoma", "issabel", "billing"],
        help="only for this API (repeat for more; default: all)",
    )
    _add_leaf_config(a)
    a = asub.add_parser("list", help="every key (names, limits, last use; never the key)")
    _add_leaf_config(a)
    a = asub.add_parser("revoke", help="stop a key from working")
    a.add_argument("name")
    _add_leaf_config(a)
    p.set_defaults(func=cmd_apikey)

    p = sub.add_parser(
        "login",
        help="logins of the password-based APIs (billing, Issabel): add, list, remove",
        description="Logins for the APIs that log in with a name and a password: the "
        "billing API (/api/login, the name is an e-mail) and Issabel's. Passwords are kept "
        "as argon2 hashes; the tokens handed out at login as SHA-256 hashes.",
    )
    _add_config(p)
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = lsub.add_parser(
        "add",
        help="make a login (the password from stdin, or asked at a terminal)",
        description="Make a login. The password is read from stdin with --password-stdin "
        "(its first line), or asked twice without echo at a terminal; it is never shown.",
    )
    a.add_argument("name", help="the login's name: an e-mail for the billing API")
    a.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    a.add_argument(
        "--dialect",
        action="append",
        default=[],
        choices=["billing", "issabel"],
        help="only for this API (repeat for more; default: all of them)",
    )
    a.add_argument("--display-name", default="", help="a name to show (default: none)")
    _add_leaf_config(a)
    a = lsub.add_parser("list", help="every login (names, APIs, last login; never a password)")
    _add_leaf_config(a)
    a = lsub.add_parser("remove", help="delete a login and log it out everywhere")
    a.add_argument("name")
    _add_leaf_config(a)
    p.set_defaults(func=cmd_login)

    p = sub.add_parser(
        "prune",
        help="delete rows older than the [retention] ages",
        description="Delete delivered webhooks, old delivery attempts and (when "
        "[retention] calls_days is set) old calls; the daemon does the same every "
        "[retention] interval.",
    )
    _add_config(p)
    p.add_argument("--sent-days", type=float, default=None, help="override [retention] sent_days")
    p.add_argument(
        "--attempts-days", type=float, default=None, help="override [retention] attempts_days"
    )
    p.add_argument("--calls-days", type=float, default=None, help="override [retention] calls_days")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser(
        "apply",
        help="render the provisioned extensions, ring groups and numbers and apply them now",
        description="Render what the directory provisions into [provision] config_dir, reload "
        "it over AMI and check that Asterisk shows it (rolled back when it does not); write "
        "AstDB what the black list, do-not-disturb and recording settings say. For writes "
        "stored while Asterisk was away or with reload=false. Exit status 0 when Asterisk runs "
        "the directory, 1 when it does not (why on stderr), 2 on a config problem.",
    )
    _add_config(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "demo",
        help="everything on localhost with recorded calls; no Asterisk needed (Ctrl-C stops)",
        description="A private PostgreSQL, an AMI server replaying recorded calls again and "
        "again, a CRM receiver printing what it gets, and the bridge with its API on "
        "127.0.0.1:8080, until Ctrl-C.",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed factor, 1 = the recorded pace (default: %(default)s)",
    )
    p.add_argument(
        "traces",
        nargs="*",
        metavar="TRACE",
        help="traces to replay (default: the recorded ones in traces/asterisk22)",
    )
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
