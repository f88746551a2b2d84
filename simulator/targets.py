"""Where to send: the station's own configuration in its data home, or explicit flags.

The simulator reads the same ``vitalstation.toml`` and ``VITALSTATION_<SECTION>__<KEY>``
overrides as the station (``load_settings``), so that with no flags it reaches the station of
that data home: REST ``http(s)://<rest.host>:<rest.port>``, the broker ``mqtt.url`` (or the
embedded broker on loopback), the inbox ``filedrop.inbox``, the stream ``kinesis.*``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from simulator.transports.base import DEFAULT_TOPIC_PREFIX, Transport, TransportError
from vitalstation.config.endpoints import read_live_endpoints
from vitalstation.config.settings import Settings

__all__ = [
    "TRANSPORTS",
    "TargetOptions",
    "broker_url_from",
    "build_transport",
    "inbox_from",
    "rest_url_from",
    "topic_prefix_from",
]

TRANSPORTS: tuple[str, ...] = ("mqtt", "rest", "file", "kinesis")


@dataclass(frozen=True, slots=True)
class TargetOptions:
    """Explicit settings that override the data home's (None: take the station's)."""

    url: str | None = None
    broker: str | None = None
    inbox: str | None = None
    stream: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    create_stream: bool = False
    qos: int = 1
    mqtt_version: str = "3.1.1"
    topic_prefix: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    username: str | None = None
    password: str | None = None


def _connectable(host: str) -> str:
    """A listening address as one to connect to: the wildcard means this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def rest_url_from(settings: Settings) -> str:
    """The station's REST receiver: https when it has a certificate and key; the port the
    running station really listens on when it published one (see config.endpoints)."""
    rest = settings.rest
    port = int(read_live_endpoints(settings.home).get("rest_port", rest.port))
    if port == 0:
        raise TransportError(
            "the station's rest.port is 0 (a free port picked at start) and no station is "
            "running on this data home: give --url"
        )
    scheme = "https" if rest.tls_cert and rest.tls_key else "http"
    return f"{scheme}://{_connectable(rest.host)}:{port}"


def broker_url_from(settings: Settings) -> str:
    """The station's broker; ``embedded`` is the one it starts on loopback, on the port the
    running station really uses (it takes a free one when another broker holds 1883)."""
    url = settings.mqtt.url.strip()
    if url == "embedded":
        live = read_live_endpoints(settings.home).get("broker_port")
        return f"mqtt://127.0.0.1:{live or settings.embedded_broker.port}"
    return url


def topic_prefix_from(settings: Settings) -> str:
    """The topic prefix the station subscribes to: its first ``prefix/#`` filter."""
    for topic in settings.mqtt.topics:
        if topic.endswith("/#") and not any(ch in topic[:-2] for ch in "+#"):
            return topic[:-2]
    return DEFAULT_TOPIC_PREFIX


def inbox_from(settings: Settings) -> Path:
    """The station's file-drop inbox."""
    return settings.path(settings.filedrop.inbox)


def _setting_path(settings: Settings, value: str) -> str | None:
    return str(settings.path(value)) if value else None


def build_transport(
    kind: str,
    settings: Settings,
    options: TargetOptions,
    keys: dict[str, str] | None = None,
) -> Transport:
    """The transport ``kind`` aimed at the station of ``settings``, flags taking precedence."""
    if kind == "file":
        from simulator.transports.file import FileTransport

        return FileTransport(options.inbox or inbox_from(settings))
    if kind == "rest":
        from simulator.transports.rest import RestTransport

        return RestTransport(
            options.url or rest_url_from(settings), keys or {}, ca_file=options.tls_ca
        )
    if kind == "mqtt":
        from simulator.transports.mqtt import MqttTransport

        explicit = options.broker is not None
        mqtt = settings.mqtt
        return MqttTransport(
            options.broker or broker_url_from(settings),
            qos=options.qos,
            version=options.mqtt_version,
            topic_prefix=options.topic_prefix or topic_prefix_from(settings),
            # With the station's broker, trust the station's CA; the client certificate is the
            # station's own identity, not a device's: a device brings its own (--tls-cert).
            tls_ca=options.tls_ca or (None if explicit else _setting_path(settings, mqtt.tls_ca)),
            tls_cert=options.tls_cert,
            tls_key=options.tls_key,
            username=options.username,
            password=options.password,
        )
    if kind == "kinesis":
        from simulator.transports.kinesis import KinesisTransport

        kinesis = settings.kinesis
        return KinesisTransport(
            options.stream or kinesis.stream,
            region=options.region or kinesis.region,
            endpoint_url=options.endpoint_url or kinesis.endpoint_url or None,
            create_stream=options.create_stream,
        )
    raise TransportError(f"unknown transport {kind!r}; known: {', '.join(TRANSPORTS)}")
