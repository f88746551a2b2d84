"""Settings' "Test connection" for MQTT: one CONNECT to the configured broker, with the same
URL, TLS and credential rules as the input, answering exactly what failed.

The probe connects under its own client id (``<client id>-probe``, clean session), so it never
takes over the station's persistent session or kicks its running input off the broker.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from vitalstation.ingest.mqtt import (
    _CREDENTIALS_REFUSED,
    _SETTINGS_REFUSED,
    BrokerAddress,
    MqttInput,
    MqttOptions,
)

__all__ = ["ProbeFailed", "probe_broker"]


class ProbeFailed(Exception):
    """The broker could not be reached or refused us; the message says which and why."""


def probe_broker(
    options: MqttOptions, *, embedded: BrokerAddress | None = None, timeout_s: float = 5.0
) -> str:
    """Connects once and disconnects; returns what answered, or raises ProbeFailed."""
    rules = MqttInput(options, pipeline=None, embedded=embedded)  # type: ignore[arg-type]
    try:
        host, port, use_tls = rules._endpoint()
        protocol = rules._protocol()
        context = rules._tls_context() if use_tls else None
    except (ValueError, RuntimeError) as exc:
        raise ProbeFailed(str(exc)) from None
    url = rules._url
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{options.client_id}-probe"[:128],
        clean_session=True if protocol is MQTTProtocolVersion.MQTTv311 else None,
        protocol=protocol,
    )
    if options.username or options.password:
        client.username_pw_set(options.username or None, options.password)
    if context is not None:
        client.tls_set_context(context)
    answered = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_client: paho.Client, _data: object, _flags: object, reason: Any,
                   _properties: object = None) -> None:
        outcome["code"] = reason.value if hasattr(reason, "value") else int(reason)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=max(5, min(options.keepalive, 60)))
    except OSError as exc:
        raise ProbeFailed(f"cannot connect to {url}: {exc.strerror or exc}") from None
    try:
        client.loop_start()
        if not answered.wait(timeout_s):
            raise ProbeFailed(
                f"{url} accepted the connection but sent no CONNACK within {timeout_s:g} s "
                "(is it an MQTT broker? does it want TLS or a client certificate?)"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    code = outcome["code"]
    if code == 0:
        who = f" as {options.username!r}" if options.username else ""
        return f"connected to {url}{who}"
    if code in _CREDENTIALS_REFUSED:
        raise ProbeFailed(
            f"{url} refused our credentials ({_CREDENTIALS_REFUSED[code]}): check mqtt.username "
            "and the MQTT password (the secret mqtt.password)"
        )
    reason = _SETTINGS_REFUSED.get(code, f"reason code {code:#x}")
    raise ProbeFailed(f"{url} refused the connection ({reason})")
