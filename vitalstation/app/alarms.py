"""The alarm engine wired into the station: fed by the pipeline, ticked, stored, published.

:class:`AlarmService` owns the one :class:`~vitalstation.alarms.AlarmEngine`. Every engine call
goes through one lock, because three threads reach it: the pipeline thread (each committed
batch, as a pipeline subscriber), the tick thread (once a second: delays, no data, pause expiry,
escalation timeouts) and the operators' threads (window, CLI, REST). The transitions of each
call are stored in one short transaction (:class:`~vitalstation.storage.alarms.AlarmStore`) and
then handed to every listener (``serve``'s log line, the window's signal).

**No alarm is ever dropped.** A transition that could not be stored is logged as an error, kept,
and stored first on the next batch or tick; listeners get it at once all the same. A listener
that raises is logged and the others still run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from vitalstation.alarms import (
    AlarmEngine,
    AlarmRef,
    AlarmTransition,
    AttributedReading,
    TransitionKind,
    UnknownAlarm,
)
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.pipeline.types import StoredReading
from vitalstation.storage.alarms import AlarmRow, AlarmStore
from vitalstation.storage.store import Store

_LOGGER = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0

AlarmListener = Callable[[AlarmTransition], None]
"""Receives each alarm transition, in order (on the pipeline, tick or operator thread)."""

InputStates = Callable[[], Iterable[InputHealth]]
"""The inputs' health, polled by the tick (a DOWN input for too long is a technical alarm)."""


class AlarmService:
    """The engine, its lock, its tick thread, its store and its listeners."""

    def __init__(
        self,
        engine: AlarmEngine,
        alarm_store: AlarmStore,
        *,
        tick_interval_s: float = TICK_INTERVAL_S,
    ) -> None:
        self.engine = engine
        self._store = alarm_store
        self._lock = threading.RLock()
        self._listeners: list[AlarmListener] = []
        self._ids: dict[str, int] = {}  # key -> row id of the alarms stored and still open
        self._unsaved: list[AlarmTransition] = []
        self._tick_interval_s = tick_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._input_states: InputStates | None = None
        self.raised_total = 0
        self.store_failures = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, clock: Clock = utc_now
    ) -> AlarmService:
        """The ``[alarms]`` profile's engine, resumed from the alarms open in ``store``."""
        service = cls(
            AlarmEngine(settings.alarms.profile, clock=clock), AlarmStore(store.engine)
        )
        service.resume()
        return service

    # -- lifecycle -------------------------------------------------------------------------

    def resume(self) -> None:
        """Take up the alarms (and escalation chains) left open in the database."""
        snapshot = self._store.load_snapshot()
        with self._lock:
            self.engine.restore(snapshot)
            for alarm in snapshot.alarms:
                if alarm.alarm_id is not None:
                    self._ids[alarm.key] = alarm.alarm_id
        if snapshot.alarms:
            _LOGGER.info("resumed %d open alarms from the database", len(snapshot.alarms))

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

    @property
    def unsaved(self) -> int:
        """Transitions waiting to be stored (after a database failure)."""
        with self._lock:
            return len(self._unsaved)

    # -- the pipeline subscriber -----------------------------------------------------------

    def __call__(self, stored: Sequence[StoredReading]) -> dict[int, int]:
        """A committed batch: evaluate it; return ``{index: alarms raised}`` for the pipeline."""
        readings = [
            AttributedReading.from_reading(
                item.reading,
                attribution=str(item.result.attribution or "unknown_device"),
                patient_id=item.result.patient_id,
                bed_label=item.result.bed_label,
                kinds=item.result.new_kinds,
            )
            for item in stored
        ]
        with self._lock:
            transitions = self.engine.process(readings)
            self._handle(transitions)
        return _raised_by_reading(readings, transitions)

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
            return transitions

    def acknowledge(self, alarm: AlarmRef, *, actor: str, origin: str) -> list[AlarmTransition]:
        """A clinician acknowledges one alarm; stored and published like every transition."""
        with self._lock:
            transitions = self.engine.acknowledge(alarm, actor=actor, origin=origin)
            self._handle(transitions)
            return transitions

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

    def _handle(self, transitions: list[AlarmTransition]) -> None:
        """Store (with whatever is left unsaved), then publish; under the lock."""
        self.raised_total += sum(1 for t in transitions if t.kind is TransitionKind.RAISED)
        saved = self._save(transitions) if transitions or self._unsaved else []
        for transition in transitions:
            alarm_id = transition.alarm.alarm_id
            if alarm_id is None:
                alarm_id = self._ids.get(transition.alarm.key)
                if alarm_id is not None:
                    transition = dataclasses.replace(
                        transition,
                        alarm=dataclasses.replace(transition.alarm, alarm_id=alarm_id),
                    )
            for listener in self._listeners:
                try:
                    listener(transition)
                except Exception:  # noqa: BLE001 - one broken listener must not silence others
                    _LOGGER.exception("alarm listener %r failed", listener)
        for transition in saved:
            if not transition.alarm.is_open:
                self._ids.pop(transition.alarm.key, None)

    def _save(self, transitions: list[AlarmTransition]) -> list[AlarmTransition]:
        """Store what is unsaved, then ``transitions``; return what was stored."""
        pending = self._unsaved + transitions
        try:
            inserted = self._store.write(pending, self._ids)
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
                self.engine.assign_id(key, alarm_id)
            except UnknownAlarm:
                pass  # raised and resolved within the same call
        return pending


def _raised_by_reading(
    readings: Sequence[AttributedReading], transitions: Sequence[AlarmTransition]
) -> dict[int, int]:
    """Which reading raised each new alarm: the batch's last reading of the alarm's device
    measured at the alarm's time, else the device's last reading in the batch."""
    raised: dict[int, int] = {}
    for transition in transitions:
        if transition.kind is not TransitionKind.RAISED:
            continue
        alarm = transition.alarm
        exact = last = None
        for index, reading in enumerate(readings):
            if reading.device_id == alarm.device_id:
                last = index
                if alarm.measured_at is not None and reading.measured_at == alarm.measured_at:
                    exact = index
        index = exact if exact is not None else last
        if index is not None:
            raised[index] = raised.get(index, 0) + 1
    return raised


def transition_line(transition: AlarmTransition) -> str:
    """``serve``'s log line for one transition: ``ALARM {json}`` (one line, parseable)."""
    data = transition.to_dict()
    data = {"kind": data.pop("event"), **data}
    return "ALARM " + json.dumps(data, default=str, sort_keys=False)


def ack_offline(
    settings: Settings, store: Store, alarm_id: int, *, actor: str, clock: Clock = utc_now
) -> list[AlarmTransition]:
    """``vitalstation alarms ack ID`` with the engine's semantics, from the CLI: the open alarms
    are loaded into an engine, acknowledged there, and the transitions stored (origin ``cli``).

    Raises ``UnknownAlarm`` when no open alarm has that id.
    """
    service = AlarmService.from_settings(settings, store, clock=clock)
    transitions = service.acknowledge(alarm_id, actor=actor, origin="cli")
    if service.unsaved:
        raise RuntimeError("the acknowledgement could not be stored (see the log)")
    return transitions


def list_alarms(
    store: Store, *, active_only: bool = False, bed_label: str | None = None, limit: int = 1000
) -> list[AlarmRow]:
    """The stored alarms, newest first (``vitalstation alarms``)."""
    return AlarmStore(store.engine).list_alarms(
        active_only=active_only, bed_label=bed_label, limit=limit
    )
