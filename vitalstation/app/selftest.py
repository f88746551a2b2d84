"""``vitalstation --self-test``: proves an installation works end to end, in seconds.

It runs the real station on a throwaway data home (SQLite, the embedded MQTT broker and the
REST receiver on free loopback ports, the file-drop inbox), registers a patient, a bed, three
devices and a device key, then sends readings the way devices do — MQTT through the broker,
REST with the key, a file in the inbox — and checks each one was acknowledged *and* stored. An
abnormal reading must raise an alarm that is stored too. Last, the station window is rendered
offscreen to a PNG (the ``render`` callable, handed down from the command line because this
layer may not import Qt). Every step prints its name, its time and what it checked; the first
failing step stops the run and is named with its reason (exit code 1).

Nothing of the user's own station is touched: the data home is new, and the environment's
``VITALSTATION_*`` overrides are ignored (a store URL there could point at the ward's
database). The same code runs from the source tree and from the PyInstaller bundle, which is
why the bundle's CI step is just ``vitalstation --self-test``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from vitalstation import __version__
from vitalstation.alarms import AlarmKind, AlarmTransition, TransitionKind
from vitalstation.app.keys import key_store
from vitalstation.app.runtime import Runtime
from vitalstation.config.home import ensure_home
from vitalstation.config.settings import Settings, load_settings
from vitalstation.ingest.base import InputState

__all__ = [
    "SELF_TEST_ENVIRONMENT",
    "RenderWindow",
    "SelfTestFailure",
    "StepResult",
    "StepSkipped",
    "run_self_test",
]

_LOGGER = logging.getLogger(__name__)

EXIT_PASSED = 0
EXIT_FAILED = 1

ACTOR = "self-test"
PATIENT_ID = "P-SELFTEST"
BED_LABEL = "SELFTEST"
MQTT_DEVICE = "SELFTEST-MQTT"
REST_DEVICE = "SELFTEST-REST"
FILE_DEVICE = "SELFTEST-FILE"
# The abnormal reading: far above every profile's high heart-rate limit (a high-priority alarm).
ABNORMAL_HEART_RATE = 165
ALARM_CONDITION = "heart_rate.high"
SCREENSHOT_NAME = "station-window.png"

# How long one step may wait for the station (acknowledgement, archive, alarm). Generous: a CI
# machine under load can be slow, and a passing run never waits this long.
STEP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.05

# The self-test's own configuration, replacing the environment's: free ports (the default
# broker port 1883 may be taken by a real broker), no Kinesis, no cloud sink.
SELF_TEST_ENVIRONMENT: Mapping[str, str] = {
    "VITALSTATION_STATION__NAME": "VitalStation self-test",
    "VITALSTATION_REST__PORT": "0",
    "VITALSTATION_EMBEDDED_BROKER__PORT": "0",
    "VITALSTATION_KINESIS__ENABLED": "false",
    "VITALSTATION_DYNAMODB__ENABLED": "false",
    # Each run has a fresh data home: a keyring source would leave a new key-hashing secret in
    # the user's real keyring every time. Without the secret the keys are hashed with SHA-256.
    "VITALSTATION_SECRETS__SOURCE": "environment",
}
# The inputs that must be up before any reading is sent.
REQUIRED_INPUTS = ("rest", "filedrop", "mqtt-broker", "mqtt")


class SelfTestFailure(Exception):
    """A step found something wrong; the message says what, for the operator."""


class StepSkipped(Exception):  # noqa: N818 - a state, not an error of the run
    """A step that could not run in this call (reported as ``skip`` with the reason)."""


RenderWindow = Callable[[Runtime, Path], str]
"""Renders the station window of ``runtime`` offscreen into the PNG path; returns what it
checked. Raises :class:`SelfTestFailure` (or any exception) when it cannot."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step's outcome: ``ok``, ``skip`` or ``FAIL``, its time, and what it checked."""

    name: str
    status: str
    seconds: float
    detail: str


@dataclass
class _Context:
    """What the steps share: the data home, the running station, what it raised."""

    home: Path
    overrides: Mapping[str, str]
    render: RenderWindow | None
    timeout_s: float
    settings: Settings | None = None
    runtime: Runtime | None = None
    rest_key: str = ""
    transitions: list[AlarmTransition] = field(default_factory=list)
    transitions_changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def station(self) -> Runtime:
        assert self.runtime is not None, "the start step runs first"
        return self.runtime

    def on_transition(self, transition: AlarmTransition) -> None:
        """Alarm listener (called on the pipeline or alarm-tick thread)."""
        with self.transitions_changed:
            self.transitions.append(transition)
            self.transitions_changed.notify_all()


def run_self_test(
    out: TextIO,
    *,
    home: Path | None = None,
    render: RenderWindow | None = None,
    overrides: Mapping[str, str] | None = None,
    timeout_s: float = STEP_TIMEOUT_S,
) -> int:
    """Run every step, printing each to ``out``; return 0 when all passed, 1 otherwise.

    ``home``: an empty (or new) folder to run in, kept afterwards; by default a temporary
    folder, removed after a pass and kept (and named) after a failure, for diagnosis.
    ``render``: the window step (the command line hands down the Qt one); None skips it,
    saying so. ``overrides``: extra ``VITALSTATION_*`` settings on top of
    :data:`SELF_TEST_ENVIRONMENT` (tests use them to break a step on purpose).
    """
    started = time.monotonic()
    temporary = home is None
    try:
        home = _prepare_home(home)
    except SelfTestFailure as exc:
        print(f"self-test FAILED before it started: {exc}", file=out, flush=True)
        return EXIT_FAILED
    context = _Context(
        home=home,
        overrides={**SELF_TEST_ENVIRONMENT, **(overrides or {})},
        render=render,
        timeout_s=timeout_s,
    )
    print(f"VitalStation {__version__} self-test in {home}", file=out, flush=True)
    results: list[StepResult] = []
    try:
        for name, step in _STEPS:
            result = _run_step(name, step, context)
            results.append(result)
            _print_result(result, out)
            if result.status == "FAIL":
                break
    finally:
        # Stopped even after a failure (it stops what did start), and reported like a step.
        if context.runtime is not None:
            stop = _run_step("stop", _stop, context)
            context.runtime = None
            results.append(stop)
            _print_result(stop, out)
    total = time.monotonic() - started
    failed = next((r for r in results if r.status == "FAIL"), None)
    if failed is None:
        skipped = [r.name for r in results if r.status == "skip"]
        note = f" ({len(skipped)} skipped: {', '.join(skipped)})" if skipped else ""
        if temporary:
            shutil.rmtree(home, ignore_errors=True)
            note += "; temporary data home removed (run with --home DIR to keep it)"
        print(f"self-test passed: {len(results)} steps in {total:.1f} s{note}", file=out,
              flush=True)
        return EXIT_PASSED
    print(
        f"self-test FAILED at step {failed.name!r}: {failed.detail} "
        f"(data home kept for diagnosis: {home})",
        file=out, flush=True,
    )
    return EXIT_FAILED


def _prepare_home(home: Path | None) -> Path:
    if home is None:
        return Path(tempfile.mkdtemp(prefix="vitalstation-selftest-"))
    home = Path(home).expanduser().absolute()
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        # Never a real data home: the self-test registers a test patient and test readings.
        raise SelfTestFailure(f"{home} is not an empty folder; give a new or empty one")
    return home


def _run_step(name: str, step: Callable[[_Context], str], context: _Context) -> StepResult:
    started = time.monotonic()
    try:
        detail = step(context)
        status = "ok"
    except StepSkipped as exc:
        detail, status = str(exc), "skip"
    except SelfTestFailure as exc:
        detail, status = str(exc), "FAIL"
    except Exception as exc:  # noqa: BLE001 - every failure is reported with its step
        detail, status = f"{type(exc).__name__}: {exc}", "FAIL"
        _LOGGER.debug("self-test step %r failed", name, exc_info=True)  # shown with -v
    return StepResult(name, status, time.monotonic() - started, detail)


def _print_result(result: StepResult, out: TextIO) -> None:
    print(f"  {result.status:<4}  {result.name:<13} {result.seconds:6.2f} s  {result.detail}",
          file=out, flush=True)


# -- the steps, in order -------------------------------------------------------------------


def _data_home(context: _Context) -> str:
    home = ensure_home(context.home)
    context.settings = load_settings(home, context.overrides)
    return f"{home} (SQLite {context.settings.store_url.rsplit('/', 1)[-1]})"


def _start(context: _Context) -> str:
    assert context.settings is not None
    runtime = Runtime(context.settings)
    runtime.add_alarm_listener(context.on_transition)
    context.runtime = runtime
    runtime.start()
    health = {h.name: h for h in runtime.health().inputs}
    missing = [name for name in REQUIRED_INPUTS if name not in health]
    if missing:
        raise SelfTestFailure(f"input(s) {', '.join(missing)} not configured")
    deadline = time.monotonic() + context.timeout_s
    while True:
        health = {h.name: h for h in runtime.health().inputs}
        down = [health[n] for n in REQUIRED_INPUTS if health[n].state is not InputState.UP]
        if not down:
            break
        if any(h.state is InputState.DOWN for h in down) or time.monotonic() > deadline:
            raise SelfTestFailure("; ".join(f"input {h.name} is {h.state.value}: {h.detail}"
                                            for h in down))
        time.sleep(POLL_INTERVAL_S)
    return f"store {runtime.store.description}; inputs up: {', '.join(REQUIRED_INPUTS)}"


def _register(context: _Context) -> str:
    runtime = context.station
    registry = runtime.store.registry
    at = runtime.clock() - timedelta(minutes=1)
    registry.add_patient(PATIENT_ID, "Self-test patient", actor=ACTOR, at=at)
    registry.add_bed(BED_LABEL, "self-test", actor=ACTOR, at=at)
    registry.admit(PATIENT_ID, BED_LABEL, actor=ACTOR, at=at)
    for device_id in (MQTT_DEVICE, REST_DEVICE, FILE_DEVICE):
        registry.add_device(device_id, name="self-test", device_type="simulator", actor=ACTOR,
                            at=at)
        registry.assign_device(device_id, bed_label=BED_LABEL, actor=ACTOR, at=at)
    context.rest_key = key_store(runtime.store, context.settings).create(
        REST_DEVICE, name="self-test", actor=ACTOR, at=at
    ).key
    beds = {b.label: b.patient_id for b in registry.list_beds()}
    if beds.get(BED_LABEL) != PATIENT_ID:
        raise SelfTestFailure(f"bed {BED_LABEL} lists patient {beds.get(BED_LABEL)!r}")
    return f"patient {PATIENT_ID} in bed {BED_LABEL}, 3 devices, 1 REST key"


def _mqtt(context: _Context) -> str:
    from simulator.transports.base import DEFAULT_TOPIC_PREFIX
    from simulator.transports.mqtt import MqttTransport

    broker = _input(context, "mqtt-broker")
    url = f"mqtt://127.0.0.1:{broker.actual_port}"  # type: ignore[attr-defined]
    measured = _now(context)
    payload = _bedside(MQTT_DEVICE, measured, "HeartRate", 72)
    transport = MqttTransport(url, topic_prefix=DEFAULT_TOPIC_PREFIX,
                              connect_timeout=context.timeout_s, ack_timeout=context.timeout_s)
    _deliver(context, transport, MQTT_DEVICE, payload, measured)
    _expect_stored(context, MQTT_DEVICE, "mqtt", {"heart_rate": 72})
    return f"HeartRate 72 published to {url}, PUBACK received, stored"


def _rest(context: _Context) -> str:
    from simulator.transports.rest import RestTransport

    url = _input(context, "rest").url  # type: ignore[attr-defined]
    measured = _now(context)
    payload = _inhealth(REST_DEVICE, measured, heart_rate=74, oxygen_saturation=97)
    transport = RestTransport(url, {REST_DEVICE: context.rest_key}, timeout=context.timeout_s)
    _deliver(context, transport, REST_DEVICE, payload, measured)
    _expect_stored(context, REST_DEVICE, "rest", {"heart_rate": 74, "oxygen_saturation": 97})
    return f"heart rate and SpO2 posted to {url} with the device key, HTTP 200, stored"


def _file_drop(context: _Context) -> str:
    from simulator.transports.file import FileTransport

    folders = _input(context, "filedrop").folders  # type: ignore[attr-defined]
    measured = _now(context)
    payload = _inhealth(FILE_DEVICE, measured, heart_rate=70, temperature=36.8,
                        temperature_unit="C")
    transport = FileTransport(folders.inbox)
    _deliver(context, transport, FILE_DEVICE, payload, measured)
    _wait_for(
        context,
        lambda: not any(folders.inbox.glob("*.json")),
        lambda: f"the file is still in {folders.inbox}; "
                f"{_input(context, 'filedrop').health().detail}",
    )
    failed = sorted(p.name for p in folders.failed.glob("*.error.json"))
    if failed:
        reason = json.loads((folders.failed / failed[0]).read_text(encoding="utf-8"))
        raise SelfTestFailure(f"the file was refused ({failed[0]}): {reason}")
    archived = list(folders.archive.rglob("*.json"))
    if len(archived) != 1:
        raise SelfTestFailure(f"expected 1 archived file in {folders.archive}, "
                              f"found {len(archived)}")
    _expect_stored(context, FILE_DEVICE, "file", {"heart_rate": 70, "temperature": 36.8})
    return f"file dropped in {folders.inbox}, stored, archived as " \
           f"{archived[0].relative_to(folders.archive)}"


def _alarm(context: _Context) -> str:
    from simulator.transports.base import DEFAULT_TOPIC_PREFIX
    from simulator.transports.mqtt import MqttTransport

    raised = [t for t in _raised(context) if t.alarm.kind is AlarmKind.LIMIT]
    if raised:
        raise SelfTestFailure(
            "normal readings raised alarms: " + ", ".join(t.alarm.condition for t in raised)
        )
    broker = _input(context, "mqtt-broker")
    url = f"mqtt://127.0.0.1:{broker.actual_port}"  # type: ignore[attr-defined]
    measured = _now(context)
    payload = _bedside(MQTT_DEVICE, measured, "HeartRate", ABNORMAL_HEART_RATE)
    transport = MqttTransport(url, topic_prefix=DEFAULT_TOPIC_PREFIX,
                              connect_timeout=context.timeout_s, ack_timeout=context.timeout_s)
    _deliver(context, transport, MQTT_DEVICE, payload, measured)

    def heart_rate_alarm() -> AlarmTransition | None:
        return next((t for t in _raised(context) if t.alarm.condition == ALARM_CONDITION
                     and t.alarm.bed_label == BED_LABEL), None)

    deadline = time.monotonic() + context.timeout_s
    with context.transitions_changed:
        while (transition := heart_rate_alarm()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = ", ".join(f"{t.kind.value} {t.alarm.condition}"
                                 for t in context.transitions) or "none"
                raise SelfTestFailure(
                    f"heart rate {ABNORMAL_HEART_RATE} raised no {ALARM_CONDITION} alarm "
                    f"within {context.timeout_s:g} s (transitions seen: {seen})"
                )
            context.transitions_changed.wait(left)
    stored = {
        row.condition: row for row in context.station.alarms.list_alarms(
            active_only=True, bed_label=BED_LABEL)
    }
    row = stored.get(ALARM_CONDITION)
    if row is None:
        raise SelfTestFailure(f"the {ALARM_CONDITION} alarm was raised but not stored "
                              f"(stored: {', '.join(stored) or 'none'})")
    alarm = transition.alarm
    return (f"HeartRate {ABNORMAL_HEART_RATE} over MQTT raised alarm {row.id} "
            f"({alarm.priority.value} priority: {alarm.message}), stored")


def _window(context: _Context) -> str:
    if context.render is None:
        raise StepSkipped("no window renderer was given to this run")
    png = context.home / SCREENSHOT_NAME
    detail = context.render(context.station, png)
    if not png.is_file() or png.stat().st_size == 0:
        raise SelfTestFailure(f"the renderer wrote no image at {png}")
    return detail


def _stop(context: _Context) -> str:
    runtime = context.station
    stored = runtime.health().pipeline.stored
    if not runtime.stop():
        raise SelfTestFailure("the pipeline did not store everything queued before stopping")
    return f"stopped cleanly; {stored} readings stored in all"


_STEPS: Sequence[tuple[str, Callable[[_Context], str]]] = (
    ("data home", _data_home),
    ("start", _start),
    ("register", _register),
    ("MQTT", _mqtt),
    ("REST", _rest),
    ("file drop", _file_drop),
    ("alarm", _alarm),
    ("window", _window),
)


# -- helpers ---------------------------------------------------------------------------------


def _input(context: _Context, name: str) -> object:
    for input_ in context.station.inputs:
        if input_.name == name:
            return input_
    raise SelfTestFailure(f"the {name} input is not running")


def _now(context: _Context) -> datetime:
    # A little in the past: a reading is refused more than 5 minutes in the future, and a
    # machine's clocks may disagree by a few milliseconds.
    return context.station.clock() - timedelta(seconds=1)


def _bedside(device_id: str, measured: datetime, datatype: str, value: float) -> bytes:
    from simulator.wire import bedside_timestamp

    return json.dumps({"deviceid": device_id, "timestamp": bedside_timestamp(measured),
                       "datatype": datatype, "value": value}).encode()


def _inhealth(device_id: str, measured: datetime, **vitals: object) -> bytes:
    from simulator.wire import inhealth_timestamp

    return json.dumps({"device_id": device_id, "timestamp": inhealth_timestamp(measured),
                       **vitals}).encode()


def _deliver(
    context: _Context, transport: object, device_id: str, payload: bytes, measured: datetime
) -> None:
    """Send one payload; raise unless the station acknowledged it."""
    from simulator.transports.base import Delivery, Outcome, Transport, TransportError
    from simulator.wire import Message

    assert isinstance(transport, Transport)
    outcomes: list[Outcome] = []
    message = Message(device_id=device_id, bed=1, payload=payload, measured_at=measured)
    try:
        transport.open(lambda _message, outcome: outcomes.append(outcome))
        transport.send([message])
    except TransportError as exc:
        raise SelfTestFailure(str(exc)) from None
    finally:
        transport.close(context.timeout_s)
    if not outcomes:
        raise SelfTestFailure(f"no answer from {transport.target} within {context.timeout_s:g} s")
    outcome = outcomes[0]
    if outcome.delivery is not Delivery.ACKNOWLEDGED:
        raise SelfTestFailure(f"{transport.target} {outcome.delivery.value} the reading: "
                              f"{outcome.detail}")


def _expect_stored(
    context: _Context, device_id: str, input_name: str, values: Mapping[str, float]
) -> None:
    """The device's readings are in the store, from that input, for the test patient."""
    queries = context.station.store.queries

    def stored() -> dict[str, float]:
        return {r.vital: r.value for r in queries.readings(device_id=device_id)
                if r.input == input_name and r.patient_id == PATIENT_ID}

    _wait_for(context, lambda: set(values) <= set(stored()),
              lambda: f"{device_id}'s reading is not stored (found {stored() or 'nothing'})")
    found = stored()
    wrong = {k: found[k] for k, v in values.items() if abs(found[k] - v) > 1e-6}
    if wrong:
        raise SelfTestFailure(f"{device_id}: stored {wrong}, sent {dict(values)}")


def _raised(context: _Context) -> list[AlarmTransition]:
    with context.transitions_changed:
        return [t for t in context.transitions if t.kind is TransitionKind.RAISED]


def _wait_for(
    context: _Context, condition: Callable[[], bool], explain: Callable[[], str]
) -> None:
    deadline = time.monotonic() + context.timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SelfTestFailure(f"after {context.timeout_s:g} s: {explain()}")
        time.sleep(POLL_INTERVAL_S)
