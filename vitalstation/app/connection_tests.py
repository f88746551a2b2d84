"""Settings' "Test connection" buttons: one check per input, sink or store, each answering in
one line exactly what works or what failed (refused credentials, no such stream, port taken,
folder not writable ...).

Every check blocks (network, disk, keyring): the dialog runs them on its worker threads. None
raises for an expected failure; none logs or returns a secret. Checks use the settings being
edited (not yet saved) with the station's secrets.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vitalstation.config.secrets import (
    SMTP_PASSWORD,
    SecretStore,
    SecretStoreError,
    redact,
)
from vitalstation.config.settings import Settings

__all__ = ["CHECKS", "CheckResult", "run_check", "running_counterpart"]

SMTP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``ok`` and one plain sentence (never a secret)."""

    ok: bool
    detail: str


def _ok(detail: str) -> CheckResult:
    return CheckResult(True, detail)


def _failed(detail: str) -> CheckResult:
    return CheckResult(False, redact(detail))


def check_rest(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """Can the REST receiver listen on ``rest.host:rest.port`` (with its TLS files)?"""
    rest = settings.rest
    if rest.tls_cert or rest.tls_key:
        for key in ("tls_cert", "tls_key"):
            value = getattr(rest, key)
            if value and not settings.path(value).is_file():
                return _failed(f"rest.{key}: file not found: {settings.path(value)}")
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.path(rest.tls_cert), settings.path(rest.tls_key))
        except FileNotFoundError as exc:
            return _failed(f"TLS file not found: {exc.filename}")
        except (ssl.SSLError, ValueError, OSError) as exc:
            return _failed(f"cannot load the TLS certificate and key: {exc}")
    tls = " with TLS" if rest.tls_cert else ""
    if running is not None and rest.port in (0, running.port) and running.config.host == rest.host:
        return _ok(f"the station's REST receiver is listening there: {running.url}{tls}")
    family = socket.AF_INET6 if ":" in rest.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((rest.host, rest.port))
            port = probe.getsockname()[1]
    except OSError as exc:
        return _failed(f"cannot listen on {rest.host}:{rest.port}: {exc.strerror or exc}")
    shown = f"{rest.host}:{rest.port}" if rest.port else f"{rest.host} (free port, e.g. {port})"
    return _ok(f"{shown} is free: the receiver can listen there{tls}")


def check_filedrop(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """Are the inbox, archive and failed folders there (or creatable) and writable?"""
    notes = []
    for key in ("inbox", "archive", "failed"):
        folder = settings.path(getattr(settings.filedrop, key))
        if not folder.exists():
            parent = next((p for p in folder.parents if p.exists()), None)
            if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
                return _failed(f"filedrop.{key}: cannot create {folder} ({parent} is not a "
                               "writable folder)")
            notes.append(f"{key} {folder} (created at start)")
            continue
        if not folder.is_dir():
            return _failed(f"filedrop.{key}: {folder} is a file, not a folder")
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".vitalstation-check-"):
                pass
        except OSError as exc:
            return _failed(f"filedrop.{key}: cannot write in {folder}: {exc.strerror or exc}")
        notes.append(f"{key} {folder}")
    return _ok("writable: " + "; ".join(notes))


def check_mqtt(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """One CONNECT to the broker with the station's credentials (``running``: the embedded
    broker when ``mqtt.url = "embedded"``)."""
    from vitalstation.ingest.mqtt import EMBEDDED, MqttOptions
    from vitalstation.ingest.mqtt_probe import ProbeFailed, probe_broker

    try:
        options = MqttOptions.from_settings(settings, secrets=secrets)
    except SecretStoreError as exc:
        return _failed(str(exc))
    if options.url == EMBEDDED and running is None:
        return _failed("the embedded broker is not running (it starts with the station when "
                       "MQTT is enabled)")
    try:
        return _ok(probe_broker(options, embedded=running))
    except ProbeFailed as exc:
        return _failed(str(exc))


def _aws(settings: Settings, secrets: SecretStore) -> Any:
    from vitalstation.app.credentials import aws_credentials

    return aws_credentials(settings, secrets)


def check_kinesis(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """DescribeStreamSummary on ``kinesis.stream`` with the station's AWS keys."""
    from vitalstation.ingest.kinesis_probe import ProbeFailed, probe_stream

    try:
        return _ok(probe_stream(settings.kinesis, _aws(settings, secrets)))
    except (ProbeFailed, SecretStoreError) as exc:
        return _failed(str(exc))


def check_dynamodb(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """DescribeTable on ``dynamodb.table`` with the station's AWS keys."""
    from vitalstation.sinks.dynamodb_probe import ProbeFailed, probe_table

    try:
        return _ok(probe_table(settings.dynamodb, _aws(settings, secrets)))
    except (ProbeFailed, SecretStoreError) as exc:
        return _failed(str(exc))


def check_store(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """Connect to the store's database (nothing created or migrated)."""
    from vitalstation.app.credentials import database_url
    from vitalstation.storage.probe import ProbeFailed, probe_database

    try:
        return _ok(probe_database(database_url(settings, secrets)))
    except ProbeFailed as exc:
        return _failed(str(exc))


def check_smtp(settings: Settings, secrets: SecretStore, running: Any = None) -> CheckResult:
    """Connect to the SMTP server as configured, log in if a user is set, then QUIT."""
    smtp_settings = settings.notifications
    host, port = smtp_settings.smtp_host, smtp_settings.smtp_port
    if not host:
        return _failed("no SMTP server set (notifications.smtp_host)")
    where = f"{host}:{port}"
    try:
        password = secrets.get(SMTP_PASSWORD) if smtp_settings.smtp_username else None
    except SecretStoreError as exc:
        return _failed(str(exc))
    if smtp_settings.smtp_username and not password:
        return _failed(f"SMTP user {smtp_settings.smtp_username} is set but the secret "
                       f"{SMTP_PASSWORD} is not (set the SMTP password)")
    timeout = min(float(smtp_settings.timeout_s), SMTP_TIMEOUT_S)
    context = ssl.create_default_context()
    try:
        if smtp_settings.smtp_security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if smtp_settings.smtp_security == "starttls":
                client.starttls(context=context)
            if smtp_settings.smtp_username and password:
                client.login(smtp_settings.smtp_username, password)
            client.noop()
    except smtplib.SMTPAuthenticationError as exc:
        return _failed(f"{where} refused the login of {smtp_settings.smtp_username}: "
                       f"{exc.smtp_code} {_text(exc.smtp_error)}")
    except smtplib.SMTPNotSupportedError as exc:
        return _failed(f"{where}: {exc} (check notifications.smtp_security)")
    except smtplib.SMTPResponseException as exc:
        return _failed(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}")
    except ssl.SSLError as exc:
        return _failed(f"TLS with {where} failed: {exc.reason or exc}")
    except (smtplib.SMTPException, OSError) as exc:
        return _failed(f"cannot talk to {where}: {getattr(exc, 'strerror', None) or exc}")
    login = f", logged in as {smtp_settings.smtp_username}" if password else ""
    return _ok(f"{where} answered ({smtp_settings.smtp_security}{login})")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


CHECKS: dict[str, Callable[[Settings, SecretStore, Any], CheckResult]] = {
    "mqtt": check_mqtt,
    "kinesis": check_kinesis,
    "rest": check_rest,
    "filedrop": check_filedrop,
    "dynamodb": check_dynamodb,
    "smtp": check_smtp,
    "store": check_store,
}


def run_check(name: str, settings: Settings, secrets: SecretStore, running: Any = None
              ) -> CheckResult:
    """Runs the check ``name``; an unexpected error is a failed check, not an exception."""
    try:
        return CHECKS[name](settings, secrets, running)
    except KeyError:
        raise
    except Exception as exc:  # noqa: BLE001 - a test button must answer, whatever happened
        return _failed(f"{type(exc).__name__}: {exc}")


def running_counterpart(name: str, inputs: Any) -> Any:
    """The running input a check may use: the REST receiver, or the embedded broker."""
    wanted = {"rest": "rest", "mqtt": "mqtt-broker"}.get(name)
    for input_ in inputs or ():
        if getattr(input_, "name", None) == wanted:
            return input_
    return None

