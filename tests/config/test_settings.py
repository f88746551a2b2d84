"""vitalstation.toml and VITALSTATION_<SECTION>__<KEY>: the contract of DESIGN.md, and its errors.

Every test passes ``environ`` explicitly and uses ``tmp_path`` as the data home, so neither the
developer's environment nor their real data home can leak in.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from vitalstation.config import settings as settings_module
from vitalstation.config.errors import ConfigError
from vitalstation.config.settings import (
    CONFIG_FILE_NAME,
    CURRENT_SCHEMA_VERSION,
    Settings,
    default_toml,
    load_settings,
)

# DESIGN.md's defaults, written out so that a changed default in the code fails here (the
# station name default is ours; DESIGN.md's "Ward 5 North" is an example).
DESIGN_DEFAULTS: dict[str, dict[str, object]] = {
    "station": {"name": "VitalStation"},
    "store": {"url": ""},
    "rest": {
        "enabled": True,
        "host": "127.0.0.1",
        "port": 8080,
        "tls_cert": "",
        "tls_key": "",
        "max_body_bytes": 1_048_576,
        "max_batch_readings": 1000,
        "rate_limit": 600,
        "trusted_proxies": (),
        "activity_retention_days": 30,
    },
    "mqtt": {
        "enabled": True,
        "url": "embedded",
        "topics": ("healthcare/monitors/#",),
        "qos": 1,
        "tls_ca": "",
        "tls_cert": "",
        "tls_key": "",
        "protocol": "3.1.1",
        "client_id": "",
        "keepalive": 60,
        "username": "",
        "timestamp_zone": "UTC",
        "device_id_from_topic": False,
        "max_payload_bytes": 262_144,
    },
    "embedded_broker": {"port": 1883},
    "kinesis": {
        "enabled": False,
        "stream": "BSMStream",
        "region": "us-east-1",
        "endpoint_url": "",
        "initial_position": "TRIM_HORIZON",
        "poll_interval_ms": 500,
        "max_records_per_call": 1000,
        "timestamp_zone": "UTC",
    },
    "filedrop": {
        "enabled": True,
        "inbox": "inbox",
        "archive": "archive",
        "failed": "failed",
        "retention_days": 90,
    },
    "dynamodb": {
        "enabled": False,
        "table": "BSM_anamoly",
        "region": "us-east-1",
        "endpoint_url": "",
    },
    "alarms": {"profile": "adult-ward", "limits": (), "delays": (), "escalation_high_s": 120,
               "escalation_medium_s": 300, "escalation_low_s": 900},
    "notifications": {
        "smtp_host": "",
        "smtp_port": 587,
        "smtp_security": "starttls",
        "smtp_username": "",
        "smtp_from": "vitalstation@localhost",
        "timeout_s": 10,
        "retry_initial_s": 5,
        "retry_max_s": 300,
        "max_attempts": 10,
    },
    "secrets": {"source": "keyring"},
}

# Copied from DESIGN.md, "Configuration file (a contract too)".
DESIGN_EXAMPLE = """\
[station]
name = "Ward 5 North"                 # window title; MQTT status topic
[store]
url = ""                              # empty: SQLite in the data home; or postgresql+psycopg://...
[rest]
enabled = true
host = "127.0.0.1"
port = 8080
tls_cert = ""                         # both set: HTTPS
tls_key = ""
[mqtt]
enabled = true
url = "embedded"                      # or mqtt://host:1883, mqtts://host:8883
topics = ["healthcare/monitors/#"]
qos = 1
tls_ca = ""                           # mqtts: CA, client certificate and key (AWS IoT Core style)
tls_cert = ""
tls_key = ""
[embedded_broker]
port = 1883
[kinesis]
enabled = false
stream = "BSMStream"
region = "us-east-1"
endpoint_url = ""                     # for local stacks
[filedrop]
enabled = true
inbox = "inbox"                       # relative paths are inside the data home
archive = "archive"
failed = "failed"
retention_days = 90
[dynamodb]
enabled = false
table = "BSM_anamoly"
region = "us-east-1"
endpoint_url = ""
[alarms]
profile = "adult-ward"                # or inhealth, bedside-monitor
"""


@dataclasses.dataclass(frozen=True)
class Override:
    """One key set to a non-default value, as TOML and as an environment variable."""

    section: str
    key: str
    toml: str
    env: str
    expected: object
    # Keys that must be set with it to pass the rules (the TLS pair).
    also: tuple[tuple[str, str, str], ...] = ()

    @property
    def variable(self) -> str:
        return f"VITALSTATION_{self.section.upper()}__{self.key.upper()}"

    def __str__(self) -> str:
        return f"{self.section}.{self.key}"


OVERRIDES = [
    Override("station", "name", '"Ward 5 North"', "Ward 5 North", "Ward 5 North"),
    Override(
        "store",
        "url",
        '"postgresql+psycopg://db.example/vitals"',
        "postgresql+psycopg://db.example/vitals",
        "postgresql+psycopg://db.example/vitals",
    ),
    Override("rest", "enabled", "false", "false", False),
    Override("rest", "host", '"0.0.0.0"', "0.0.0.0", "0.0.0.0"),
    Override("rest", "port", "9000", "9000", 9000),
    Override(
        "rest", "tls_cert", '"cert.pem"', "cert.pem", "cert.pem", (("tls_key", '"k.pem"', "k.pem"),)
    ),
    Override(
        "rest", "tls_key", '"key.pem"', "key.pem", "key.pem", (("tls_cert", '"c.pem"', "c.pem"),)
    ),
    Override("rest", "max_body_bytes", "65536", "65536", 65536),
    Override("rest", "max_batch_readings", "100", "100", 100),
    Override("rest", "rate_limit", "0", "0", 0),
    Override(
        "rest",
        "trusted_proxies",
        '["10.0.0.5", "192.168.0.0/16"]',
        "10.0.0.5,192.168.0.0/16",
        ("10.0.0.5", "192.168.0.0/16"),
    ),
    Override("rest", "activity_retention_days", "7", "7", 7),
    Override("mqtt", "enabled", "false", "no", False),
    Override(
        "mqtt",
        "url",
        '"mqtts://broker.example:8883"',
        "mqtts://broker.example:8883",
        "mqtts://broker.example:8883",
    ),
    Override(
        "mqtt",
        "topics",
        '["ward5/#", "icu/+/vitals"]',
        '["ward5/#", "icu/+/vitals"]',
        ("ward5/#", "icu/+/vitals"),
    ),
    Override("mqtt", "qos", "2", "2", 2),
    Override("mqtt", "tls_ca", '"ca.pem"', "ca.pem", "ca.pem"),
    Override("mqtt", "tls_cert", '"client.crt"', "client.crt", "client.crt"),
    Override("mqtt", "tls_key", '"client.key"', "client.key", "client.key"),
    Override("mqtt", "protocol", '"5"', "5", "5"),
    Override("mqtt", "client_id", '"ward5-station"', "ward5-station", "ward5-station"),
    Override("mqtt", "keepalive", "30", "30", 30),
    Override("mqtt", "username", '"station"', "station", "station"),
    Override("mqtt", "timestamp_zone", '"Europe/Paris"', "Europe/Paris", "Europe/Paris"),
    Override("mqtt", "device_id_from_topic", "true", "yes", True),
    Override("mqtt", "max_payload_bytes", "4096", "4096", 4096),
    Override("embedded_broker", "port", "11883", "11883", 11883),
    Override("kinesis", "enabled", "true", "on", True),
    Override("kinesis", "stream", '"Ward5Stream"', "Ward5Stream", "Ward5Stream"),
    Override("kinesis", "region", '"eu-west-1"', "eu-west-1", "eu-west-1"),
    Override(
        "kinesis",
        "endpoint_url",
        '"http://localhost:4566"',
        "http://localhost:4566",
        "http://localhost:4566",
    ),
    Override("kinesis", "initial_position", '"LATEST"', "LATEST", "LATEST"),
    Override("kinesis", "poll_interval_ms", "200", "200", 200),
    Override("kinesis", "max_records_per_call", "10000", "10000", 10000),
    Override(
        "kinesis", "timestamp_zone", '"Europe/Paris"', "Europe/Paris", "Europe/Paris"
    ),
    Override("filedrop", "enabled", "false", "0", False),
    Override("filedrop", "inbox", '"/srv/drop/in"', "/srv/drop/in", "/srv/drop/in"),
    Override("filedrop", "archive", '"done"', "done", "done"),
    Override("filedrop", "failed", '"bad"', "bad", "bad"),
    Override("filedrop", "retention_days", "30", "30", 30),
    Override("dynamodb", "enabled", "true", "1", True),
    Override("dynamodb", "table", '"Anomalies"', "Anomalies", "Anomalies"),
    Override("dynamodb", "region", '"eu-west-1"', "eu-west-1", "eu-west-1"),
    Override(
        "dynamodb",
        "endpoint_url",
        '"https://dynamodb.local:8000"',
        "https://dynamodb.local:8000",
        "https://dynamodb.local:8000",
    ),
    Override("alarms", "profile", '"inhealth"', "inhealth", "inhealth"),
    Override("alarms", "limits", '["heart_rate.high.medium = 120"]',
             "heart_rate.high.medium = 120", ("heart_rate.high.medium = 120",)),
    Override("alarms", "delays", '["oxygen_saturation = 20"]', "oxygen_saturation = 20",
             ("oxygen_saturation = 20",)),
    Override("alarms", "escalation_high_s", "60", "60", 60),
    Override("alarms", "escalation_medium_s", "600", "600", 600),
    Override("alarms", "escalation_low_s", "1800", "1800", 1800),
    Override("notifications", "smtp_host", '"smtp.example"', "smtp.example", "smtp.example"),
    Override("notifications", "smtp_port", "465", "465", 465),
    Override("notifications", "smtp_security", '"ssl"', "ssl", "ssl"),
    Override("notifications", "smtp_username", '"ward5"', "ward5", "ward5"),
    Override("notifications", "smtp_from", '"w5@h.example"', "w5@h.example", "w5@h.example"),
    Override("notifications", "timeout_s", "3", "3", 3),
    Override("notifications", "retry_initial_s", "1", "1", 1),
    Override("notifications", "retry_max_s", "60", "60", 60),
    Override("notifications", "max_attempts", "3", "3", 3),
    Override("secrets", "source", '"environment"', "environment", "environment"),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG_FILE_NAME
    path.write_text(text, encoding="utf-8")
    return path


def load(home: Path, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(home, environ={} if environ is None else environ)


def load_error(home: Path, text: str | None = None, environ: dict[str, str] | None = None):
    if text is not None:
        write(home, text)
    with pytest.raises(ConfigError) as caught:
        load(home, environ)
    return caught.value


def values(settings: Settings) -> dict[str, dict[str, object]]:
    return {name: dataclasses.asdict(getattr(settings, name)) for name in DESIGN_DEFAULTS}


def line_of(text: str, pattern: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(pattern, line):
            return number
    raise AssertionError(f"{pattern!r} not in the text")


# --- defaults --------------------------------------------------------------------------------


def test_no_file_gives_the_design_defaults(home: Path) -> None:
    settings = load(home)
    assert values(settings) == DESIGN_DEFAULTS
    assert settings == Settings(home=home)
    assert settings.schema_version == CURRENT_SCHEMA_VERSION
    assert not home.exists()  # loading never creates the home


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "\ufeff"])
def test_an_empty_file_gives_the_design_defaults(home: Path, text: str) -> None:
    write(home, text)
    assert values(load(home)) == DESIGN_DEFAULTS


def test_the_settings_sections_are_the_design_sections() -> None:
    assert list(settings_module._SCHEMA) == list(DESIGN_DEFAULTS)
    for name, keys in DESIGN_DEFAULTS.items():
        assert list(settings_module._SCHEMA[name].types) == list(keys)


def test_settings_are_frozen_and_hashable(home: Path) -> None:
    settings = load(home)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.rest.port = 1  # type: ignore[misc]
    assert hash(settings) == hash(Settings(home=home))


def test_default_toml_round_trips_to_the_defaults(home: Path) -> None:
    write(home, default_toml())
    settings = load(home)
    assert values(settings) == DESIGN_DEFAULTS
    assert settings == Settings(home=home)


def test_default_toml_documents_every_key_in_design_order() -> None:
    text = default_toml()
    headers = re.findall(r"^\[(\w+)\]$", text, flags=re.MULTILINE)
    assert headers == list(DESIGN_DEFAULTS)
    assert re.search(rf"^schema_version = {CURRENT_SCHEMA_VERSION}$", text, flags=re.MULTILINE)
    for name, keys in DESIGN_DEFAULTS.items():
        section = text.split(f"[{name}]\n", 1)[1].split("\n[", 1)[0]
        for key in keys:
            match = re.search(rf"^{key} = (.+?)\s+# (\S.*)$", section, flags=re.MULTILINE)
            assert match, f"{name}.{key} is not in the default file with a comment"


def test_every_key_has_a_comment_and_every_rule_a_key() -> None:
    schema = settings_module._SCHEMA
    keys = {(name, key) for name, section in schema.items() for key in section.types}
    assert set(settings_module._COMMENTS) == keys
    assert all("\n" not in comment for comment in settings_module._COMMENTS.values())
    assert set(settings_module._KEY_CHECKS) <= keys
    assert set(settings_module._SECTION_CHECKS) <= set(schema)


def test_the_design_example_loads(home: Path) -> None:
    write(home, DESIGN_EXAMPLE)
    settings = load(home)
    expected = {**DESIGN_DEFAULTS, "station": {"name": "Ward 5 North"}}
    assert values(settings) == expected


# --- overrides from the file and the environment ---------------------------------------------


def test_the_override_table_covers_every_key() -> None:
    schema = settings_module._SCHEMA
    keys = {(name, key) for name, section in schema.items() for key in section.types}
    assert {(o.section, o.key) for o in OVERRIDES} == keys


@pytest.mark.parametrize("override", OVERRIDES, ids=str)
def test_every_key_can_be_set_in_the_file(home: Path, override: Override) -> None:
    lines = [f"[{override.section}]", f"{override.key} = {override.toml}"]
    lines += [f"{key} = {toml}" for key, toml, _ in override.also]
    path = write(home, "\n".join(lines) + "\n")
    settings = load(home)
    assert getattr(getattr(settings, override.section), override.key) == override.expected
    assert settings.source_of(override.section, override.key) == f"{path}:2"
    untouched = {(override.section, key) for key in [override.key, *(k for k, *_ in override.also)]}
    for name, keys in DESIGN_DEFAULTS.items():
        for key, default in keys.items():
            if (name, key) not in untouched:
                assert getattr(getattr(settings, name), key) == default
                assert settings.source_of(name, key) == "default"


@pytest.mark.parametrize("override", OVERRIDES, ids=str)
def test_every_key_can_be_set_from_the_environment(home: Path, override: Override) -> None:
    environ = {override.variable: override.env}
    for key, _, env in override.also:
        environ[f"VITALSTATION_{override.section.upper()}__{key.upper()}"] = env
    settings = load(home, environ)
    assert getattr(getattr(settings, override.section), override.key) == override.expected
    assert settings.source_of(override.section, override.key) == f"env {override.variable}"


@pytest.mark.parametrize(
    ("toml", "variable", "env", "section", "key", "expected"),
    [
        ("[rest]\nport = 9000\n", "VITALSTATION_REST__PORT", "9100", "rest", "port", 9100),
        ("[rest]\nenabled = false\n", "VITALSTATION_REST__ENABLED", "yes", "rest", "enabled", True),
        (
            '[mqtt]\ntopics = ["a/#"]\n',
            "VITALSTATION_MQTT__TOPICS",
            "b/#, c/+/d",
            "mqtt",
            "topics",
            ("b/#", "c/+/d"),
        ),
        (
            '[store]\nurl = "sqlite:////var/lib/vs.db"\n',
            "VITALSTATION_STORE__URL",
            "postgresql+psycopg://h/db",
            "store",
            "url",
            "postgresql+psycopg://h/db",
        ),
    ],
)
def test_the_environment_beats_the_file(
    home: Path, toml: str, variable: str, env: str, section: str, key: str, expected: object
) -> None:
    write(home, toml)
    settings = load(home, {variable: env})
    assert getattr(getattr(settings, section), key) == expected
    assert settings.source_of(section, key) == f"env {variable}"


def test_source_of_gives_the_line_in_a_full_file(home: Path) -> None:
    text = default_toml()
    path = write(home, text)
    settings = load(home, {"VITALSTATION_FILEDROP__INBOX": "drop"})
    assert settings.source_of("filedrop", "retention_days") == (
        f"{path}:{line_of(text, r'retention_days = ')}"
    )
    # tls_key is in [rest] and in [mqtt]: each gets its own section's line.
    lines = text.splitlines()
    rest_line = line_of(text, r"tls_key = ")
    mqtt_header = lines.index("[mqtt]")
    mqtt_line = next(n for n in range(mqtt_header, len(lines)) if lines[n].startswith("tls_key"))
    mqtt_line += 1
    assert rest_line < mqtt_header < mqtt_line
    assert settings.source_of("rest", "tls_key") == f"{path}:{rest_line}"
    assert settings.source_of("mqtt", "tls_key") == f"{path}:{mqtt_line}"
    assert settings.source_of("filedrop", "inbox") == "env VITALSTATION_FILEDROP__INBOX"


def test_source_of_an_unknown_key_is_a_key_error(home: Path) -> None:
    settings = load(home)
    with pytest.raises(KeyError):
        settings.source_of("rest", "prot")
    with pytest.raises(KeyError):
        settings.source_of("reset", "port")


def test_env_section_and_key_are_case_insensitive(home: Path) -> None:
    environ = {"VITALSTATION_rest__Port": "9001", "VITALSTATION_Embedded_Broker__PORT": "0"}
    settings = load(home, environ)
    assert settings.rest.port == 9001
    assert settings.embedded_broker.port == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [(word, True) for word in ("true", "TRUE", "1", "yes", "on", " On ")]
    + [(word, False) for word in ("false", "False", "0", "no", "off", "OFF")],
)
def test_env_booleans(home: Path, text: str, expected: bool) -> None:
    assert load(home, {"VITALSTATION_KINESIS__ENABLED": text}).kinesis.enabled is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a/#", ("a/#",)),
        ("a/#,b/+/c", ("a/#", "b/+/c")),
        (" a/# , b/# ", ("a/#", "b/#")),
        ('["a,b/#"]', ("a,b/#",)),
        (' ["x", "y/#"] ', ("x", "y/#")),
    ],
)
def test_env_topics_as_json_or_comma_separated(home: Path, text: str, expected: tuple) -> None:
    assert load(home, {"VITALSTATION_MQTT__TOPICS": text}).mqtt.topics == expected


def test_env_variables_that_are_not_key_overrides_are_ignored(home: Path) -> None:
    environ = {
        "VITALSTATION_HOME": "/elsewhere",
        "VITALSTATION_LOG_LEVEL": "debug",
        "VITALSTATION_": "x",
        "OTHER_REST__PORT": "1",
        "vitalstation_rest__port": "nonsense",  # the prefix is upper case
        "PATH": "/usr/bin",
    }
    assert values(load(home, environ)) == DESIGN_DEFAULTS


def test_environ_defaults_to_os_environ(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALSTATION_REST__PORT", "9002")
    assert load_settings(home).rest.port == 9002


def test_the_same_key_twice_in_the_environment_is_refused(home: Path) -> None:
    error = load_error(home, None, {"VITALSTATION_REST__PORT": "1", "VITALSTATION_rest__port": "2"})
    assert error.key == "rest.port"
    assert "VITALSTATION_REST__PORT" in str(error)
    assert "VITALSTATION_rest__port" in str(error)


def test_values_survive_dotted_keys_and_inline_tables(home: Path) -> None:
    write(home, 'rest.port = 9003\nmqtt = { qos = 0, topics = ["x/#"] }\n')
    settings = load(home)
    assert (settings.rest.port, settings.mqtt.qos, settings.mqtt.topics) == (9003, 0, ("x/#",))
    path = home / CONFIG_FILE_NAME
    assert settings.source_of("rest", "port") == f"{path}:1"
    assert settings.source_of("mqtt", "qos") == f"{path}:2"


# --- errors: syntax, unknown names, types ----------------------------------------------------


def test_a_syntax_error_names_the_file_line_and_column(home: Path) -> None:
    path = home / CONFIG_FILE_NAME
    error = load_error(home, '[rest]\nport = 8080\nhost = "127.0.0.1\n')
    assert (error.file, error.line, error.key) == (str(path), 3, None)
    assert error.column is not None
    assert str(error).startswith(f"{path}, line 3, column {error.column}: invalid TOML")
    assert error.origin == f"{path}:3"


def test_a_duplicate_key_is_a_syntax_error_with_its_line(home: Path) -> None:
    error = load_error(home, "[rest]\nport = 1\nport = 2\n")
    assert error.line == 3


def test_a_file_that_is_not_utf8_is_refused_with_its_line(home: Path) -> None:
    home.mkdir()
    (home / CONFIG_FILE_NAME).write_bytes(b'[station]\nname = "Ward \xe9"\n')
    error = load_error(home)
    assert error.line == 2
    assert "UTF-8" in str(error)


def test_an_unreadable_file_is_refused(home: Path) -> None:
    (home / CONFIG_FILE_NAME).mkdir(parents=True)
    error = load_error(home)
    assert "cannot read the configuration file" in str(error)
    assert error.file == str(home / CONFIG_FILE_NAME)


def test_an_unknown_section_names_its_line_and_the_known_sections(home: Path) -> None:
    error = load_error(home, '[station]\nname = "x"\n\n[reset]\nport = 1\n')
    assert (error.key, error.line) == ("reset", 4)
    message = str(error)
    assert message.startswith(f"{home / CONFIG_FILE_NAME}, line 4: reset: unknown section [reset]")
    assert "did you mean rest?" in message
    for name in DESIGN_DEFAULTS:
        assert f"[{name}]" in message


def test_an_unknown_key_names_its_line_and_suggests(home: Path) -> None:
    error = load_error(home, "[rest]\nenabled = true\nprot = 9000\n")
    assert (error.key, error.line) == ("rest.prot", 3)
    assert "unknown key (did you mean port?)" in str(error)
    assert "enabled, host, port, tls_cert, tls_key" in str(error)


def test_an_unknown_key_without_a_close_match_lists_the_keys(home: Path) -> None:
    error = load_error(home, "[alarms]\nvolume = 3\n")
    assert "did you mean" not in str(error)
    assert "[alarms] has: profile" in str(error)


def test_a_key_outside_any_section_says_where_it_belongs(home: Path) -> None:
    error = load_error(home, "port = 9000\n")
    assert (error.key, error.line) == ("port", 1)
    assert "[rest], [embedded_broker]" in str(error)


def test_a_nested_table_in_a_section_is_an_unknown_key(home: Path) -> None:
    error = load_error(home, "[rest]\nport = 1\n[rest.limits]\nrate = 5\n")
    assert (error.key, error.line) == ("rest.limits", 3)


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        ('[rest]\nport = "80a"', "rest.port", 2, 'expected an integer, got the string "80a"'),
        ("[rest]\nport = true", "rest.port", 2, "expected an integer, got the boolean true"),
        ("[rest]\nport = 8080.0", "rest.port", 2, "expected an integer, got the float 8080.0"),
        ("[rest]\nenabled = 1", "rest.enabled", 2, "expected a boolean (true or false), got the"),
        ('[rest]\nenabled = "yes"', "rest.enabled", 2, 'got the string "yes"'),
        (
            "[mqtt]\nqos = 1\ntopics = [1, 2]",
            "mqtt.topics",
            3,
            "expected a list of strings, but item 1 is the integer 1",
        ),
        (
            '[mqtt]\ntopics = ["a/#", 2]',
            "mqtt.topics",
            2,
            "expected a list of strings, but item 2 is the integer 2",
        ),
        ('[mqtt]\ntopics = "a/#"', "mqtt.topics", 2, 'list of strings, got the string "a/#"'),
        ("[store]\nurl = 5", "store.url", 2, "expected a string, got the integer 5"),
        ("[station]\nname = 1979-05-27", "station.name", 2, "got the date 1979-05-27"),
        ('[station]\nname = ["a"]', "station.name", 2, "expected a string, got a list"),
        ("[filedrop]\nretention_days = 1.5", "filedrop.retention_days", 2, "got the float 1.5"),
        ("[rest]\nport = { a = 1 }", "rest.port", 2, "expected an integer, got a table"),
    ],
)
def test_wrong_types_name_the_key_line_and_what_was_found(
    home: Path, text: str, key: str, line: int, message: str
) -> None:
    error = load_error(home, text + "\n")
    assert (error.key, error.line) == (key, line)
    assert message in str(error)
    assert str(error).startswith(f"{home / CONFIG_FILE_NAME}, line {line}: {key}: ")


@pytest.mark.parametrize("text", ["rest = 5\n", "[[rest]]\nport = 1\n", 'rest = "x"\n'])
def test_a_section_that_is_not_a_table_is_refused(home: Path, text: str) -> None:
    error = load_error(home, text)
    assert (error.key, error.line) == ("rest", 1)
    assert "must be a table" in str(error)


def test_a_wrong_value_after_a_multiline_string_gets_its_own_line(home: Path) -> None:
    text = '[station]\nname = """\n[rest]\nport = 1\n"""\n[rest]\nport = "x"\n'
    error = load_error(home, text)
    assert (error.key, error.line) == ("rest.port", 7)


def test_quoted_keys_are_located(home: Path) -> None:
    error = load_error(home, '[rest]\n"port" = "x"\n')
    assert error.line == 2


def test_an_int_is_accepted_for_a_float_but_not_a_bool() -> None:
    reader = settings_module._TYPES[float]
    assert reader.from_toml(3) == 3.0
    assert isinstance(reader.from_toml(3), float)
    assert reader.from_toml(2.5) == 2.5
    assert reader.from_env(" 2.5 ") == 2.5
    for bad in (True, "3", float("nan"), float("inf")):
        with pytest.raises(settings_module._Mismatch):
            reader.from_toml(bad)
    for bad in ("x", "nan", "inf", ""):
        with pytest.raises(settings_module._Mismatch):
            reader.from_env(bad)


@dataclasses.dataclass(frozen=True)
class _OddSection:
    when: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _OddSettings:
    home: Path
    odd: _OddSection = dataclasses.field(default_factory=_OddSection)


def test_a_key_type_the_loader_cannot_read_fails_when_the_schema_is_built() -> None:
    with pytest.raises(TypeError, match="_OddSection.when"):
        settings_module._build_schema(_OddSettings)


# --- errors: the rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "toml", "message"),
    [
        ("rest", "port", "65536", "65536 is not a port number (0 to 65535"),
        ("rest", "port", "-1", "-1 is not a port number"),
        ("embedded_broker", "port", "70000", "70000 is not a port number"),
        ("mqtt", "qos", "3", "3 is not an MQTT QoS level (0, 1 or 2)"),
        ("mqtt", "qos", "-1", "is not an MQTT QoS level"),
        ("mqtt", "url", '"tcp://broker:1883"', 'is not "embedded" or an mqtt:// or mqtts:// URL'),
        ("mqtt", "url", '"Embedded"', 'is not "embedded"'),
        ("mqtt", "url", '"broker.example"', 'is not "embedded"'),
        ("mqtt", "url", '"mqtt://"', '"mqtt://" names no host'),
        ("mqtt", "url", '"mqtts://:8883"', "names no host"),
        ("mqtt", "url", '"mqtt://broker:99999"', "has an invalid port"),
        ("mqtt", "topics", "[]", "must list at least one topic filter"),
        ("mqtt", "topics", '["a/#", ""]', "topic filter 2 is empty"),
        ("mqtt", "topics", '["a/#/b"]', "'#' must be a whole level and the last one"),
        ("mqtt", "topics", '["a/b#"]', "'#' must be a whole level"),
        ("mqtt", "topics", '["a/b+/c"]', "'+' must be a whole level"),
        ("store", "url", '"mysql://h/db"', "is not a sqlite:// or postgresql:// URL"),
        ("store", "url", '"postgres://h/db"', "is not a sqlite:// or postgresql:// URL"),
        ("store", "url", '"sqlite"', "is not a sqlite:// or postgresql:// URL"),
        ("alarms", "profile", '"icu"', '"icu" is not an alarm profile; use one of adult-ward'),
        ("alarms", "limits", '["pulse.high.medium = 120"]',
         "'pulse' is not a vital; vitals: heart_rate, blood_pressure_systolic"),
        ("alarms", "limits", '["heart_rate.high.urgent = 120"]',
         "the priority is 'urgent'; use high, medium or low"),
        ("alarms", "limits", '["heart_rate.high.medium = fast"]', "'fast' is not a number"),
        ("alarms", "limits", '["heart_rate.high.medium = 400"]',
         "400 is outside what heart_rate can be (0 to 350"),
        ("alarms", "limits", '["heart_rate.high = 120"]',
         'is not a limit; write "<vital>.<side>.<priority> = <value>"'),
        ("alarms", "limits", '["heart_rate.high.medium = 120", "heart_rate.high.medium = 125"]',
         "heart_rate.high.medium is set twice"),
        ("alarms", "delays", '["oxygen_saturation = 121"]', "the delay must be 0 to 120 s"),
        ("alarms", "delays", '["oxygen_saturation = -1"]', "the delay must be 0 to 120 s"),
        ("alarms", "delays", '["spo2 = 5"]', "'spo2' is not a vital"),
        ("alarms", "escalation_high_s", "5", "5 s must be 10 to 3600 seconds"),
        ("alarms", "escalation_low_s", "7200", "7200 s must be 10 to 3600 seconds"),
        ("alarms", "escalation_high_s", "301",
         "301 s is longer than alarms.escalation_medium_s (300 s)"),
        ("alarms", "escalation_medium_s", "901",
         "901 s is longer than alarms.escalation_low_s (900 s)"),
        ("filedrop", "retention_days", "0", "0 must be at least 1"),
        ("filedrop", "inbox", '""', "must not be empty"),
        ("filedrop", "archive", '"./inbox"', "is the same folder as filedrop.inbox"),
        ("filedrop", "failed", '"archive"', "is the same folder as filedrop.archive"),
        ("station", "name", '""', "must not be empty"),
        ("station", "name", '"   "', "must not be empty"),
        ("rest", "host", '""', "must not be empty"),
        ("kinesis", "stream", '""', "must not be empty"),
        ("kinesis", "region", '""', "must not be empty"),
        ("kinesis", "endpoint_url", '"localhost:4566"', "is not an http:// or https:// URL"),
        ("kinesis", "initial_position", '"latest"', '"latest" is not TRIM_HORIZON'),
        ("kinesis", "initial_position", '"AT_TIMESTAMP"', "is not TRIM_HORIZON"),
        ("kinesis", "poll_interval_ms", "0", "0 must be 1 to 60000 ms"),
        ("kinesis", "max_records_per_call", "10001", "10001 must be 1 to 10000"),
        ("kinesis", "timestamp_zone", '"Mars/Olympus"', "is not an IANA time zone"),
        ("dynamodb", "table", '""', "must not be empty"),
        ("dynamodb", "region", '""', "must not be empty"),
        ("dynamodb", "endpoint_url", '"http://"', "names no host"),
        ("notifications", "smtp_security", '"tls"', '"tls" is not one of starttls, ssl'),
        ("notifications", "smtp_port", "0", "0 is not an SMTP port"),
        ("notifications", "max_attempts", "0", "0 must be at least 1"),
        ("rest", "tls_cert", '"cert.pem"', "is set but rest.tls_key is empty; HTTPS needs both"),
        ("rest", "tls_key", '"key.pem"', "is set but rest.tls_cert is empty"),
        ("rest", "max_body_bytes", "100", "100 must be between 1024 bytes and 256 MiB"),
        ("rest", "max_batch_readings", "0", "0 must be between 1 and 100000"),
        ("rest", "rate_limit", "-1", "-1 must be 0 (no limit) or more"),
        ("rest", "trusted_proxies", '["10.0.0.300"]', "item 1 ('10.0.0.300') is not an IP"),
        ("rest", "activity_retention_days", "0", "0 must be at least 1"),
        ("mqtt", "protocol", '"3.1"', '"3.1" is not an MQTT version the station speaks'),
        ("mqtt", "protocol", "\"v5\"", 'speaks: "3.1.1" or "5"'),
        ("mqtt", "client_id", '"ward+5"', "must be printable, without surrounding spaces"),
        ("mqtt", "client_id", '" padded"', "without surrounding spaces"),
        ("mqtt", "client_id", '"' + "x" * 129 + '"', "is 129 characters long; at most 128"),
        ("mqtt", "keepalive", "0", "0 must be 5 to 65535 seconds"),
        ("mqtt", "timestamp_zone", '"CEST"', '"CEST" is not an IANA time zone'),
        ("mqtt", "timestamp_zone", '"Europe/Atlantis"', "is not an IANA time zone"),
        ("mqtt", "max_payload_bytes", "100", "100 must be 256 to 268435455 bytes"),
    ],
)
def test_each_rule_refuses_a_bad_value_with_its_line(
    home: Path, section: str, key: str, toml: str, message: str
) -> None:
    error = load_error(home, f"[{section}]\n{key} = {toml}\n")
    assert (error.key, error.line) == (f"{section}.{key}", 2)
    assert message in str(error)


@pytest.mark.parametrize(
    ("section", "key", "toml"),
    [
        ("rest", "port", "0"),
        ("rest", "port", "65535"),
        ("rest", "rate_limit", "0"),
        ("rest", "trusted_proxies", '["::1", "fd00::/8", "127.0.0.1"]'),
        ("embedded_broker", "port", "0"),
        ("mqtt", "qos", "0"),
        ("mqtt", "url", '"mqtt://broker.example:1883"'),
        ("mqtt", "url", '"mqtts://user@broker.example"'),
        ("mqtt", "topics", '["#", "+/vitals", "$share/ward/healthcare/monitors/#"]'),
        ("mqtt", "protocol", '"5"'),
        ("mqtt", "client_id", '"BSM-station/ward 5"'),
        ("mqtt", "keepalive", "65535"),
        ("mqtt", "timestamp_zone", '"America/New_York"'),
        ("mqtt", "max_payload_bytes", "268435455"),
        ("alarms", "limits", '["temperature.high.medium = 39.5", "glucose.low.high = 50"]'),
        ("alarms", "delays", '["oxygen_saturation = 0", "heart_rate = 120"]'),
        ("alarms", "escalation_high_s", "300"),
        ("store", "url", '"sqlite:////var/lib/vitalstation/v.db"'),
        ("store", "url", '"sqlite+pysqlite:///v.db"'),
        ("store", "url", '"postgresql://db/vitals"'),
        ("store", "url", '"postgresql+psycopg://u@db:5432/vitals"'),
        ("alarms", "profile", '"bedside-monitor"'),
        ("filedrop", "retention_days", "1"),
        ("kinesis", "endpoint_url", '"https://kinesis.local:4567"'),
        ("kinesis", "poll_interval_ms", "1"),
        ("kinesis", "max_records_per_call", "1"),
    ],
)
def test_each_rule_accepts_good_values(home: Path, section: str, key: str, toml: str) -> None:
    write(home, f"[{section}]\n{key} = {toml}\n")
    load(home)


def test_both_tls_files_make_https(home: Path) -> None:
    write(home, '[rest]\ntls_cert = "c.pem"\ntls_key = "k.pem"\n')
    settings = load(home)
    assert settings.path(settings.rest.tls_cert) == home / "c.pem"


def test_a_rule_broken_from_the_environment_names_the_variable(home: Path) -> None:
    error = load_error(home, None, {"VITALSTATION_MQTT__QOS": "5"})
    assert error.variable == "VITALSTATION_MQTT__QOS"
    assert error.origin == "environment variable VITALSTATION_MQTT__QOS"
    assert error.line is None
    assert str(error) == (
        "environment variable VITALSTATION_MQTT__QOS: mqtt.qos: "
        "5 is not an MQTT QoS level (0, 1 or 2)"
    )


def test_the_tls_pair_error_points_at_the_key_that_is_set(home: Path) -> None:
    write(home, '[rest]\nport = 8443\ntls_cert = "c.pem"\n')
    error = load_error(home)
    assert (error.key, error.line) == ("rest.tls_cert", 3)


def test_the_tls_pair_can_be_completed_or_cleared_from_the_environment(home: Path) -> None:
    write(home, '[rest]\ntls_cert = "c.pem"\n')
    assert load(home, {"VITALSTATION_REST__TLS_CERT": ""}).rest.tls_cert == ""
    assert load(home, {"VITALSTATION_REST__TLS_KEY": "k.pem"}).rest.tls_key == "k.pem"


# --- errors: the environment -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("VITALSTATION_REST__PORT", "80a", 'rest.port: expected an integer, got "80a"'),
        ("VITALSTATION_REST__PORT", "", 'expected an integer, got ""'),
        ("VITALSTATION_REST__PORT", "8080.0", "expected an integer"),
        ("VITALSTATION_REST__ENABLED", "maybe", "expected a boolean (true/false, 1/0, yes/no"),
        ("VITALSTATION_MQTT__TOPICS", '["a", 1]', "expected a list of strings (a JSON array"),
        ("VITALSTATION_MQTT__TOPICS", '["a", null]', "expected a list of strings"),
        ("VITALSTATION_MQTT__TOPICS", "[a/#", "but it is not valid JSON"),
        ("VITALSTATION_MQTT__TOPICS", "", "must list at least one topic filter"),
        ("VITALSTATION_MQTT__TOPICS", "a/#,", "topic filter 2 is empty"),
        ("VITALSTATION_STATION__NAME", "", "station.name: must not be empty"),
    ],
)
def test_a_bad_env_value_names_the_variable(
    home: Path, variable: str, text: str, message: str
) -> None:
    error = load_error(home, None, {variable: text})
    assert error.variable == variable
    assert str(error).startswith(f"environment variable {variable}: ")
    assert message in str(error)


def test_an_unknown_env_key_names_the_variable(home: Path) -> None:
    error = load_error(home, None, {"VITALSTATION_REST__PROT": "9000"})
    assert error.key == "rest.prot"
    assert str(error).startswith("environment variable VITALSTATION_REST__PROT: rest.prot: ")
    assert "did you mean port?" in str(error)
    assert "9000" not in str(error)


def test_an_unknown_env_section_names_the_variable(home: Path) -> None:
    error = load_error(home, None, {"VITALSTATION_RESET__PORT": "9000"})
    assert error.origin == "environment variable VITALSTATION_RESET__PORT"
    assert "unknown section" in str(error)
    assert "did you mean rest?" in str(error)


def test_env_is_checked_even_when_the_file_is_fine(home: Path) -> None:
    write(home, DESIGN_EXAMPLE)
    error = load_error(home, None, {"VITALSTATION_EMBEDDED_BROKER__PORT": "99999"})
    assert error.key == "embedded_broker.port"


# --- secrets never appear in errors ----------------------------------------------------------


def test_a_secret_looking_key_is_redacted_in_a_type_error(home: Path) -> None:
    error = load_error(home, "[rest]\ntls_key = 123456789\n")
    assert "123456789" not in str(error)
    assert "<redacted>" in str(error)
    assert error.key == "rest.tls_key"


def test_a_secret_looking_env_value_is_redacted() -> None:
    assert settings_module._show("broker_password", "hunter2") == "<redacted>"
    assert settings_module._show("aws_secret_access_key", "abc") == "<redacted>"
    assert settings_module._show("api_KEY", 42) == "<redacted>"
    assert "hunter2" not in settings_module._describe("mqtt_password", "hunter2")
    assert settings_module._show("name", "Ward 5") == '"Ward 5"'


@pytest.mark.parametrize(
    ("section", "key", "url"),
    [
        ("store", "url", "mysql://nurse:hunter2@db.example/vitals"),
        ("store", "url", "mysql://nurse:hun@ter2@db.example/vitals"),
        ("mqtt", "url", "mqtt://station:hunter2@broker:99999"),
        ("mqtt", "url", "ws://station:hunter2@broker"),
    ],
)
def test_a_password_in_a_url_is_masked(home: Path, section: str, key: str, url: str) -> None:
    error = load_error(home, f'[{section}]\n{key} = "{url}"\n')
    assert "hunter2" not in str(error)
    assert "ter2" not in str(error)
    assert ":<redacted>@" in str(error)
    error = load_error(home, "", {f"VITALSTATION_{section.upper()}__{key.upper()}": url})
    assert "hunter2" not in str(error)


# --- schema_version and migrations -----------------------------------------------------------


def test_the_current_schema_version_loads(home: Path) -> None:
    write(home, f"schema_version = {CURRENT_SCHEMA_VERSION}\n[rest]\nport = 1\n")
    assert load(home).rest.port == 1


def test_a_newer_schema_version_is_refused(home: Path) -> None:
    newer = CURRENT_SCHEMA_VERSION + 1
    error = load_error(home, f'schema_version = {newer}\n[station]\nname = "x"\n')
    assert (error.key, error.line) == ("schema_version", 1)
    assert (
        f"written by a newer VitalStation (schema {newer}); "
        f"this version reads up to {CURRENT_SCHEMA_VERSION}"
    ) in str(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version = 0\n", "0 is not a schema version"),
        ('schema_version = "1"\n', 'expected an integer, got the string "1"'),
        ("schema_version = true\n", "expected an integer, got the boolean true"),
    ],
)
def test_a_bad_schema_version_is_refused(home: Path, text: str, message: str) -> None:
    error = load_error(home, text)
    assert error.key == "schema_version"
    assert message in str(error)


def test_older_files_go_through_the_migrations(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def rename_broker(data: dict) -> dict:
        mqtt = dict(data.get("mqtt", {}))
        if "broker" in mqtt:
            mqtt["url"] = mqtt.pop("broker")
        return {**data, "mqtt": mqtt}

    monkeypatch.setattr(settings_module, "CURRENT_SCHEMA_VERSION", 2)
    monkeypatch.setattr(settings_module, "_MIGRATIONS", {1: rename_broker})
    write(home, 'schema_version = 1\n[mqtt]\nbroker = "mqtt://old.example"\n')
    settings = load(home)
    assert settings.mqtt.url == "mqtt://old.example"
    assert settings.schema_version == 2
    # A file without schema_version is taken as current and not migrated.
    write(home, '[mqtt]\nbroker = "mqtt://old.example"\n')
    assert load_error(home).key == "mqtt.broker"


def test_a_missing_migration_is_reported(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "CURRENT_SCHEMA_VERSION", 3)
    monkeypatch.setattr(settings_module, "_MIGRATIONS", {2: lambda data: data})
    error = load_error(home, "schema_version = 1\n")
    assert "no migration from schema 1 to 2" in str(error)


# --- helpers: store_url, path(), home ----------------------------------------------------------


def test_store_url_defaults_to_sqlite_in_the_home(home: Path) -> None:
    settings = load(home)
    assert settings.store_url == f"sqlite:///{(home / 'vitalstation.db').as_posix()}"
    assert Path(settings.store_url.removeprefix("sqlite:///")).is_absolute()


def test_store_url_is_the_configured_url_when_set(home: Path) -> None:
    url = "postgresql+psycopg://station@db.example/vitals"
    assert load(home, {"VITALSTATION_STORE__URL": url}).store_url == url


def test_path_resolves_relative_paths_in_the_home(home: Path, tmp_path: Path) -> None:
    settings = load(home)
    assert settings.path(settings.filedrop.inbox) == home / "inbox"
    assert settings.path("certs/ca.pem") == home / "certs" / "ca.pem"
    elsewhere = tmp_path / "drop"
    assert settings.path(str(elsewhere)) == elsewhere


def test_path_expands_the_user_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "user"))
    assert load(home).path("~/certs/ca.pem") == tmp_path / "user" / "certs" / "ca.pem"


def test_path_refuses_an_empty_value(home: Path) -> None:
    with pytest.raises(ValueError, match="unset"):
        load(home).path("")


def test_a_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings("rel", environ={})
    assert settings.home == tmp_path / "rel"
    assert Settings(home=Path("rel")).home == tmp_path / "rel"
    assert settings.config_path == tmp_path / "rel" / CONFIG_FILE_NAME


def test_config_error_parts() -> None:
    error = ConfigError("bad", key="rest.port", file="/x/vitalstation.toml", line=12)
    assert str(error) == "/x/vitalstation.toml, line 12: rest.port: bad"
    assert error.origin == "/x/vitalstation.toml:12"
    assert (error.key, error.line, error.reason) == ("rest.port", 12, "bad")
    assert str(ConfigError("just this")) == "just this"
    env_error = ConfigError("bad", key="rest.port", variable="VITALSTATION_REST__PORT")
    assert env_error.origin == "environment variable VITALSTATION_REST__PORT"
    assert str(env_error) == "environment variable VITALSTATION_REST__PORT: rest.port: bad"
