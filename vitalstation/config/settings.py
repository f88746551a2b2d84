"""Typed settings from ``vitalstation.toml`` and ``VITALSTATION_<SECTION>__<KEY>`` variables.

The file layout is a contract (DESIGN.md, "Configuration file"): each section is a frozen
dataclass below, its fields are the TOML keys and their defaults are the documented defaults.
The loader is generic: it reads every section from the dataclass fields and their annotated
types, so adding a key is one line in a dataclass, one comment in ``_COMMENTS`` (the default
file documents every key; a test enforces it) and, if the value has rules, one entry in
``_KEY_CHECKS``. Supported key types are ``bool``, ``int``, ``float``, ``str`` and
``tuple[str, ...]``; another type fails at import, not at a ward.

Errors name the key, the file line or environment variable, and why. Values of keys whose names
look secret (``password``, ``secret``, ``key``) and passwords inside URLs are never echoed, since
errors end up in logs.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from vitalstation.config.errors import ConfigError
from vitalstation.domain.vitals import PLAUSIBLE_RANGES, VitalKind

__all__ = [
    "ALARM_PRIORITIES",
    "ALARM_PROFILES",
    "ALARM_SIDES",
    "CONFIG_FILE_NAME",
    "CURRENT_SCHEMA_VERSION",
    "DATABASE_FILE_NAME",
    "ENV_PREFIX",
    "AlarmsSettings",
    "ConfigError",
    "DynamoDBSettings",
    "EmbeddedBrokerSettings",
    "FiledropSettings",
    "KinesisSettings",
    "MqttSettings",
    "RestSettings",
    "SecretsSettings",
    "Settings",
    "StationSettings",
    "StoreSettings",
    "default_toml",
    "load_settings",
    "parse_delay_item",
    "parse_limit_item",
    "render_toml_value",
    "settings_schema",
]

CURRENT_SCHEMA_VERSION = 1
ENV_PREFIX = "VITALSTATION_"
CONFIG_FILE_NAME = "vitalstation.toml"
DATABASE_FILE_NAME = "vitalstation.db"
ALARM_PROFILES = ("adult-ward", "inhealth", "bedside-monitor")
SMTP_SECURITY = ("starttls", "ssl", "none")
ALARM_SIDES = ("low", "high")
ALARM_PRIORITIES = ("high", "medium", "low")
# The longest alarm delay an admin may set: a longer one would hide a real deterioration
# (high priority is held back at most the engine's cap, 10 s, whatever is set here).
MAX_ALARM_DELAY_S = 120
# Escalation timeouts: long enough for someone to answer, short enough that nobody is forgotten.
ESCALATION_TIMEOUT_RANGE_S = (10, 3600)


# --- sections: field name = TOML key, default = DESIGN.md's default -------------------------


@dataclass(frozen=True, slots=True)
class StationSettings:
    """This station, as shown to the ward (window title) and to devices (MQTT status topic)."""

    name: str = "VitalStation"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where readings live: empty means SQLite in the data home (see ``Settings.store_url``)."""

    url: str = ""


@dataclass(frozen=True, slots=True)
class RestSettings:
    """The embedded REST receiver; on loopback by default, so nothing is exposed unasked."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str = ""
    tls_key: str = ""
    max_body_bytes: int = 1_048_576
    max_batch_readings: int = 1000
    rate_limit: int = 600
    trusted_proxies: tuple[str, ...] = ()
    activity_retention_days: int = 30


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """The MQTT input; ``"embedded"`` starts a loopback broker, so it works out of the box."""

    enabled: bool = True
    url: str = "embedded"
    topics: tuple[str, ...] = ("healthcare/monitors/#",)
    qos: int = 1
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    protocol: str = "3.1.1"
    client_id: str = ""
    keepalive: int = 60
    username: str = ""
    timestamp_zone: str = "UTC"
    device_id_from_topic: bool = False
    max_payload_bytes: int = 262_144


@dataclass(frozen=True, slots=True)
class EmbeddedBrokerSettings:
    """The broker the station starts itself when ``mqtt.url = "embedded"``."""

    port: int = 1883


@dataclass(frozen=True, slots=True)
class KinesisSettings:
    """The Kinesis input (off by default: it needs an AWS account or a local stack)."""

    enabled: bool = False
    stream: str = "BSMStream"
    region: str = "us-east-1"
    endpoint_url: str = ""
    # Where a shard with no checkpoint starts: all it retains (nothing lost), or only new records.
    initial_position: str = "TRIM_HORIZON"
    # Pause between GetRecords calls of a caught-up shard. AWS allows 5 calls/s per shard, shared
    # by every consumer of the stream: 500 ms takes 2 and adds 0.25 s latency on average.
    poll_interval_ms: int = 500
    # Records per GetRecords call (AWS allows 10,000): one pipeline batch's worth.
    max_records_per_call: int = 1000
    # The same bedside messages as MQTT (an IoT rule forwards them): the same naive timestamps.
    timestamp_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class FiledropSettings:
    """The file-drop input; relative folders are inside the data home."""

    enabled: bool = True
    inbox: str = "inbox"
    archive: str = "archive"
    failed: str = "failed"
    retention_days: int = 90


@dataclass(frozen=True, slots=True)
class DynamoDBSettings:
    """The anomaly sink; the seed's table name (with its spelling) is kept for compatibility."""

    enabled: bool = False
    table: str = "BSM_anamoly"
    region: str = "us-east-1"
    endpoint_url: str = ""


@dataclass(frozen=True, slots=True)
class AlarmsSettings:
    """The alarm limit profile (one of ``ALARM_PROFILES``), the admin's changes to its limits
    and delays, and the escalation timeouts per priority.

    ``limits`` items are ``"<vital>.<side>.<priority> = <value>"`` (``"heart_rate.high.medium =
    120"``: the high-side limit of medium priority), in the vital's canonical unit; they change
    a limit the profile has, never add one. ``delays`` items are ``"<vital> = <seconds>"``. Here
    only their form is checked; whether they fit the profile (an existing limit, bands still in
    order) is ``vitalstation.alarms.limits.alarm_profile``'s check, since the profiles live
    there.
    """

    profile: str = "adult-ward"
    limits: tuple[str, ...] = ()
    delays: tuple[str, ...] = ()
    escalation_high_s: int = 120
    escalation_medium_s: int = 300
    escalation_low_s: int = 900

    def limit_overrides(self) -> dict[tuple[str, str, str], float]:
        """``limits`` read: (vital, side, priority) → value; ValueError naming a bad item."""
        overrides: dict[tuple[str, str, str], float] = {}
        for text in self.limits:
            vital, side, priority, value = parse_limit_item(text)
            if (vital, side, priority) in overrides:
                raise ValueError(f"{text!r}: {vital}.{side}.{priority} is set twice")
            overrides[vital, side, priority] = value
        return overrides

    def delay_overrides(self) -> dict[str, float]:
        """``delays`` read: vital → seconds; ValueError naming a bad item."""
        delays: dict[str, float] = {}
        for text in self.delays:
            vital, seconds = parse_delay_item(text)
            if vital in delays:
                raise ValueError(f"{text!r}: the delay of {vital} is set twice")
            delays[vital] = seconds
        return delays


@dataclass(frozen=True, slots=True)
class NotificationsSettings:
    """How escalations reach people: the SMTP server for email (its password is the secret
    ``smtp.password``), and the outbox's retry policy. Who gets what is in the contacts
    (``vitalstation alarms contact``); webhook URLs are contacts too."""

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_from: str = "vitalstation@localhost"
    timeout_s: int = 10
    retry_initial_s: int = 5
    retry_max_s: int = 300
    max_attempts: int = 10


SECRET_SOURCES = ("keyring", "environment")


@dataclass(frozen=True, slots=True)
class SecretsSettings:
    """Where secrets come from: the OS keyring, or (headless servers, by explicit choice) the
    environment. Never a file: see ``vitalstation.config.secrets``."""

    source: str = "keyring"


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration: one attribute per TOML section, plus the data home.

    Built by ``load_settings``; constructing it directly (tests, tools) gives the defaults.
    ``schema_version`` is the schema of the values held, always ``CURRENT_SCHEMA_VERSION`` after
    loading, since older files are migrated on the way in.
    """

    home: Path
    schema_version: int = CURRENT_SCHEMA_VERSION
    station: StationSettings = field(default_factory=StationSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    rest: RestSettings = field(default_factory=RestSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    embedded_broker: EmbeddedBrokerSettings = field(default_factory=EmbeddedBrokerSettings)
    kinesis: KinesisSettings = field(default_factory=KinesisSettings)
    filedrop: FiledropSettings = field(default_factory=FiledropSettings)
    dynamodb: DynamoDBSettings = field(default_factory=DynamoDBSettings)
    alarms: AlarmsSettings = field(default_factory=AlarmsSettings)
    notifications: NotificationsSettings = field(default_factory=NotificationsSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    # (section, key) -> "file:line" or "env NAME"; not part of equality, absent = default.
    _origins: Mapping[tuple[str, str], str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # An absolute home, so that store_url and path() do not depend on the working directory.
        object.__setattr__(self, "home", _absolute(self.home))

    @property
    def config_path(self) -> Path:
        """The file these settings are read from (it need not exist)."""
        return self.home / CONFIG_FILE_NAME

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL: ``store.url`` if set, else SQLite in the data home (absolute)."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.home / DATABASE_FILE_NAME).as_posix()}"

    def path(self, value: str) -> Path:
        """A configured path (``filedrop.inbox``, a TLS file); relative ones are in the data home.

        An empty value means "not set" for the TLS keys, so it is refused rather than silently
        turned into the data home itself.
        """
        if not value:
            raise ValueError("an empty path is an unset setting; check it before resolving it")
        return _resolve(self.home, value)

    def source_of(self, section: str, key: str) -> str:
        """Where a value came from: ``"default"``, ``"<file>:<line>"`` or ``"env <VARIABLE>"``.

        For diagnostics, and so that a component refusing a value later can say where to fix it.
        """
        if section not in _SCHEMA or key not in _SCHEMA[section].types:
            raise KeyError(f"no setting {section}.{key}")
        return self._origins.get((section, key), "default")

    def error_at(self, section: str, key: str, reason: str) -> ConfigError:
        """A ConfigError for a value a later check refuses (one that needs more than config
        knows, such as the alarm profiles), naming the key and where it was set."""
        source = self.source_of(section, key)
        dotted = f"{section}.{key}"
        if source.startswith("env "):
            return ConfigError(reason, key=dotted, variable=source[4:])
        if source == "default":
            return ConfigError(reason, key=dotted)
        file, _, line = source.rpartition(":")
        if file and line.isdigit():
            return ConfigError(reason, key=dotted, file=file, line=int(line))
        return ConfigError(reason, key=dotted, file=source)


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _resolve(home: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


# --- the schema, read from the dataclasses ---------------------------------------------------


class _Mismatch(Exception):
    """A value of the wrong type: ``got`` is the offending value or item, ``where`` says which."""

    def __init__(self, got: object, where: str = "") -> None:
        super().__init__(where)
        self.got = got
        self.where = where


@dataclass(frozen=True, slots=True)
class _Type:
    """How the loader reads one annotated type from TOML (typed) and from the environment (text)."""

    expected: str
    from_toml: Callable[[object], object]
    from_env: Callable[[str], object]
    env_expected: str = ""


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _toml_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise _Mismatch(value)


def _env_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _Mismatch(text)


def _toml_int(value: object) -> int:
    # bool is an int subclass in Python, but `port = true` is a mistake, not 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Mismatch(value)


def _env_int(text: str) -> int:
    if re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        return int(text)
    raise _Mismatch(text)


def _toml_float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _Mismatch(value)


def _env_float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise _Mismatch(text) from None
    if not math.isfinite(number):
        raise _Mismatch(text)
    return number


def _toml_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _Mismatch(value)


def _env_str(text: str) -> str:
    return text


def _toml_str_tuple(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Mismatch(value)
    for index, item in enumerate(value, 1):
        if not isinstance(item, str):
            raise _Mismatch(item, f"item {index} is")
    return tuple(value)


def _env_str_tuple(text: str) -> tuple[str, ...]:
    """A JSON array (for items containing commas) or a comma-separated list."""
    if not text.strip():
        return ()
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise _Mismatch(text, "it is not valid JSON:") from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise _Mismatch(text)
        return tuple(items)
    return tuple(item.strip() for item in text.split(","))


_TYPES: dict[object, _Type] = {
    bool: _Type(
        "a boolean (true or false)",
        _toml_bool,
        _env_bool,
        "a boolean (true/false, 1/0, yes/no, on/off)",
    ),
    int: _Type("an integer", _toml_int, _env_int),
    float: _Type("a number", _toml_float, _env_float),
    str: _Type("a string", _toml_str, _env_str),
    tuple[str, ...]: _Type(
        "a list of strings",
        _toml_str_tuple,
        _env_str_tuple,
        'a list of strings (a JSON array such as ["a", "b"], or comma-separated)',
    ),
}


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    cls: type
    types: dict[str, object]


def _build_schema(root: type) -> dict[str, _Section]:
    """Sections are the dataclass-typed fields of ``root``, keys the fields of each dataclass."""
    schema: dict[str, _Section] = {}
    hints = get_type_hints(root)
    for section_field in dataclasses.fields(root):
        cls = hints[section_field.name]
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            continue
        key_hints = get_type_hints(cls)
        types: dict[str, object] = {}
        for key_field in dataclasses.fields(cls):
            annotated = key_hints[key_field.name]
            if annotated not in _TYPES:
                raise TypeError(
                    f"{cls.__name__}.{key_field.name}: the settings loader cannot read "
                    f"{annotated!r}; use one of {list(_TYPES)} or add it to _TYPES"
                )
            types[key_field.name] = annotated
        schema[section_field.name] = _Section(section_field.name, cls, types)
    return schema


_SCHEMA = _build_schema(Settings)


# --- migrations ------------------------------------------------------------------------------
#
# How to change the file layout incompatibly (rename, move or re-type a key):
#   1. set CURRENT_SCHEMA_VERSION to N + 1 and change the dataclasses;
#   2. add _MIGRATIONS[N] = a function taking tomllib's dict of a schema-N file and returning it
#      in schema N + 1 (e.g. moving data["mqtt"]["broker"] to data["mqtt"]["url"]); it must not
#      mutate its argument's nested tables in place if it reads them again;
#   3. add a test that a schema-N file loads to the expected settings.
# Adding a key with a default needs no new version: old files simply lack it. Files are never
# rewritten; an old file goes through the chain at every start. Errors in migrated keys cannot
# always be given a line, since the key may have been renamed.

_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


# --- value rules -----------------------------------------------------------------------------
#
# A key check returns None or a reason; "{value}" in the reason is replaced by the value as it
# may be shown (quoted, URL passwords masked, secrets redacted).


def _not_blank(value: str) -> str | None:
    return "must not be empty" if not value.strip() else None


def _port(value: int) -> str | None:
    if 0 <= value <= 65535:
        return None
    return "{value} is not a port number (0 to 65535; 0 picks a free port)"


def _qos(value: int) -> str | None:
    return None if value in (0, 1, 2) else "{value} is not an MQTT QoS level (0, 1 or 2)"


def _at_least_one(value: int) -> str | None:
    return None if value >= 1 else "{value} must be at least 1"


def _host_problem(value: str) -> str | None:
    """A URL whose scheme is already right must still name a host and a valid port."""
    parts = urlsplit(value)
    try:
        _ = parts.port  # urlsplit checks the port only when it is asked for
    except ValueError:
        return "{value} has an invalid port"
    return None if parts.hostname else "{value} names no host"


def _mqtt_url(value: str) -> str | None:
    if value == "embedded":
        return None
    if urlsplit(value).scheme.lower() not in ("mqtt", "mqtts"):
        return '{value} is not "embedded" or an mqtt:// or mqtts:// URL (mqtt://host:1883)'
    return _host_problem(value)


def _endpoint_url(value: str) -> str | None:
    if value == "":
        return None
    if urlsplit(value).scheme.lower() not in ("http", "https"):
        return "{value} is not an http:// or https:// URL (leave it empty for AWS itself)"
    return _host_problem(value)


def _store_url(value: str) -> str | None:
    if value == "":
        return None
    scheme, separator, _ = value.partition("://")
    if separator and scheme.split("+", 1)[0].lower() in ("sqlite", "postgresql"):
        return None
    return (
        "{value} is not a sqlite:// or postgresql:// URL (e.g. postgresql+psycopg://host/db; "
        "leave it empty for SQLite in the data home)"
    )


def _kinesis_initial_position(value: str) -> str | None:
    if value in ("TRIM_HORIZON", "LATEST"):
        return None
    return "{value} is not TRIM_HORIZON (all the stream retains) or LATEST (only new records)"


def _kinesis_poll_interval(value: int) -> str | None:
    if 1 <= value <= 60_000:
        return None
    return "{value} must be 1 to 60000 ms (AWS allows 5 GetRecords calls/s per shard)"


def _kinesis_max_records(value: int) -> str | None:
    if 1 <= value <= 10_000:
        return None
    return "{value} must be 1 to 10000 (the GetRecords limit)"


def _alarm_profile(value: str) -> str | None:
    if value in ALARM_PROFILES:
        return None
    return "{value} is not an alarm profile; use one of " + ", ".join(ALARM_PROFILES)


def _smtp_security(value: str) -> str | None:
    if value in SMTP_SECURITY:
        return None
    return "{value} is not one of " + ", ".join(SMTP_SECURITY)


def _smtp_port(value: int) -> str | None:
    return _port(value) if value != 0 else "{value} is not an SMTP port (1 to 65535)"


def _secret_source(value: str) -> str | None:
    if value in SECRET_SOURCES:
        return None
    return (
        '{value} is not a secret source: "keyring" (the OS keyring) or "environment" '
        "(VITALSTATION_SECRET_<NAME> variables, for servers without a keyring)"
    )


def _topic_filters(value: tuple[str, ...]) -> str | None:
    """MQTT topic filter rules, checked here so a typo is reported at start, not at subscribe."""
    if not value:
        return "must list at least one topic filter"
    for index, topic in enumerate(value, 1):
        if not topic:
            return f"topic filter {index} is empty"
        if "\0" in topic or len(topic.encode()) > 65535:
            return f"topic filter {index} is not a valid MQTT topic filter"
        levels = topic.split("/")
        for position, level in enumerate(levels):
            if "#" in level and (level != "#" or position != len(levels) - 1):
                return f"topic filter {index}: '#' must be a whole level and the last one"
            if "+" in level and level != "+":
                return f"topic filter {index}: '+' must be a whole level"
    return None


def _mqtt_protocol(value: str) -> str | None:
    if value in ("3.1.1", "5"):
        return None
    return '{value} is not an MQTT version the station speaks: "3.1.1" or "5"'


def _mqtt_client_id(value: str) -> str | None:
    """Empty derives a stable id; a given one must suit every broker (AWS IoT: 128 chars)."""
    if not value:
        return None
    if len(value) > 128:
        return f"is {len(value)} characters long; at most 128"
    if not value.isprintable() or value != value.strip() or "+" in value or "#" in value:
        return "{value} must be printable, without surrounding spaces, '+' or '#'"
    return None


def _mqtt_keepalive(value: int) -> str | None:
    if 5 <= value <= 65535:
        return None
    return "{value} must be 5 to 65535 seconds"


def _time_zone(value: str) -> str | None:
    import zoneinfo  # here, not at the top: only this rule needs the zone database

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return '{value} is not an IANA time zone (e.g. "UTC", "Europe/Paris")'
    return None


def _mqtt_payload_limit(value: int) -> str | None:
    if 256 <= value <= 268_435_455:
        return None
    return "{value} must be 256 to 268435455 bytes (the MQTT maximum)"


def _body_limit(value: int) -> str | None:
    if 1024 <= value <= 256 * 1024 * 1024:
        return None
    return "{value} must be between 1024 bytes and 256 MiB (268435456)"


def _batch_limit(value: int) -> str | None:
    return None if 1 <= value <= 100_000 else "{value} must be between 1 and 100000"


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else "{value} must be 0 (no limit) or more"


def _ip_networks(value: tuple[str, ...]) -> str | None:
    for index, text in enumerate(value, 1):
        try:
            ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            return (
                f"item {index} ({text[:60]!r}) is not an IP address or network "
                "(e.g. 10.0.0.5 or 10.0.0.0/24)"
            )
    return None


_ITEM = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*=\s*(\S+)\s*$")


def _number(text: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number ({what})") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number ({what})")
    return number


def _vital(name: str, item: str) -> str:
    if name not in {kind.value for kind in VitalKind}:
        known = ", ".join(kind.value for kind in VitalKind if kind is not VitalKind.WEIGHT)
        raise ValueError(f"{item!r}: {name!r} is not a vital{_suggest(name, known.split(', '))}"
                         f"; vitals: {known}")
    return name


def parse_limit_item(text: str) -> tuple[str, str, str, float]:
    """``"heart_rate.high.medium = 120"`` → (vital, side, priority, value); ValueError saying
    what is wrong (form, vital, side, priority, a value the vital cannot take)."""
    match = _ITEM.match(text)
    parts = match.group(1).split(".") if match else []
    if match is None or len(parts) != 3:
        raise ValueError(
            f"{text!r} is not a limit; write \"<vital>.<side>.<priority> = <value>\", e.g. "
            '"heart_rate.high.medium = 120"'
        )
    vital, side, priority = parts
    _vital(vital, text)
    if side not in ALARM_SIDES:
        raise ValueError(f"{text!r}: the side is {side!r}; use low or high")
    if priority not in ALARM_PRIORITIES:
        raise ValueError(f"{text!r}: the priority is {priority!r}; use high, medium or low")
    value = _number(match.group(2), "the limit, in the vital's canonical unit")
    plausible = PLAUSIBLE_RANGES[VitalKind(vital)]
    if not plausible.contains(value):
        raise ValueError(
            f"{text!r}: {value:g} is outside what {vital} can be ({plausible.low:g} to "
            f"{plausible.high:g}, in its canonical unit)"
        )
    return vital, side, priority, value


def parse_delay_item(text: str) -> tuple[str, float]:
    """``"oxygen_saturation = 20"`` → (vital, seconds); ValueError saying what is wrong."""
    match = _ITEM.match(text)
    if match is None or "." in match.group(1):
        raise ValueError(
            f'{text!r} is not an alarm delay; write "<vital> = <seconds>", e.g. '
            '"oxygen_saturation = 20"'
        )
    vital = _vital(match.group(1), text)
    seconds = _number(match.group(2), "seconds")
    if not 0 <= seconds <= MAX_ALARM_DELAY_S:
        raise ValueError(
            f"{text!r}: the delay must be 0 to {MAX_ALARM_DELAY_S} s (a longer one would hide a "
            "real deterioration; high priority is never held back beyond the engine's cap)"
        )
    return vital, seconds


def _alarm_limits(value: tuple[str, ...]) -> str | None:
    try:
        AlarmsSettings(limits=value).limit_overrides()
    except ValueError as exc:
        return str(exc)
    return None


def _alarm_delays(value: tuple[str, ...]) -> str | None:
    try:
        AlarmsSettings(delays=value).delay_overrides()
    except ValueError as exc:
        return str(exc)
    return None


def _escalation_timeout(value: int) -> str | None:
    low, high = ESCALATION_TIMEOUT_RANGE_S
    if low <= value <= high:
        return None
    return f"{{value}} s must be {low} to {high} seconds"


_KEY_CHECKS: dict[tuple[str, str], Callable[[Any], str | None]] = {
    ("station", "name"): _not_blank,
    ("store", "url"): _store_url,
    ("rest", "host"): _not_blank,
    ("rest", "port"): _port,
    ("rest", "max_body_bytes"): _body_limit,
    ("rest", "max_batch_readings"): _batch_limit,
    ("rest", "rate_limit"): _not_negative,
    ("rest", "trusted_proxies"): _ip_networks,
    ("rest", "activity_retention_days"): _at_least_one,
    ("mqtt", "url"): _mqtt_url,
    ("mqtt", "topics"): _topic_filters,
    ("mqtt", "qos"): _qos,
    ("mqtt", "protocol"): _mqtt_protocol,
    ("mqtt", "client_id"): _mqtt_client_id,
    ("mqtt", "keepalive"): _mqtt_keepalive,
    ("mqtt", "timestamp_zone"): _time_zone,
    ("mqtt", "max_payload_bytes"): _mqtt_payload_limit,
    ("embedded_broker", "port"): _port,
    ("kinesis", "stream"): _not_blank,
    ("kinesis", "region"): _not_blank,
    ("kinesis", "endpoint_url"): _endpoint_url,
    ("kinesis", "initial_position"): _kinesis_initial_position,
    ("kinesis", "poll_interval_ms"): _kinesis_poll_interval,
    ("kinesis", "max_records_per_call"): _kinesis_max_records,
    ("kinesis", "timestamp_zone"): _time_zone,
    ("filedrop", "inbox"): _not_blank,
    ("filedrop", "archive"): _not_blank,
    ("filedrop", "failed"): _not_blank,
    ("filedrop", "retention_days"): _at_least_one,
    ("dynamodb", "table"): _not_blank,
    ("dynamodb", "region"): _not_blank,
    ("dynamodb", "endpoint_url"): _endpoint_url,
    ("alarms", "profile"): _alarm_profile,
    ("alarms", "limits"): _alarm_limits,
    ("alarms", "delays"): _alarm_delays,
    ("alarms", "escalation_high_s"): _escalation_timeout,
    ("alarms", "escalation_medium_s"): _escalation_timeout,
    ("alarms", "escalation_low_s"): _escalation_timeout,
    ("notifications", "smtp_port"): _smtp_port,
    ("notifications", "smtp_security"): _smtp_security,
    ("notifications", "smtp_from"): _not_blank,
    ("notifications", "timeout_s"): _at_least_one,
    ("notifications", "retry_initial_s"): _at_least_one,
    ("notifications", "retry_max_s"): _at_least_one,
    ("notifications", "max_attempts"): _at_least_one,
    ("secrets", "source"): _secret_source,
}


def _rest_tls_pair(rest: RestSettings, home: Path) -> tuple[str, str] | None:
    """HTTPS needs both the certificate and its key; one alone is a half-done setup."""
    if bool(rest.tls_cert) == bool(rest.tls_key):
        return None
    given, missing = ("tls_cert", "tls_key") if rest.tls_cert else ("tls_key", "tls_cert")
    return given, (
        f"is set but rest.{missing} is empty; HTTPS needs both the certificate and its key "
        f"(leave both empty for HTTP)"
    )


def _filedrop_distinct(filedrop: FiledropSettings, home: Path) -> tuple[str, str] | None:
    """The same folder for two roles would feed archived or failed files back into the inbox."""
    seen: dict[Path, str] = {}
    for key in ("inbox", "archive", "failed"):
        folder = _absolute(_resolve(home, getattr(filedrop, key)))
        if folder in seen:
            return key, (
                f"is the same folder as filedrop.{seen[folder]} ({folder}); "
                f"files would be picked up again"
            )
        seen[folder] = key
    return None


def _escalation_order(alarms: AlarmsSettings, home: Path) -> tuple[str, str] | None:
    """A more urgent alarm never waits longer for an answer than a less urgent one."""
    if alarms.escalation_high_s > alarms.escalation_medium_s:
        return "escalation_high_s", (
            f"{alarms.escalation_high_s} s is longer than alarms.escalation_medium_s "
            f"({alarms.escalation_medium_s} s); a high-priority alarm must not wait longer "
            "than a medium one"
        )
    if alarms.escalation_medium_s > alarms.escalation_low_s:
        return "escalation_medium_s", (
            f"{alarms.escalation_medium_s} s is longer than alarms.escalation_low_s "
            f"({alarms.escalation_low_s} s); a medium-priority alarm must not wait longer "
            "than a low one"
        )
    return None


_SECTION_CHECKS: dict[str, Callable[[Any, Path], tuple[str, str] | None]] = {
    "alarms": _escalation_order,
    "rest": _rest_tls_pair,
    "filedrop": _filedrop_distinct,
}


# --- showing values in errors without leaking secrets -----------------------------------------

_SECRET_WORDS = ("password", "secret", "key")
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/\s]*(?=@[^@/\s]*(?:[/?#\s]|$))", re.IGNORECASE
)
_MAX_SHOWN = 80


def _is_secret(key: str) -> bool:
    name = key.lower()
    return any(word in name for word in _SECRET_WORDS)


def _mask_url_password(text: str) -> str:
    return _URL_PASSWORD.sub(r"\g<head><redacted>", text)


def _show(key: str, value: object) -> str:
    """A value as an error may show it: quoted, URL passwords masked, secret keys redacted."""
    if _is_secret(key):
        return "<redacted>"
    if isinstance(value, str):
        text = _mask_url_password(value)
        if len(text) > _MAX_SHOWN:
            text = text[: _MAX_SHOWN - 3] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(key, item) for item in value) + "]"
    return str(value)


def _kind(value: object) -> str:
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        ((list, tuple), "list"),
        (dict, "table"),
        (datetime, "date-time"),
        (date, "date"),
        (time, "time"),
    )
    for types, name in kinds:
        if isinstance(value, types):
            return name
    return type(value).__name__


def _describe(key: str, value: object) -> str:
    """'the string "80a"', 'the integer 5', 'a table' -- or 'a string (<redacted>)'."""
    kind = _kind(value)
    article = "an" if kind[0] in "aeiou" else "a"
    if _is_secret(key):
        return f"{article} {kind} (<redacted>)"
    if isinstance(value, dict | list | tuple):
        return f"{article} {kind}"
    return f"the {kind} {_show(key, value)}"


def _suggest(word: str, candidates: list[str]) -> str:
    lowered = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]}?)" if close else ""


def _known_sections() -> str:
    return ", ".join(f"[{name}]" for name in _SCHEMA)


# --- locating keys in the text (tomllib gives values no positions) ----------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(rf"^\s*({_DOTTED})\s*=(.*)$")
_PART_RE = re.compile(_KEY_PART)


def _split_dotted(dotted: str) -> tuple[str, ...]:
    parts = []
    for match in _PART_RE.finditer(dotted):
        part = match.group(0)
        if part.startswith('"'):
            try:
                part = json.loads(part)
            except ValueError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


class _Locator:
    """Finds the line of ``[section]`` headers and ``key =`` lines: enough for error messages.

    A scan, not a parser: tomllib has already accepted the text, so only valid TOML is seen.
    It follows table headers and dotted keys and skips the inside of multi-line strings.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if in_string is not None:
                if in_string in line:
                    in_string = None
                continue
            header = _HEADER_RE.match(line)
            if header:
                table = _split_dotted(header.group(1))
                self._lines.setdefault(table, number)
                continue
            assignment = _KEY_RE.match(line)
            if assignment:
                self._lines.setdefault(table + _split_dotted(assignment.group(1)), number)
                rest = assignment.group(2)
                for quotes in ('"""', "'''"):
                    if rest.count(quotes) % 2 == 1:
                        in_string = quotes
                        break

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """The line of ``path``, else of its nearest enclosing table or inline table."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origin:
    file: Path | None = None
    line: int | None = None
    variable: str | None = None

    def source(self) -> str:
        if self.variable is not None:
            return f"env {self.variable}"
        if self.file is None:
            return "default"
        return f"{self.file}:{self.line}" if self.line is not None else str(self.file)

    def error(self, reason: str, key: str | None = None, column: int | None = None) -> ConfigError:
        return ConfigError(
            reason,
            key=key,
            file=self.file,
            line=self.line,
            column=column,
            variable=self.variable,
        )


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def _read_text(file: Path) -> str | None:
    """The file's text (a UTF-8 BOM, as Windows editors write, is tolerated); None if absent."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = f"cannot read the configuration file: {exc.strerror or exc}"
        raise ConfigError(reason, file=file) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("the file is not UTF-8 text", file=file, line=line) from None


def _parse(text: str, file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = column = None
        position = _TOML_POSITION.search(message)
        if position:
            message = message[: position.start()]
            if position.group(1):
                line, column = int(position.group(1)), int(position.group(2))
            else:
                line = max(1, len(text.splitlines()))
        raise ConfigError(f"invalid TOML: {message}", file=file, line=line, column=column) from None


def _migrate(data: dict[str, Any], file: Path, locator: _Locator) -> dict[str, Any]:
    """Checks ``schema_version`` and brings an older file's data up to the current schema."""
    origin = _Origin(file, locator.line_of(("schema_version",)))
    version = data.pop("schema_version", CURRENT_SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise origin.error(
            f"expected an integer, got {_describe('schema_version', version)}", "schema_version"
        )
    if version > CURRENT_SCHEMA_VERSION:
        raise origin.error(
            f"this file was written by a newer VitalStation (schema {version}); this version "
            f"reads up to {CURRENT_SCHEMA_VERSION}. Upgrade VitalStation, or use a file for "
            f"schema {CURRENT_SCHEMA_VERSION}",
            "schema_version",
        )
    if version < 1:
        raise origin.error(f"{version} is not a schema version (they start at 1)", "schema_version")
    while version < CURRENT_SCHEMA_VERSION:
        step = _MIGRATIONS.get(version)
        if step is None:
            raise origin.error(
                f"no migration from schema {version} to {version + 1} in this version",
                "schema_version",
            )
        data = step(data)
        version += 1
    return data


def _read_file(
    file: Path,
    values: dict[str, dict[str, Any]],
    origins: dict[tuple[str, str], _Origin],
    text: str | None = None,
) -> None:
    text = _read_text(file) if text is None else text
    if text is None:
        return
    data = _parse(text, file)
    locator = _Locator(text)
    data = _migrate(data, file, locator)
    for name, table in data.items():
        origin = _Origin(file, locator.line_of((name,)))
        section = _SCHEMA.get(name)
        if section is None:
            if isinstance(table, dict):
                raise origin.error(
                    f"unknown section [{name}]{_suggest(name, list(_SCHEMA))}; "
                    f"known sections: {_known_sections()}",
                    name,
                )
            homes = [f"[{s.name}]" for s in _SCHEMA.values() if name in s.types]
            where = f"known sections: {_known_sections()}"
            if homes:
                where = f"{name} is a key of {', '.join(homes)}"
            raise origin.error(f"unknown top-level key; keys belong in a section ({where})", name)
        if not isinstance(table, dict):
            hint = " (an array of tables [[...]]?)" if isinstance(table, list) else ""
            raise origin.error(
                f"must be a table (a [{name}] section), got {_describe(name, table)}{hint}", name
            )
        for key, value in table.items():
            origin = _Origin(file, locator.line_of((name, key)))
            dotted = f"{name}.{key}"
            annotated = section.types.get(key)
            if annotated is None:
                known = list(section.types)
                raise origin.error(
                    f"unknown key{_suggest(key, known)}; [{name}] has: {', '.join(known)}", dotted
                )
            kind = _TYPES[annotated]
            try:
                values[name][key] = kind.from_toml(value)
            except _Mismatch as exc:
                got = f"got {_describe(key, exc.got)}"
                if exc.where:
                    got = f"but {exc.where} {_describe(key, exc.got)}"
                raise origin.error(f"expected {kind.expected}, {got}", dotted) from None
            origins[(name, key)] = origin


def _read_environment(
    environ: Mapping[str, str],
    values: dict[str, dict[str, Any]],
    origins: dict[tuple[str, str], _Origin],
) -> None:
    set_by: dict[tuple[str, str], str] = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or "__" not in variable[len(ENV_PREFIX) :]:
            continue  # VITALSTATION_HOME and friends are not key overrides
        text = environ[variable]
        raw_section, _, raw_key = variable[len(ENV_PREFIX) :].partition("__")
        name, key = raw_section.lower(), raw_key.lower()
        origin = _Origin(variable=variable)
        section = _SCHEMA.get(name)
        if section is None:
            raise origin.error(
                f"unknown section {name!r}{_suggest(name, list(_SCHEMA))}; "
                f"known sections: {', '.join(_SCHEMA)}",
                name,
            )
        dotted = f"{name}.{key}"
        annotated = section.types.get(key)
        if annotated is None:
            known = list(section.types)
            raise origin.error(
                f"unknown key{_suggest(key, known)}; [{name}] has: {', '.join(known)}", dotted
            )
        if (name, key) in set_by:
            raise origin.error(f"also set by {set_by[name, key]}; set it once", dotted)
        set_by[name, key] = variable
        kind = _TYPES[annotated]
        try:
            values[name][key] = kind.from_env(text)
        except _Mismatch as exc:
            shown = _show(key, text)
            expected = kind.env_expected or kind.expected
            detail = f"but {exc.where} {shown}" if exc.where else f"got {shown}"
            raise origin.error(f"expected {expected}, {detail}", dotted) from None
        origins[(name, key)] = origin


def _check(sections: dict[str, Any], home: Path, origins: dict[tuple[str, str], _Origin]) -> None:
    for (name, key), check in _KEY_CHECKS.items():
        value = getattr(sections[name], key)
        reason = check(value)
        if reason:
            origin = origins.get((name, key), _Origin())
            raise origin.error(reason.replace("{value}", _show(key, value)), f"{name}.{key}")
    for name, section_check in _SECTION_CHECKS.items():
        problem = section_check(sections[name], home)
        if problem:
            key, reason = problem
            origin = origins.get((name, key), _Origin())
            raise origin.error(reason, f"{name}.{key}")


def load_settings(
    home: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    text: str | None = None,
) -> Settings:
    """Reads ``<home>/vitalstation.toml`` (absent or empty: every default), then env overrides.

    ``environ`` defaults to ``os.environ``; tests pass their own so the developer's environment
    cannot leak in. ``text``, if given, is read instead of the file (Settings checks a file
    before saving it). Raises ConfigError naming the key and the line or variable at the first
    problem found.
    """
    home_path = _absolute(home)
    environ = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {name: {} for name in _SCHEMA}
    origins: dict[tuple[str, str], _Origin] = {}
    _read_file(home_path / CONFIG_FILE_NAME, values, origins, text)
    _read_environment(environ, values, origins)
    sections = {name: _SCHEMA[name].cls(**values[name]) for name in _SCHEMA}
    _check(sections, home_path, origins)
    return Settings(
        home=home_path,
        schema_version=CURRENT_SCHEMA_VERSION,
        **sections,
        _origins=MappingProxyType({where: origin.source() for where, origin in origins.items()}),
    )


# --- the documented default file -------------------------------------------------------------

_HEADER = f"""\
# VitalStation configuration ({CONFIG_FILE_NAME} in the data home).
# Every key is optional: a missing key, section or file means the default written here.
# Environment variables override single keys as {ENV_PREFIX}<SECTION>__<KEY>,
# e.g. {ENV_PREFIX}REST__PORT=9000. Unknown keys and wrong types are refused.
# Secrets (broker passwords, AWS keys, key passphrases) live in the OS keyring, never here.
"""

_SECTION_COMMENTS: dict[str, str] = {
    "station": "This station.",
    "store": "Where readings, alarms and the audit trail are stored.",
    "rest": "The REST receiver for devices (POST /api/iot/vitals/).",
    "mqtt": "The MQTT input (bedside monitors).",
    "embedded_broker": 'The broker the station starts on loopback when mqtt.url = "embedded".',
    "kinesis": "The Kinesis input: every shard of one stream.",
    "filedrop": "The file-drop input: *.json files put in the inbox.",
    "dynamodb": "The anomaly sink: abnormal readings copied to a DynamoDB table.",
    "alarms": "Alarm limits, delays and escalation timeouts (Settings > Alarms edits them).",
    "notifications": "Escalation messages: email (SMTP), webhooks, retries. Recipients are "
    "contacts (vitalstation alarms contact add).",
    "secrets": "Passwords and keys: in the OS keyring (set them in Settings), never in this file.",
}

_COMMENTS: dict[tuple[str, str], str] = {
    ("station", "name"): "window title; MQTT status topic",
    ("store", "url"): "empty: SQLite in the data home; or postgresql+psycopg://...",
    ("rest", "enabled"): "accept readings over HTTP(S)",
    ("rest", "host"): "interface to listen on; 0.0.0.0 for every interface",
    ("rest", "port"): "0 picks a free port",
    ("rest", "tls_cert"): "both set: HTTPS (certificate file, PEM)",
    ("rest", "tls_key"): "its private key file (PEM)",
    ("rest", "max_body_bytes"): "larger requests are refused (413) before being read",
    ("rest", "max_batch_readings"): "readings per batch request at most (413 beyond)",
    ("rest", "rate_limit"): "requests per minute per API key (429 beyond); 0: no limit",
    ("rest", "trusted_proxies"): "proxies (IPs or networks) whose X-Forwarded-For is believed",
    ("rest", "activity_retention_days"): "age at which REST activity-log rows are purged",
    ("mqtt", "enabled"): "subscribe to bedside devices over MQTT",
    ("mqtt", "url"): "or mqtt://host:1883, mqtts://host:8883",
    ("mqtt", "topics"): "topic filters to subscribe to",
    ("mqtt", "qos"): "0, 1 or 2; 1 with a persistent session loses nothing",
    ("mqtt", "tls_ca"): "mqtts: CA, client certificate and key (AWS IoT Core style)",
    ("mqtt", "tls_cert"): "client certificate file (PEM)",
    ("mqtt", "tls_key"): "client private key file (PEM)",
    ("mqtt", "protocol"): '"3.1.1" or "5" (the embedded broker speaks 3.1.1 only)',
    ("mqtt", "client_id"): "empty: vitalstation-<station>-<data home hash>, same at every start",
    ("mqtt", "keepalive"): "seconds; a dead connection is noticed after 1.5 times this",
    ("mqtt", "username"): "its password: secret mqtt.password (keyring), never this file",
    ("mqtt", "timestamp_zone"): "IANA zone of device clocks that send times without offset",
    ("mqtt", "device_id_from_topic"): "true: the device id is the topic's last level",
    ("mqtt", "max_payload_bytes"): "larger messages go to the dead letters",
    ("embedded_broker", "port"): "loopback port of the embedded broker",
    ("kinesis", "enabled"): "read readings from a Kinesis stream",
    ("kinesis", "stream"): "stream name",
    ("kinesis", "region"): "AWS region",
    ("kinesis", "endpoint_url"): "for local stacks; empty: AWS itself",
    ("kinesis", "initial_position"): "shards with no checkpoint: TRIM_HORIZON (all) or LATEST",
    ("kinesis", "poll_interval_ms"): "pause between reads of a caught-up shard",
    ("kinesis", "max_records_per_call"): "records per GetRecords call (1 to 10000)",
    ("kinesis", "timestamp_zone"): "IANA zone of device clocks that send times without offset",
    ("filedrop", "enabled"): "pick up reading files from the inbox",
    ("filedrop", "inbox"): "relative paths are inside the data home",
    ("filedrop", "archive"): "processed files, by day",
    ("filedrop", "failed"): "files that failed, each with a .error.json",
    ("filedrop", "retention_days"): "age at which --cleanup removes archived files",
    ("dynamodb", "enabled"): "copy anomalies to DynamoDB",
    ("dynamodb", "table"): "table name (key: deviceid + timestamp)",
    ("dynamodb", "region"): "AWS region",
    ("dynamodb", "endpoint_url"): "for local stacks; empty: AWS itself",
    ("alarms", "profile"): "or " + ", ".join(ALARM_PROFILES[1:]),
    ("alarms", "limits"): 'limits changed: "heart_rate.high.medium = 120" (canonical units)',
    ("alarms", "delays"): 'alarm delays, s: "oxygen_saturation = 20" (high priority: 10 s at most)',
    ("alarms", "escalation_high_s"): "no answer within this: escalate a high-priority alarm",
    ("alarms", "escalation_medium_s"): "the same for medium priority",
    ("alarms", "escalation_low_s"): "the same for low priority (when low alarms escalate)",
    ("notifications", "smtp_host"): "SMTP server for email notifications; empty: no email",
    ("notifications", "smtp_port"): "587 for STARTTLS, 465 for SSL, 25 plain",
    ("notifications", "smtp_security"): '"starttls", "ssl" or "none"',
    ("notifications", "smtp_username"): "its password: secret smtp.password (keyring), not here",
    ("notifications", "smtp_from"): "sender address of the station's emails",
    ("notifications", "timeout_s"): "seconds per SMTP or webhook attempt",
    ("notifications", "retry_initial_s"): "first retry after a failed delivery; doubles each time",
    ("notifications", "retry_max_s"): "longest wait between two attempts",
    ("notifications", "max_attempts"): "then the message fails and a technical alarm says so",
    ("secrets", "source"): '"environment": no keyring; VITALSTATION_SECRET_<NAME> variables',
}

_COMMENT_COLUMN = 37


def _toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\t":
            escaped.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_literal(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def render_toml_value(value: object) -> str:
    """A settings value as TOML (for the Settings dialog's file editor)."""
    return _toml_literal(value)


def settings_schema() -> dict[str, tuple[str, ...]]:
    """Every section and its keys, in file order."""
    return {name: tuple(section.types) for name, section in _SCHEMA.items()}


def default_toml() -> str:
    """The documented default file: every section and key with its default and a comment.

    Written from the dataclasses, so a new key appears here without further work; ``ensure_home``
    puts it in a new data home so admins see every option in one place.
    """
    lines = [_HEADER, f"schema_version = {CURRENT_SCHEMA_VERSION}"]
    for name, section in _SCHEMA.items():
        lines.append("")
        if name in _SECTION_COMMENTS:
            lines.append(f"# {_SECTION_COMMENTS[name]}")
        lines.append(f"[{name}]")
        defaults = section.cls()
        for key in section.types:
            assignment = f"{key} = {_toml_literal(getattr(defaults, key))}"
            comment = _COMMENTS.get((name, key))
            if comment:
                assignment = f"{assignment:<{_COMMENT_COLUMN}} # {comment}"
            lines.append(assignment)
    return "\n".join(lines) + "\n"
