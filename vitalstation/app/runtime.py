"""The station runtime: builds the store, pipeline and inputs from settings; starts and stops
them in order. The window and ``vitalstation serve`` both run exactly this.

Start order: store (migrated) → alarm service (open alarms resumed) → notification outbox →
pipeline → inputs. Stop order is the reverse, each step with a timeout: inputs stop receiving →
the pipeline stores (and evaluates) everything already queued → the alarm tick stops → the
outbox stops delivering (what is left waits in the database) → the store closes. So a reading
an input accepted before the stop is stored, and nothing is acknowledged that was not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from vitalstation.app.alarm_settings_audit import record_alarm_settings
from vitalstation.app.alarms import AlarmListener, AlarmService, patient_answers
from vitalstation.app.credentials import database_url
from vitalstation.app.inbox import make_filedrop_input
from vitalstation.app.keys import make_rest_input
from vitalstation.app.notifications import Notifications
from vitalstation.config.endpoints import remove_live_endpoints, write_live_endpoints
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.base import Input, InputHealth, InputState
from vitalstation.ingest.mqtt import mqtt_input_factories
from vitalstation.ingest.rest_alerts import AlertResponses
from vitalstation.pipeline.core import Pipeline, PipelineStats
from vitalstation.storage.store import Store

_LOGGER = logging.getLogger(__name__)

INPUT_STOP_TIMEOUT_S = 5.0
PIPELINE_DRAIN_TIMEOUT_S = 30.0

InputFactory = Callable[[Settings, Pipeline, Store], Input | None]
"""Builds one input from the settings, or returns None when that input is disabled."""

# The input each default factory builds, for restarting one that its settings had disabled
# (a factory may also say so itself with an ``input_name`` attribute).
_FACTORY_INPUTS = {
    "make_rest_input": "rest",
    "make_filedrop_input": "filedrop",
    "make_kinesis_input": "kinesis",
    "embedded_broker": "mqtt-broker",
    "mqtt_input": "mqtt",
}


def make_kinesis_input(settings: Settings, pipeline: Pipeline, store: Store) -> Input | None:
    """The Kinesis input with its checkpoints in the store, when ``[kinesis] enabled``."""
    if not settings.kinesis.enabled:
        return None
    # Imported here: boto3 costs a quarter of a second to import, for stations that use it.
    from vitalstation.app.credentials import aws_credentials
    from vitalstation.ingest.kinesis import KinesisInput, boto3_client_factory
    from vitalstation.storage.checkpoints import CheckpointStore

    factory = boto3_client_factory(settings.kinesis, aws_credentials(settings))
    return KinesisInput(
        settings.kinesis, pipeline, CheckpointStore(store.engine), client_factory=factory
    )


def default_input_factories() -> list[InputFactory]:
    """The inputs this version of the station has, in start order.

    The MQTT pair is the embedded broker then the MQTT input: inputs stop in reverse order, so
    the broker starts before the input and stops after it.
    """
    return [make_rest_input, make_filedrop_input, make_kinesis_input, *mqtt_input_factories()]


@dataclass(frozen=True, slots=True)
class RuntimeHealth:
    """Everything the status bar shows: the store, the pipeline's counters, every input."""

    store: str
    pipeline: PipelineStats
    inputs: tuple[InputHealth, ...]


class Runtime:
    """One station: store, pipeline and inputs, started and stopped together.

    Not thread-safe itself: start and stop it from one thread (the GUI's or ``serve``'s).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        input_factories: Sequence[InputFactory] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._input_factories = (
            default_input_factories() if input_factories is None else list(input_factories)
        )
        self._store: Store | None = None
        self._pipeline: Pipeline | None = None
        self._inputs: list[Input] = []
        self._failed_inputs: list[InputHealth] = []
        # Which factory built each input (by its index) and the input name of each factory,
        # so that one input can be restarted in place (``restart_inputs``).
        self._slot_of: dict[int, int] = {}
        self._slot_names: dict[int, str] = {}
        self._restart_lock = threading.Lock()
        self._alarms: AlarmService | None = None
        self._notifications: Notifications | None = None
        self._alarm_listeners: list[AlarmListener] = []

    @property
    def clock(self) -> Clock:
        """The station's clock (injected in tests)."""
        return self._clock

    @property
    def store(self) -> Store:
        """The open store (after :meth:`start`)."""
        if self._store is None:
            raise RuntimeError("runtime not started")
        return self._store

    @property
    def pipeline(self) -> Pipeline:
        """The running pipeline (after :meth:`start`)."""
        if self._pipeline is None:
            raise RuntimeError("runtime not started")
        return self._pipeline

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop`. A window's timer can still fire after
        the station stopped, while the window closes: it checks this before asking for parts."""
        return self._alarms is not None

    @property
    def alarms(self) -> AlarmService:
        """The alarm engine's service (after :meth:`start`)."""
        if self._alarms is None:
            raise RuntimeError("runtime not started")
        return self._alarms

    @property
    def notifications(self) -> Notifications:
        """The notification outbox (after :meth:`start`); the window registers for station
        notifications with ``notifications.station.add_listener``."""
        if self._notifications is None:
            raise RuntimeError("runtime not started")
        return self._notifications

    def add_alarm_listener(self, listener: AlarmListener) -> None:
        """Receive every alarm transition (registered before or after :meth:`start`)."""
        self._alarm_listeners.append(listener)
        if self._alarms is not None:
            self._alarms.add_listener(listener)

    @property
    def inputs(self) -> tuple[Input, ...]:
        """The inputs that started."""
        return tuple(self._inputs)

    def start(self) -> None:
        """Open the store, start the pipeline, then each enabled input.

        A store that cannot be opened stops the start (``StoreUnavailable``). An input that
        cannot start is logged and shown as down; the others run: one broken input must not
        take the ward's other inputs with it.
        """
        started = time.monotonic()
        self._store = Store.open(database_url(self.settings), background_checkpoints=True)
        self._alarms = AlarmService.from_settings(self.settings, self._store, clock=self._clock)
        for what, old, new in record_alarm_settings(self._store, self.settings,
                                                    clock=self._clock):
            _LOGGER.warning("alarm setting %s changed outside Settings (settings file or "
                            "environment): %s -> %s; audited", what, old, new)
        for listener in self._alarm_listeners:
            self._alarms.add_listener(listener)
        self._notifications = Notifications.from_settings(
            self.settings, self._store, self._alarms, clock=self._clock
        )
        self._pipeline = Pipeline(self._store.writer, clock=self._clock)
        self._pipeline.subscribe(self._alarms)
        self._pipeline.start()
        self._alarms.watch_inputs(self._input_health)
        self._alarms.start()
        self._notifications.start()
        for index in range(len(self._input_factories)):
            self._start_input(index)
        self._publish_endpoints()
        _LOGGER.info(
            "station %r started in %.0f ms: store %s, inputs: %s",
            self.settings.station.name,
            (time.monotonic() - started) * 1000,
            self._store.description,
            ", ".join(i.name for i in self._inputs) or "none",
        )

    def stop(self) -> bool:
        """Stop inputs, drain the pipeline, close the store. True if everything was stored."""
        drained = True
        remove_live_endpoints(self.settings.home)
        for input_ in reversed(self._inputs):
            try:
                input_.stop(INPUT_STOP_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - keep stopping the rest
                _LOGGER.exception("input %s did not stop cleanly", input_.name)
        self._inputs.clear()
        if self._pipeline is not None:
            drained = self._pipeline.stop(PIPELINE_DRAIN_TIMEOUT_S)
            if not drained:
                _LOGGER.error("the pipeline did not drain within %.0f s", PIPELINE_DRAIN_TIMEOUT_S)
            self._pipeline = None
        if self._alarms is not None:
            self._alarms.stop()
            self._alarms = None
        if self._notifications is not None:
            self._notifications.stop()
            self._notifications = None
        if self._store is not None:
            if drained:
                self._store.close()
            else:
                # The worker may still be committing: closing under it would abort a batch.
                # Nothing it holds was acknowledged; the process exit releases the database.
                _LOGGER.error("store left open: the pipeline is still writing")
            self._store = None
        return drained

    def _start_input(self, index: int) -> None:
        """Build and start the input of factory ``index``; a failure is kept as DOWN health.

        The lists are replaced, never changed in place, so that ``health`` on another thread
        always sees a whole list.
        """
        factory = self._input_factories[index]
        input_: Input | None = None
        try:
            input_ = factory(self.settings, self.pipeline, self.store)
            if input_ is None:
                return
            self._slot_names[index] = input_.name
            if hasattr(getattr(input_, "api", None), "handle"):  # the REST receiver
                input_.api.alert_responses = AlertResponses(patient_answers(self.alarms))
            input_.start()
        except Exception as exc:  # noqa: BLE001 - reported, and the other inputs go on
            name = getattr(input_, "name", None) or self._factory_name(index)
            self._slot_names[index] = name
            _LOGGER.error("input %s could not start: %s", name, exc)
            self._failed_inputs = [
                *self._failed_inputs, InputHealth(name, InputState.DOWN, f"could not start: {exc}")
            ]
            return
        self._slot_of[id(input_)] = index
        self._inputs = sorted(
            [*self._inputs, input_], key=lambda i: self._slot_of.get(id(i), len(self._slot_of))
        )

    def _factory_name(self, index: int) -> str:
        factory = self._input_factories[index]
        name = getattr(factory, "input_name", None) or _FACTORY_INPUTS.get(
            getattr(factory, "__name__", ""), ""
        )
        return self._slot_names.get(index) or name or getattr(factory, "__name__", "input")

    def restart_inputs(self, names: Iterable[str], settings: Settings | None = None) -> list[str]:
        """Restart the inputs called ``names`` with ``settings`` (now the runtime's settings);
        every other input keeps running, untouched.

        Named inputs stop in reverse start order, then start again in start order (the
        embedded broker before the MQTT input). An input its new settings disable stays
        stopped; one they enable starts. Returns the names of the inputs running afterwards.
        Blocks while inputs stop (up to ``INPUT_STOP_TIMEOUT_S`` each): not on the GUI thread.
        """
        wanted = set(names)
        with self._restart_lock:
            if settings is not None:
                self.settings = settings
            slots = [i for i in range(len(self._input_factories))
                     if self._factory_name(i) in wanted]
            for input_ in reversed(self._inputs):
                if self._slot_of.get(id(input_)) in slots:
                    self._inputs = [i for i in self._inputs if i is not input_]
                    self._slot_of.pop(id(input_), None)
                    try:
                        input_.stop(INPUT_STOP_TIMEOUT_S)
                    except Exception:  # noqa: BLE001 - its replacement still starts
                        _LOGGER.exception("input %s did not stop cleanly", input_.name)
            self._failed_inputs = [h for h in self._failed_inputs if h.name not in wanted]
            for index in slots:
                self._start_input(index)
            running = [i.name for i in self._inputs if self._slot_of.get(id(i)) in slots]
            self._publish_endpoints()
        _LOGGER.info("inputs restarted with new settings: %s (running: %s)",
                     ", ".join(sorted(wanted)), ", ".join(running) or "none")
        return running

    def restart_input(self, name: str, settings: Settings | None = None) -> InputHealth | None:
        """Restart one input (see :meth:`restart_inputs`); its health afterwards, or None when
        its settings disable it."""
        self.restart_inputs([name], settings)
        for health in self._input_health():
            if health.name == name:
                return health
        return None

    def _publish_endpoints(self) -> None:
        """Tell tools aimed at this data home (the simulator) the ports really in use: the
        embedded broker or a demo's REST receiver may have had to take free ones."""
        live: dict[str, str] = {}
        for input_ in self._inputs:
            port = getattr(input_, "actual_port", None) or getattr(input_, "port", None)
            if input_.name == "mqtt-broker" and port:
                live["broker_port"] = str(port)
            elif input_.name == "rest" and port:
                live["rest_port"] = str(port)
        try:
            write_live_endpoints(self.settings.home, live)
        except OSError as exc:
            _LOGGER.warning("could not publish the station's live ports in %s: %s",
                            self.settings.home, exc)

    def _input_health(self) -> list[InputHealth]:
        return [i.health() for i in tuple(self._inputs)] + list(self._failed_inputs)

    def health(self) -> RuntimeHealth:
        """A snapshot for the status bar and ``serve``'s periodic log line."""
        return RuntimeHealth(
            store=self.store.description,
            pipeline=self.pipeline.stats(),
            inputs=tuple(i.health() for i in self._inputs) + tuple(self._failed_inputs),
        )
