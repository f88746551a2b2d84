"""Status bar (inputs' health, readings/s, dropped and dead letters) and the Simulator menu's
controller driving real simulated beds through the file-drop input."""

from __future__ import annotations

from vitalstation.app.runtime import Runtime, RuntimeHealth
from vitalstation.config.settings import load_settings
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.pipeline.core import PipelineStats
from vitalstation.ui.main_window import MainWindow
from vitalstation.ui.sound import NoAudio
from vitalstation.ui.status_bar import StationStatusBar, input_text
from vitalstation.ui.tasks import BackgroundTasks


def test_the_status_bar_shows_each_input_rate_and_losses(qtbot, tmp_path):
    from tests.ui.support import running_station

    with running_station(tmp_path / "home") as runtime:
        tasks = BackgroundTasks()
        bar = StationStatusBar(runtime, tasks, lambda: 3)
        qtbot.addWidget(bar)
        inputs = (InputHealth("mqtt", InputState.UP), InputHealth("kinesis", InputState.DOWN,
                                                                  "stream not found"))
        bar.show_health(RuntimeHealth("sqlite", PipelineStats(stored=100), inputs), at=10.0)
        bar.show_health(RuntimeHealth("sqlite", PipelineStats(stored=600, dead_letters=2,
                                                              busy_refusals=1), inputs), at=12.0)
        labels = {name: label.text() for name, label in bar._input_labels.items()}
        assert labels == {"mqtt": "MQTT ✓", "kinesis": "Kinesis ✗ down"}
        assert bar._input_labels["kinesis"].property("health") == "down"
        assert "stream not found" in bar._input_labels["kinesis"].toolTip()
        assert bar.rate_label.text().startswith("250 readings/s")
        assert bar.dropped_label.text() == "dead letters 2 · dropped 4"
        assert input_text(InputHealth("filedrop", InputState.DEGRADED)) == "Inbox ! degraded"
        # The real poll goes through a worker thread.
        bar.poll()
        assert tasks.wait_idle(5000)
        tasks.shutdown()
        tasks.deleteLater()


def test_simulated_beds_start_show_up_take_an_injected_scenario_and_stop(qtbot, tmp_path):
    settings = load_settings(tmp_path / "home", {
        "VITALSTATION_REST__ENABLED": "false", "VITALSTATION_MQTT__ENABLED": "false",
    })
    runtime = Runtime(settings)
    runtime.start()
    window = MainWindow(runtime, settings_path=tmp_path / "window.ini", audio=NoAudio("test"))
    qtbot.addWidget(window)
    window.show()
    try:
        simulator = window.simulator
        simulator.start(2, "file")
        qtbot.waitUntil(lambda: simulator.beds == [1, 2], timeout=5000)
        qtbot.waitUntil(lambda: "SIM-02" in window.grid.tiles
                        and bool(window.ward.tile("SIM-02").values), timeout=8000)
        assert window.status.simulator_label.text().startswith("Simulator: 2 beds (file)")
        simulator.inject(2, "bradycardia")
        qtbot.waitUntil(lambda: any("bradycardia:2" in r.scenarios for r in simulator.runs),
                        timeout=5000)
        assert simulator.beds == [1, 2]
        simulator.stop_all()
        assert simulator.runs == [] and window.status.simulator_label.text() == ""
        assert window.tasks.wait_idle(10_000)
    finally:
        window.close()
        assert runtime.stop()


def test_the_simulator_dialogs_offer_every_transport_and_scenario(qtbot):
    from simulator import SCENARIOS, TRANSPORTS
    from vitalstation.ui.simulator_menu import InjectScenarioDialog, StartSimulationDialog

    start = StartSimulationDialog(first_bed=7)
    qtbot.addWidget(start)
    assert start.first_bed.value() == 7
    assert [start.transport.itemText(i) for i in range(start.transport.count())] == list(
        TRANSPORTS)
    assert [start.scenario.itemText(i) for i in range(start.scenario.count())] == list(SCENARIOS)
    inject = InjectScenarioDialog([3, 4])
    qtbot.addWidget(inject)
    assert [inject.bed.itemData(i) for i in range(inject.bed.count())] == [3, 4]
    assert "stable" not in [inject.scenario.itemText(i) for i in range(inject.scenario.count())]
