"""The Simulator menu: start simulated beds on a transport with a scenario, inject a scenario on
one bed, stop them; and the window's ``--demo`` beds.

The simulator package's library API does the work (``Simulation`` on its own thread); this
module only decides what to run. Registering beds, issuing REST keys, connecting and stopping
all touch the database or the network, so they run on :class:`BackgroundTasks`, never on the
GUI thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QMenu,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from vitalstation.ui.tasks import BackgroundTasks

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

_LOGGER = logging.getLogger(__name__)

SIM_ACTOR = "simulator"
STOP_TIMEOUT_S = 5.0
STATUS_INTERVAL_MS = 2000
# The demo: two beds per input, bed 2 deteriorating (as ``serve --demo``, app/demo.py).
DEMO_PLAN = (("mqtt", 1, 2, "bedside-monitor", "deteriorating:2"),
             ("rest", 3, 2, "ward", ""),
             ("file", 5, 2, "ward", ""))


@dataclass
class SimRun:
    """One running simulation and how to start it again (after an injected scenario)."""

    transport: str
    first_bed: int
    beds: int
    model: str = "ward"
    scenarios: tuple[str, ...] = ()
    simulation: object | None = None
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def last_bed(self) -> int:
        """The number of the run's last bed."""
        return self.first_bed + self.beds - 1


def _port(runtime: Runtime, input_name: str, attribute: str) -> int | None:
    for input_ in runtime.inputs:
        if input_.name == input_name:
            try:
                value = getattr(input_, attribute)
            except (AttributeError, RuntimeError):
                return None
            return int(value) if value else None
    return None


def start_run(runtime: Runtime, run: SimRun) -> SimRun:
    """Register the run's beds, then build and start its simulation (worker thread)."""
    from simulator import ScenarioSpec, Simulation, SimulationConfig, register_beds
    from simulator.keys import issue_keys
    from simulator.models import device_id_for
    from simulator.targets import TargetOptions, build_transport

    now = runtime.clock()
    result = register_beds(runtime.store.registry, run.last_bed, at=now - timedelta(minutes=1),
                           device_type="simulator", actor=SIM_ACTOR)
    for note in result.notes:
        _LOGGER.warning("simulator: %s", note)
    options = TargetOptions()
    if run.transport == "rest":
        port = _port(runtime, "rest", "port")
        if port is not None:
            options = TargetOptions(url=f"http://127.0.0.1:{port}")
        devices = [device_id_for(n) for n in range(run.first_bed, run.last_bed + 1)]
        run.keys, _ = issue_keys(
            runtime.store, devices, run.keys, settings=runtime.settings, actor=SIM_ACTOR, at=now
        )
    elif run.transport == "mqtt":
        broker = _port(runtime, "mqtt-broker", "actual_port")
        if broker is not None:
            options = TargetOptions(broker=f"mqtt://127.0.0.1:{broker}")
    config = SimulationConfig(
        beds=run.beds, first_bed=run.first_bed, model=run.model,
        scenarios=tuple(ScenarioSpec.parse(s) for s in run.scenarios),
    )
    transport = build_transport(run.transport, runtime.settings, options, run.keys)
    simulation = Simulation(config, transport, clock=runtime.clock)
    simulation.start()
    run.simulation = simulation
    return run


def stop_runs(runs: list[SimRun], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop simulations (worker thread, or at close)."""
    for run in runs:
        if run.simulation is not None:
            run.simulation.stop(timeout)  # type: ignore[attr-defined]


class SimulatorController(QObject):
    """The simulations the window started; ``changed`` when the set changes."""

    changed = Signal()
    failed = Signal(str)

    def __init__(self, runtime: Runtime, tasks: BackgroundTasks,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runtime = runtime
        self._tasks = tasks
        self.runs: list[SimRun] = []
        self.status_timer = QTimer(self)
        self.status_timer.setObjectName("simulator-status")
        self.status_timer.setInterval(STATUS_INTERVAL_MS)
        self.status_timer.timeout.connect(self.changed)

    @property
    def beds(self) -> list[int]:
        """Every simulated bed number."""
        return [n for run in self.runs for n in range(run.first_bed, run.last_bed + 1)]

    def next_free_bed(self) -> int:
        """The first bed number after every running one."""
        return max(self.beds, default=0) + 1

    def start(self, beds: int, transport: str, scenario: str = "", *,
              first_bed: int | None = None, model: str = "ward") -> None:
        """Start ``beds`` simulated beds (off the GUI thread)."""
        first = first_bed if first_bed is not None else self.next_free_bed()
        run = SimRun(transport, first, beds, model, (scenario,) if scenario else ())
        self._launch([run])

    def start_demo(self) -> None:
        """The demo's beds over MQTT, REST and file drop (the inputs that are running)."""
        names = {i.name for i in self._runtime.inputs}
        wanted = {"mqtt": "mqtt", "rest": "rest", "file": "filedrop"}
        runs = [SimRun(t, first, beds, model, (s,) if s else ())
                for t, first, beds, model, s in DEMO_PLAN if wanted[t] in names]
        if not runs:
            self.failed.emit("no input is running for the demo's beds")
            return
        self._launch(runs)

    def inject(self, bed: int, scenario: str) -> None:
        """Restart the run that simulates ``bed`` with ``scenario`` on that bed."""
        run = next((r for r in self.runs if r.first_bed <= bed <= r.last_bed), None)
        if run is None:
            self.failed.emit(f"bed {bed} is not simulated")
            return
        self.runs.remove(run)
        again = replace(run, scenarios=(*run.scenarios, f"{scenario}:{bed}"), simulation=None)

        def restart() -> list[SimRun]:
            stop_runs([run])
            return [start_run(self._runtime, again)]

        self._tasks.submit(restart, self._on_started, self._on_failed)

    def stop_all(self) -> None:
        """Stop every simulation (off the GUI thread)."""
        runs, self.runs = self.runs, []
        self.status_timer.stop()
        self.changed.emit()
        if runs:
            self._tasks.submit(lambda: stop_runs(runs), lambda _: None, self._on_failed)

    def shutdown(self) -> None:
        """Stop every simulation now (window closing: before the runtime stops)."""
        runs, self.runs = self.runs, []
        self.status_timer.stop()
        stop_runs(runs)

    def status_text(self) -> str:
        """``Simulator: 6 beds (mqtt, rest, file) · 1,234 sent · 0 failed``, or empty."""
        if not self.runs:
            return ""
        sent = failed = 0
        problems = []
        for run in self.runs:
            if run.simulation is None:
                continue
            stats = run.simulation.stats()  # type: ignore[attr-defined]
            sent += stats.totals.sent
            failed += stats.totals.failed
            if stats.fatal:
                problems.append(f"{run.transport}: {stats.fatal}")
        transports = ", ".join(dict.fromkeys(r.transport for r in self.runs))
        text = (f"Simulator: {len(self.beds)} beds ({transports}) · {sent:,} sent · "
                f"{failed:,} failed")
        return text + (" · " + "; ".join(problems) if problems else "")

    def _launch(self, runs: list[SimRun]) -> None:
        def start() -> list[SimRun]:
            return [start_run(self._runtime, run) for run in runs]

        self._tasks.submit(start, self._on_started, self._on_failed)

    def _on_started(self, runs: list[SimRun]) -> None:
        self.runs.extend(runs)
        self.runs.sort(key=lambda r: r.first_bed)
        self.status_timer.start()
        self.changed.emit()

    def _on_failed(self, error: BaseException) -> None:
        _LOGGER.error("simulator: %s", error)
        self.failed.emit(str(error))


def _add_ok_cancel(dialog: QDialog, form: QFormLayout) -> None:
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)


class StartSimulationDialog(QDialog):
    """Beds, transport and scenario for "Start simulated beds"."""

    def __init__(self, first_bed: int, parent: QWidget | None = None) -> None:
        from simulator import SCENARIOS, TRANSPORTS

        super().__init__(parent)
        self.setWindowTitle("Start simulated beds")
        form = QFormLayout(self)
        self.beds = QSpinBox(self)
        self.beds.setRange(1, 128)
        self.beds.setValue(4)
        self.first_bed = QSpinBox(self)
        self.first_bed.setRange(1, 999)
        self.first_bed.setValue(first_bed)
        self.transport = QComboBox(self)
        self.transport.addItems(list(TRANSPORTS))
        self.scenario = QComboBox(self)
        self.scenario.addItems(list(SCENARIOS))
        form.addRow("Beds", self.beds)
        form.addRow("First bed number", self.first_bed)
        form.addRow("Transport", self.transport)
        form.addRow("Scenario (every bed)", self.scenario)
        _add_ok_cancel(self, form)


class InjectScenarioDialog(QDialog):
    """A simulated bed and the scenario to play on it."""

    def __init__(self, beds: list[int], parent: QWidget | None = None) -> None:
        from simulator import SCENARIOS

        super().__init__(parent)
        self.setWindowTitle("Inject a scenario")
        form = QFormLayout(self)
        self.bed = QComboBox(self)
        for bed in beds:
            self.bed.addItem(f"Bed {bed}", bed)
        self.scenario = QComboBox(self)
        self.scenario.addItems([s for s in SCENARIOS if s != "stable"])
        form.addRow("Simulated bed", self.bed)
        form.addRow("Scenario", self.scenario)
        _add_ok_cancel(self, form)


class SimulatorMenu(QMenu):
    """Start, inject, stop: the controller does the work off the GUI thread."""

    def __init__(self, controller: SimulatorController, parent: QWidget | None = None) -> None:
        super().__init__("&Simulator", parent)
        self.controller = controller
        self.start_action = self.addAction("&Start simulated beds…", self.ask_start)
        self.inject_action = self.addAction("&Inject a scenario on a bed…", self.ask_inject)
        self.stop_action = self.addAction("S&top all simulated beds", controller.stop_all)
        self.aboutToShow.connect(self._update_actions)
        controller.failed.connect(self._on_failed)

    def _update_actions(self) -> None:
        running = bool(self.controller.runs)
        self.inject_action.setEnabled(running)
        self.stop_action.setEnabled(running)

    def ask_start(self) -> None:
        """Ask for beds, transport and scenario, then start them."""
        dialog = StartSimulationDialog(self.controller.next_free_bed(), self.parentWidget())
        try:
            if dialog.exec() == QDialog.DialogCode.Accepted:
                scenario = dialog.scenario.currentText()
                self.controller.start(
                    dialog.beds.value(), dialog.transport.currentText(),
                    "" if scenario == "stable" else scenario,
                    first_bed=dialog.first_bed.value(),
                )
        finally:
            dialog.deleteLater()

    def ask_inject(self) -> None:
        """Ask for a simulated bed and a scenario, then inject it."""
        dialog = InjectScenarioDialog(self.controller.beds, self.parentWidget())
        try:
            if dialog.exec() == QDialog.DialogCode.Accepted and dialog.bed.count():
                self.controller.inject(dialog.bed.currentData(), dialog.scenario.currentText())
        finally:
            dialog.deleteLater()

    def _on_failed(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Simulator", message,
                          QMessageBox.StandardButton.Ok, self.parentWidget())
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not modal: the ward stays in view
