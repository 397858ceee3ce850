"""Config loading and checking (SPEC section 7), and the JSON log format ops rely on."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bridge.config import ConfigError, Settings, check_config_file, load_settings, split_listen
from bridge.observability.logs import configure_logging, get_logger

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "config" / "bridge.example.toml"

LAB_TOML = """\
# The lab PBX: only [pbx] matters for replay.
[pbx]
id = "lab"
region = "RU"
trunks = ["PJSIP/trunk-*"]
extensions = ["PJSIP/*"]
main_number = "74957654321"
"""


@pytest.fixture(autouse=True)
def _no_bridge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's own BRIDGE_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "bridge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- loading


def test_file_with_only_pbx_section_loads_with_defaults_elsewhere(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, LAB_TOML))

    assert settings.pbx.id == "lab"
    assert settings.pbx.region == "RU"
    assert settings.pbx.trunks == ["PJSIP/trunk-*"]
    assert settings.pbx.extensions == ["PJSIP/*"]
    assert settings.pbx.main_number == "74957654321"
    assert settings.pbx.send_internal is False
    assert settings.asterisk.port == 5038
    assert settings.asterisk.secret is None
    assert settings.database.url is None
    assert settings.crm.profile == "vpbx"
    assert (settings.agi.listen_host, settings.agi.listen_port) == ("127.0.0.1", 4573)
    assert settings.api.public_url == "http://127.0.0.1:8080"
    assert settings.log.level == "info"


def test_lab_file_is_fine_for_replay_but_not_for_the_daemon(tmp_path: Path) -> None:
    path = write(tmp_path, LAB_TOML)

    assert check_config_file(path) == []
    with pytest.raises(ConfigError) as caught:
        load_settings(path, for_daemon=True)
    assert any(p.startswith("[asterisk] secret: missing") for p in caught.value.problems)


def test_no_file_means_defaults() -> None:
    settings = load_settings(None)

    assert settings == Settings()
    assert settings.pbx.id == "main"
    assert settings.pbx.extensions == ["PJSIP/*", "SIP/*"]
    assert settings.asterisk.queue_size == 100_000
    assert settings.asterisk.reconnect_max_delay == 30.0


def test_environment_wins_over_file_and_merges_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, LAB_TOML + '\n[asterisk]\nhost = "10.0.0.5"\nport = 5038\n')
    monkeypatch.setenv("BRIDGE_PBX__REGION", "DE")
    monkeypatch.setenv("BRIDGE_ASTERISK__PORT", "6000")

    settings = load_settings(path)

    assert settings.pbx.region == "DE"
    assert settings.asterisk.port == 6000
    # Keys the environment does not mention still come from the file.
    assert settings.pbx.id == "lab"
    assert settings.asterisk.host == "10.0.0.5"


def test_environment_alone_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_PBX__TRUNKS", '["SIP/carrier-*"]')
    monkeypatch.setenv("BRIDGE_PBX__USERS__101", "ivanov")

    settings = load_settings(None)

    assert settings.pbx.trunks == ["SIP/carrier-*"]
    assert settings.pbx.users == {"101": "ivanov"}


def test_values_are_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[pbx]\nregion = "de"\nmain_number = 74957654321\n'
        '[api]\npublic_url = "https://bridge.example.com/"\n[log]\nlevel = "WARN"\n',
    )

    settings = load_settings(path)

    assert settings.pbx.region == "DE"
    assert settings.pbx.main_number == "74957654321"  # a TOML integer, taken as meant
    assert settings.api.public_url == "https://bridge.example.com"
    assert settings.log.level == "warning"


def test_load_settings_raises_plain_problems(tmp_path: Path) -> None:
    path = write(tmp_path, '[crm]\nurl = "ftp://x"\n')

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert caught.value.problems == [
        '[crm] url: "ftp://x" is not an http(s) URL (expected e.g. https://host/path)'
    ]
    assert "ValidationError" not in str(caught.value)


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings(
        asterisk={"secret": "s3cret"},
        database={"url": "postgresql://u:pw@db/x"},
        crm={"token": "tok"},
        api={"link_secret": "ls"},
    )

    text = repr(settings)
    for secret in ("s3cret", "pw@db", "tok", "'ls'"):
        assert secret not in text
    assert settings.asterisk.secret == "s3cret"


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:4573", ("127.0.0.1", 4573)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:65535", ("::1", 65535)),
    ],
)
def test_split_listen(listen: str, expected: tuple[str, int]) -> None:
    assert split_listen(listen) == expected


@pytest.mark.parametrize("listen", ["4573", "host:", ":80", "host:0", "host:65536", "a b:80"])
def test_split_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError):
        split_listen(listen)


# --------------------------------------------------------------------------- checking


def test_example_config_passes_the_daemon_check() -> None:
    assert check_config_file(EXAMPLE_CONFIG, for_daemon=True) == []


def test_example_config_sets_every_key() -> None:
    """The example documents the whole contract: a new key must be added to it too."""
    import tomllib

    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    for section, info in Settings.model_fields.items():
        assert section in data, f"[{section}] missing from the example"
        model = info.annotation
        assert model is not None
        for key in model.model_fields:  # type: ignore[union-attr]
            assert key in data[section], f"[{section}] {key} missing from the example"


def test_daemon_check_names_missing_secret_and_database_url(tmp_path: Path) -> None:
    path = write(tmp_path, LAB_TOML)

    problems = check_config_file(path, for_daemon=True)

    assert len(problems) == 2
    secret, url = problems
    assert secret.startswith("[asterisk] secret: missing")
    assert "BRIDGE_ASTERISK__SECRET" in secret
    assert url.startswith("[database] url: missing")
    assert "BRIDGE_DATABASE__URL" in url


def test_daemon_check_accepts_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, LAB_TOML)
    monkeypatch.setenv("BRIDGE_ASTERISK__SECRET", "from-systemd")
    monkeypatch.setenv("BRIDGE_DATABASE__URL", "postgresql://bridge@db/bridge")

    assert check_config_file(path, for_daemon=True) == []
    assert len(check_config_file(path, for_daemon=True, use_env=False)) == 2


def test_bad_channel_patterns_are_reported_with_their_position(tmp_path: Path) -> None:
    path = write(tmp_path, '[pbx]\ntrunks = ["PJSIP/trunk-*", "trunk-*"]\nextensions = []\n')

    problems = check_config_file(path)

    assert len(problems) == 2
    assert problems[0].startswith('[pbx] trunks[1]: "trunk-*" is not a channel-name pattern')
    assert problems[1].startswith("[pbx] extensions: must list at least one channel pattern")


def test_bad_urls_are_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[crm]\nurl = "ftp://x"\n[api]\npublic_url = "localhost:8080"\n'
        '[database]\nurl = "mysql://bridge@db/bridge"\n',
    )

    problems = check_config_file(path)

    assert problems[0].startswith('[database] url: "mysql://bridge@db/bridge" is not a PostgreSQL')
    assert problems[1].startswith('[crm] url: "ftp://x" is not an http(s) URL')
    assert problems[2].startswith('[api] public_url: "localhost:8080" is not an http(s) URL')
    assert len(problems) == 3


def test_wrong_types_and_values_are_reported_in_plain_words(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[pbx]
region = "XX"
main_number = "+7 (495) 765"
send_internal = "maybe"
[asterisk]
port = "five"
ping_timeout = 0
[crm]
profile = "bitrix"
[agi]
listen = "4573"
[api]
listen = "127.0.0.1:99999"
[log]
level = "loud"
""",
    )

    problems = check_config_file(path)

    assert problems == [
        '[pbx] region: "XX" is not a two-letter region known to phonenumbers '
        '(e.g. "RU", "DE", "US")',
        '[pbx] main_number: "+7 (495) 765" is not a phone number (digits only, e.g. "74957654321")',
        '[pbx] send_internal: "maybe" is not true or false',
        '[asterisk] port: "five" is not a whole number',
        "[asterisk] ping_timeout: 0 must be greater than 0",
        '[crm] profile: "bitrix" is not one of "vpbx", "vpbx-legacy" or "json"',
        '[agi] listen: "4573" is not host:port (expected e.g. "127.0.0.1:4573")',
        '[api] listen: "127.0.0.1:99999" has port 99999, which is not between 1 and 65535',
        '[log] level: "loud" is not a log level (one of debug, info, warning, error, critical)',
    ]


def test_unknown_sections_and_keys_are_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'region = "RU"\n' + LAB_TOML + '[crn]\nurl = "https://x"\n[asterisk]\nsecert = "x"\n',
    )

    problems = check_config_file(path)

    assert len(problems) == 3
    assert problems[0].startswith("region: written outside any section")
    assert "[pbx]" in problems[0]
    assert problems[1].startswith("[crn]: unknown section")
    assert "did you mean [crm]?" in problems[1]
    assert problems[2].startswith("[asterisk] secert: unknown key; did you mean secret?")
    # An unknown section alone does not stop the file from loading.
    assert load_settings(write(tmp_path, LAB_TOML + "[extra]\nx = 1\n", "b.toml")).pbx.id == "lab"


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[pbx]\nid = "lab"\nregion = \ntrunks = ["PJSIP/trunk-*"]\n')

    problems = check_config_file(path)

    assert len(problems) == 1
    assert "TOML syntax error at line 3" in problems[0]
    assert str(path) in problems[0]
    with pytest.raises(ConfigError, match="line 3"):
        load_settings(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    problems = check_config_file(path, for_daemon=True)

    assert problems == [f"config file {str(path)!r}: not found"]
    with pytest.raises(ConfigError, match="not found"):
        load_settings(path)


def test_directory_and_non_utf8_files_are_reported(tmp_path: Path) -> None:
    assert "is a directory" in check_config_file(tmp_path)[0]
    binary = tmp_path / "latin1.toml"
    binary.write_bytes(b'[pbx]\nid = "caf\xe9"\n')
    assert "not UTF-8" in check_config_file(binary)[0]


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'pbx = "main"\n[database]\npool_min = 5\npool_max = 2\n')

    assert check_config_file(path) == [
        '[pbx]: "main" is not a section (a table of key = value pairs)',
        "[database]: pool_min (5) is larger than pool_max (2)",
    ]


# --------------------------------------------------------------------------- logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_are_json_with_bound_callid() -> None:
    module_level = get_logger("bridge.tracker")  # created before configuration, like a module
    out = io.StringIO()
    configure_logging("info", stream=out)

    module_level.bind(callid="1763805600.12").info("call_started", phone="79101234567")
    module_level.debug("below_the_level", callid="1763805600.12")
    structlog.contextvars.bind_contextvars(callid="1763805600.13")
    logging.getLogger("panoramisk.manager").warning("reconnect in %s s", 5)
    structlog.contextvars.clear_contextvars()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger().exception("failed", callid="1763805600.14")

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 3
    first, library, failure = lines
    assert first["event"] == "call_started"
    assert first["callid"] == "1763805600.12"
    assert first["phone"] == "79101234567"
    assert first["level"] == "info"
    assert first["logger"] == "bridge.tracker"
    assert first["timestamp"].endswith("Z")
    assert library == {
        "timestamp": library["timestamp"],
        "level": "warning",
        "event": "reconnect in 5 s",
        "logger": "panoramisk.manager",
        "callid": "1763805600.13",
    }
    assert failure["callid"] == "1763805600.14"
    assert "RuntimeError: boom" in failure["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_twice_does_not_duplicate_lines() -> None:
    configure_logging("debug", stream=io.StringIO())
    out = io.StringIO()
    configure_logging("debug", stream=out)

    logging.getLogger("asyncpg").debug("one line")

    assert len(out.getvalue().splitlines()) == 1


def test_configure_logging_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="loud"):
        configure_logging("loud")
