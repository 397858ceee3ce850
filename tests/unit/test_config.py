"""Config loading and checking (SPEC section 7), and the JSON log format ops rely on."""

from __future__ import annotations

import io
import json
import logging
import os
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
    settings = Settings.model_validate(
        {
            "asterisk": {"secret": "s3cret"},
            "database": {"url": "postgresql://u:pw@db/x"},
            "crm": {"token": "tok"},
            "api": {"link_secret": "ls"},
        }
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
        for key in model.model_fields:
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
    # The daemon refuses what check-config reports: an unknown section alone stops a load.
    with pytest.raises(ConfigError, match=r"\[extra\]: unknown section"):
        load_settings(write(tmp_path, LAB_TOML + "[extra]\nx = 1\n", "b.toml"))


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
        "[pbx]: is text, not a section (write [pbx] on a line of its own, then its key = "
        "value lines)",
        "[database]: pool_min (5) is larger than pool_max (2)",
    ]


def test_load_settings_refuses_exactly_what_check_config_reports(tmp_path: Path) -> None:
    """`run` and `deliver` load with for_daemon=True: no problem may slip past the start."""
    files = [
        LAB_TOML + "[extra]\nx = 1\n",  # an unknown section
        'region = "RU"\n' + LAB_TOML,  # a key outside any section
        LAB_TOML + '[asterisk]\nport = "5038"\n',  # a quoted number
        LAB_TOML + '[crm]\nsigning_secret = "whsec_SigningSecretS3"\n',
        LAB_TOML,  # only what the daemon needs is missing
    ]
    for n, text in enumerate(files):
        path = write(tmp_path, text, f"{n}.toml")
        reported = check_config_file(path, for_daemon=True)
        assert reported, text
        with pytest.raises(ConfigError) as caught:
            load_settings(path, for_daemon=True)
        assert caught.value.problems == reported


# --------------------------------------------------------------------------- TOML types


def test_file_values_must_have_their_toml_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[pbx]
send_internal = "no"
callback_window = "3600"
trunks = ["PJSIP/trunk-*", 5]
[asterisk]
port = "5038"
queue_size = 4.0
ping_interval = inf
[delivery]
workers = true
[agi]
breaker_failures = "many"
""",
    )

    assert check_config_file(path) == [
        '[pbx] trunks[1]: 5 is not text (put it in double quotes, e.g. "value")',
        '[pbx] send_internal: "no" is not true or false (write send_internal = false, '
        "without quotes)",
        '[pbx] callback_window: "3600" is text, not a number (write callback_window = 3600, '
        "without quotes)",
        '[asterisk] port: "5038" is text, not a whole number (write port = 5038, without quotes)',
        "[asterisk] ping_interval: inf is not a finite number",
        "[asterisk] queue_size: 4.0 is not a whole number (write queue_size = 4)",
        '[agi] breaker_failures: "many" is not a whole number',
        "[delivery] workers: true is not a whole number",
    ]


def test_environment_values_are_text_and_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, LAB_TOML + "[asterisk]\nport = 5038\n")
    monkeypatch.setenv("BRIDGE_ASTERISK__PORT", "6000")
    monkeypatch.setenv("BRIDGE_PBX__SEND_INTERNAL", "no")
    monkeypatch.setenv("BRIDGE_PBX__CALLBACK_WINDOW", "3600")
    monkeypatch.setenv("BRIDGE_DELIVERY__WORKERS", "8")

    assert check_config_file(path) == []
    settings = load_settings(path)
    assert settings.asterisk.port == 6000
    assert settings.pbx.send_internal is False
    assert settings.pbx.callback_window == 3600.0
    assert settings.delivery.workers == 8


def test_bad_environment_values_name_their_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, LAB_TOML)
    monkeypatch.setenv("BRIDGE_ASTERISK__PORT", "abc")
    monkeypatch.setenv("BRIDGE_PBX__SEND_INTERNAL", "maybe")
    monkeypatch.setenv("BRIDGE_ASTERISK__SECERT", "x")

    assert check_config_file(path) == [
        '[pbx] send_internal: "maybe" is not true or false (from BRIDGE_PBX__SEND_INTERNAL)',
        '[asterisk] port: "abc" is not a whole number (from BRIDGE_ASTERISK__PORT)',
        "[asterisk] secert: unknown key; did you mean secret? (known keys: host, port, "
        "username, secret, ping_interval, ping_timeout, reconnect_max_delay, queue_size, "
        "channel_driver) (from BRIDGE_ASTERISK__SECERT)",
    ]


def test_environment_list_that_is_not_json_is_a_problem_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_PBX__TRUNKS", "PJSIP/trunk-*")

    (problem,) = check_config_file(write(tmp_path, LAB_TOML))

    assert problem.startswith("BRIDGE_PBX__TRUNKS: is not valid JSON")
    assert """BRIDGE_PBX__TRUNKS='["PJSIP/trunk-*"]'""" in problem
    with pytest.raises(ConfigError):
        load_settings(None)


def test_a_variable_that_is_not_json_hides_no_other_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_PBX__USERS", '{"ivanov": "1001"')  # cut short
    monkeypatch.setenv("BRIDGE_ASTERISK__PORT", "abc")
    path = write(tmp_path, LAB_TOML + '\n[api]\nlisten = "127.0.0.1:http"\n')

    problems = check_config_file(path)

    assert problems[0].startswith("BRIDGE_PBX__USERS: is not valid JSON")
    assert '[asterisk] port: "abc" is not a whole number (from BRIDGE_ASTERISK__PORT)' in problems
    assert any(p.startswith("[api] listen:") for p in problems), problems
    assert len(problems) == 3, problems
    with pytest.raises(ConfigError):
        load_settings(path)


# --------------------------------------------------------------------------- values


def test_retention_ages_are_bounded_to_a_date_that_can_be_computed(tmp_path: Path) -> None:
    path = write(tmp_path, "[retention]\ncalls_days = 1e9\n")

    (problem,) = check_config_file(path)

    assert problem.startswith("[retention] calls_days:") and "36500" in problem


def test_signing_secret_is_checked_the_way_signing_decodes_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[crm]\nsigning_secret = "whsec_SigningSecretS3"\n')

    (problem,) = check_config_file(path)

    assert problem.startswith('[crm] signing_secret: starts with "whsec_" but what follows')
    assert "Incorrect padding" in problem  # the dead letters' error, found before sending
    assert "SigningSecretS3" not in problem


@pytest.mark.parametrize("secret", ["whsec_!!!notbase64SECRETVALUE", "whsec_abc=def"])
def test_a_signing_secret_a_lenient_decoder_would_mangle_is_refused(
    tmp_path: Path, secret: str
) -> None:
    path = write(tmp_path, f'[crm]\nsigning_secret = "{secret}"\n')
    (problem,) = check_config_file(path)
    assert "not valid base64" in problem and secret[6:] not in problem


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_c2VjcmV0",  # base64 of "secret"
        "whsec_c2VjcmV0=",  # over-padded: b64decode accepts it, so does signing
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "plain shared secret",  # not whsec_: used as the key as it is
        "whsec-change-me",  # idem (a hyphen, not whsec_)
        "whsec_SigningSecretS3",
        "whsec_a",
        "whsec_abc-def",
        "whsec_",
        "whsec_!!!!",
        "whsec_!!!notbase64SECRETVALUE",  # a lenient decoder keeps "notbase64SECRETVALUE"
        "whsec_abc=def",  # data after the padding
    ],
)
def test_signing_secret_check_agrees_with_signing(secret: str) -> None:
    import binascii

    from bridge.config import signing_secret_problem
    from bridge.crm import signing

    try:
        signing.signature(secret, "msg_1", 1614265330, b"{}")
        signs = True
    except (binascii.Error, ValueError):
        signs = False
    problem = signing_secret_problem(secret)
    if not signs:
        assert problem is not None and "not valid base64" in problem
    elif secret == "whsec_":  # signs with an empty key: refused anyway
        assert problem is not None and "no key" in problem
    else:
        assert problem is None
    # What the config accepts, signing can use.
    settings_ok = problem is None
    if settings_ok:
        assert (
            Settings.model_validate({"crm": {"signing_secret": secret}}).crm.signing_secret
            == secret
        )


def test_empty_signing_and_link_secrets_mean_none(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[crm]\nsigning_secret = ""\n[api]\nlink_secret = ""\n')
    )

    assert settings.crm.signing_secret is None
    assert settings.api.link_secret is None


def test_channel_patterns_that_can_never_match(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[pbx]\ntrunks = ["pjsip/trunk-*", "Local/*", "PJ SIP/x", "SIP/carrier-*"]\n'
        'extensions = ["PJSIP/*", "+/x"]\n',
    )

    problems = check_config_file(path)

    assert len(problems) == 4
    assert problems[0].startswith('[pbx] trunks[0]: "pjsip/trunk-*" can never match')
    assert "Asterisk writes PJSIP/" in problems[0]
    assert problems[1].startswith('[pbx] trunks[1]: "Local/*" can never match')
    assert problems[2].startswith('[pbx] trunks[2]: "PJ SIP/x" is not a channel-name pattern')
    assert problems[3].startswith('[pbx] extensions[1]: "+/x" is not a channel-name pattern')


def test_users_and_groups_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[pbx.users]\n"101" = "ivanov"\n"sip-102.a_b" = "petrova"\n"10 3" = "x"\n'
        '"104&105" = "y"\n"106" = ""\n'
        '[pbx.groups]\n"600" = "Sales"\nsupport-queue = "Support"\n"6 01" = "x"\n',
    )

    problems = check_config_file(path)

    assert len(problems) == 2
    users, groups = problems
    assert users.startswith('[pbx] users: "10 3" is not an extension')
    assert '"104&105" is not an extension' in users
    assert '"106": the login must be one line of text' in users
    assert groups.startswith('[pbx] groups: "6 01" is not a queue name, extension or number')
    ok = load_settings(write(tmp_path, '[pbx.users]\n"101" = " ivanov "\n', "ok.toml"))
    assert ok.pbx.users == {"101": "ivanov"}


def test_more_values_that_cannot_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[asterisk]
host = "127.0.0.1:5038"
[crm]
url = "https://crm.example.com:99999/hook"
[delivery]
retry_base_delay = 600.0
[api]
public_url = "https://bridge.example.com/?x=1"
recordings_dir = "monitor"
""",
    )

    problems = check_config_file(path)

    assert problems == [
        '[asterisk] host: "127.0.0.1:5038" has a port; write the host alone and the port in `port`',
        '[crm] url: "https://crm.example.com:99999/…" is not an http(s) URL '
        "(expected e.g. https://host/path)",
        "[delivery]: retry_base_delay (600) is larger than retry_max_delay (300)",
        '[api] public_url: "https://bridge.example.com/?x=***" has a ?query or #fragment; '
        "recording links are built as <public_url>/recordings/<callid>?..., so give the base "
        "URL only",
        '[api] recordings_dir: "monitor" is not an absolute path '
        '(e.g. "/var/spool/asterisk/monitor")',
    ]
    assert (
        load_settings(write(tmp_path, '[asterisk]\nhost = "[::1]"\n', "v6.toml")).asterisk.host
        == "::1"
    )


def test_agi_and_api_cannot_share_a_port(tmp_path: Path) -> None:
    path = write(tmp_path, '[agi]\nlisten = "0.0.0.0:8080"\n[api]\nlisten = "127.0.0.1:8080"\n')

    assert check_config_file(path) == [
        "[agi] listen and [api] listen: both want port 8080; give each its own"
    ]
    other_host = write(tmp_path, '[agi]\nlisten = "10.0.0.1:8080"\n', "b.toml")
    assert check_config_file(other_host) == []


# --------------------------------------------------------------------------- secrets

SECRET = "Sup3rS3cretVal"

# Each case puts SECRET somewhere it is wrong; no problem may show it.
SECRET_CASES = [
    f"[asterisk]\nsecret = {987654321}\n",
    f'[asterisk]\nsecret = ["{SECRET}"]\n',
    f'[asterisk]\nsecret = {{ value = "{SECRET}" }}\n',
    f'[asterisk]\nsecret = ""\nsecert = "{SECRET}"\n',
    f'[[asterisk]]\nsecret = "{SECRET}"\n',
    f'asterisk = "{SECRET}"\n',
    f'secret = "{SECRET}"\n',
    f'[secrets]\nami = "{SECRET}"\n',
    f'[crm]\ntoken = ["{SECRET}"]\n',
    f'[crm]\ntoken = {{ a = "{SECRET}" }}\n',
    f'[crm]\nsigning_secret = "whsec_{SECRET}"\n',
    f'[crm]\nsigning_secret = "whsec_{SECRET}x"\n',
    f'[crm]\nsigning_secret = ["{SECRET}"]\n',
    f'[crm]\nurl = "ftp://user:{SECRET}@crm.example.com/hook"\n',
    f'[crm]\nurl = "https://crm.example.com:99x/hook?key={SECRET}"\n',
    f'[api]\nlink_secret = ["{SECRET}"]\n',
    f'[api]\npublic_url = "https://u:{SECRET}@bridge.example.com/x?sig={SECRET}"\n',
    f'[database]\nurl = "mysql://bridge:{SECRET}@db/bridge"\n',
    f'[database]\nurl = "postgresql://bridge:{SECRET}@db:99x/bridge"\n',
    f'[database]\nurl = "postgresql://bridge:{SECRET}@[db/bridge"\n',
    f'[database]\nurl = "postgresql://bridge:p/{SECRET}@db/bridge"\n',
    f'[database]\nurl = "postgresql://bridge@db/bridge?password={SECRET}"\nx = 1\n',
    f'[database]\nurl = ["postgresql://bridge:{SECRET}@db/bridge"]\n',
    f'[database]\nurl = "bridge:{SECRET}@db/bridge"\n',  # no scheme
    f'[database]\nurl = "host=db user=bridge password={SECRET}"\n',  # libpq key=value
    f'[database]\nurl = "host=db password = {SECRET}"\n',
    f'[pbx.users]\n"token" = ""\n"10 1" = "{SECRET}"\n',
    f'[asterisk]\nsecret = "{SECRET}\n',  # a TOML syntax error on the secret's line
]


@pytest.mark.parametrize("text", SECRET_CASES)
def test_no_problem_shows_a_secret(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)

    problems = check_config_file(path, for_daemon=True)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, for_daemon=True)

    assert problems, text
    for problem in [*problems, str(caught.value)]:
        assert SECRET not in problem, problem
        assert "987654321" not in problem, problem


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRIDGE_ASTERISK__SECRET", ""),
        ("BRIDGE_DATABASE__URL", f"mysql://bridge:{SECRET}@db/bridge"),
        ("BRIDGE_DATABASE__URL", f"postgresql://bridge:{SECRET}@db:port/bridge"),
        ("BRIDGE_CRM__SIGNING_SECRET", f"whsec_{SECRET}"),
        ("BRIDGE_CRM__TOKEN", ""),
        ("BRIDGE_CRM", f'{{"token": "{SECRET}", "tokn": "{SECRET}"}}'),
        ("BRIDGE_CRM", f'{{"token": "{SECRET}"'),  # not JSON
        ("BRIDGE_CRM", f'"{SECRET}"'),  # JSON, but not a table
        ("BRIDGE_PBX__USERS", f'{{"token": "{SECRET}"'),  # not JSON
        ("BRIDGE_API__LINK_SECRET", ""),
        ("BRIDGE_API__PUBLIC_URL", f"https://bridge.example.com/?sig={SECRET}"),
    ],
)
def test_no_problem_shows_a_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    path = write(tmp_path, LAB_TOML)
    monkeypatch.setenv(name, value)

    problems = check_config_file(path, for_daemon=True)

    assert problems
    assert all(SECRET not in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bridge:pw@db/bridge", "postgresql://bridge:***@db/bridge"),
        ("postgresql://bridge:p@w@db:5432/x", "postgresql://bridge:***@db:5432/x"),
        ("postgresql://bridge@db/bridge", "postgresql://bridge@db/bridge"),
        ("postgresql:///bridge?host=/run/postgresql", "postgresql:///bridge?host=***"),
        ("https://crm/hook?key=abc&x=1", "https://crm/hook?key=***&x=***"),
        ("not a url", "not a url"),
        ("bridge:pw@db/bridge", "bridge:***@db/bridge"),
        ("host=db user=bridge password=pw", "host=db user=bridge password=***"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    from bridge.config import mask_url

    assert mask_url(url) == shown


def test_package_version_matches_pyproject() -> None:
    import tomllib

    import bridge

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert bridge.__version__ == project["project"]["version"]


# --------------------------------------------------------------------------- logging


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


@pytest.mark.parametrize(
    ("cel", "words"),
    [
        ('source = "csv"', "needs path"),
        ('source = "pgsql"', "needs url"),
        ('source = "odbc"', "source"),
        ('source = "csv"\npath = "cel.csv"', "absolute path"),
        ('source = "pgsql"\nurl = "mysql://x"\ntable = "cel"', "PostgreSQL URL"),
        ('source = "pgsql"\nurl = "postgresql://h/db"\ntable = "cel; drop"', "table name"),
        ('source = "csv"\npath = "/x.csv"\ntimezone = "Mars/Base"', "time zone"),
        ('source = "csv"\npath = "/x.csv"\nfields = ["EventType", "Exten"]', "fields must"),
        ('source = "csv"\npath = "/x.csv"\nfollow = true', "follow"),
    ],
)
def test_cel_section_is_strict(tmp_path, cel: str, words: str) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(f"[cel]\n{cel}\n")
    problems = check_config_file(path)
    assert problems and any(words in p for p in problems), problems


def test_cel_section_accepted() -> None:
    for cel in (
        {},
        {"source": "csv", "path": "/var/log/asterisk/cel-custom/cel_master.csv"},
        {"source": "pgsql", "url": "postgresql://cel@127.0.0.1/asterisk", "table": "ast.cel"},
    ):
        Settings.model_validate({"cel": cel})


@pytest.mark.parametrize(
    "url",
    [
        "https://b24.example.ru:99999/rest/1/q8PATHSECRETk2/",  # Bitrix24: the key is the path
        "htps://b24.example.ru/rest/1/q8PATHSECRETk2/",
        "https://b24.example.ru/rest/1/q8PATHSECRETk2/ profile",
    ],
)
def test_a_bad_crm_url_is_named_by_its_host_alone(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f'[crm]\nurl = "{url}"\n')
    (problem,) = check_config_file(path)
    assert problem.startswith('[crm] url: "') and "b24.example.ru" in problem
    assert "q8PATHSECRETk2" not in problem and "/rest/" not in problem
