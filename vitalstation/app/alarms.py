"""The alarm engine wired into the station: fed by the pipeline, ticked, stored, published.

:class:`AlarmService` owns the one :class:`~vitalstation.alarms.AlarmEngine`. Every engine call
goes through one lock, because three threads reach it: the pipeline thread (each committed
batch, as a pipeline subscriber), the tick thread (once a second: delays, no data, pause expiry,
escalation timeouts, requests from the CLI, discharges) and the operators' threads (window, CLI,
REST). The transitions of each call are stored in one short transaction
(:class:`~vitalstation.storage.alarms.AlarmStore`), with the outbox messages they cause, and
then handed to every listener (``serve``'s log line, the window's signal).

**No alarm is ever dropped.** A transition that could not be stored is logged as an error, kept,
and stored first on the next batch or tick; listeners get it at once all the same. A listener
that raises is logged and the others still run. What an open alarm's readings change without a
transition (its update count, latest value and message) reaches its row within 5 s
(:meth:`~AlarmService.refresh_rows`), so a restart resumes each alarm as it was just before.

API for the window, the CLI and the REST receiver (stable; all thread-safe, none blocks
beyond one short store transaction; ``actor`` is who, ``origin`` is where from: ``cli``,
``station:<name>`` or ``rest:<device>``; refusals raise ``AlarmActionError`` with a message
for the operator, ``UnknownAlarm`` for an alarm that is not open):

- actions, each returning the transitions it caused (already stored and published):
  :meth:`~AlarmService.acknowledge`, :meth:`~AlarmService.pause_audio` (one alarm or all),
  :meth:`~AlarmService.record_patient_answer`, :meth:`~AlarmService.escalate`,
  :meth:`~AlarmService.comment`, :meth:`~AlarmService.enter_observation` (NEWS2 manual
  inputs), :meth:`~AlarmService.sync_discharges` (after a discharge);
- limits: :meth:`~AlarmService.set_limit_override` / :meth:`~AlarmService.remove_limit_override`
  (stored and audited, kept across restarts, reverted on discharge by any route);
- reads (engine state, no I/O): :meth:`~AlarmService.active_alarms`, :meth:`~AlarmService.alarm`,
  :meth:`~AlarmService.escalation`, :meth:`~AlarmService.audio_pause`,
  :meth:`~AlarmService.overrides`, :meth:`~AlarmService.limits_for`, :meth:`~AlarmService.news2`;
- reads (one short query): :meth:`~AlarmService.list_alarms`, :meth:`~AlarmService.events`,
  :meth:`~AlarmService.notifications` (delivery state of an alarm's notifications),
  :meth:`~AlarmService.override_history`;
- :meth:`~AlarmService.add_listener`: every transition, in order, on the thread that caused it
  (the window re-emits it through a queued signal). A notification the outbox gave up on
  arrives as a ``notification_failed`` transition and a technical alarm.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from vitalstation.alarms import (
    Alarm,
    AlarmActionError,
    AlarmEngine,
    AlarmRef,
    AlarmState,
    AlarmTransition,
    AudioPause,
    ChainState,
    Consciousness,
    Limit,
    LimitOverride,
    News2Result,
    PatientAnswer,
    Role,
    SpO2Scale,
    TransitionKind,
    UnknownAlarm,
    VitalLimits,
)
from vitalstation.alarms.model import check_actor, check_origin, is_device_origin
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.vitals import VitalKind
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.ingest.rest_alerts import (
    AlertNotFound,
    AlertNotYours,
    AnswerRecorded,
    AnswerRefused,
    PatientAnswers,
)
from vitalstation.pipeline.types import StoredReading
from vitalstation.storage.alarms import (
    NEWS2_ENTRY_ACTION,
    AlarmEventRow,
    AlarmRequestStore,
    AlarmRow,
    AlarmStore,
    OverrideRow,
    RequestStatus,
)
from vitalstation.storage.outbox import OutboxMessage, OutboxRow, OutboxStore
from vitalstation.storage.store import Store

_LOGGER = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0
# How often the tick writes to their rows what open alarms' readings changed without an event
# (``AlarmService.refresh_rows``). Every tick cost the alarm-heavy bench ~2 points of overhead
# (17.9 -> 19.8 %, three alternated runs each): ~60 rows rewritten a second, holding the lock
# and the write connection the pipeline's batches wait for. Every 5 s is a fifth of that, and a
# restart or ``vitalstation alarms`` is at most 5 s behind.
ROW_REFRESH_INTERVAL_S = 5.0
# Readings of a pipeline batch evaluated, stored and published at a time: a batch larger than
# this (a pipeline with a larger ``batch_max``) goes in parts, so that its first alarm does not
# wait for the whole batch. Each part is a transaction of its own, and a part costs a commit
# and a write of the alarm tables' pages whatever its size: parts of 500 wrote 106 WAL pages
# per 1,000 readings where one part writes 70 (the alarm-heavy bench), and the time goes to
# the pipeline thread, which is what a station that has fallen behind (the only time a batch
# reaches 1,000) needs least; a batch of 1,000 is evaluated and stored in ~6 ms
# (bench/alarms.py). At 5,000 readings/s batches are ~50 and never split. Readings stay in
# order; NEWS2 is scored per part.
EVALUATE_CHUNK_READINGS = 1_000
_RAISED = TransitionKind.RAISED
_RESOLVED = AlarmState.RESOLVED
# The CLI waits this long for a running station to take its request, then applies it itself.
REQUEST_PICKUP_S = 3.0
# ... and, once a station has claimed it, this long for the outcome.
REQUEST_RESULT_S = 15.0
REQUEST_POLL_S = 0.05
REQUEST_ACTIONS = ("ack", "respond", "pause", "escalate", "comment")

AlarmListener = Callable[[AlarmTransition], None]
"""Receives each alarm transition, in order (on the pipeline, tick or operator thread)."""

InputStates = Callable[[], Iterable[InputHealth]]
"""The inputs' health, polled by the tick (a DOWN input for too long is a technical alarm)."""

NotificationRouter = Callable[[AlarmTransition], list[OutboxMessage]]
"""The outbox messages one transition causes (recipients resolved); see app/notifications."""

TickHook = Callable[[], None]
"""Extra work for the tick thread (e.g. applying the CLI's requests), outside the lock."""


class AlarmService:
    """The engine, its lock, its tick thread, its store and its listeners."""

    def __init__(
        self,
        engine: AlarmEngine,
        alarm_store: AlarmStore,
        *,
        tick_interval_s: float = TICK_INTERVAL_S,
        row_refresh_interval_s: float = ROW_REFRESH_INTERVAL_S,
    ) -> None:
        self.engine = engine
        self._store = alarm_store
        self._lock = threading.RLock()
        self._listeners: list[AlarmListener] = []
        self._ids: dict[str, int] = {}  # key -> row id of the alarms stored and still open
        # key -> (update_count, updated_at) of the open alarm as its row holds it: an alarm
        # whose readings changed it without a transition differs (``refresh_rows``).
        self._row_marks: dict[str, tuple[int, datetime]] = {}
        self._row_refresh_interval_s = row_refresh_interval_s
        self._rows_refreshed_at: float | None = None  # time.monotonic() of the last refresh
        self._unsaved: list[AlarmTransition] = []
        self._tick_interval_s = tick_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._input_states: InputStates | None = None
        self._router: NotificationRouter | None = None
        self._tick_hooks: list[TickHook] = []
        self._outbox = OutboxStore(alarm_store.engine)
        self._requests = AlarmRequestStore(alarm_store.engine)
        self._directory_version: int | None = None
        self.raised_total = 0
        self.store_failures = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, clock: Clock = utc_now
    ) -> AlarmService:
        """The ``[alarms]`` profile's engine, resumed from the alarms open in ``store``."""
        # The profile with the admin's limits, delays and escalation timeouts ([alarms]).
        from vitalstation.app.settings_apply import alarm_engine

        service = cls(alarm_engine(settings, clock=clock), AlarmStore(store.engine))
        service.resume()
        return service

    # -- lifecycle -------------------------------------------------------------------------

    def resume(self) -> None:
        """Take up the alarms (and escalation chains) left open in the database, the limit
        overrides and NEWS2 entries (ACVPU, oxygen) of patients still in their bed; then apply
        the discharges made meanwhile."""
        snapshot = self._store.load_snapshot()
        overrides = self._store.overrides_in_force()
        entries = self._store.news2_entries_in_force()
        with self._lock:
            self.engine.restore(snapshot)
            for alarm in snapshot.alarms:
                if alarm.alarm_id is not None:
                    self._ids[alarm.key] = alarm.alarm_id
                    self._row_marks[alarm.key] = (alarm.update_count, alarm.updated_at)
            for override in overrides:
                self.engine.set_override(override)
            for entry in entries:  # oldest first: the latest of each field stays
                try:
                    self.engine.restore_news2_entry(
                        entry.patient_id, at=entry.at, consciousness=entry.consciousness,
                        on_oxygen=entry.on_oxygen, scale=entry.spo2_scale,
                    )
                except ValueError as exc:  # an entry this version cannot read: said, skipped
                    _LOGGER.warning("NEWS2 entry for %s at %s not taken up: %s",
                                    entry.patient_id, entry.at, exc)
        if snapshot.alarms:
            _LOGGER.info("resumed %d open alarms from the database", len(snapshot.alarms))
        self.sync_discharges()

    def start(self) -> None:
        """Start the tick thread."""
        if self._thread is not None:
            raise RuntimeError("alarm service already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._tick_loop, name="vitalstation-alarm-tick", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the tick thread and make a last attempt to store what is unsaved."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            if self._unsaved:
                self._save([])
            if not self._unsaved:
                self.refresh_rows()
            if self._unsaved:
                _LOGGER.error(
                    "stopping with %d alarm transitions NOT stored: %s",
                    len(self._unsaved),
                    "; ".join(json.dumps(t.to_dict(), default=str) for t in self._unsaved),
                )

    def add_listener(self, listener: AlarmListener) -> None:
        """Receive every transition from now on."""
        with self._lock:
            self._listeners.append(listener)

    def watch_inputs(self, input_states: InputStates) -> None:
        """Poll ``input_states`` on every tick and report each input up or down."""
        self._input_states = input_states

    def route_notifications(self, router: NotificationRouter) -> None:
        """Enqueue, with each transition, the outbox messages ``router`` makes of it."""
        with self._lock:
            self._router = router

    def add_tick_hook(self, hook: TickHook) -> None:
        """Run ``hook`` on the tick thread after each tick (outside the lock)."""
        self._tick_hooks.append(hook)

    @property
    def unsaved(self) -> int:
        """Transitions waiting to be stored (after a database failure)."""
        with self._lock:
            return len(self._unsaved)

    # -- the pipeline subscriber -----------------------------------------------------------

    def __call__(self, stored: Sequence[StoredReading]) -> dict[int, int]:
        """A committed batch: evaluate it; return ``{index: alarms raised}`` for the pipeline."""
        # Handed to the engine as they are: no row is made per reading.
        size = EVALUATE_CHUNK_READINGS
        raised: dict[int, int] = {}
        if len(stored) <= size:
            with self._lock:
                transitions = self.engine.process_stored(stored, raised)
                self._handle(transitions)
            return raised
        for start in range(0, len(stored), size):
            in_chunk: dict[int, int] = {}
            with self._lock:
                transitions = self.engine.process_stored(stored[start:start + size], in_chunk)
                self._handle(transitions)
            for index, count in in_chunk.items():
                raised[start + index] = count
        return raised

    # -- time and operator actions ---------------------------------------------------------

    def tick(self) -> list[AlarmTransition]:
        """Let time pass (the tick thread calls this once a second)."""
        states: list[InputHealth] = []
        if self._input_states is not None:
            try:
                states = list(self._input_states())
            except Exception:  # noqa: BLE001 - the rest of the tick must still run
                _LOGGER.exception("could not read the inputs' health")
        with self._lock:
            transitions: list[AlarmTransition] = []
            for health in states:
                transitions += self.engine.report_input(
                    health.name, up=health.state is not InputState.DOWN, detail=health.detail
                )
            transitions += self.engine.tick()
            self._handle(transitions)
            last = self._rows_refreshed_at
            if last is None or time.monotonic() - last >= self._row_refresh_interval_s:
                self.refresh_rows()
            return transitions

    def acknowledge(self, alarm: AlarmRef, *, actor: str, origin: str) -> list[AlarmTransition]:
        """A clinician acknowledges one alarm (ends its escalation chain; a latched alarm
        resolves)."""
        with self._lock:
            return self._handle(self.engine.acknowledge(alarm, actor=actor, origin=origin))

    def pause_audio(
        self,
        alarm: AlarmRef | None = None,
        *,
        actor: str,
        origin: str,
        duration: timedelta | None = None,
    ) -> list[AlarmTransition]:
        """Silence one alarm, or every sounding alarm (``alarm=None``), for ``duration``
        (default 2 min, at most 5); a new higher-priority alarm breaks through."""
        with self._lock:
            return self._handle(self.engine.pause_audio(
                alarm, actor=actor, origin=origin, duration=duration
            ))

    def record_patient_answer(
        self, alarm: AlarmRef, answer: PatientAnswer | str, *, actor: str, origin: str
    ) -> list[AlarmTransition]:
        """The patient's answer to stage 1 (doctor, nurse, ems, all, declined), brought by the
        nurse (``station:``/``cli``) or the bedside device (``rest:<device>``)."""
        if isinstance(answer, str) and not isinstance(answer, PatientAnswer):
            answer = PatientAnswer.parse(answer)
        with self._lock:
            return self._handle(self.engine.record_patient_answer(
                alarm, answer, actor=actor, origin=origin
            ))

    def escalate(
        self,
        alarm: AlarmRef,
        roles: Iterable[Role | str] | None = None,
        *,
        actor: str,
        origin: str,
    ) -> list[AlarmTransition]:
        """Notify ``roles`` now; by default the next rung of the ladder above those already
        notified (nurse, then doctor, then EMS)."""
        with self._lock:
            chosen = list(roles) if roles is not None else self._next_rung(alarm)
            return self._handle(self.engine.escalate(alarm, chosen, actor=actor, origin=origin))

    def comment(self, alarm: AlarmRef, text: str, *, actor: str, origin: str
                ) -> list[AlarmTransition]:
        """A clinician's note on an alarm, kept in its audit trail."""
        with self._lock:
            return self._handle(self.engine.comment(alarm, text, actor=actor, origin=origin))

    def enter_observation(
        self,
        patient_id: str,
        *,
        actor: str,
        origin: str,
        consciousness: Consciousness | str | None = None,
        on_oxygen: bool | None = None,
        spo2_scale: SpO2Scale | int | None = None,
        bed_label: str | None = None,
    ) -> list[AlarmTransition]:
        """A clinician's NEWS2 entries (ACVPU, air or oxygen, SpO2 scale); audited, and the
        patient re-scored."""
        actor, origin = _clinician(actor, origin, "enter observations")
        if consciousness is None and on_oxygen is None and spo2_scale is None:
            raise AlarmActionError("enter consciousness, oxygen or the SpO2 scale")
        with self._lock:
            transitions = self.engine.enter_news2(
                patient_id, consciousness=consciousness, on_oxygen=on_oxygen,
                scale=spo2_scale, bed_label=bed_label,
            )
            self._store.audit(
                self.engine_now(), actor, NEWS2_ENTRY_ACTION, patient_id,
                {"consciousness": None if consciousness is None else str(consciousness),
                 "on_oxygen": on_oxygen,
                 "spo2_scale": None if spo2_scale is None else int(spo2_scale),
                 "origin": origin},
            )
            return self._handle(transitions)

    def set_limit_override(
        self,
        patient_id: str,
        vital: VitalKind | str,
        limits: Iterable[Limit],
        *,
        author: str,
        reason: str,
        origin: str,
        delay: timedelta | None = None,
        hysteresis: float | None = None,
    ) -> LimitOverride:
        """Replace one vital's limits for one admitted patient until discharge or removal.

        Stored (``limit_overrides``) and audited (``audit_log``: who, when, from where, why)
        before it takes effect; the patient's latest value is re-evaluated at once. The
        critical floor (asystole, apnoea, profound desaturation) always stays HIGH.
        ``NotAdmitted`` if the patient is in no bed; ``AlarmActionError`` for bad limits.
        """
        author, origin = _clinician(author, origin, "change limits")
        kind = _vital(vital)
        base = self.limits_for(patient_id, kind)
        try:
            vital_limits = VitalLimits(
                kind, tuple(limits),
                delay=delay if delay is not None else (base.delay if base else timedelta(0)),
                hysteresis=hysteresis if hysteresis is not None
                else (base.hysteresis if base else 0.0),
            )
        except ValueError as exc:
            raise AlarmActionError(str(exc)) from None
        with self._lock:
            override = LimitOverride(
                patient_id=patient_id, limits=vital_limits, author=author,
                reason=reason.strip() if isinstance(reason, str) else reason,
                at=self.engine_now(),
            )
            self._store.save_override(override, origin=origin)
            self._handle(self.engine.set_override(override))
            return override

    def remove_limit_override(
        self, patient_id: str, vital: VitalKind | str, *, actor: str, reason: str, origin: str
    ) -> bool:
        """Back to the profile's limits for one patient's vital; stored and audited.
        False when no override was in force."""
        actor, origin = _clinician(actor, origin, "change limits")
        if not isinstance(reason, str) or not reason.strip():
            raise AlarmActionError("removing a limit override needs a reason")
        kind = _vital(vital)
        with self._lock:
            stored = self._store.remove_override(
                patient_id, kind, actor=actor, origin=origin, reason=reason.strip(),
                at=self.engine_now(),
            )
            removed, transitions = self.engine.remove_override(patient_id, kind)
            self._handle(transitions)
            return stored or removed is not None

    def sync_discharges(self) -> list[AlarmTransition]:
        """Apply the discharges made anywhere (window, CLI, another station): revert the
        patients' overrides (audited) and resolve their limit and NEWS2 alarms. The tick calls
        it when the register changes; the window may call it right after a discharge."""
        try:
            version = self._store.directory_version()
            if version == self._directory_version:
                return []
            reverted = self._store.revert_discharged(self.engine_now())
            with self._lock:
                gone = self._store.discharged_among(sorted(self.engine.known_patients()))
                transitions: list[AlarmTransition] = []
                for override in reverted:
                    if override.patient_id not in gone:
                        transitions += self.engine.remove_override(
                            override.patient_id, override.kind
                        )[1]
                for patient_id in sorted(gone):
                    transitions += self.engine.discharge(patient_id).transitions
                self._directory_version = version
                return self._handle(transitions)
        except Exception:  # noqa: BLE001 - retried on the next tick
            _LOGGER.exception("could not apply discharges to the alarm engine")
            return []

    # -- requests from other processes (the CLI) ------------------------------------------

    def apply_request(self, action: str, payload: dict) -> list[AlarmTransition]:
        """One operator action by name (``ack``, ``respond``, ``pause``, ``escalate``,
        ``comment``) with its JSON arguments: ``alarm`` (id), ``actor``, ``origin`` and
        ``answer`` / ``minutes`` / ``roles`` / ``text``."""
        alarm = payload.get("alarm")
        who = {"actor": payload.get("actor", ""), "origin": payload.get("origin", "")}
        if action == "ack":
            return self.acknowledge(_alarm_ref(alarm), **who)
        if action == "respond":
            return self.record_patient_answer(_alarm_ref(alarm), str(payload.get("answer")),
                                              **who)
        if action == "pause":
            minutes = payload.get("minutes")
            duration = None if minutes is None else timedelta(minutes=float(minutes))
            return self.pause_audio(None if alarm is None else _alarm_ref(alarm),
                                    duration=duration, **who)
        if action == "escalate":
            return self.escalate(_alarm_ref(alarm), payload.get("roles"), **who)
        if action == "comment":
            return self.comment(_alarm_ref(alarm), str(payload.get("text", "")), **who)
        raise AlarmActionError(f"unknown alarm action {action!r}; use one of "
                               + ", ".join(REQUEST_ACTIONS))

    def process_requests(self) -> int:
        """Apply the requests other processes queued (the tick calls this); returns how many."""
        try:
            claimed = self._requests.claim()
        except Exception:  # noqa: BLE001 - retried on the next tick
            _LOGGER.exception("could not read the alarm requests")
            return 0
        for request in claimed:
            try:
                transitions = self.apply_request(request.action, request.payload)
                ok, result = True, _request_result(transitions, "station")
            except (AlarmActionError, ValueError, TypeError) as exc:
                ok, result = False, {"error": str(exc), "applied_by": "station"}
            try:
                self._requests.finish(request.id, ok=ok, result=result, at=self.engine_now())
            except Exception:  # noqa: BLE001 - the CLI times out and says so
                _LOGGER.exception("could not record the outcome of alarm request %d",
                                  request.id)
        return len(claimed)

    # -- reads -----------------------------------------------------------------------------

    def engine_now(self) -> datetime:
        """The engine's clock now (the time stamped on actions)."""
        return self.engine.clock()

    def active_alarms(
        self, *, bed_label: str | None = None, patient_id: str | None = None
    ) -> list[Alarm]:
        """Open alarms, highest priority first, then oldest first."""
        with self._lock:
            return self.engine.active_alarms(bed_label=bed_label, patient_id=patient_id)

    def alarm(self, alarm: AlarmRef) -> Alarm | None:
        """An open alarm by database id or key, or None."""
        with self._lock:
            return self.engine.alarm(alarm)

    def escalation(self, alarm: AlarmRef) -> ChainState | None:
        """The alarm's escalation chain in progress (stage, roles notified, next step due)."""
        with self._lock:
            return self.engine.escalation(alarm)

    def audio_pause(self) -> AudioPause | None:
        """The station-wide audio pause in force, if any."""
        with self._lock:
            return self.engine.audio_pause

    def overrides(self, patient_id: str) -> tuple[LimitOverride, ...]:
        """The limit overrides in force for a patient."""
        with self._lock:
            return self.engine.overrides(patient_id)

    def limits_for(self, patient_id: str | None, vital: VitalKind | str) -> VitalLimits | None:
        """The limits in force for a patient's vital (override, else the profile's)."""
        with self._lock:
            return self.engine.limits_for(patient_id, _vital(vital))

    def news2(self, patient_id: str) -> News2Result | None:
        """The patient's NEWS2 now (None when nothing is known of them)."""
        with self._lock:
            return self.engine.news2(patient_id)

    def events(self, alarm_id: int) -> list[AlarmEventRow]:
        """A stored alarm's transitions, oldest first (its audit trail)."""
        return self._store.events(alarm_id)

    def notifications(self, alarm_id: int) -> list[OutboxRow]:
        """A stored alarm's notifications and their delivery state (pending, delivered,
        failed; attempts, next attempt, last error), oldest first."""
        return self._outbox.for_alarm(alarm_id)

    def override_history(self, patient_id: str) -> list[OverrideRow]:
        """Every limit override set for a patient, with who removed it and why."""
        return self._store.override_history(patient_id)

    def notification_failed(
        self, alarm_id: int | None, *, channel: str, recipient: str, error: str
    ) -> list[AlarmTransition]:
        """The outbox gave up on a notification: a ``notification_failed`` event on its alarm
        (if still open) and a technical alarm for the channel."""
        with self._lock:
            return self._handle(self.engine.notification_failed(
                alarm_id, channel=channel, recipient=recipient, error=error
            ))

    def notification_delivered(self, channel: str) -> list[AlarmTransition]:
        """A channel delivered again: its technical alarm resolves."""
        with self._lock:
            return self._handle(self.engine.notification_delivered(channel))

    def report_input(self, name: str, *, up: bool, detail: str = "") -> None:
        """An input went down or came back (technical alarm)."""
        with self._lock:
            self._handle(self.engine.report_input(name, up=up, detail=detail))

    def list_alarms(
        self, *, active_only: bool = False, bed_label: str | None = None, limit: int = 1000
    ) -> list[AlarmRow]:
        """The stored alarms (see :meth:`AlarmStore.list_alarms`)."""
        return self._store.list_alarms(active_only=active_only, bed_label=bed_label, limit=limit)

    # -- internals -------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        while not self._stop.wait(self._tick_interval_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the tick must outlive any one failure
                _LOGGER.exception("alarm tick failed")
            self.sync_discharges()
            self.process_requests()
            for hook in list(self._tick_hooks):
                try:
                    hook()
                except Exception:  # noqa: BLE001 - one hook must not stop the others
                    _LOGGER.exception("alarm tick hook %r failed", hook)

    def _next_rung(self, alarm: AlarmRef) -> list[Role]:
        policy = self.engine.policy.escalation
        if policy is None:
            raise AlarmActionError("escalation is disabled on this station")
        chain = self.engine.escalation(alarm)
        notified = () if chain is None else chain.notified
        for role in policy.ladder:
            if role not in notified:
                return [role]
        raise AlarmActionError("every role has been notified already")

    def _handle(self, transitions: list[AlarmTransition]) -> list[AlarmTransition]:
        """Store (with whatever is left unsaved), then publish; under the lock. Returns
        ``transitions``."""
        raised = _RAISED  # a module constant: an enum member read from its class costs more
        for transition in transitions:
            if transition.kind is raised:
                self.raised_total += 1
        saved = self._save(transitions) if transitions or self._unsaved else []
        listeners = self._listeners
        for transition in transitions if listeners else ():
            alarm_id = transition.alarm.alarm_id
            if alarm_id is None:
                alarm_id = self._ids.get(transition.alarm.key)
                if alarm_id is not None:
                    transition = transition.with_alarm(transition.alarm.with_id(alarm_id))
            for listener in listeners:
                try:
                    listener(transition)
                except Exception:  # noqa: BLE001 - one broken listener must not silence others
                    _LOGGER.exception("alarm listener %r failed", listener)
        marks = self._row_marks
        for transition in saved:
            alarm = transition.alarm
            if alarm.state is _RESOLVED:  # Alarm.is_open, without the property
                self._ids.pop(alarm.key, None)
                marks.pop(alarm.key, None)
            else:
                marks[alarm.key] = (alarm.update_count, alarm.updated_at)
        return transitions

    def refresh_rows(self) -> int:
        """Write the open alarms that changed without a transition since their row was last
        written (readings no worse than the worst: count, value, message, times) to their rows,
        with no event; under the lock. Returns how many. The tick does it every
        ``ROW_REFRESH_INTERVAL_S`` and ``stop`` once more, so the database (a restart,
        ``vitalstation alarms``) is at most that far behind the engine. A failure is logged
        and retried on the next tick."""
        with self._lock:
            self._rows_refreshed_at = time.monotonic()
            ids, marks = self._ids, self._row_marks
            stale = []
            for alarm in self.engine.active_alarms():
                alarm_id = ids.get(alarm.key) if alarm.alarm_id is None else alarm.alarm_id
                if alarm_id is None:
                    continue  # not stored yet: its transitions are waiting (``_unsaved``)
                mark = (alarm.update_count, alarm.updated_at)
                if marks.get(alarm.key) != mark:
                    stale.append(alarm if alarm.alarm_id is not None else alarm.with_id(alarm_id))
            if not stale:
                return 0
            try:
                self._store.refresh(stale)
            except Exception as exc:  # noqa: BLE001 - retried on the next tick
                _LOGGER.error("could not bring %d alarm rows up to date (retried): %s",
                              len(stale), exc)
                self._rows_refreshed_at = None
                return 0
            for alarm in stale:
                marks[alarm.key] = (alarm.update_count, alarm.updated_at)
            return len(stale)

    def _save(self, transitions: list[AlarmTransition]) -> list[AlarmTransition]:
        """Store what is unsaved, then ``transitions``; return what was stored."""
        pending = self._unsaved + transitions
        try:
            messages = self._route(pending)
            inserted = self._store.write(pending, self._ids, messages)
        except Exception as exc:  # noqa: BLE001 - kept and retried, never dropped
            self._unsaved = pending
            self.store_failures += 1
            _LOGGER.error(
                "ALARM TRANSITIONS NOT STORED (%d waiting; retried on the next batch or tick): "
                "%s", len(pending), exc,
            )
            return []
        self._unsaved = []
        self._ids.update(inserted)
        for key, alarm_id in inserted.items():
            try:
                self.engine.record_id(key, alarm_id)
            except UnknownAlarm:
                pass  # raised and resolved within the same call
        return pending

    def _route(self, transitions: list[AlarmTransition]) -> list[list[OutboxMessage]]:
        """The outbox messages of each transition (none without a router). The router is
        called directly; only when it raises is each transition routed again on its own, so
        that the one that failed is logged and the others keep their messages."""
        router = self._router
        if router is None:
            return []
        try:
            return [router(transition) for transition in transitions]
        except Exception:  # noqa: BLE001 - routed one by one below, each failure logged
            return [self._messages(transition) for transition in transitions]

    def _messages(self, transition: AlarmTransition) -> list[OutboxMessage]:
        assert self._router is not None
        try:
            return self._router(transition)
        except Exception:  # noqa: BLE001 - the transition is stored even if routing fails
            _LOGGER.exception("could not route the notifications of %s", transition.alarm.key)
            return []


def patient_answers(service: AlarmService) -> PatientAnswers:
    """The REST receiver's way to the engine (``POST /api/iot/alerts/<id>/response``): the
    answer is recorded for the device's patient, audited as ``patient via <device>`` from
    ``rest:<device>``."""

    def record(alert_id: int, answer: str, device_id: str, patient_id: str | None
               ) -> AnswerRecorded:
        alarm = service.alarm(alert_id)
        if alarm is None:
            raise AlertNotFound(f"No open alarm {alert_id}")
        if patient_id is None or alarm.patient_id != patient_id:
            raise AlertNotYours(
                f"Alarm {alert_id} is not for the patient device {device_id} reports for"
            )
        try:
            service.record_patient_answer(
                alert_id, answer, actor=f"patient via {device_id}", origin=f"rest:{device_id}"
            )
        except AlarmActionError as exc:  # UnknownAlarm too: no chain in progress
            if service.alarm(alert_id) is None:
                raise AlertNotFound(f"No open alarm {alert_id}") from None
            raise AnswerRefused(str(exc)) from None
        chain = service.escalation(alert_id)
        return AnswerRecorded(
            alert_id, answer, "ended" if chain is None else chain.stage.value,
            [] if chain is None else [role.value for role in chain.notified],
        )

    return record


def _alarm_ref(value: object) -> AlarmRef:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AlarmActionError("name the alarm by its id")
    return value


def _request_result(transitions: Sequence[AlarmTransition], applied_by: str) -> dict:
    return {
        "applied_by": applied_by,
        "transitions": [
            {"event": t.kind.value, "alarm_id": t.alarm.alarm_id, "to_state": t.to_state.value,
             "details": dict(t.details)}
            for t in transitions
        ],
    }


def _clinician(actor: str, origin: str, action: str) -> tuple[str, str]:
    """``actor`` and ``origin`` checked; a bedside device may not ``action``."""
    actor, origin = check_actor(actor), check_origin(origin)
    if is_device_origin(origin):
        raise AlarmActionError(f"a bedside device cannot {action}")
    return actor, origin


def _vital(vital: VitalKind | str) -> VitalKind:
    try:
        return vital if isinstance(vital, VitalKind) else VitalKind(vital)
    except ValueError:
        raise AlarmActionError(f"{vital!r} is not a vital sign") from None


def transition_line(transition: AlarmTransition) -> str:
    """``serve``'s log line for one transition: ``ALARM {json}`` (one line, parseable)."""
    data = transition.to_dict()
    data = {"kind": data.pop("event"), **data}
    return "ALARM " + json.dumps(data, default=str, sort_keys=False)


@dataclasses.dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What an action asked from the command line did, and who applied it."""

    ok: bool
    applied_by: str  # "station" (the running station's engine) or "cli" (none was running)
    transitions: list[dict]
    error: str | None = None


def request_action(
    settings: Settings,
    store: Store,
    action: str,
    payload: dict,
    *,
    clock: Clock = utc_now,
    pickup_s: float = REQUEST_PICKUP_S,
    result_s: float = REQUEST_RESULT_S,
) -> RequestOutcome:
    """An operator action from the CLI (``vitalstation alarms ack|respond|pause``).

    Queued for the running station, whose tick applies it to its engine within a second, and
    waited for. When no station takes it within ``pickup_s`` it is withdrawn and applied here,
    to an engine loaded with the open alarms from the database (same rules, same audit).
    """
    requests = AlarmRequestStore(store.engine)
    request_id = requests.submit(action, payload, at=clock())
    pickup_deadline = time.monotonic() + pickup_s
    result_deadline: float | None = None
    while True:
        row = requests.get(request_id)
        if row is None:
            raise RuntimeError(f"alarm request {request_id} vanished from the database")
        if row.status in (RequestStatus.DONE, RequestStatus.FAILED):
            result = row.result or {}
            return RequestOutcome(
                ok=row.status == RequestStatus.DONE, applied_by=result.get("applied_by", ""),
                transitions=result.get("transitions", []), error=result.get("error"),
            )
        now = time.monotonic()
        if row.status == RequestStatus.PENDING and now >= pickup_deadline:
            if requests.withdraw(request_id, at=clock()):
                break  # no station running: apply it here
            continue  # a station claimed it just now
        if row.status == RequestStatus.CLAIMED:
            result_deadline = result_deadline or now + result_s
            if now >= result_deadline:
                return RequestOutcome(
                    False, "station", [], "the station took the request but did not answer "
                    "in time; check `vitalstation alarms`",
                )
        time.sleep(REQUEST_POLL_S)
    service = AlarmService.from_settings(settings, store, clock=clock)
    try:
        transitions = service.apply_request(action, payload)
    except (AlarmActionError, ValueError, TypeError) as exc:
        return RequestOutcome(False, "cli", [], str(exc))
    if service.unsaved:
        raise RuntimeError("the action could not be stored (see the log)")
    result = _request_result(transitions, "cli")
    return RequestOutcome(True, "cli", result["transitions"])


def list_alarms(
    store: Store, *, active_only: bool = False, bed_label: str | None = None, limit: int = 1000
) -> list[AlarmRow]:
    """The stored alarms, newest first (``vitalstation alarms``)."""
    return AlarmStore(store.engine).list_alarms(
        active_only=active_only, bed_label=bed_label, limit=limit
    )
