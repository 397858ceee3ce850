"""Settings: one TOML file plus ``BRIDGE_*`` environment overrides (SPEC section 7).

Every section has defaults, so a file holding only ``[pbx]`` (what ``crm-bridge replay``
needs) loads. Keys the daemon cannot run without (``asterisk.secret``, ``database.url``)
are checked separately by :meth:`Settings.daemon_problems`, because replay must not
demand them.

:func:`check_config_file` and :func:`load_settings` run the same checks, so ``crm-bridge
run`` refuses to start on exactly what ``crm-bridge check-config`` reports: every problem
is one plain-English line naming the section and the key. Values written in the file must
have their TOML type (``port = 5038``, not ``"5038"``; ``true``, not ``"yes"``); values
from the environment are always text and are converted. No message ever shows the value of
a secret (a key whose name says secret, token or password): it names the key and the
problem only, and URLs are shown with their password and query values as ``***``.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import fnmatch
import json
import math
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .crm import signing

__all__ = [
    "AgiSettings",
    "ApiSettings",
    "AsteriskSettings",
    "CompanyNumber",
    "ConfigError",
    "CrmSettings",
    "DatabaseSettings",
    "DeliverySettings",
    "LogSettings",
    "PbxSettings",
    "ProvisionSettings",
    "RetentionSettings",
    "Settings",
    "check_config_file",
    "http_url_problem",
    "load_settings",
    "mask_url",
    "signing_secret_problem",
    "split_listen",
]

ENV_PREFIX = "BRIDGE_"
ENV_NESTED_DELIMITER = "__"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
CrmProfile = Literal["vpbx", "vpbx-legacy", "json"]

# A key whose name contains one of these holds a secret: messages never show its value.
SECRET_WORDS = ("secret", "token", "password", "passwd")


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` holds one plain-English line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- showing values
# Problems end up in the journal (systemd logs what `run` prints when it refuses to start):
# a secret's value must never be part of one.


def _is_secret_loc(loc: tuple[int | str, ...]) -> bool:
    return any(isinstance(part, str) and _is_secret_name(part) for part in loc)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):.*@")
_BARE_USERINFO = re.compile(r"^(?P<head>[^/?#@:\s]*):.*@")  # `bridge:pw@db/x`, no scheme
_QUERY_VALUE = re.compile(r"(?P<key>[?&;][^=&#;]*=)[^&#;]*")
# libpq's key=value form (`host=db password=x`), which is not a URL but may be written.
_SECRET_PAIR = re.compile(r"(?P<key>(?:password|passwd|secret|token)\s*=\s*)\S+", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``postgresql://bridge:pw@db/x?password=pw`` -> ``postgresql://bridge:***@db/x?password=***``.

    Works on malformed URLs too (it is used to describe them): everything between the
    user name and the last ``@`` is the password, and every query value is hidden,
    because CRM webhook URLs often carry their key there.
    """
    userinfo = _USERINFO if "://" in url else _BARE_USERINFO
    masked = userinfo.sub(lambda m: f"{m.group('head')}:***@", url, count=1)
    masked = _SECRET_PAIR.sub(lambda m: f"{m.group('key')}***", masked)
    head, sep, query = masked.partition("?")
    if not sep:
        return masked
    return head + _QUERY_VALUE.sub(lambda m: f"{m.group('key')}***", "?" + query)


def _looks_like_credentials(text: str) -> bool:
    return "://" in text or "@" in text or "=" in text


def _toml_type(value: object) -> str:
    """What a TOML value is, in words: for messages that must not show the value itself."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return "a date or time"


def _show(value: object, loc: tuple[int | str, ...] = ()) -> str:
    """Render a value the way it would look in TOML, shortened, secrets and tables hidden."""
    if _is_secret_loc(loc):
        return "the value" if isinstance(value, str) else f"the value ({_toml_type(value)})"
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        return _toml_type(value)  # a table may hold a secret: never print one
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(
            mask_url(value) if _looks_like_credentials(value) else value, ensure_ascii=False
        )
    elif isinstance(value, list | tuple):
        items = [
            mask_url(v) if isinstance(v, str) and _looks_like_credentials(v) else v for v in value
        ]
        text = json.dumps(items, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- value checks
# They raise ValueError with a message that already quotes the value (never a secret's),
# so the translated problem reads `[crm] url: "ftp://x" is not an http(s) URL`.

# Asterisk's channel technologies, as Asterisk spells them (channel names are matched
# case-sensitively, so `pjsip/*` would never match anything).
CHANNEL_TECHS = (
    "PJSIP",
    "SIP",
    "IAX2",
    "DAHDI",
    "Local",
    "Console",
    "Motif",
    "Skinny",
    "MGCP",
    "UNISTIM",
    "ooh323",
    "H323",
    "Dongle",
    "WebSocket",
)
_TECH = re.compile(r"[A-Za-z0-9_*?\[\]!-]+")


def _check_channel_pattern(value: str) -> str:
    """A channel pattern is ``TECH/resource`` with fnmatch wildcards, e.g. ``PJSIP/trunk-*``."""
    pattern = value.strip()
    tech, sep, rest = pattern.partition("/")
    if not sep or not tech or not rest or any(ch.isspace() for ch in pattern):
        raise ValueError(
            f"{_show(value)} is not a channel-name pattern (expected TECH/name with optional "
            f'wildcards, e.g. "PJSIP/trunk-*")'
        )
    if not _TECH.fullmatch(tech):
        raise ValueError(
            f"{_show(value)} is not a channel-name pattern: {_show(tech)} is not a channel "
            f"technology (letters and digits, e.g. PJSIP, SIP, IAX2, DAHDI)"
        )
    spelled = {known.lower(): known for known in CHANNEL_TECHS}.get(tech.lower())
    if spelled == "Local":
        raise ValueError(
            f"{_show(value)} can never match: Local channels are plumbing (the halves of a "
            f"Local pair), never a trunk or a phone"
        )
    if spelled is not None and spelled != tech:
        raise ValueError(
            f"{_show(value)} can never match: channel names are case-sensitive and Asterisk "
            f"writes {spelled}/..."
        )
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise ValueError(f"{_show(value)} is not a valid wildcard pattern ({exc})") from None
    return pattern


_URL_HEAD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<netloc>[^/?#]*)")


def _url_head(value: str) -> str:
    """``"https://host:port/…"`` of a URL, for messages: CRM webhook URLs keep their key in
    the path (Bitrix24's ``/rest/1/<key>/``) or the query, and the user info is a
    password."""
    url = value.strip()
    m = _URL_HEAD.match(url)
    assert m is not None  # every part is optional
    head = (m.group("scheme") or "") + m.group("netloc").rpartition("@")[2]
    text = json.dumps(head + ("/…" if url[m.end() :] else ""), ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_http_url(value: str) -> str:
    """CRM targets and recording links must be absolute http(s) URLs with a host."""
    url = value.strip()
    bad = f"{_url_head(value)} is not an http(s) URL (expected e.g. https://host/path)"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError:
        raise ValueError(bad) from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError(bad)
    if any(ch.isspace() for ch in url):
        raise ValueError(f"{_url_head(value)} contains spaces (write them as %20)")
    return url


def http_url_problem(value: str) -> str | None:
    """Why ``value`` is not a usable http(s) URL (for the CLI's ``targets add``), or None."""
    try:
        _check_http_url(value)
    except ValueError as exc:
        return str(exc)
    return None


def _check_postgres_url(value: str) -> str:
    """asyncpg takes a libpq-style URL; anything else fails late and obscurely at connect."""
    url = value.strip()
    example = '(expected e.g. "postgresql://bridge@127.0.0.1/bridge")'
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(f"{_show(value)} is not a valid PostgreSQL URL {example}") from None
    if parts.scheme.lower() not in ("postgres", "postgresql"):
        raise ValueError(f"{_show(value)} is not a PostgreSQL URL {example}")
    return url


def split_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6addr]:port``) into its parts; ValueError when malformed."""
    text = value.strip()
    match = re.fullmatch(
        r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<port>\d+)|(?P<host>[^:\s\[\]]+):(?P<port2>\d+)", text
    )
    if match is None:
        raise ValueError(f'{_show(value)} is not host:port (expected e.g. "127.0.0.1:4573")')
    host = match.group("v6") or match.group("host")
    port = int(match.group("port") or match.group("port2"))
    if not 1 <= port <= 65535:
        raise ValueError(f"{_show(value)} has port {port}, which is not between 1 and 65535")
    return host, port


def _check_listen(value: str) -> str:
    """Keep ``listen`` a string (what the servers are given) but reject what cannot bind."""
    split_listen(value)
    return value.strip()


def _check_host(value: str) -> str:
    """A host name or address alone: the port has its own key."""
    host = value.strip()
    if "://" in host:
        raise ValueError(
            f'{_show(value)} is a URL; write only the host name or address, e.g. "127.0.0.1"'
        )
    if any(ch.isspace() or ch in "/@" for ch in host):
        raise ValueError(f"{_show(value)} is not a host name or address")
    if host.count(":") == 1:
        raise ValueError(f"{_show(value)} has a port; write the host alone and the port in `port`")
    return host.removeprefix("[").removesuffix("]")


def _check_phone(value: str) -> str:
    """Company numbers are compared with E.164 digits, so only digits (a leading + is dropped)."""
    digits = value.strip().removeprefix("+")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 15:
        raise ValueError(f'{_show(value)} is not a phone number (digits only, e.g. "74957654321")')
    return digits


def signing_secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot sign webhooks, or None; never quotes the secret.

    The test is :mod:`bridge.crm.signing` itself: a ``whsec_`` secret must decode the way
    signing will decode it (else every webhook fails with ``Incorrect padding``); any other
    text is used as the key as it is, which signing accepts too. A ``whsec_`` secret whose
    key is empty signs nothing worth checking, so it is refused as well.
    """
    prefix = "whsec_"
    try:
        signing.signature(secret, "msg_config_check", 0, b"")
    except (binascii.Error, ValueError) as exc:
        return (
            f'starts with "{prefix}" but what follows is not valid base64 ({exc}); write '
            f'"{prefix}" and the base64 of a random key, e.g. the output of '
            f'echo "{prefix}$(openssl rand -base64 32)"'
        )
    if secret.startswith(prefix) and not base64.b64decode(secret[len(prefix) :], validate=True):
        return f'has no key after "{prefix}" (the base64 part decodes to nothing)'
    return None


# Extensions may be dialled (Dial(PJSIP/${CRM_RESPONSIBLE})): nothing a dial string could
# read as a separator (& , / ( ) : @) or a variable.
_EXTENSION = re.compile(r"[A-Za-z0-9_.-]+")


def _one_line(text: str) -> bool:
    return bool(text) and text.isprintable()


def _check_users(value: dict[str, str]) -> dict[str, str]:
    """``[pbx] users``: extension -> directory login."""
    problems = []
    for ext, login in value.items():
        if not _EXTENSION.fullmatch(ext.strip()):
            problems.append(
                f"{_show(ext)} is not an extension (letters, digits, '.', '_' or '-'; "
                f"it may end up in a dial string)"
            )
        elif not _one_line(login.strip()):
            problems.append(f"{_show(ext)}: the login must be one line of text, not empty")
    if problems:
        raise ValueError("; ".join(problems))
    return {ext.strip(): login.strip() for ext, login in value.items()}


def _check_groups(value: dict[str, str]) -> dict[str, str]:
    """``[pbx] groups``: queue name, ring-group extension or DID -> display name."""
    problems = []
    for key, name in value.items():
        key = key.strip()
        if not key or not key.isprintable() or any(ch.isspace() for ch in key):
            problems.append(
                f"{_show(key)} is not a queue name, extension or number (no spaces, not empty)"
            )
        elif not _one_line(name.strip()):
            problems.append(f"{_show(key)}: the name must be one line of text, not empty")
    if problems:
        raise ValueError("; ".join(problems))
    return {key.strip(): name.strip() for key, name in value.items()}


_ROUTE = re.compile(r"(user|queue|group|ivr):([^\s:]+)")


def _check_route(value: str) -> str:
    """Where a company number's calls go: ``user:<login or extension>``, ``queue:<queue
    name>``, ``group:<ring-group extension>`` or ``ivr:<name>``; empty: not said."""
    route = value.strip()
    if route and not _ROUTE.fullmatch(route):
        raise ValueError(
            f'{_show(value)} is not a route (expected "user:<login or extension>", '
            f'"queue:<queue name>", "group:<ring-group extension>" or "ivr:<name>")'
        )
    return route


def _check_numbers(value: object) -> object:
    """``[pbx] numbers``: E.164 digits -> a name, or ``{ name = "...", route = "..." }``.
    Every entry is checked, so each problem is reported at once, in words."""
    if not isinstance(value, dict):
        return value  # pydantic says "is not a table"
    problems, numbers = [], {}
    for key, entry in value.items():
        try:
            telnum = _check_phone(str(key))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            problems.append(
                f"{_show(key)}: {_show(entry)} is neither a name (text) nor a table "
                f'like {{ name = "Main line", route = "queue:sales" }}'
            )
            continue
        unknown = sorted(set(entry) - {"name", "route"})
        if unknown:
            problems.append(f"{_show(key)}: unknown key {_show(unknown[0])} (known: name, route)")
            continue
        if not all(isinstance(v, str) for v in entry.values()):
            problems.append(f"{_show(key)}: name and route are text (in double quotes)")
            continue
        try:
            _check_route(entry.get("route", ""))
        except ValueError as exc:
            problems.append(f"{_show(key)}: {exc}")
            continue
        numbers[telnum] = entry
    if problems:
        raise ValueError("; ".join(problems))
    return numbers


# Asterisk's `{tech}/{ext}` and `Local/{ext}@context` dial strings, nothing an AMI header
# or a dial string could read as a separator.
_DIAL_TEMPLATE = re.compile(r"[A-Za-z0-9_.@/{}-]+")
_CONTEXT = re.compile(r"[A-Za-z0-9_.+-]+")


def _check_dial_template(value: str) -> str:
    template = value.strip()
    if not _DIAL_TEMPLATE.fullmatch(template) or "{ext}" not in template:
        raise ValueError(
            f"{_show(value)} is not a channel template: it must contain {{ext}} and be like "
            f'"{{tech}}/{{ext}}" or "Local/{{ext}}@crm-bridge-ring-all"'
        )
    try:
        channel = template.format(ext="1001", tech="PJSIP")
    except (KeyError, IndexError, ValueError):
        raise ValueError(
            f"{_show(value)} is not a channel template: only {{ext}} and {{tech}} are filled in"
        ) from None
    tech, sep, rest = channel.partition("/")
    if not sep or not tech or not rest:
        raise ValueError(f'{_show(value)} is not a channel template (expected "TECH/...")')
    return template


# --------------------------------------------------------------------------- sections

# Checked per item, so every bad pattern of a list is reported, each with its index.
ChannelPattern = Annotated[str, AfterValidator(_check_channel_pattern)]


class _Section(BaseModel):
    """Unknown keys are errors: a misspelt key would otherwise be silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class CompanyNumber(_Section):
    """``[pbx.numbers]`` entry written as a table: ``{ name = "...", route = "queue:sales" }``."""

    name: str = ""
    route: str = ""

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        return _check_route(value)


class PbxSettings(_Section):
    """Which PBX this is and how its channels are classified (SPEC section 3)."""

    id: str = Field(default="main", min_length=1)
    region: str = "RU"
    trunks: list[ChannelPattern] = Field(default_factory=lambda: ["PJSIP/trunk-*"])
    extensions: list[ChannelPattern] = Field(default_factory=lambda: ["PJSIP/*", "SIP/*"])
    main_number: str | None = None
    send_internal: bool = False
    # an outbound call to a customer whose inbound call was missed less than this many
    # seconds before (and not answered since) is a call back: its history says missedStatus=2
    callback_window: float = Field(default=86_400.0, gt=0)
    users: dict[str, str] = Field(default_factory=dict)
    groups: dict[str, str] = Field(default_factory=dict)
    # company numbers (DIDs): E.164 digits -> a name, or a table with name and route
    numbers: dict[str, CompanyNumber] = Field(default_factory=dict)
    # seconds between two reads of Asterisk's endpoints and queues (also after each login)
    directory_refresh: float = Field(default=300.0, ge=10)

    @field_validator("region")
    @classmethod
    def _region_known(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{_show(value)} is not a two-letter region known to phonenumbers "
                f'(e.g. "RU", "DE", "US")'
            )
        return region

    @field_validator("trunks", "extensions")
    @classmethod
    def _some_patterns(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('must list at least one channel pattern, e.g. ["PJSIP/trunk-*"]')
        return value

    @field_validator("main_number", mode="before")
    @classmethod
    def _main_number_as_text(cls, value: object) -> object:
        # `main_number = 74957654321` (no quotes) is a TOML integer; accept it as meant.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("main_number")
    @classmethod
    def _main_number(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else _check_phone(value)

    @field_validator("users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_users(value)

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_groups(value)

    @field_validator("numbers", mode="before")
    @classmethod
    def _numbers(cls, value: object) -> object:
        return _check_numbers(value)


class AsteriskSettings(_Section):
    """AMI connection and the watchdog/backoff that keep it honest (SPEC section 2)."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(default="bridge", min_length=1)
    secret: str | None = Field(default=None, repr=False)
    ping_interval: float = Field(default=5.0, gt=0)
    ping_timeout: float = Field(default=5.0, gt=0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)
    queue_size: int = Field(default=100_000, ge=1)
    # the SIP channel driver of the phones the bridge provisions: "pjsip" (chan_pjsip,
    # every Asterisk since 13) or "sip" (chan_sip, Asterisk 13-20)
    channel_driver: Literal["pjsip", "sip"] = "pjsip"

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_host(value)


class DatabaseSettings(_Section):
    """PostgreSQL: the url is only required by the daemon, never by replay."""

    url: str | None = Field(default=None, repr=False)
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    connect_timeout: float = Field(default=5.0, gt=0)  # seconds to open a connection
    command_timeout: float = Field(default=30.0, gt=0)  # seconds any one query may take
    # tracker outputs held in memory while PostgreSQL is away (then written, in order)
    outage_buffer: int = Field(default=200_000, ge=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else _check_postgres_url(value)

    @model_validator(mode="after")
    def _pool_order(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError(
                f"pool_min ({self.pool_min}) is larger than pool_max ({self.pool_max})"
            )
        return self


class CrmSettings(_Section):
    """The primary CRM; further targets are subscriptions kept in the database."""

    url: str | None = None
    token: str | None = Field(default=None, repr=False)
    profile: CrmProfile = "vpbx"
    signing_secret: str | None = Field(default=None, repr=False)  # Standard Webhooks HMAC
    event_ttl: float = Field(default=60.0, gt=0)  # seconds a ringing pop-up stays worth sending
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=15.0, gt=0)  # total per request
    contact_timeout: float = Field(default=1.5, gt=0)  # the dialplan waits at most this long

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else _check_http_url(value)

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None  # no signatures
        problem = signing_secret_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class _Listener(_Section):
    """A section with a `listen = "host:port"` key."""

    listen: str = "127.0.0.1:0"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _check_listen(value)

    @property
    def listen_host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_listen(self.listen)[1]


class AgiSettings(_Listener):
    """FastAGI listener the dialplan calls for contact look-ups and ratings."""

    listen: str = "127.0.0.1:4573"
    cache_ttl: float = Field(default=300.0, ge=0)  # seconds a CRM answer is served from cache
    breaker_failures: int = Field(default=5, ge=1)  # consecutive failures that open the breaker
    breaker_reset: float = Field(default=30.0, gt=0)  # seconds before asking the CRM again
    # The server runs in a process of its own (bridge.agi.worker) and the rest of the
    # daemon at nice `bridge_nice`: on a busy CPU the kernel runs a look-up first.
    own_process: bool = True
    bridge_nice: int = Field(default=5, ge=0, le=19)


class DeliverySettings(_Section):
    """Webhook delivery workers (the outbox)."""

    workers: int = Field(default=4, ge=1, le=256)
    lease: float = Field(default=30.0, gt=0)  # a crashed worker's rows come back after this
    poll_interval: float = Field(default=2.0, gt=0)  # fallback when NOTIFY is missed
    retry_for: float = Field(default=172_800.0, ge=86_400.0)  # history/rating keep trying
    max_client_errors: int = Field(default=3, ge=1)  # other 4xx: tries before dead letter
    retry_base_delay: float = Field(default=1.0, gt=0)  # first retry; doubles each time
    retry_max_delay: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _delay_order(self) -> DeliverySettings:
        if self.retry_base_delay > self.retry_max_delay:
            raise ValueError(
                f"retry_base_delay ({_number(self.retry_base_delay)}) is larger than "
                f"retry_max_delay ({_number(self.retry_max_delay)})"
            )
        return self


class ApiSettings(_Listener):
    """HTTP API listener; public_url is the base of recording links handed to CRMs."""

    listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    link_secret: str | None = Field(default=None, repr=False)  # signs recording links
    link_ttl: float = Field(default=2_592_000.0, gt=0)  # seconds a recording link works
    recordings_dir: str = "/var/spool/asterisk/monitor"  # links serve files under it only
    # /readyz says degraded when a history has waited longer than this for its CRM
    ready_history_age: float = Field(default=300.0, gt=0)
    # Sangoma CRM "Send WebHooks": its subscriptions get the call at its start, its end, or both
    sangoma_webhooks: Literal["start", "end", "both"] = "both"
    # click-to-call: the employee's phone(s) are rung through this channel ({ext}: their
    # extension, {tech}: PJSIP or SIP as Asterisk lists the endpoint), then the customer's
    # number (E.164 digits) is dialled in this context
    click_to_call_channel: str = "{tech}/{ext}"
    click_to_call_context: str = "from-internal"
    click_to_call_priority: int = Field(default=1, ge=1)
    click_to_call_ring_time: float = Field(default=30.0, gt=0, le=600)  # seconds

    @field_validator("click_to_call_channel")
    @classmethod
    def _click_to_call_channel(cls, value: str) -> str:
        return _check_dial_template(value)

    @field_validator("click_to_call_context")
    @classmethod
    def _click_to_call_context(cls, value: str) -> str:
        context = value.strip()
        if not _CONTEXT.fullmatch(context):
            raise ValueError(
                f'{_show(value)} is not a dialplan context name (e.g. "from-internal")'
            )
        return context

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        url = _check_http_url(value)
        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise ValueError(
                f"{_show(value)} has a ?query or #fragment; recording links are built as "
                f"<public_url>/recordings/<callid>?..., so give the base URL only"
            )
        return url.rstrip("/")

    @field_validator("link_secret")
    @classmethod
    def _link_secret(cls, value: str | None) -> str | None:
        return value or None  # empty: no recording links

    @field_validator("recordings_dir")
    @classmethod
    def _recordings_dir(cls, value: str) -> str:
        if not PurePosixPath(value).is_absolute():
            raise ValueError(
                f'{_show(value)} is not an absolute path (e.g. "/var/spool/asterisk/monitor")'
            )
        return value


def _check_context_name(value: str, *, empty: bool) -> str:
    context = value.strip()
    if (context or not empty) and not _CONTEXT.fullmatch(context):
        allowed = "; empty: none" if empty else ""
        raise ValueError(
            f'{_show(value)} is not a dialplan context name (e.g. "from-internal"{allowed})'
        )
    return context


class ProvisionSettings(_Section):
    """Provisioning: the bridge renders its directory's extensions, ring groups and company
    numbers into Asterisk config files (pjsip_crm_bridge.conf or sip_crm_bridge.conf, and
    extensions_crm_bridge.conf) in `config_dir`, reloads them over AMI and checks that
    Asterisk took them. Empty `config_dir`: provisioning is off."""

    config_dir: str = ""
    # the context of the phones' own dialplan (outbound routes, feature codes): provisioned
    # phones fall back to it, and it reaches the provisioned extensions; "": neither
    internal_context: str = "from-internal"
    # the context the carrier's calls arrive in: it reaches the company numbers the bridge
    # routes; "": not hooked (send calls to context crm-bridge-numbers yourself)
    inbound_context: str = "from-trunk"
    # an endpoint template (pjsip.conf / sip.conf) the provisioned phones inherit
    # (transport, codecs, NAT options); "": none (codecs ulaw and alaw)
    endpoint_template: str = ""
    ring_time: int = Field(default=20, ge=1, le=600)  # seconds, for employees without their own
    confirm_timeout: float = Field(default=10.0, gt=0, le=300)  # seconds Asterisk has to show it
    lock_timeout: float = Field(default=60.0, gt=0)  # seconds to wait for another apply

    @field_validator("config_dir")
    @classmethod
    def _config_dir(cls, value: str) -> str:
        if value and not PurePosixPath(value).is_absolute():
            raise ValueError(f'{_show(value)} is not an absolute path (e.g. "/etc/asterisk")')
        return value.rstrip("/") or value

    @field_validator("internal_context", "inbound_context")
    @classmethod
    def _contexts(cls, value: str) -> str:
        return _check_context_name(value, empty=True)

    @field_validator("endpoint_template")
    @classmethod
    def _template(cls, value: str) -> str:
        template = value.strip()
        if template and not re.fullmatch(r"[A-Za-z0-9_.-]+", template):
            raise ValueError(
                f"{_show(value)} is not a template name (letters, digits, '.', '_' or '-')"
            )
        return template


class RetentionSettings(_Section):
    """How long rows are kept; `crm-bridge prune` and the daemon (every `interval`) delete
    what is older. 0 keeps forever."""

    # (at most a century: an age a date can be computed from)
    sent_days: float = Field(default=7.0, ge=0, le=36500)  # delivered / expired webhook rows
    attempts_days: float = Field(default=30.0, ge=0, le=36500)  # attempts of kept rows
    calls_days: float = Field(default=0.0, ge=0, le=36500)  # finished calls, events, legs
    interval: float = Field(default=3600.0, gt=0)  # seconds between two prunes


class CelSettings(_Section):
    """Asterisk's Channel Event Log, read after every gap (start-up, AMI reconnect, a
    PostgreSQL outage that cost the lead) to report the calls the bridge did not see or
    saw only in part (README "Backfill from CEL"). No `[cel]` (source ""): no backfill.

    - `source = "csv"`: cel_custom's file (`path`; `fields` in the order of
      cel_custom.conf's `fields =` line, the lab's by default; `timezone` of its
      EventTime when cel.conf sets a `dateformat`);
    - `source = "pgsql"`: cel_pgsql's table (`url`, `table`; a `timestamp` EventTime is
      read in `timezone`: set `usegmtime = yes` in cel_pgsql.conf and keep "UTC")."""

    source: Literal["", "csv", "pgsql"] = ""
    path: str = ""
    fields: list[str] = Field(default_factory=list)
    timezone: str = "UTC"
    url: str | None = Field(default=None, repr=False)
    table: str = "cel"
    poll_interval: float = Field(default=2.0, gt=0)  # seconds between reads while waiting
    settle_timeout: float = Field(default=60.0, gt=0)  # seconds a call waits for its rows

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value and not PurePosixPath(value).is_absolute():
            raise ValueError(
                f"{_show(value)} is not an absolute path "
                f'(e.g. "/var/log/asterisk/cel-custom/cel_master.csv")'
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_postgres_url(value) if value else None

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", value):
            raise ValueError(f'{_show(value)} is not a table name (e.g. "cel" or "asterisk.cel")')
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f'{_show(value)} is not a time zone (e.g. "UTC")') from None
        return value

    @model_validator(mode="after")
    def _source_needs(self) -> CelSettings:
        if self.source == "csv" and not self.path:
            raise ValueError('source = "csv" needs path (cel_custom\'s file)')
        if self.source == "pgsql" and not self.url:
            raise ValueError('source = "pgsql" needs url (the database cel_pgsql writes to)')
        if self.fields:
            names = {f.split("(", 1)[0].strip().lower() for f in self.fields}
            needed = {"eventtype", "eventtime", "uniqueid", "linkedid"}
            if not needed <= names or not names & {"channame", "channel"}:
                raise ValueError(
                    "fields must name EventType, EventTime, UniqueID, LinkedID and ChanName"
                )
        return self


class LogSettings(_Section):
    """Log threshold for both our loggers and the libraries' stdlib loggers."""

    level: str = "info"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().lower()
        level = "warning" if level == "warn" else level
        if level not in LOG_LEVELS:
            raise ValueError(f"{_show(value)} is not a log level (one of {', '.join(LOG_LEVELS)})")
        return level


# --------------------------------------------------------------------------- settings


# The file's data for the Settings being built right now. A ContextVar (not a class
# attribute) so two loads in different tasks or threads cannot see each other's file.
@dataclass(frozen=True)
class _LoadPlan:
    file_data: Mapping[str, Any] = field(default_factory=dict)
    use_env: bool = True
    only: frozenset[str] | None = None  # the sections read (None: all); others: defaults
    # variables left out (check-config: those that are not JSON, to check all the rest)
    skip_env: frozenset[str] = frozenset()


class _SectionsOnly(PydanticBaseSettingsSource):
    """The environment's overrides of some sections only (replay reads ``[pbx]`` alone)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        env: PydanticBaseSettingsSource,
        only: frozenset[str],
    ) -> None:
        super().__init__(settings_cls)
        self.env, self.only = env, only

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work

    def __call__(self) -> dict[str, Any]:
        return {name: value for name, value in self.env().items() if name in self.only}


_LOAD_PLAN: ContextVar[_LoadPlan | None] = ContextVar("bridge_config_load_plan", default=None)


@contextmanager
def _plan(plan: _LoadPlan) -> Iterator[None]:
    token = _LOAD_PLAN.set(plan)
    try:
        yield
    finally:
        _LOAD_PLAN.reset(token)


class Settings(BaseSettings):
    """The whole configuration. Priority: constructor kwargs > environment > file > defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        # Unknown sections of the file are errors, reported by _structure_problems (here
        # they would be mixed up with unrelated BRIDGE_* variables of the environment).
        extra="ignore",
    )

    pbx: PbxSettings = Field(default_factory=PbxSettings)
    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)
    agi: AgiSettings = Field(default_factory=AgiSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    provision: ProvisionSettings = Field(default_factory=ProvisionSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    cel: CelSettings = Field(default_factory=CelSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Put the TOML file below the environment, so env wins over the file."""
        plan = _LOAD_PLAN.get() or _LoadPlan()
        file_source = InitSettingsSource(settings_cls, init_kwargs=dict(plan.file_data))
        if not plan.use_env:
            return init_settings, file_source
        if plan.skip_env and isinstance(env_settings, EnvSettingsSource):
            skip = {name.lower() for name in plan.skip_env}
            env_settings.env_vars = {
                k: v for k, v in env_settings.env_vars.items() if k.lower() not in skip
            }
        if plan.only is not None:
            env_settings = _SectionsOnly(settings_cls, env_settings, plan.only)
        return init_settings, env_settings, file_source

    def daemon_problems(self) -> list[str]:
        """What ``crm-bridge run`` needs beyond what replay needs, as plain-English lines."""
        problems: list[str] = []
        if not self.asterisk.secret:
            problems.append(
                "[asterisk] secret: missing; the daemon needs it to log in to AMI "
                f"(set it in the file or in {ENV_PREFIX}ASTERISK__SECRET)"
            )
        if not self.database.url:
            problems.append(
                "[database] url: missing; the daemon needs PostgreSQL, e.g. "
                '"postgresql://bridge@127.0.0.1/bridge" '
                f"(set it in the file or in {ENV_PREFIX}DATABASE__URL)"
            )
        return problems

    def consistency_problems(self) -> list[str]:
        """Values that are each fine but cannot work together."""
        problems: list[str] = []
        (agi_host, agi_port), (api_host, api_port) = (
            split_listen(self.agi.listen),
            split_listen(self.api.listen),
        )
        everywhere = {"0.0.0.0", "::"}
        if agi_port == api_port and (agi_host == api_host or {agi_host, api_host} & everywhere):
            problems.append(
                f"[agi] listen and [api] listen: both want port {agi_port}; give each its own"
            )
        return problems


SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


# --------------------------------------------------------------------------- reading the file


def _read_toml(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """Read and parse the file; on failure return the problems instead of raising."""
    where = f"config file {str(path)!r}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [f"{where}: not found"]
    except IsADirectoryError:
        return None, [f"{where}: is a directory, not a file"]
    except PermissionError:
        return None, [f"{where}: cannot be read (permission denied)"]
    except OSError as exc:
        return None, [f"{where}: cannot be read ({exc.strerror or exc})"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{where}: is not UTF-8 text (bad byte at offset {exc.start})"]
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        return None, [_describe_toml_error(where, exc)]


def _describe_toml_error(where: str, exc: tomllib.TOMLDecodeError) -> str:
    # tomllib's messages name the position and the rule, never the text that broke it.
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if match is None:
        match = re.search(r"\s*\(at end of document\)\s*$", message)
        if match is None:
            return f"{where}: TOML syntax error: {message}"
        return f"{where}: TOML syntax error at the end of the file: {message[: match.start()]}"
    line, column = match.group(1), match.group(2)
    return f"{where}: TOML syntax error at line {line}, column {column}: {message[: match.start()]}"


def _structure_problems(data: Mapping[str, Any]) -> list[str]:
    """Unknown sections and keys written outside any section (pydantic would ignore both)."""
    problems: list[str] = []
    for key, value in data.items():
        if key in SECTIONS:
            continue
        if isinstance(value, dict):
            hint = _did_you_mean(key, SECTIONS, prefix="[", suffix="]")
            problems.append(
                f"[{key}]: unknown section{hint} (known sections: {', '.join(SECTIONS)})"
            )
        else:
            owner = next((s for s in SECTIONS if key in _section_keys(s)), None)
            hint = f", e.g. under [{owner}]" if owner else ""
            problems.append(f"{key}: written outside any section; keys belong in a section{hint}")
    return problems


def _did_you_mean(
    word: str, choices: tuple[str, ...] | list[str], prefix: str = "", suffix: str = ""
) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {prefix}{close[0]}{suffix}?" if close else ""


def _section_model(name: str) -> type[BaseModel] | None:
    info = Settings.model_fields.get(name)
    annotation = info.annotation if info is not None else None
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _section_keys(name: str) -> list[str]:
    model = _section_model(name)
    return list(model.model_fields) if model is not None else []


def _where(loc: tuple[int | str, ...]) -> str:
    """``("pbx", "trunks", 0)`` -> ``[pbx] trunks[0]``."""
    if not loc:
        return "config"
    head = f"[{loc[0]}]"
    key = ""
    for part in loc[1:]:
        if isinstance(part, int):
            key += f"[{part}]"
        elif key:
            key += f"[{json.dumps(part)}]" if not part.isidentifier() else f".{part}"
        else:
            key = str(part)
    return f"{head} {key}" if key else head


# --------------------------------------------------------------------------- TOML types
# pydantic is lenient (port = "5038" becomes 5038) because environment values are always
# text. The file is held to TOML's types: a quoted number or a "no" is a mistake there,
# and mistakes are cheaper found by check-config than by a webhook that never goes out.


@dataclass(frozen=True)
class _Kind:
    name: Literal["text", "whole", "number", "bool", "list", "table"]
    item: _Kind | None = None


_WORDS = {
    "text": "text",
    "whole": "a whole number",
    "number": "a number",
    "bool": "true or false",
}
# Keys whose text may be written as a TOML integer (a phone number without quotes).
_TEXT_OR_WHOLE = {("pbx", "main_number")}


def _kind_of(annotation: Any) -> _Kind | None:
    """The TOML type a field wants; None when it is not one of ours (left to pydantic)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind_of(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _kind_of(args[0]) if len(args) == 1 else None
    if origin is Literal:
        return _Kind("text") if all(isinstance(a, str) for a in get_args(annotation)) else None
    if origin is list:
        item = _kind_of(get_args(annotation)[0])
        return _Kind("list", item) if item is not None else None
    if origin is dict:
        item = _kind_of(get_args(annotation)[1])
        return _Kind("table", item) if item is not None else None
    simple = {bool: "bool", int: "whole", float: "number", str: "text"}.get(annotation)
    return _Kind(simple) if simple is not None else None  # type: ignore[arg-type]


@cache
def _field_kinds(section: str) -> dict[str, _Kind | None]:
    model = _section_model(section)
    if model is None:
        return {}
    return {name: _kind_of(info.annotation) for name, info in model.model_fields.items()}


_TRUE_WORDS = {"true", "yes", "on", "1", "y"}
_FALSE_WORDS = {"false", "no", "off", "0", "n"}


Located = list[tuple[tuple[int | str, ...], str]]


def _type_problems(loc: tuple[int | str, ...], value: Any, kind: _Kind) -> Located:
    """What is wrong with the TOML type of ``value`` at ``loc`` and inside it ([]: nothing)."""
    if kind.name == "list" and isinstance(value, list):
        assert kind.item is not None
        return [
            p for i, item in enumerate(value) for p in _type_problems((*loc, i), item, kind.item)
        ]
    if kind.name == "table" and isinstance(value, dict):
        assert kind.item is not None
        return [p for k, item in value.items() for p in _type_problems((*loc, k), item, kind.item)]
    problem = _type_problem(loc, value, kind)
    return [(loc, problem)] if problem else []


def _type_problem(loc: tuple[int | str, ...], value: Any, kind: _Kind) -> str | None:
    """What is wrong with the TOML type of ``value`` at ``loc`` itself, if anything."""
    where, shown, key = _where(loc), _show(value, loc), str(loc[-1])
    secret = _is_secret_loc(loc)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind.name == "text":
        if isinstance(value, str) or (
            loc in _TEXT_OR_WHOLE and is_number and isinstance(value, int)
        ):
            return None
        return f'{where}: {shown} is not text (put it in double quotes, e.g. "value")'
    if kind.name == "bool":
        if isinstance(value, bool):
            return None
        word = str(value).strip().lower() if isinstance(value, str | int) else None
        meant = "true" if word in _TRUE_WORDS else "false" if word in _FALSE_WORDS else None
        if meant is None or secret:
            return f"{where}: {shown} is not true or false"
        how = "without quotes" if isinstance(value, str) else "as a TOML boolean"
        return f"{where}: {shown} is not true or false (write {key} = {meant}, {how})"
    if kind.name in ("whole", "number"):
        words = _WORDS[kind.name]
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {shown} is not a finite number"
        if is_number and (isinstance(value, int) or kind.name == "number"):
            return None
        if isinstance(value, float) and value.is_integer() and not secret:
            return f"{where}: {shown} is not a whole number (write {key} = {int(value)})"
        meant = _number_in_text(value, whole=kind.name == "whole")
        if meant is None or secret:
            return f"{where}: {shown} is not {words}"
        return f"{where}: {shown} is text, not {words} (write {key} = {meant}, without quotes)"
    if kind.name == "list":
        return f'{where}: {shown} is not a list (write it like ["a", "b"])'
    return f"{where}: {shown} is not a table of key = value pairs"


def _number_in_text(value: object, *, whole: bool) -> str | None:
    """``"5038"`` -> ``"5038"``: the number a quoted value meant, if it plainly is one."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+", text) or (not whole and re.fullmatch(r"[+-]?\d*\.\d+", text)):
        return text
    return None


def _file_type_problems(data: Mapping[str, Any]) -> Located:
    found: Located = []
    for section, table in data.items():
        if section not in SECTIONS:
            continue  # an unknown section: _structure_problems
        if not isinstance(table, dict):
            # Not even a plain value is shown: `asterisk = "..."` may well be the secret.
            message = (
                f"[{section}]: is {_toml_type(table)}, not a section (write [{section}] "
                f"on a line of its own, then its key = value lines)"
            )
            found.append(((section,), message))
            continue
        kinds = _field_kinds(section)
        for key, value in table.items():
            kind = kinds.get(key)
            if kind is not None:  # unknown keys are pydantic's extra_forbidden
                found += _type_problems((section, key), value, kind)
    return found


# --------------------------------------------------------------------------- environment


def _env_overrides() -> dict[tuple[str, ...], str]:
    """``{("asterisk", "port"): "BRIDGE_ASTERISK__PORT"}`` for every override that is set."""
    found: dict[tuple[str, ...], str] = {}
    for name in os.environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        loc = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER))
        if loc and loc[0] in SECTIONS:
            found[loc] = name
    return found


def _env_source(loc: tuple[int | str, ...], env: Mapping[tuple[str, ...], str]) -> str | None:
    """The variable that supplied the value at ``loc``, if one did (``loc`` or a parent)."""
    text_loc = tuple(str(part).lower() for part in loc)
    # BRIDGE_CRM='{...}' is merged into the file's [crm]: it owns only [crm]-wide problems.
    for size in range(len(text_loc), 1 if len(text_loc) > 1 else 0, -1):
        name = env.get(text_loc[:size])
        if name is not None:
            return name
    return None


def _env_parse_problems(env: Mapping[tuple[str, ...], str]) -> dict[str, str]:
    """pydantic-settings reads list, table and section overrides as JSON; which are not,
    each with its problem."""
    problems: dict[str, str] = {}
    for loc, name in env.items():
        kind = _field_kinds(loc[0]).get(loc[1]) if len(loc) == 2 else None
        wants_json = len(loc) == 1 or (kind is not None and kind.name in ("list", "table"))
        if not wants_json:
            continue
        try:
            json.loads(os.environ.get(name, ""))
        except ValueError:
            example = (
                f"""{name}='["PJSIP/trunk-*"]'"""
                if kind is not None and kind.name == "list"
                else f"""{name}='{{"key": "value"}}'"""
            )
            problems[name] = (
                f"{name}: is not valid JSON; lists and tables given in the environment are "
                f"written as JSON, e.g. {example}"
            )
    return problems


# --------------------------------------------------------------------------- pydantic errors


_TYPE_WORDS: dict[str, str] = {
    "int_type": "is not a whole number",
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_type": "is not a number",
    "float_parsing": "is not a number",
    "bool_type": "is not true or false",
    "bool_parsing": "is not true or false",
    "string_type": 'is not text (put it in double quotes, e.g. "value")',
    "list_type": 'is not a list (write it like ["a", "b"])',
    "dict_type": "is not a table of key = value pairs",
    "model_type": "is not a section (a table of key = value pairs)",
    "model_attributes_type": "is not a section (a table of key = value pairs)",
    "finite_number": "is not a finite number",
}

_BOUND_WORDS: dict[str, str] = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
}


def _number(value: object) -> object:
    """Show a bound like ``0.0`` as ``0``: admins write whole numbers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _describe_error(error: ErrorDetails) -> str:
    """One pydantic error -> ``[section] key: plain words``, never a secret's value."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    where = _where(loc)

    if kind == "missing":
        return f"{where}: missing"
    if len(loc) == 1 and kind in ("model_type", "model_attributes_type"):
        return f"{where}: is {_toml_type(value)}, not a section"  # the value may be a secret
    if kind == "extra_forbidden" and len(loc) >= 2:
        known = _section_keys(str(loc[0]))
        hint = _did_you_mean(str(loc[-1]), known)
        listing = f" (known keys: {', '.join(known)})" if known else ""
        return f"{where}: unknown key{hint}{listing}"
    if kind in ("value_error", "assertion_error"):
        # Our validators word these themselves and never quote a secret.
        reason = ctx.get("error")
        return f"{where}: {reason if reason is not None else error.get('msg', '')}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"{where}: {_show(value, loc)} is not one of {expected}"
    if kind in _TYPE_WORDS:
        return f"{where}: {_show(value, loc)} {_TYPE_WORDS[kind]}"
    if kind in _BOUND_WORDS:
        try:
            rule = _BOUND_WORDS[kind].format(**{k: _number(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            rule = error.get("msg", "")
        if value in ("", None):
            return f"{where}: {rule}"
        return f"{where}: {_show(value, loc)} {rule}"
    # pydantic's own msg may quote the input: not for secrets.
    if _is_secret_loc(loc):
        return f"{where}: the value is not valid ({kind})"
    return f"{where}: {error.get('msg', 'invalid value')} (got {_show(value, loc)})"


def _sort_key(loc: tuple[int | str, ...]) -> tuple[int, int, int]:
    """Problems in the order of the sections and keys of Settings (the example's order)."""
    section = str(loc[0]) if loc else ""
    sections = SECTIONS.index(section) if section in SECTIONS else len(SECTIONS)
    keys = _section_keys(section)
    if len(loc) < 2:
        key = len(keys) + 1  # whole-section problems last in their section
    else:
        key = keys.index(str(loc[1])) if loc[1] in keys else len(keys)
    index = loc[2] if len(loc) > 2 and isinstance(loc[2], int) else -1
    return sections, key, index


# --------------------------------------------------------------------------- loading


def _build(
    file_data: Mapping[str, Any],
    *,
    use_env: bool,
    only: frozenset[str] | None = None,
    skip_env: frozenset[str] = frozenset(),
) -> Settings:
    plan = _LoadPlan(file_data=file_data, use_env=use_env, only=only, skip_env=skip_env)
    with _plan(plan):
        return Settings()


def _located_problems(
    exc: ValidationError, env: Mapping[tuple[str, ...], str], typed: Located
) -> Located:
    """Each validation error where it is: (location, message naming its variable if any)."""
    located: Located = []
    for error in exc.errors(include_url=False):
        loc = tuple(error.get("loc", ()))
        source = _env_source(loc, env)
        if source is None and any(loc[: len(bad)] == bad for bad, _ in typed):
            continue  # the file's wrong TOML type, already said in better words
        message = _describe_error(error)
        located.append((loc, f"{message} (from {source})" if source else message))
    return located


def _inspect(
    path: str | Path | None,
    *,
    for_daemon: bool,
    use_env: bool,
    only: frozenset[str] | None = None,
) -> tuple[Settings | None, list[str]]:
    """Load and check: the settings (None when they could not be built) and every problem.

    ``only``: read and check these sections (file and environment) and nothing else; the
    others keep their defaults (replay needs ``[pbx]`` alone, SPEC 7)."""
    data: dict[str, Any] = {}
    if path is not None:
        parsed, problems = _read_toml(Path(path))
        if parsed is None:
            return None, problems
        data = parsed
    if only is not None:
        data = {name: value for name, value in data.items() if name in only}
    problems = _structure_problems(data)
    env = _env_overrides() if use_env else {}
    if only is not None:
        env = {loc: name for loc, name in env.items() if loc[0] in only}
    typed = _file_type_problems(data)
    located = list(typed)
    settings: Settings | None = None
    try:
        settings = _build(data, use_env=use_env, only=only)
    except ValidationError as exc:
        located += _located_problems(exc, env, typed)
    except SettingsError as exc:
        unreadable = _env_parse_problems(env)
        # SettingsError names the field and the source, never the value.
        problems += list(unreadable.values()) or [
            f"environment: a {ENV_PREFIX}* variable could not be read ({exc})"
        ]
        if unreadable:  # every other problem too, in one run (the settings stay unbuilt)
            try:
                _build(data, use_env=use_env, only=only, skip_env=frozenset(unreadable))
            except ValidationError as again:
                located += _located_problems(again, env, typed)
            except SettingsError:
                pass
    located.sort(key=lambda item: _sort_key(item[0]))
    problems += [message for _, message in located]
    if settings is not None:
        problems += settings.consistency_problems()
        if for_daemon:
            problems += settings.daemon_problems()
    return settings, problems


REPLAY_SECTIONS = frozenset({"pbx"})  # all `crm-bridge replay` reads (SPEC 7)


def load_settings(
    path: str | Path | None, *, for_daemon: bool = False, only: frozenset[str] | None = None
) -> Settings:
    """Load ``path`` (None: defaults only) with environment overrides on top.

    Raises :class:`ConfigError` with plain-English problems on exactly what
    :func:`check_config_file` reports: a missing or malformed file, unknown sections and
    keys, wrong TOML types, invalid values; with ``for_daemon`` also a key ``run`` needs.
    ``only``: these sections alone are read and checked (``REPLAY_SECTIONS``).
    """
    settings, problems = _inspect(path, for_daemon=for_daemon, use_env=True, only=only)
    if problems or settings is None:
        raise ConfigError(problems or ["configuration: cannot be loaded"])
    return settings


def check_config_file(
    path: str | Path,
    *,
    for_daemon: bool = False,
    use_env: bool = True,
    only: frozenset[str] | None = None,
) -> list[str]:
    """Everything wrong with a config file, one plain-English line each; [] means OK.

    ``for_daemon`` adds the keys ``crm-bridge run`` needs (replay does not). ``use_env``
    (default) applies ``BRIDGE_*`` overrides first, so the check matches what the daemon
    would really load, e.g. a secret supplied by systemd's environment.
    """
    return _inspect(path, for_daemon=for_daemon, use_env=use_env, only=only)[1]
