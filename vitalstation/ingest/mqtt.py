"""The MQTT input: bedside devices' messages in, acknowledged only once stored.

paho-mqtt 2.x runs on its own network thread (``loop_start``), never on the GUI's loop. Each
message is read on that thread: size-checked, decoded as JSON, parsed (the bedside one-vital
message, or the InHealth reading object or batch: ``parse_payload`` tells them apart) and handed
to the pipeline. The broker is acknowledged afterwards: the pipeline thread queues each
PUBACK once the reading is committed, and paho's thread writes a batch's PUBACKs together
(``ingest/mqtt_client.py``: reads ahead and batched PUBACKs, because every system call on
paho's thread lets go of the GIL and may wait for it again).

No loss
    * **Persistent session**: clean session off (3.1.1), or clean start off with a session
      expiry of ``SESSION_EXPIRY_S`` (MQTT 5), under a client id that is the same at every start
      (``mqtt.client_id``, default ``vitalstation-<station>-<hash of the data home>``): what
      devices publish while the station is down waits at the broker and arrives when it returns.
    * **PUBACK after commit**: the client runs with ``manual_ack``; each message's readings are
      submitted with an ``on_done`` callback, which sends the PUBACK only when every reading is
      durable (stored now or before) or rejected (invalid: it is dead-lettered and acknowledged,
      since a redelivery would not make it valid). QoS 2 is subscribed as QoS 1: paho hands a
      QoS 2 message over only after PUBREL, when the broker has already let it go, so no
      acknowledgement of ours could protect it; QoS 1 plus the store's deduplication stores
      each reading exactly once. QoS 0 (``mqtt.qos = 0``) is allowed and can lose readings.
    * **Database failure** (``Outcome.FAILED`` after the pipeline's own retries): the message is
      *not* acknowledged. The input keeps it and submits it again after ``RETRY_DELAYS_S``
      (1 s growing to 30 s) until it is stored, then acknowledges it. It does not rely on the
      broker's redelivery, which happens only on a new connection (and the embedded broker,
      amqtt, does not redeliver at all). If the station stops first, the message was never
      acknowledged: a persistent broker redelivers it at the next start, and the store's
      deduplication makes a second copy harmless.
    * **Back-pressure** (``PipelineBusy``, the pipeline's queue of 20,000 readings full): the
      network thread blocks in ``submit`` for up to ``BUSY_BLOCK_S`` (2 s), so paho stops
      reading and the broker holds the rest. A full queue normally drains in well under a
      second; if it is still full, the message joins the retry list above, unacknowledged, and
      the next message blocks again (at most one message per 2 s slips past this way). 2 s is
      far inside the keepalive grace (1.5 x ``mqtt.keepalive``), so the broker never drops us for
      being slow.
    * **Acknowledgements belong to a connection**: a message id is only meaningful on the
      connection it arrived on. Every connection has a generation number, bumped when it is lost
      or closed; a store that completes after that does not acknowledge (the broker redelivers the
      message on the new connection, and it is deduplicated).
    * **Throughput**: with PUBACK after commit, the broker's window of unacknowledged messages
      per client bounds what it sends between two commits. Mosquitto's ``max_inflight_messages``
      (20 by default, for MQTT 3.1.1 clients) allows ~20 messages per commit cycle of a few ms;
      with MQTT 5 the station asks for ``RECEIVE_MAXIMUM`` (1,000) itself. Whatever the broker
      sends, at most ``IN_FLIGHT_MAX`` messages wait in the pipeline: paho's thread waits for
      room beyond that (a queue of 20,000 readings made every full garbage collection walk
      it). ``bench/mqtt.py`` measures where the time goes.

Connections
    * ``mqtt.url``: ``mqtt://host[:1883]``, ``mqtts://host[:8883]`` (TLS with ``tls_ca``, or the
      system's CAs, and optionally the client certificate ``tls_cert``/``tls_key``: AWS IoT Core's
      mutual TLS), or ``embedded``: the loopback broker of ``ingest/broker.py``, on whatever port
      it actually got. The embedded broker speaks MQTT 3.1.1 only: with ``protocol = "5"`` the
      input connects with 3.1.1 and says so in its health.
    * Secrets never come from the TOML file: the broker password (read only when
      ``mqtt.username`` is set) is the secret ``mqtt.password``, the client key's passphrase
      (only with ``tls_key``) ``mqtt.key_passphrase``, both read through
      ``config.secrets.SecretStore``: the OS keyring, or ``VITALSTATION_SECRET_MQTT_PASSWORD`` /
      ``VITALSTATION_SECRET_MQTT_KEY_PASSPHRASE`` where the admin chose
      ``[secrets] source = "environment"``. Without either, the input does not start and says
      why.
    * Lost connections are retried by paho with a back-off from ``RECONNECT_MIN_DELAY_S`` doubling
      to ``RECONNECT_MAX_DELAY_S``. On every CONNACK the input subscribes again from its own
      table of topic filters (Home Assistant's rule: never trust the broker's session to hold
      them), sets TCP_NODELAY on paho's socket (paho does not: paced traffic stalls ~40 ms), and
      publishes its status.
    * A broker that refuses us for good reasons (bad user name or password, not authorised,
      banned, client id or protocol refused) is reported once, DOWN with the reason ("broker
      refused our credentials ..."), and retried slowly, every ``REFUSED_RETRY_S`` (5 min), not
      in a storm: the fix is usually made at the broker, and the station picks it up. A broker
      that cannot be reached, or that closes the connection before its CONNACK (a TLS client
      certificate it does not accept), is DOWN with paho's reason and retried with the back-off.
    * Health: UP "connected to mqtt://host:port, N topic filters" once the SUBACK is in;
      DEGRADED while reconnecting
      after a lost connection (or when a subscription is refused); DOWN with the reason; plus
      the messages received and rejected (dead-lettered) and any message waiting to be stored.

Station status
    The station publishes ``online`` (retained, QoS 1) on ``vitalstation/<station id>/status`` at
    every connect, with the last will ``offline`` on the same topic, and publishes ``offline``
    itself on a clean stop, so that other systems see a station go dark. The station id is
    ``station.name`` as a slug: lower case, runs of anything but ``a-z0-9`` turned into ``-``
    (``"Ward 5 North"`` → ``ward-5-north``; ``station`` if nothing is left). Two stations with the
    same name on one broker share the topic: name them apart.

Payload problems
    Malformed JSON, a payload larger than ``mqtt.max_payload_bytes``, an unknown format or an
    invalid reading go to the dead letters (``Pipeline.dead_letter``: the topic as source, the
    reason, an excerpt) and are acknowledged once the dead letter is committed; the input
    carries on. The acknowledgement of such a payload goes through the pipeline as an empty
    submission, so it follows the dead letter's write; a dead letter the database could not
    take (down past the pipeline's retries) leaves the message unacknowledged and held for
    another try, as readings that failed are. In a batch, the valid readings are stored and the
    invalid ones dead-lettered; a reading the pipeline itself rejects (e.g. a retired device) is
    dead-lettered and the message acknowledged after that dead letter. A timestamp without
    offset is read in ``mqtt.timestamp_zone``; with ``mqtt.device_id_from_topic`` the device id
    is the topic's last level (the reference publisher sends the same ``deviceid`` from every
    bed).

Threads: paho's network thread (callbacks, parsing, submit, writing PUBACKs), the pipeline
thread (``on_done``: queueing PUBACKs, dead letters of rejected readings) and
``vitalstation-mqtt-retry`` (resubmissions).
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from vitalstation.config.secrets import (
    MQTT_KEY_PASSPHRASE,
    MQTT_PASSWORD,
    SecretStore,
    env_variable,
)
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.errors import PayloadError, summarize
from vitalstation.domain.payloads import decode_json, parse_payload, parse_plain_bedside
from vitalstation.domain.readings import InputKind, Reading
from vitalstation.ingest.base import Input, InputHealth, InputState
from vitalstation.ingest.mqtt_client import BatchingClient
from vitalstation.pipeline.core import (
    BATCH_MAX_READINGS,
    Pipeline,
    PipelineBusy,
    PipelineStopped,
)
from vitalstation.pipeline.types import Outcome, ReadingResult

__all__ = [
    "EMBEDDED",
    "KEY_PASSPHRASE_ENV",
    "PASSWORD_ENV",
    "BrokerAddress",
    "MqttInput",
    "MqttOptions",
    "default_client_id",
    "mqtt_input_factories",
    "station_id",
    "status_topic",
]

_LOGGER = logging.getLogger(__name__)

EMBEDDED = "embedded"
INPUT_NAME = "mqtt"
# Where the secrets come from on a server without a keyring ([secrets] source = "environment").
PASSWORD_ENV = env_variable(MQTT_PASSWORD)
KEY_PASSPHRASE_ENV = env_variable(MQTT_KEY_PASSPHRASE)
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"

# Reconnect back-off after a lost or failed connection (paho doubles from min to max).
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 30
# A broker that refused us (credentials, authorisation, client id, protocol) is asked again
# this rarely: often enough to pick up a fix made at the broker, never a storm in its log.
REFUSED_RETRY_S = 300
# How long the network thread waits for room in a full pipeline before it moves on (see the
# module docstring): back-pressure, far inside the keepalive grace.
BUSY_BLOCK_S = 2.0
# Pauses before a message whose readings could not be stored is submitted again; the last
# repeats until the database is back.
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# On stop, how long to wait for readings already submitted, so that their PUBACKs still go out
# (what misses it is redelivered at the next start and deduplicated).
STOP_DRAIN_S = 2.0
# How long a clean stop waits for the broker to take the "offline" status.
STATUS_PUBLISH_TIMEOUT_S = 1.0
# MQTT 5: how long the broker keeps our session (and queues our messages) while we are away;
# brokers cap it (AWS IoT Core: 1 h by default, up to 7 days).
SESSION_EXPIRY_S = 7 * 24 * 3600
# MQTT 5: unacknowledged messages the broker may send us at once; with PUBACK after commit this
# is what bounds throughput (a 3.1.1 broker uses its own setting: Mosquitto's
# max_inflight_messages, 20 by default).
RECEIVE_MAXIMUM = 1000
# Messages handed to the pipeline and not yet resolved, at most (then paho's thread waits for
# the pipeline, up to BUSY_BLOCK_S, until IN_FLIGHT_RESUME): three of the pipeline's full
# batches, so that one is always queued behind the one being written. A drained backlog
# otherwise fills the pipeline's whole queue (20,000 readings, ~10 objects each), and every
# full collection of the garbage collector walks them: measured on the 100k backlog, 14 full
# collections took 0.74 s, up to 122 ms each.
IN_FLIGHT_MAX = 3 * BATCH_MAX_READINGS
IN_FLIGHT_RESUME = 2 * BATCH_MAX_READINGS
# Dead-letter excerpts are cut here (the writer bounds them again).
EXCERPT_CHARS = 2000

# CONNACK reasons that a retry with the same settings will not fix (MQTT 5 codes; paho maps
# the 3.1.1 return codes 1, 2, 4 and 5 onto 0x84, 0x85, 0x86 and 0x87).
_CREDENTIALS_REFUSED = {0x86: "bad user name or password", 0x87: "not authorised",
                        0x8C: "bad authentication method", 0x8A: "banned"}
_SETTINGS_REFUSED = {0x84: "unsupported protocol version", 0x85: "client id not valid"}


def station_id(name: str) -> str:
    """``station.name`` as a topic-safe slug: ``"Ward 5 North"`` → ``"ward-5-north"``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:64].strip("-") or "station"


def status_topic(name: str) -> str:
    """Where the station publishes ``online``/``offline``: ``vitalstation/<station id>/status``."""
    return f"vitalstation/{station_id(name)}/status"


def default_client_id(name: str, home: Path) -> str:
    """A client id that is the same at every start of this station (its session depends on it).

    Two stations of the same name on one broker would otherwise take over each other's session;
    the data home tells them apart.
    """
    digest = hashlib.sha256(str(home).encode("utf-8")).hexdigest()[:8]
    return f"vitalstation-{station_id(name)[:32].strip('-')}-{digest}"


class BrokerAddress(Protocol):
    """What the input needs of the embedded broker: the port it actually listens on."""

    @property
    def actual_port(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """Everything the input needs, resolved from settings and the station's secrets."""

    url: str = EMBEDDED
    topics: tuple[str, ...] = ("healthcare/monitors/#",)
    qos: int = 1
    protocol: str = "3.1.1"
    client_id: str = "vitalstation"
    keepalive: int = 60
    username: str = ""
    password: str | None = field(default=None, repr=False)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    key_passphrase: str | None = field(default=None, repr=False)
    timestamp_zone: str = "UTC"
    device_id_from_topic: bool = False
    max_payload_bytes: int = 262_144
    station_name: str = "VitalStation"

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        secrets: SecretStore | None = None,
    ) -> MqttOptions:
        """The ``[mqtt]`` section, relative TLS paths resolved in the data home, the password
        and key passphrase from the station's secrets (``SecretStore.for_settings``).

        Raises ``SecretStoreError`` saying why when a needed secret cannot be read (no keyring).
        """
        mqtt = settings.mqtt
        secrets = secrets or SecretStore.for_settings(settings, environ)
        password = secrets.get(MQTT_PASSWORD) if mqtt.username else None
        key_passphrase = secrets.get(MQTT_KEY_PASSPHRASE) if mqtt.tls_key else None

        def path(value: str) -> Path | None:
            return settings.path(value) if value else None

        return cls(
            url=mqtt.url,
            topics=mqtt.topics,
            qos=mqtt.qos,
            protocol=mqtt.protocol,
            client_id=mqtt.client_id or default_client_id(settings.station.name, settings.home),
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=password,
            tls_ca=path(mqtt.tls_ca),
            tls_cert=path(mqtt.tls_cert),
            tls_key=path(mqtt.tls_key),
            key_passphrase=key_passphrase,
            timestamp_zone=mqtt.timestamp_zone,
            device_id_from_topic=mqtt.device_id_from_topic,
            max_payload_bytes=mqtt.max_payload_bytes,
            station_name=settings.station.name,
        )


@dataclass(slots=True)
class _Delivery:
    """One received message on its way to the store: what to acknowledge, and where.

    It is also the submission's ``on_done`` (``__call__``): no closure per message, and as
    few objects per message as possible (each one brings the garbage collector closer).
    """

    owner: MqttInput
    readings: Sequence[Reading]
    mid: int
    qos: int
    generation: int
    topic: str
    payload: bytes  # for a dead letter's excerpt, made only when one is needed
    attempts: int = 0
    due: float = 0.0
    # Reasons to keep in the dead letters before the message may be acknowledged (a list
    # only once there is one).
    dead_letters: list[str] | None = None
    # A dead letter of this message could not be written (database down): hold, retry later.
    dead_letter_failed: bool = False

    def add_dead_letter(self, reason: str) -> None:
        """Keep ``reason`` in the dead letters before acknowledging."""
        if self.dead_letters is None:
            self.dead_letters = [reason]
        else:
            self.dead_letters.append(reason)

    def __call__(self, results: list[ReadingResult]) -> None:
        """The pipeline's ``on_done``: on its thread, after the commit."""
        self.owner._on_stored(self, results)


class _PahoLog(logging.Filter):
    """Reads paho's log on its way out, for two things paho offers no other way to.

    * paho says why a connection broke (a TLS alert, a reset) only in its log: the last error
      of each paho thread is kept here, for the health detail.
    * paho 2.2 logs an ERROR "Client is not connected" after every clean disconnect (its loop
      runs once more on the closed socket): routine, so it is dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last_error: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            if str(record.msg).startswith("Client is not connected"):
                return False
            self._last_error[record.threadName or ""] = record.getMessage()
        return True

    def take_last_error(self) -> str | None:
        """The last error paho logged on the calling thread (paho's own), and forget it."""
        return self._last_error.pop(threading.current_thread().name, None)


_PAHO_LOG = _PahoLog()
_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")
_PAHO_LOGGER.addFilter(_PAHO_LOG)


# Looked up once: the pipeline thread settles every message with them.
_STORED = Outcome.STORED
_DUPLICATE = Outcome.DUPLICATE


def _excerpt(payload: bytes) -> str:
    return payload[: EXCERPT_CHARS * 4].decode("utf-8", "backslashreplace")[:EXCERPT_CHARS]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class MqttInput:
    """The MQTT input (see the module docstring); one instance runs once: start, then stop.

    ``embedded`` is the station's embedded broker when ``options.url == "embedded"``.
    """

    name = INPUT_NAME

    def __init__(
        self,
        options: MqttOptions,
        pipeline: Pipeline,
        *,
        embedded: BrokerAddress | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.options = options
        self._pipeline = pipeline
        self._embedded = embedded
        self._clock = clock
        # datetime's own UTC for "UTC": the same instants, and cheaper per message than ZoneInfo.
        self._zone: tzinfo = (
            UTC if options.timestamp_zone == "UTC" else ZoneInfo(options.timestamp_zone)
        )
        self._status_topic = status_topic(options.station_name)
        self._subscribe_qos = min(options.qos, 1)
        self._client: BatchingClient | None = None
        self._url = options.url
        self._notes: list[str] = []  # standing warnings shown in the health detail
        # Connection generation: bumped when a connection is lost or closed (see _ack).
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._closing = False
        # Submissions not yet resolved, so that stop can let their PUBACKs out first.
        self._outstanding_lock = threading.Lock()
        self._outstanding = 0
        # Set by the pipeline thread when paho's thread waits for room (IN_FLIGHT_MAX).
        self._room = threading.Event()
        self._waiting_for_room = False
        # Messages whose readings could not be stored yet, waiting to be submitted again.
        self._retry_cond = threading.Condition()
        self._held: list[_Delivery] = []
        self._held_reason = ""
        self._retry_thread: threading.Thread | None = None
        self._stopping = False
        # Health (written by paho's thread, read by anyone; single assignments).
        self._state = InputState.STOPPED
        self._detail = "not started"
        self._since: datetime | None = None
        self._refused = False
        self._connected = False  # a CONNACK accepted us on the current connection
        self._received = 0
        self._rejected_here = 0  # on paho's thread: payloads that became no reading
        self._rejected_stored = 0  # on the pipeline thread: readings the pipeline refused
        self._pending_subscriptions: dict[int, tuple[str, ...]] = {}
        self.connections = 0  # successful CONNACKs, for tests and the status bar

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pipeline: Pipeline,
        *,
        embedded: BrokerAddress | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock = utc_now,
        secrets: SecretStore | None = None,
    ) -> MqttInput:
        """The input as ``[mqtt]`` describes it."""
        options = MqttOptions.from_settings(settings, environ, secrets)
        return cls(options, pipeline, embedded=embedded, clock=clock)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def status_topic(self) -> str:
        """``vitalstation/<station id>/status``."""
        return self._status_topic

    @property
    def url(self) -> str:
        """The broker, as the health detail names it (the embedded one with its real port)."""
        return self._url

    def start(self) -> None:
        """Connect in the background (paho's thread) and return at once.

        Raises with a clear message for what no retry can fix: the embedded broker is not
        running, TLS files cannot be loaded, TLS keys set for a plain ``mqtt://`` URL.
        """
        if self._client is not None:
            raise RuntimeError("an MqttInput starts once; make a new one")
        host, port, use_tls = self._endpoint()
        protocol = self._protocol()
        client = BatchingClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.options.client_id,
            clean_session=False if protocol is MQTTProtocolVersion.MQTTv311 else None,
            protocol=protocol,
            manual_ack=True,
        )
        # A bug in a callback must not end paho's thread (and with it the whole input).
        client.suppress_exceptions = True
        client.enable_logger(_PAHO_LOGGER)
        if self.options.username or self.options.password:
            client.username_pw_set(self.options.username or None, self.options.password)
        if use_tls:
            client.tls_set_context(self._tls_context())
        client.will_set(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        if protocol is MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            client.connect_async(
                host, port, self.options.keepalive, clean_start=False, properties=properties
            )
        else:
            client.connect_async(host, port, self.options.keepalive)
        self._set_state(InputState.STARTING, f"connecting to {self._url}")
        self._retry_thread = threading.Thread(
            target=self._retry_loop, name="vitalstation-mqtt-retry", daemon=True
        )
        self._retry_thread.start()
        client.loop_start()
        _LOGGER.info(
            "MQTT input: connecting to %s as %r, %s (%s)",
            self._url, self.options.client_id,
            _plural(len(self.options.topics), "topic filter"), ", ".join(self.options.topics),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Let submitted readings be acknowledged (briefly), publish ``offline``, disconnect."""
        client = self._client
        if client is None or self._stopping:
            return
        deadline = time.monotonic() + min(STOP_DRAIN_S, timeout / 2)
        while self._outstanding and time.monotonic() < deadline:
            time.sleep(0.005)  # rare (once per stop) and short: no condition for it
        with self._ack_lock:
            self._generation += 1  # from now on nothing is acknowledged
            self._closing = True
            client.flush_pubacks()  # what was stored is acknowledged before we say goodbye
        with self._retry_cond:
            self._stopping = True
            held = len(self._held)
            self._held.clear()
            self._retry_cond.notify_all()
        if held:
            _LOGGER.warning(
                "MQTT input stopped with %s not stored; the broker keeps them unacknowledged "
                "and sends them again at the next start", _plural(held, "message"),
            )
        if client.is_connected():
            try:
                info = client.publish(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)
                info.wait_for_publish(STATUS_PUBLISH_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:
                _LOGGER.debug("could not publish the offline status: %s", exc)
        client.disconnect()
        client.loop_stop()
        if self._retry_thread is not None:
            self._retry_thread.join(timeout)
        self._set_state(InputState.STOPPED, f"stopped (was connected to {self._url})")

    def health(self) -> InputHealth:
        """UP when connected, DEGRADED while reconnecting, DOWN with the reason."""
        detail = self._detail
        with self._retry_cond:
            held, reason = len(self._held), self._held_reason
        extras = list(self._notes)
        if held:
            extras.append(f"{_plural(held, 'message')} waiting to be stored ({reason})")
        if extras:
            detail = "; ".join([detail, *extras])
        return InputHealth(
            self.name,
            self._state,
            detail,
            self._since,
            received=self._received,
            rejected=self._rejected_here + self._rejected_stored,
        )

    # -- configuration ---------------------------------------------------------------------

    def _endpoint(self) -> tuple[str, int, bool]:
        """(host, port, TLS) of the broker to connect to."""
        options = self.options
        if options.url == EMBEDDED:
            port = self._embedded.actual_port if self._embedded is not None else None
            if port is None:
                raise RuntimeError(
                    'mqtt.url is "embedded" but the embedded broker is not running '
                    "(see the mqtt-broker status)"
                )
            if options.tls_ca or options.tls_cert or options.tls_key:
                self._note("mqtt.tls_* are ignored: the embedded broker is plain MQTT on loopback")
            self._url = f"the embedded broker mqtt://127.0.0.1:{port}"
            return "127.0.0.1", port, False
        parts = urlsplit(options.url)
        scheme = parts.scheme.lower()
        if parts.username or parts.password:
            raise ValueError(
                "mqtt.url must not carry a user name or password: set mqtt.username, and the "
                f"password as the secret {MQTT_PASSWORD} in Settings (the OS keyring; "
                f"{PASSWORD_ENV} on a server without one)"
            )
        use_tls = scheme == "mqtts"
        if not use_tls and (options.tls_ca or options.tls_cert or options.tls_key):
            raise ValueError(
                "mqtt.tls_ca/tls_cert/tls_key are set but mqtt.url is plain mqtt://; "
                "use mqtts:// for TLS"
            )
        host = parts.hostname or ""
        port = parts.port or (8883 if use_tls else 1883)
        shown_host = f"[{host}]" if ":" in host else host
        self._url = f"{scheme}://{shown_host}:{port}"
        return host, port, use_tls

    def _protocol(self) -> MQTTProtocolVersion:
        if self.options.protocol != "5":
            return MQTTProtocolVersion.MQTTv311
        if self.options.url == EMBEDDED:
            note = 'mqtt.protocol "5" ignored: the embedded broker speaks MQTT 3.1.1 only'
            self._note(note)
            _LOGGER.warning("%s; connecting with 3.1.1", note)
            return MQTTProtocolVersion.MQTTv311
        return MQTTProtocolVersion.MQTTv5

    def _tls_context(self) -> ssl.SSLContext:
        """TLS with the configured CA (else the system's) and the client certificate, if any."""
        options = self.options
        if bool(options.tls_cert) != bool(options.tls_key):
            raise ValueError(
                "mqtt.tls_cert and mqtt.tls_key go together: the client certificate and its key"
            )
        try:
            context = ssl.create_default_context(
                cafile=str(options.tls_ca) if options.tls_ca else None
            )
            if options.tls_cert and options.tls_key:
                # Never None: OpenSSL would then ask for a passphrase on the terminal.
                passphrase = options.key_passphrase or ""
                context.load_cert_chain(
                    str(options.tls_cert), str(options.tls_key), password=lambda: passphrase
                )
        except FileNotFoundError as exc:
            raise ValueError(f"MQTT TLS file not found: {exc.filename}") from None
        except ssl.SSLError as exc:
            hint = (
                f" (a passphrase-protected key needs the secret {MQTT_KEY_PASSPHRASE}, or "
                f"{KEY_PASSPHRASE_ENV} on a server without a keyring)"
                if options.tls_key and not options.key_passphrase else ""
            )
            raise ValueError(f"cannot load the MQTT TLS files: {exc}{hint}") from None
        return context

    def _note(self, text: str) -> None:
        if text not in self._notes:
            self._notes.append(text)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._on_refused(client, reason)
            return
        self.connections += 1
        self._refused = False
        self._connected = True
        _PAHO_LOG.take_last_error()
        client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        sock = client.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:  # not TCP (a proxy, a test double): nothing to tune
                _LOGGER.debug("TCP_NODELAY not set: %s", exc)
        self._subscribe(client)
        client.publish(self._status_topic, STATUS_ONLINE, qos=1, retain=True)
        resumed = " (session resumed)" if flags.session_present else ""
        # UP once the SUBACK says the filters are in place (a message published before that
        # would not reach a new session).
        self._set_state(
            InputState.STARTING if self.connections == 1 else InputState.DEGRADED,
            f"connected to {self._url}, subscribing",
        )
        _LOGGER.info("MQTT input connected to %s%s", self._url, resumed)

    def _subscribe(self, client: paho.Client) -> None:
        """Subscribe to every filter of our table (at every CONNACK: the session may be new)."""
        filters = [(topic, self._subscribe_qos) for topic in self.options.topics]
        if self.options.qos == 2:
            self._note("qos 2 is subscribed as 1 (PUBACK after commit; duplicates are dropped)")
        result, mid = client.subscribe(filters)
        if result == paho.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subscriptions[mid] = self.options.topics

    def _on_refused(self, client: paho.Client, reason: ReasonCode) -> None:
        code = reason.value
        if code in _CREDENTIALS_REFUSED:
            why = f"broker refused our credentials ({_CREDENTIALS_REFUSED[code]})"
            hint = (
                f"check mqtt.username and the secret {MQTT_PASSWORD} ({PASSWORD_ENV} without "
                "a keyring), or the client certificate"
                if code in (0x86, 0x87) else "check the broker's settings for this station"
            )
        elif code in _SETTINGS_REFUSED:
            why = f"broker refused the connection ({_SETTINGS_REFUSED[code]})"
            hint = "check mqtt.client_id and mqtt.protocol"
        else:  # server unavailable, busy, quota: an ordinary retry may well succeed
            self._set_state(
                InputState.DOWN, f"{self._url} refused the connection ({reason}); retrying"
            )
            return
        if not self._refused:  # said once, not at every slow retry
            _LOGGER.error("MQTT: %s at %s: %s; retrying every %d s", why, self._url, hint,
                          REFUSED_RETRY_S)
        self._refused = True
        client.reconnect_delay_set(REFUSED_RETRY_S, REFUSED_RETRY_S)
        self._set_state(
            InputState.DOWN,
            f"{why} at {self._url} - {hint}; retrying every {REFUSED_RETRY_S // 60} min",
        )

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        error = getattr(client, "last_connect_error", None)
        reason = str(error) if error is not None else "connection failed"
        if isinstance(error, ssl.SSLError):
            reason = f"TLS: {reason}"
        self._set_state(
            InputState.DOWN,
            f"cannot connect to {self._url}: {reason}; retrying (at most every "
            f"{RECONNECT_MAX_DELAY_S} s)",
        )

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._ack_lock:
            self._generation += 1  # message ids of that connection mean nothing any more
            closing = self._closing
            if isinstance(client, BatchingClient):
                client.drop_pubacks()
        self._pending_subscriptions.clear()
        was_connected, self._connected = self._connected, False
        why = _PAHO_LOG.take_last_error() or str(reason)
        if closing or self._refused:
            return
        if not was_connected:  # closed before a CONNACK: e.g. a TLS client certificate refused
            self._set_state(
                InputState.DOWN,
                f"cannot connect to {self._url}: the broker closed the connection ({why}); "
                f"retrying (at most every {RECONNECT_MAX_DELAY_S} s)",
            )
            return
        self._set_state(
            InputState.DEGRADED, f"connection to {self._url} lost ({why}); reconnecting"
        )
        _LOGGER.warning("MQTT connection to %s lost (%s); reconnecting", self._url, why)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        topics = self._pending_subscriptions.pop(mid, ())
        refused = [topic for topic, reason in zip(topics, reasons, strict=False)
                   if reason.is_failure]
        if refused:
            text = f"broker refused the subscription to {', '.join(refused)} (not authorised?)"
            _LOGGER.error("MQTT: %s", text)
            self._set_state(InputState.DEGRADED, f"connected to {self._url}, but the {text}")
            return
        self._set_state(
            InputState.UP,
            f"connected to {self._url}, {_plural(len(self.options.topics), 'topic filter')}",
        )

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        generation = self._generation
        self._received += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # paho offers no other way to a topic that is not UTF-8
        try:
            self._handle(message, topic, generation)
        except Exception as exc:  # noqa: BLE001 - keep the payload, keep the input running
            _LOGGER.exception("MQTT: could not handle a message on %s", topic)
            delivery = _Delivery(self, (), message.mid, message.qos, generation, topic,
                                 message.payload)
            self._dead_letter_and_ack(delivery, f"internal error reading this payload: {exc}")

    def _handle(self, message: paho.MQTTMessage, topic: str, generation: int) -> None:
        payload = message.payload
        if topic == self._status_topic:  # our own retained status, under a "#" filter
            self._ack(_Delivery(self, (), message.mid, message.qos, generation, topic, b""))
            return
        delivery = _Delivery(self, (), message.mid, message.qos, generation, topic, payload)
        limit = self.options.max_payload_bytes
        if len(payload) > limit:
            self._dead_letter_and_ack(
                delivery,
                f"payload of {len(payload)} bytes is larger than mqtt.max_payload_bytes ({limit})",
            )
            return
        device_id: str | None = None
        if self.options.device_id_from_topic:
            device_id = topic.rsplit("/", 1)[-1]
            if not device_id:
                self._dead_letter_and_ack(
                    delivery,
                    "mqtt.device_id_from_topic is on, but the topic's last level is empty",
                )
                return
        try:
            try:
                text = payload.decode()
                if text[:1] == "\ufeff":  # "utf-8-sig", without its Python-level codec
                    text = text[1:]
            except UnicodeDecodeError:
                decode_json(payload)  # raises PayloadError naming the bad byte
                raise
            obj = decode_json(text)
            received_at = self._clock()
            # Nearly every message is the plain one-vital kind: no BatchParse for it.
            reading = parse_plain_bedside(
                obj, input=InputKind.MQTT, received_at=received_at, device_id=device_id,
                naive_zone=self._zone, raw=text, source_ref=topic,
            )
            if reading is None:
                parsed = parse_payload(
                    obj,
                    input=InputKind.MQTT,
                    received_at=received_at,
                    device_id=device_id,
                    naive_zone=self._zone,
                    raw=text,
                    source_ref=topic,
                )
        except PayloadError as exc:
            self._dead_letter_and_ack(delivery, exc.message)
            return
        if reading is not None:
            delivery.readings = [reading]
            self._submit(delivery, BUSY_BLOCK_S)
            return
        if parsed.errors:
            if parsed.total == 1:
                reason = summarize(parsed.errors[0], "message")
            else:
                problems = "; ".join(
                    f"reading {index}: {summarize(errors)}"
                    for index, errors in sorted(parsed.errors.items())
                )
                reason = f"{len(parsed.errors)} of {parsed.total} readings invalid: {problems}"
            self._rejected_here += 1
            if not parsed.readings:
                self._dead_letter_and_ack(delivery, reason, counted=True)
                return
            delivery.add_dead_letter(reason)
        delivery.readings = [reading for _, reading in parsed.readings]
        self._submit(delivery, BUSY_BLOCK_S)

    # -- to the pipeline and back ----------------------------------------------------------

    def _dead_letter_and_ack(self, delivery: _Delivery, reason: str, counted: bool = False) -> None:
        """Keep the payload in the dead letters; acknowledge once the writer has committed it.

        The acknowledgement goes through the pipeline as an empty submission, so that it
        follows the dead letter's write (whose outcome is known by then) and keeps the order of
        acknowledgements.
        """
        if not counted:
            self._rejected_here += 1
        _LOGGER.debug("MQTT message on %s dead-lettered: %s", delivery.topic, reason)
        delivery.readings = ()
        delivery.add_dead_letter(reason)
        self._submit(delivery, BUSY_BLOCK_S)

    def _submit(self, delivery: _Delivery, block_s: float) -> None:
        """Queue the message's dead letters, then its readings (possibly none: the ack)."""
        with self._outstanding_lock:
            self._outstanding += 1
            wait = block_s > 0 and self._outstanding > IN_FLIGHT_MAX
            if wait:
                self._waiting_for_room = True
                self._room.clear()
        if wait:
            self._room.wait(block_s)  # then on regardless: the pipeline's own limit decides
            with self._outstanding_lock:
                self._waiting_for_room = False
        try:
            if delivery.dead_letters:
                self._queue_dead_letters(delivery)
            self._pipeline.submit(delivery.readings, on_done=delivery, timeout=block_s)
        except PipelineBusy as exc:
            self._resolved()
            self._hold(delivery, str(exc))
        except PipelineStopped:
            # The station is stopping: not acknowledged, so a persistent broker keeps it.
            self._resolved()

    def _queue_dead_letters(self, delivery: _Delivery) -> None:
        """Hand the message's pending dead letters to the writer; put back what it refuses."""
        reasons, delivery.dead_letters = delivery.dead_letters or [], None
        excerpt = _excerpt(delivery.payload) if reasons else ""
        for index, reason in enumerate(reasons):
            try:
                self._pipeline.dead_letter(
                    INPUT_NAME, delivery.topic, reason, excerpt,
                    on_done=lambda committed, reason=reason: self._dead_lettered(
                        delivery, reason, committed
                    ),
                )
            except (PipelineBusy, PipelineStopped):
                delivery.dead_letters = reasons[index:] + (delivery.dead_letters or [])
                raise

    @staticmethod
    def _dead_lettered(delivery: _Delivery, reason: str, committed: bool) -> None:
        """On the pipeline thread, before the message's submission is resolved."""
        if not committed:
            delivery.add_dead_letter(reason)
            delivery.dead_letter_failed = True

    def _resolved(self) -> None:
        with self._outstanding_lock:
            self._outstanding -= 1
            if self._waiting_for_room and self._outstanding <= IN_FLIGHT_RESUME:
                self._waiting_for_room = False
                self._room.set()

    def _on_stored(self, delivery: _Delivery, results: list[ReadingResult]) -> None:
        """On the pipeline thread, after the commit: acknowledge, or keep for another try."""
        try:
            self._settle(delivery, results)
        finally:
            self._resolved()

    def _settle(self, delivery: _Delivery, results: list[ReadingResult]) -> None:
        if len(results) == 1 and delivery.dead_letters is None:  # one vital: most messages
            outcome = results[0].outcome
            if outcome is _STORED or outcome is _DUPLICATE:
                delivery.readings = ()
                self._ack(delivery)
                return
        failed = next((r for r in results if r.outcome is Outcome.FAILED), None)
        if failed is not None:
            reason = next(iter(failed.errors.values()), "the database did not commit")
            self._hold(delivery, reason)
            return
        delivery.readings = ()  # durable or refused: not submitted again
        for index, result in enumerate(results):
            if result.outcome is Outcome.REJECTED:
                self._rejected_stored += 1
                where = f"reading {index}: " if len(results) > 1 else ""
                delivery.add_dead_letter(where + summarize(result.errors))
        if delivery.dead_letter_failed:
            self._hold(delivery, "a dead letter could not be stored (database unavailable)")
        elif delivery.dead_letters:
            self._submit(delivery, 0.0)  # the dead letters first; the ack follows them
        else:
            self._ack(delivery)

    def _ack(self, delivery: _Delivery) -> None:
        """PUBACK, if the message's connection is still the current one."""
        if delivery.qos == 0:
            return
        client = self._client
        with self._ack_lock:
            if delivery.generation != self._generation or client is None:
                return  # redelivered on the new connection; the store drops the duplicate
            if delivery.qos == 1:
                client.queue_puback(delivery.mid)  # written with the batch's other PUBACKs
            else:
                client.ack(delivery.mid, delivery.qos)

    def _hold(self, delivery: _Delivery, reason: str) -> None:
        """Keep an unacknowledged message, to submit it again after a pause."""
        with self._retry_cond:
            if self._stopping:
                return
            delay = RETRY_DELAYS_S[min(delivery.attempts, len(RETRY_DELAYS_S) - 1)]
            delivery.attempts += 1
            delivery.dead_letter_failed = False
            delivery.due = time.monotonic() + delay
            if not self._held:
                _LOGGER.warning("MQTT: readings not stored (%s); retrying in %.0f s", reason, delay)
            self._held.append(delivery)
            self._held_reason = reason
            self._retry_cond.notify_all()

    def _retry_loop(self) -> None:
        while True:
            with self._retry_cond:
                while not self._stopping:
                    now = time.monotonic()
                    due = [d for d in self._held if d.due <= now]
                    if due:
                        self._held = [d for d in self._held if d.due > now]
                        break
                    wait = min((d.due for d in self._held), default=now + 3600) - now
                    self._retry_cond.wait(max(wait, 0.01))
                else:
                    return
            for delivery in due:
                self._submit(delivery, 0.0)

    # -- health ----------------------------------------------------------------------------

    def _set_state(self, state: InputState, detail: str) -> None:
        if state is not self._state:
            self._since = self._clock()
        self._state = state
        self._detail = detail


def mqtt_input_factories() -> list[Callable[[Settings, Pipeline, object], Input | None]]:
    """The runtime's factories, in start order: the embedded broker, then the MQTT input.

    The broker is built only when ``mqtt.url = "embedded"`` (and MQTT is enabled); the input
    then connects to the port the broker actually got. The runtime starts inputs in this order
    and stops them in reverse, so the broker is up before the input connects and still up while
    it says goodbye.
    """
    built: dict[str, BrokerAddress] = {}

    def embedded_broker(settings: Settings, pipeline: Pipeline, store: object) -> Input | None:
        if not settings.mqtt.enabled or settings.mqtt.url != EMBEDDED:
            return None
        # Imported here: a station on a real broker never loads amqtt.
        from vitalstation.ingest.broker import EmbeddedBroker

        broker = EmbeddedBroker(settings.embedded_broker.port)
        built["broker"] = broker
        return broker

    def mqtt_input(settings: Settings, pipeline: Pipeline, store: object) -> Input | None:
        if not settings.mqtt.enabled:
            return None
        return MqttInput.from_settings(settings, pipeline, embedded=built.get("broker"))

    return [embedded_broker, mqtt_input]
