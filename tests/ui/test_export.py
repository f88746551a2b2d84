"""File > Export: a bed's readings for a range written as CSV in the background, checked
line by line; bad inputs refused with the reason."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta

import pytest
import shiboken6
from PySide6.QtWidgets import QWidget

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.app.history import EXPORT_COLUMNS, ExportResult
from vitalstation.domain.clock import FakeClock
from vitalstation.ui.export_dialog import ExportDialog, export_readings_csv
from vitalstation.ui.tasks import BackgroundTasks


@pytest.fixture
def station(qtbot, tmp_path) -> Iterator[tuple]:
    with running_station(tmp_path / "home", clock=FakeClock(NOW)) as runtime:
        tasks = BackgroundTasks()
        parent = QWidget()
        qtbot.addWidget(parent)
        try:
            yield runtime, tasks, parent
        finally:
            tasks.wait_idle(5000)
            tasks.shutdown()
            tasks.deleteLater()


def _open(qtbot, station, bed: str | None = "1") -> ExportDialog:
    runtime, tasks, parent = station
    dialog = export_readings_csv(parent, runtime, tasks, bed_id=bed)
    qtbot.waitUntil(lambda: dialog.beds_loaded, timeout=5000)
    return dialog


def test_a_bed_and_range_are_exported_with_units_sources_and_people(
    qtbot, station, tmp_path
) -> None:
    runtime = station[0]
    start = NOW - timedelta(hours=3)
    runtime.pipeline.process(
        [make_reading("DEV1", start + timedelta(minutes=i), heart_rate=70.0 + i,
                      temperature=37.0) for i in range(150)]
        + [make_reading("DEV2", start + timedelta(minutes=i), heart_rate=99.0)
           for i in range(150)]
    )
    dialog = _open(qtbot, station)
    assert dialog.bed_combo.currentData() == "1"
    assert dialog.bed_combo.currentText() == "Bed 1 · Ada Lovelace (P1)"
    assert not dialog.isModal()
    dialog.range_combo.setCurrentIndex(dialog.range_combo.findData(1))  # the last hour
    target = tmp_path / "bed1.csv"
    dialog.path_edit.setText(str(target))
    with qtbot.waitSignal(dialog.finished_export, timeout=10000) as finished:
        dialog.export_button.click()
    result = finished.args[0]
    assert isinstance(result, ExportResult) and result.rows == 2 * 30
    assert dialog.status.text() == f"Exported 60 readings to {target}"
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == EXPORT_COLUMNS and len(rows) == 60
    assert {(r["bed"], r["patient_id"], r["device_id"]) for r in rows} == {("1", "P1", "DEV1")}
    assert {(r["vital"], r["unit"]) for r in rows} == {("heart_rate", "/min"),
                                                       ("temperature", "Cel")}
    assert {(r["source"], r["data_source"]) for r in rows} == {("mqtt", "device")}
    assert rows[0]["measured_at"] == (start + timedelta(minutes=120)).isoformat()
    assert rows[-2]["value"] == "219" and rows[-1]["value"] == "37"
    dialog.close()
    qtbot.waitUntil(lambda: not shiboken6.isValid(dialog), timeout=5000)


def test_inputs_are_checked_before_anything_is_written(qtbot, station, tmp_path) -> None:
    dialog = _open(qtbot, station, bed="4")
    assert dialog.bed_combo.currentText() == "Bed 4 · empty"
    dialog.path_edit.setText("")
    dialog.export_button.click()
    assert dialog.status.text() == "Choose the file to write."
    dialog.path_edit.setText(str(tmp_path / "missing" / "x.csv"))
    dialog.export_button.click()
    assert "does not exist" in dialog.status.text()
    dialog.range_combo.setCurrentIndex(dialog.range_combo.count() - 1)  # custom
    dialog.until_edit.setDateTime(dialog.since_edit.dateTime())
    dialog.path_edit.setText(str(tmp_path / "x.csv"))
    dialog.export_button.click()
    assert dialog.status.text() == "The range must end after it starts."
    assert not dialog.running and not (tmp_path / "x.csv").exists()

    # An empty bed's export is a file with the header only, and says so.
    dialog.range_combo.setCurrentIndex(0)
    with qtbot.waitSignal(dialog.finished_export, timeout=10000):
        dialog.export_button.click()
    assert dialog.status.text().startswith("Exported 0 readings")
    assert (tmp_path / "x.csv").read_text(encoding="utf-8").splitlines() == [
        ",".join(EXPORT_COLUMNS)]
    dialog.close()
