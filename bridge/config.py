"""Settings: one TOML file plus ``BRIDGE_*`` environment overrides (SPEC section 7).

Every section has defaults, so a file holding only ``[pbx]`` (what ``crm-bridge replay``
needs) loads. Keys the daemon cannot run without (``asterisk.secret``, ``database.url``)
are checked separately by :meth:`Settings.daemon_problems`, because replay must not
demand them. :func:`check_config_file` turns every problem into one plain-English line
that names the section and the key, so an admin can fix the file without reading
pydantic's error format.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "AgiSettings",
    "ApiSettings",
    "AsteriskSettings",
    "ConfigError",
    "CrmSettings",
    "DatabaseSettings",
    "DeliverySettings",
    "LogSettings",
    "PbxSettings",
    "RetentionSettings",
    "Settings",
    "check_config_file",
    "load_settings",
    "split_listen",
]

ENV_PREFIX = "BRIDGE_"
ENV_NESTED_DELIMITER = "__"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
CrmProfile = Literal["vpbx", "vpbx-legacy", "json"]


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` holds one plain-English line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- value checks
# They raise ValueError with a message that already quotes the value, so the translated
# problem reads `[crm] url: "ftp://x" is not an http(s) URL`.


def _show(value: object) -> str:
    """Render a value the way it would look in TOML, shortened for one-line messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | list | dict | tuple):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_channel_pattern(value: str) -> str:
    """A channel pattern is ``TECH/resource`` with fnmatch wildcards, e.g. ``PJSIP/trunk-*``."""
    pattern = value.strip()
    tech, sep, rest = pattern.partition("/")
    if not sep or not tech or not rest or any(ch.isspace() for ch in pattern):
        raise ValueError(
            f"{_show(value)} is not a channel-name pattern (expected TECH/name with optional "
            f'wildcards, e.g. "PJSIP/trunk-*")'
        )
    return pattern


def _check_http_url(value: str) -> str:
    """CRM targets and recording links must be absolute http(s) URLs with a host."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{_show(value)} is not an http(s) URL (expected e.g. https://host/path)")
    return url


def _check_postgres_url(value: str) -> str:
    """asyncpg takes a libpq-style URL; anything else fails late and obscurely at connect."""
    url = value.strip()
    if urlsplit(url).scheme.lower() not in ("postgres", "postgresql"):
        raise ValueError(
            f"{_show(value)} is not a PostgreSQL URL "
            f'(expected e.g. "postgresql://bridge@127.0.0.1/bridge")'
        )
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


def _check_phone(value: str) -> str:
    """Company numbers are compared with E.164 digits, so only digits (a leading + is dropped)."""
    digits = value.strip().removeprefix("+")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 15:
        raise ValueError(f'{_show(value)} is not a phone number (digits only, e.g. "74957654321")')
    return digits


# --------------------------------------------------------------------------- sections

# Checked per item, so every bad pattern of a list is reported, each with its index.
ChannelPattern = Annotated[str, AfterValidator(_check_channel_pattern)]


class _Section(BaseModel):
    """Unknown keys are errors: a misspelt key would otherwise be silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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

    @field_validator("users", "groups")
    @classmethod
    def _no_empty_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key, name in value.items():
            if not key.strip() or not name.strip():
                raise ValueError(f"{_show(key)} = {_show(name)}: neither side may be empty")
        return {key.strip(): name.strip() for key, name in value.items()}


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


class DeliverySettings(_Section):
    """Webhook delivery workers (the outbox)."""

    workers: int = Field(default=4, ge=1, le=256)
    lease: float = Field(default=30.0, gt=0)  # a crashed worker's rows come back after this
    poll_interval: float = Field(default=2.0, gt=0)  # fallback when NOTIFY is missed
    retry_for: float = Field(default=172_800.0, ge=86_400.0)  # history/rating keep trying
    max_client_errors: int = Field(default=3, ge=1)  # other 4xx: tries before dead letter
    retry_base_delay: float = Field(default=1.0, gt=0)  # first retry; doubles each time
    retry_max_delay: float = Field(default=300.0, gt=0)


class ApiSettings(_Listener):
    """HTTP API listener; public_url is the base of recording links handed to CRMs."""

    listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    link_secret: str | None = Field(default=None, repr=False)  # signs recording links
    link_ttl: float = Field(default=2_592_000.0, gt=0)  # seconds a recording link works
    recordings_dir: str = "/var/spool/asterisk/monitor"  # links serve files under it only
    # /readyz says degraded when a history has waited longer than this for its CRM
    ready_history_age: float = Field(default=300.0, gt=0)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")


class RetentionSettings(_Section):
    """How long rows are kept; `crm-bridge prune` and the daemon (every `interval`) delete
    what is older. 0 keeps forever."""

    sent_days: float = Field(default=7.0, ge=0)  # delivered / expired webhook rows
    attempts_days: float = Field(default=30.0, ge=0)  # delivery attempts of kept rows
    calls_days: float = Field(default=0.0, ge=0)  # finished calls, events, legs
    interval: float = Field(default=3600.0, gt=0)  # seconds between two prunes


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
        extra="ignore",  # unknown sections are reported by check_config_file, not fatal
    )

    pbx: PbxSettings = Field(default_factory=PbxSettings)
    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)
    agi: AgiSettings = Field(default_factory=AgiSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
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
        if plan.use_env:
            return init_settings, env_settings, file_source
        return init_settings, file_source

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


SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


# --------------------------------------------------------------------------- loading


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
                f"[{key}]: unknown section, ignored{hint} (known sections: {', '.join(SECTIONS)})"
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
    """One pydantic error -> ``[section] key: plain words``."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    where = _where(loc)

    if kind == "missing":
        return f"{where}: missing"
    if kind == "extra_forbidden" and len(loc) >= 2:
        known = _section_keys(str(loc[0]))
        hint = _did_you_mean(str(loc[-1]), known)
        listing = f" (known keys: {', '.join(known)})" if known else ""
        return f"{where}: unknown key{hint}{listing}"
    if kind in ("value_error", "assertion_error"):
        reason = ctx.get("error")
        return f"{where}: {reason if reason is not None else error.get('msg', '')}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"{where}: {_show(value)} is not one of {expected}"
    if kind in _TYPE_WORDS:
        return f"{where}: {_show(value)} {_TYPE_WORDS[kind]}"
    if kind in _BOUND_WORDS:
        try:
            rule = _BOUND_WORDS[kind].format(**{k: _number(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            rule = error.get("msg", "")
        return f"{where}: {_show(value)} {rule}" if value not in ("", None) else f"{where}: {rule}"
    return f"{where}: {error.get('msg', 'invalid value')} (got {_show(value)})"


def _translate(exc: ValidationError) -> list[str]:
    return [_describe_error(error) for error in exc.errors(include_url=False)]


def _build(file_data: Mapping[str, Any], *, use_env: bool) -> Settings:
    with _plan(_LoadPlan(file_data=file_data, use_env=use_env)):
        return Settings()


def load_settings(path: str | Path | None, *, for_daemon: bool = False) -> Settings:
    """Load ``path`` (None: defaults only) with environment overrides on top.

    Raises :class:`ConfigError` with plain-English problems when the file is missing,
    malformed or invalid; with ``for_daemon`` also when a key ``run`` needs is missing.
    Unknown sections are ignored here (``check_config_file`` reports them).
    """
    data: dict[str, Any] = {}
    if path is not None:
        parsed, problems = _read_toml(Path(path))
        if parsed is None:
            raise ConfigError(problems)
        data = parsed
    try:
        settings = _build(data, use_env=True)
    except ValidationError as exc:
        raise ConfigError(_translate(exc)) from None
    if for_daemon:
        problems = settings.daemon_problems()
        if problems:
            raise ConfigError(problems)
    return settings


def check_config_file(
    path: str | Path, *, for_daemon: bool = False, use_env: bool = True
) -> list[str]:
    """Everything wrong with a config file, one plain-English line each; [] means OK.

    ``for_daemon`` adds the keys ``crm-bridge run`` needs (replay does not). ``use_env``
    (default) applies ``BRIDGE_*`` overrides first, so the check matches what the daemon
    would really load, e.g. a secret supplied by systemd's environment.
    """
    data, problems = _read_toml(Path(path))
    if data is None:
        return problems
    problems = _structure_problems(data)
    try:
        settings = _build(data, use_env=use_env)
    except ValidationError as exc:
        return problems + _translate(exc)
    if for_daemon:
        problems += settings.daemon_problems()
    return problems
