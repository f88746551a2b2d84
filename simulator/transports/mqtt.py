"""MQTT: paho-mqtt 2.x publisher on ``<topic prefix>/<device id>`` (default QoS 1).

A QoS 1 message is acknowledged when its PUBACK arrives (QoS 2: PUBCOMP; QoS 0: when written
to the socket). paho fails a QoS > 0 publish past 65,535 unacknowledged messages and before
the CONNACK, so: ``open`` waits for the CONNACK, and a window of at most ``max_inflight``
unacknowledged messages (default 10,000) holds the sender back until PUBACKs come in (flow
control). TCP_NODELAY is set on the socket, which paho does not do (paced traffic otherwise
stalls ~40 ms). MQTT 3.1.1 by default, 5 on request; TLS with a CA and optionally a client
certificate and key (AWS IoT Core style); username and password.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from simulator.transports.base import (
    ACKNOWLEDGED,
    DEFAULT_TOPIC_PREFIX,
    Delivery,
    Outcome,
    Report,
    Transport,
    TransportError,
)
from simulator.wire import Message

__all__ = ["DEFAULT_TOPIC_PREFIX", "MQTT_VERSIONS", "MqttTransport", "parse_broker_url"]

MQTT_VERSIONS = {"3.1.1": MQTTProtocolVersion.MQTTv311, "5": MQTTProtocolVersion.MQTTv5}
# paho's message ids are 16-bit: stay well below 65,535 unacknowledged.
MAX_WINDOW = 60000
_TLS_SCHEMES = ("mqtts", "ssl", "tls")
_PLAIN_SCHEMES = ("mqtt", "tcp")


def parse_broker_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """``mqtt://[user[:password]@]host[:port]`` → host, port, tls, username, password."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    scheme = parts.scheme.lower()
    if scheme not in _TLS_SCHEMES + _PLAIN_SCHEMES or not parts.hostname:
        raise TransportError(
            f"{url!r} is not a broker URL (mqtt://host:1883 or mqtts://host:8883)"
        )
    tls = scheme in _TLS_SCHEMES
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise TransportError(f"{url!r} has an invalid port") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, tls, username, password


def _topic_part(device_id: str) -> str:
    """A device id as one topic level (wildcards and separators would change the topic)."""
    return "".join("_" if ch in "+#/" else ch for ch in device_id) or "_"


class MqttTransport(Transport):
    """Publishes each message to ``<topic_prefix>/<device_id>``."""

    name = "mqtt"

    def __init__(
        self,
        broker_url: str,
        *,
        qos: int = 1,
        version: str = "3.1.1",
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        max_inflight: int = 10000,
        connect_timeout: float = 10.0,
        ack_timeout: float = 30.0,
    ) -> None:
        if qos not in (0, 1, 2):
            raise TransportError(f"QoS must be 0, 1 or 2, not {qos}")
        if version not in MQTT_VERSIONS:
            raise TransportError(
                f"MQTT version must be one of {', '.join(MQTT_VERSIONS)}, not {version!r}"
            )
        if not 1 <= max_inflight <= MAX_WINDOW:
            raise TransportError(f"max_inflight must be 1 to {MAX_WINDOW}")
        host, port, tls, url_user, url_password = parse_broker_url(broker_url)
        self.host, self.port = host, port
        self.tls = tls or bool(tls_ca)
        self.qos = qos
        self.version = version
        self.topic_prefix = topic_prefix.rstrip("/")
        self._tls_files = (tls_ca or None, tls_cert or None, tls_key or None)
        self._username = username or url_user
        self._password = password if password is not None else url_password
        self._client_id = client_id or f"vitalstation-sim-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._window_size = max_inflight
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout
        self._client: mqtt.Client | None = None
        self._report: Report | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, Message] = {}
        self._early: dict[int, Outcome] = {}
        self._window = threading.Semaphore(max_inflight)
        self._answered = threading.Event()  # CONNACK, or the connection closed before it
        self._connected_once = False
        self._connect_error: str | None = None
        self._drained = threading.Condition(self._lock)

    @property
    def target(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port} (MQTT {self.version}, QoS {self.qos})"

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _on_socket_open(self, client, userdata, sock) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket (e.g. a proxy): nothing to tune

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_error = f"the broker refused the connection: {reason_code}"
        else:
            self._connect_error = None
            self._connected_once = True
        self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._connected_once:
            # Closed before any CONNACK: e.g. a TLS client certificate the broker refused.
            self._connect_error = f"the broker closed the connection ({reason_code})"
            self._answered.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        outcome = ACKNOWLEDGED
        if getattr(reason_code, "is_failure", False):
            outcome = Outcome(Delivery.REFUSED, f"PUBACK {reason_code}")
        with self._lock:
            message = self._pending.pop(mid, None)
            if message is None:
                # The PUBACK beat publish() back to us: settled when publish() returns.
                self._early[mid] = outcome
                return
            if not self._pending:
                self._drained.notify_all()
        self._window.release()
        if self._report is not None:
            self._report(message, outcome)

    # -- Transport ----------------------------------------------------------------------------

    def open(self, report: Report) -> None:
        self._report = report
        protocol = MQTT_VERSIONS[self.version]
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True if protocol is not MQTTProtocolVersion.MQTTv5 else None,
            protocol=protocol,
        )
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # Our window is the flow control: paho's own in-flight limit rescans every queued
        # message on each PUBACK (quadratic at thousands in flight), so it is switched off.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if self._username:
            client.username_pw_set(self._username, self._password)
        if self.tls:
            ca, cert, key = self._tls_files
            try:
                client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
            except (OSError, ValueError) as exc:
                raise TransportError(f"MQTT TLS files: {exc}") from None
        try:
            client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise TransportError(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        client.loop_start()
        self._client = client
        if not self._answered.wait(self._connect_timeout):
            self._shutdown()
            raise TransportError(
                f"no CONNACK from the MQTT broker at {self.host}:{self.port} "
                f"within {self._connect_timeout:g} s"
            )
        if self._connect_error is not None:
            error = self._connect_error
            self._shutdown()
            raise TransportError(f"MQTT broker {self.host}:{self.port}: {error}")

    def send(self, messages: Sequence[Message]) -> None:
        client = self._client
        assert client is not None and self._report is not None, "open() first"
        for message in messages:
            if not self._window.acquire(timeout=self._ack_timeout):
                self._report(message, Outcome(
                    Delivery.ERROR,
                    f"flow control: {self._window_size} messages unacknowledged for "
                    f"{self._ack_timeout:g} s (broker unreachable?)",
                ))
                continue
            topic = f"{self.topic_prefix}/{_topic_part(message.device_id)}"
            info = client.publish(topic, message.payload, qos=self.qos)
            rc = info.rc
            queued = rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
                rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos > 0  # sent on reconnect
            )
            if not queued:
                self._window.release()
                self._report(message, Outcome(Delivery.ERROR, f"publish: {mqtt.error_string(rc)}"))
                continue
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._pending[info.mid] = message
            if early is not None:
                self._window.release()
                self._report(message, early)

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._drained.wait(left)
            unacked = list(self._pending.values())
            self._pending.clear()
        for message in unacked:
            if self._report is not None:
                self._report(message, Outcome(
                    Delivery.ERROR, f"no PUBACK within {timeout:g} s of the end of the run"
                ))
        self._shutdown()
        self._report = None

    def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        finally:
            client.loop_stop()
