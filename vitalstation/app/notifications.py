"""Notifications in the running station: who each escalation goes to, and the outbox's delivery.

**Routing** (:class:`NotificationRouter`, called by the alarm service for every transition, on
the engine lock; no I/O: contacts and bed wards are cached and refreshed by the tick): each
:class:`~vitalstation.alarms.Notification` of a transition becomes one outbox message per
recipient. ``station`` and ``device`` notifications go to the station window (the patient's
question is shown there for the nurse to ask; bedside devices have no pull endpoint).
``email`` and ``webhook`` notifications go to the contacts of the role: the patient's own
contacts plus their ward's (``scope_id`` the bed's ward, and ``""`` for every ward). A role with
no contact for a channel still gets a message, addressed ``unconfigured:<role>``, which fails at
once: a page nobody can receive is shown to the nurse, never silently skipped. With
``[dynamodb] enabled``, every new alarm also becomes a ``dynamodb`` message (the anomaly item).

**Delivery** (:class:`OutboxWorker`, its own thread): claims due messages, hands each to its
channel's sender, and records the outcome. A failed attempt is retried after
``retry_initial_s`` doubling up to ``retry_max_s``; after ``max_attempts`` (or at once for a
permanent error) the message is marked failed and the alarm service raises a
``notification_failed`` technical alarm (and a ``notification_failed`` event on the alarm), so
the nurse sees it. DynamoDB items are never given up for an outage: after ``max_attempts`` the
nurse is told, and the item keeps being retried until the table takes it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vitalstation.alarms import Alarm, AlarmTransition, Channel, TransitionKind
from vitalstation.app.alarms import AlarmService
from vitalstation.config.settings import NotificationsSettings, Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.vitals import VitalKind
from vitalstation.sinks.delivery import DeliveryError, SecretLookup, Sender, summary
from vitalstation.storage.outbox import (
    ContactRow,
    ContactScope,
    OutboxMessage,
    OutboxRow,
    OutboxStore,
)
from vitalstation.storage.store import Store

_LOGGER = logging.getLogger(__name__)

STATION_CHANNELS = (Channel.STATION.value, Channel.DEVICE.value)
_STATION = Channel.STATION.value
# Read once here: an enum member read from its class goes through EnumType.__getattr__ on
# Python 3.11 (~860 instructions), and the router reads it for every transition.
_RAISED = TransitionKind.RAISED
DYNAMODB_CHANNEL = "dynamodb"
UNCONFIGURED_PREFIX = "unconfigured:"
CONTACTS_REFRESH_S = 10.0
POLL_INTERVAL_S = 0.5
CLAIM_LEASE = timedelta(minutes=2)
# Channels whose messages are retried for ever (an outage must lose nothing); the nurse is
# still told once they have failed max_attempts times.
PERSISTENT_CHANNELS = frozenset({DYNAMODB_CHANNEL})

# The seed's datatype names (BedSideMonitor.py), and ours for the vitals it did not have.
SEED_DATATYPES: Mapping[VitalKind, str] = {
    VitalKind.HEART_RATE: "HeartRate",
    VitalKind.SPO2: "SPO2",
    VitalKind.TEMPERATURE: "Temperature",
    VitalKind.RESPIRATORY_RATE: "RespiratoryRate",
    VitalKind.SYSTOLIC_BP: "SystolicBP",
    VitalKind.DIASTOLIC_BP: "DiastolicBP",
    VitalKind.GLUCOSE: "Glucose",
    VitalKind.WEIGHT: "Weight",
}

StationListener = Callable[[OutboxRow], None]
"""Shows one station notification (the window's escalation dialog; ``serve``'s log line)."""


def secret_lookup_for(settings: Settings) -> SecretLookup:
    """The station's secrets by name, through ``config.secrets.SecretStore`` only: the OS
    keyring, or ``VITALSTATION_SECRET_<NAME>`` when the admin chose ``[secrets] source =
    "environment"``. Where no keyring works and the admin made no such choice, the secret is
    missing (the delivery then fails visibly with the reason), never read from the environment
    behind the admin's back. Values are never logged."""
    from vitalstation.config.secrets import SecretStore, SecretsUnavailable

    store = SecretStore.for_settings(settings)

    def lookup(name: str) -> str | None:
        try:
            return store.get(name)
        except SecretsUnavailable as exc:
            _LOGGER.error("secret %s cannot be read: %s", name, exc)
            return None

    return lookup


# -- routing ---------------------------------------------------------------------------------


class NotificationRouter:
    """Turns a transition's notifications into outbox messages (see the module docstring)."""

    def __init__(
        self,
        outbox: OutboxStore,
        store: Store,
        *,
        station: str,
        dynamodb_table: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._store = store
        self.station = station
        self.dynamodb_table = dynamodb_table
        self._clock = clock
        self._lock = threading.Lock()
        self._contacts: list[ContactRow] = []
        self._wards: dict[str, str | None] = {}
        self._loaded_at: float | None = None
        # The last transition time and its ISO text (see __call__).
        self._at_text: tuple[datetime | None, str] = (None, "")

    def refresh(self) -> None:
        """Reload contacts and bed wards (the tick calls :meth:`refresh_if_due`)."""
        contacts = self._outbox.contacts()
        wards = {bed.label: bed.ward for bed in self._store.registry.list_beds()}
        with self._lock:
            self._contacts, self._wards = contacts, wards
            self._loaded_at = self._clock()

    def refresh_if_due(self) -> None:
        """Reload at most every ``CONTACTS_REFRESH_S`` (contacts change from the CLI)."""
        loaded = self._loaded_at
        if loaded is None or self._clock() - loaded >= CONTACTS_REFRESH_S:
            self.refresh()

    def __call__(self, transition: AlarmTransition) -> list[OutboxMessage]:
        """The messages ``transition`` causes.

        Called for every transition on the pipeline thread, most of which notify no one: those
        return at once. Enum values are read as ``_value_`` (the same text as ``.value``
        without the property's cost) and the event and time are written once per transition.
        The time's text is kept for the next transition with the very same time object (the
        transitions of one engine call share one): ``isoformat()`` of a time with a zone calls
        the zone's ``utcoffset`` and costs ~11k instructions.
        """
        notifications = transition.notifications
        # The anomaly item's table, when this transition makes one.
        dynamodb = self.dynamodb_table if transition.kind is _RAISED else None
        messages: list[OutboxMessage] = []
        if not notifications and not dynamodb:
            return messages
        alarm = transition.alarm
        event, when = transition.kind._value_, transition.at
        last, at = self._at_text
        if last is not when:
            at = when.isoformat()
            self._at_text = (when, at)
        for notification in notifications:
            role = notification.role._value_
            payload = {
                "station": self.station, "alarm_key": alarm.key, "event": event, "at": at,
                "role": role, "reason": notification.reason,
                "priority": notification.priority._value_, "message": notification.message,
                "patient_id": notification.patient_id, "bed": notification.bed_label,
            }
            channel = notification.channel._value_
            if channel in STATION_CHANNELS:
                recipient = "station" if channel == _STATION else (
                    f"device:{alarm.device_id}" if alarm.device_id else "device"
                )
                messages.append(OutboxMessage(channel, recipient, payload))
                continue
            addresses = self.addresses(
                role, channel, patient_id=notification.patient_id,
                bed_label=notification.bed_label,
            )
            for address in addresses or [f"{UNCONFIGURED_PREFIX}{role}"]:
                messages.append(OutboxMessage(channel, address, payload))
        if dynamodb:
            messages.append(OutboxMessage(
                DYNAMODB_CHANNEL, dynamodb, anomaly_item(alarm, self.station)
            ))
        return messages

    def addresses(
        self, role: str, channel: str, *, patient_id: str | None, bed_label: str | None
    ) -> list[str]:
        """The patient's contacts for ``role`` by ``channel``, then their ward's (no repeats)."""
        with self._lock:
            ward = self._wards.get(bed_label or "") or ""
            found: list[str] = []
            for contact in self._contacts:
                if contact.role != role or contact.channel != channel:
                    continue
                mine = (
                    (contact.scope is ContactScope.PATIENT and contact.scope_id == patient_id)
                    or (contact.scope is ContactScope.WARD and contact.scope_id in ("", ward))
                )
                if mine and contact.address not in found:
                    found.append(contact.address)
            return found


def anomaly_item(alarm: Alarm, station: str) -> dict[str, Any]:
    """The DynamoDB item of an alarm: the seed's attributes first (the alarm id is added by
    the outbox when the alarm row is stored)."""
    from vitalstation.sinks.dynamodb import seed_timestamp  # boto3: only with the sink on

    datatype = SEED_DATATYPES.get(alarm.vital, alarm.vital.value) if alarm.vital else (
        alarm.condition
    )
    scope = alarm.key.split("|", 1)[0]
    return {
        "deviceid": alarm.device_id or scope,
        "timestamp": seed_timestamp(alarm.measured_at or alarm.raised_at),
        "datatype": datatype,
        "value": alarm.value,
        "priority": alarm.priority.value,
        "kind": alarm.kind.value,
        "condition": alarm.condition,
        "message": alarm.message,
        "bed": alarm.bed_label,
        "patient_id": alarm.patient_id,
        "station": station,
        "raised_at": alarm.raised_at.isoformat(),
    }


# -- the station channel ---------------------------------------------------------------------


class StationChannel:
    """Delivers ``station`` and ``device`` messages to the listeners (the window's dialog);
    with none, to the log (``serve``): ``NOTIFY {json}``, one line each."""

    def __init__(self) -> None:
        self._listeners: list[StationListener] = []

    def add_listener(self, listener: StationListener) -> None:
        """Receive each station notification (on the delivery thread)."""
        self._listeners.append(listener)

    def deliver(self, row: OutboxRow) -> None:
        """Hand ``row`` to every listener; a listener that raises fails the attempt."""
        if not self._listeners:
            _LOGGER.warning("NOTIFY %s", json.dumps(
                {"id": row.id, "channel": row.channel, "recipient": row.recipient,
                 **row.payload}, default=str,
            ))
            return
        for listener in list(self._listeners):
            try:
                listener(row)
            except Exception as exc:  # noqa: BLE001 - retried like any failed delivery
                raise DeliveryError(f"station listener failed: {exc}") from exc


# -- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Back-off between attempts, and when to give up."""

    initial: timedelta = timedelta(seconds=5)
    maximum: timedelta = timedelta(minutes=5)
    max_attempts: int = 10

    @classmethod
    def from_settings(cls, settings: NotificationsSettings) -> RetryPolicy:
        """``[notifications] retry_initial_s, retry_max_s, max_attempts``."""
        return cls(timedelta(seconds=settings.retry_initial_s),
                   timedelta(seconds=settings.retry_max_s), settings.max_attempts)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        factor = 2 ** min(max(attempts - 1, 0), 30)
        return min(self.initial * factor, self.maximum)


FailureReport = Callable[[OutboxRow, str], None]
DeliveredReport = Callable[[OutboxRow], None]


class OutboxWorker:
    """The delivery thread: claims due messages and delivers each by its channel."""

    def __init__(
        self,
        outbox: OutboxStore,
        senders: Mapping[str, Sender],
        station: StationChannel,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
        on_failed: FailureReport | None = None,
        on_delivered: DeliveredReport | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._outbox = outbox
        self._senders = dict(senders)
        self.station = station
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._on_failed = on_failed
        self._on_delivered = on_delivered
        self._poll_interval_s = poll_interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered_total = 0
        self.failed_total = 0
        self.retried_total = 0

    def start(self) -> None:
        """Start the delivery thread."""
        if self._thread is not None:
            raise RuntimeError("outbox worker already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="vitalstation-outbox", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the message in hand (what is left stays in the outbox for next time)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Look for due messages now (called after each transition is stored).

        Already set: the loop has not yet cleared it, so its next pass starts after this
        transition's messages were committed and claims them; setting it again would only
        take the event's lock and notify no one (once per transition, on the pipeline thread).
        """
        if not self._wake.is_set():
            self._wake.set()

    def run_once(self, limit: int = 50) -> int:
        """Claim and attempt the due messages once; returns how many were attempted."""
        rows = self._outbox.claim_due(self._clock(), lease=CLAIM_LEASE, limit=limit)
        for row in rows:
            if self._stop.is_set() and self._thread is not None:
                break
            self._attempt(row)
        return len(rows)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                attempted = self.run_once()
            except Exception:  # noqa: BLE001 - the outbox must outlive a database outage
                _LOGGER.exception("outbox pass failed; retrying")
                attempted = 0
            if attempted == 0:
                self._wake.wait(self._poll_interval_s)
                self._wake.clear()

    def _attempt(self, row: OutboxRow) -> None:
        now = self._clock()
        try:
            self._deliver(row)
        except DeliveryError as exc:
            self._failed_attempt(row, str(exc), permanent=exc.permanent, now=now)
            return
        except Exception as exc:  # noqa: BLE001 - a sender bug is a failed attempt, not a crash
            _LOGGER.exception("sender for %s raised", row.channel)
            self._failed_attempt(row, f"{type(exc).__name__}: {exc}", permanent=False, now=now)
            return
        self._outbox.mark_delivered(row.id, at=self._clock())
        self.delivered_total += 1
        if self._on_delivered is not None:
            self._on_delivered(row)

    def _deliver(self, row: OutboxRow) -> None:
        if row.channel in STATION_CHANNELS:
            self.station.deliver(row)
            return
        if row.recipient.startswith(UNCONFIGURED_PREFIX):
            role = row.recipient[len(UNCONFIGURED_PREFIX):]
            where = row.payload.get("bed") or row.payload.get("patient_id") or "this ward"
            raise DeliveryError(
                f"no {row.channel} contact for the {role} of {where} (vitalstation alarms "
                f"contact add --role {role} --channel {row.channel} ...)", permanent=True,
            )
        sender = self._senders.get(row.channel)
        if sender is None:
            raise DeliveryError(
                f"the {row.channel} channel is not configured on this station "
                "([notifications] / [dynamodb])", permanent=True,
            )
        payload = dict(row.payload)
        if row.channel != DYNAMODB_CHANNEL:
            payload["notification_id"] = row.id
        sender.send(row.recipient, payload)

    def _failed_attempt(self, row: OutboxRow, error: str, *, permanent: bool, now: datetime
                        ) -> None:
        attempts = row.attempts + 1
        persistent = row.channel in PERSISTENT_CHANNELS and not permanent
        if persistent or (not permanent and attempts < self.policy.max_attempts):
            next_at = now + self.policy.delay(attempts)
            self._outbox.mark_retry(row.id, at=now, error=error, next_at=next_at)
            self.retried_total += 1
            _LOGGER.warning("%s to %s failed (attempt %d, next at %s): %s", row.channel,
                            _shown(row), attempts, next_at.isoformat(), error)
            if persistent and attempts == self.policy.max_attempts:
                self._report(row, f"{error} (still retrying)")
            return
        self._outbox.mark_failed(row.id, at=now, error=error)
        self.failed_total += 1
        _LOGGER.error("NOTIFICATION FAILED: %s to %s after %d attempts: %s (%s)", row.channel,
                      _shown(row), attempts, error, summary(row.payload))
        self._report(row, error)

    def _report(self, row: OutboxRow, error: str) -> None:
        if self._on_failed is None:
            return
        try:
            self._on_failed(row, error)
        except Exception:  # noqa: BLE001 - logged above already; the loop goes on
            _LOGGER.exception("could not report the failed notification %d", row.id)


def _shown(row: OutboxRow) -> str:
    """The recipient for a log line (a webhook URL without its query, which may hold a token)."""
    return row.recipient.split("?", 1)[0]


# -- the whole, for the runtime --------------------------------------------------------------


class Notifications:
    """Router, senders, station channel and delivery thread, built from the settings."""

    def __init__(self, router: NotificationRouter, worker: OutboxWorker) -> None:
        self.router = router
        self.worker = worker

    @property
    def station(self) -> StationChannel:
        """Where the window registers for station notifications."""
        return self.worker.station

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        alarms: AlarmService,
        *,
        clock: Clock = utc_now,
        secret_lookup: SecretLookup | None = None,
        senders: Mapping[str, Sender] | None = None,
    ) -> Notifications:
        """Wire the outbox into ``alarms``: routing on every transition, contacts refreshed
        by its tick, failures reported back as technical alarms. Call :meth:`start` next."""
        outbox = OutboxStore(store.engine)
        dynamodb = settings.dynamodb
        router = NotificationRouter(
            outbox, store, station=settings.station.name,
            dynamodb_table=dynamodb.table if dynamodb.enabled else None,
        )
        if senders is None:
            senders = default_senders(settings, secret_lookup)
        worker = OutboxWorker(
            outbox, senders, StationChannel(),
            policy=RetryPolicy.from_settings(settings.notifications), clock=clock,
            on_failed=lambda row, error: alarms.notification_failed(
                row.alarm_id, channel=row.channel, recipient=_shown(row), error=error
            ),
            on_delivered=lambda row: alarms.notification_delivered(row.channel),
        )
        router.refresh()
        alarms.route_notifications(router)
        alarms.add_tick_hook(router.refresh_if_due)
        alarms.add_listener(lambda transition: worker.wake())
        return cls(router, worker)

    def start(self) -> None:
        """Start delivering (including what an earlier run left in the outbox)."""
        self.worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop delivering; undelivered messages wait in the outbox."""
        self.worker.stop(timeout)


def default_senders(settings: Settings, secret_lookup: SecretLookup | None = None
                    ) -> dict[str, Sender]:
    """Email (when ``smtp_host`` is set), webhook, and DynamoDB (when enabled)."""
    from vitalstation.sinks.webhook import WebhookSender

    config = settings.notifications
    senders: dict[str, Sender] = {
        Channel.WEBHOOK.value: WebhookSender(timeout_s=config.timeout_s)
    }
    if config.smtp_host:
        from vitalstation.sinks.email import SmtpSender  # smtplib: only with email on

        senders[Channel.EMAIL.value] = SmtpSender(
            config.smtp_host, config.smtp_port, sender=config.smtp_from,
            security=config.smtp_security, username=config.smtp_username,
            secret_lookup=secret_lookup or secret_lookup_for(settings),
            timeout_s=config.timeout_s, station=settings.station.name,
        )
    if settings.dynamodb.enabled:
        from vitalstation.app.credentials import aws_credentials
        from vitalstation.sinks.dynamodb import DynamoDBAnomalySink, dynamodb_client_factory

        senders[DYNAMODB_CHANNEL] = DynamoDBAnomalySink(
            dynamodb_client_factory(settings.dynamodb, aws_credentials(settings))
        )
    return senders


# -- the command line ------------------------------------------------------------------------


def contacts_command(args: Any, store: Store, *, actor: str) -> list[dict[str, Any]]:
    """``vitalstation alarms contact add|list|remove``: the rows to print."""
    from vitalstation.domain.errors import UserError
    from vitalstation.sinks.webhook import check_webhook_url

    outbox = OutboxStore(store.engine)
    if args.contact_command == "add":
        if args.channel == Channel.WEBHOOK.value and check_webhook_url(args.address):
            raise UserError(str(check_webhook_url(args.address)))
        if args.channel == Channel.EMAIL.value and "@" not in args.address:
            raise UserError(f"{args.address!r} is not an email address")
        scope, scope_id = (
            (ContactScope.PATIENT, args.patient) if args.patient
            else (ContactScope.WARD, args.ward or "")
        )
        row = outbox.add_contact(scope, scope_id, args.role, args.channel, args.address,
                                 actor=actor, at=utc_now())
        return [row.to_dict()]
    if args.contact_command == "remove":
        if not outbox.remove_contact(args.contact_id, actor=actor, at=utc_now()):
            raise UserError(f"no contact {args.contact_id} (see `vitalstation alarms contact "
                            "list`)")
        return [{"removed": args.contact_id}]
    return [row.to_dict() for row in outbox.contacts()]


def notifications_command(args: Any, store: Store) -> list[dict[str, Any]]:
    """``vitalstation alarms notifications``: the outbox rows to print, newest first."""
    from vitalstation.storage.outbox import OutboxStatus

    status = None if args.status is None else OutboxStatus(args.status)
    rows = OutboxStore(store.engine).list(status=status, alarm_id=args.alarm, limit=args.limit)
    return [row.to_dict() for row in rows]
