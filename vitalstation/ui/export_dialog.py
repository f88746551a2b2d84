"""File > Export: a bed's readings for a time range as CSV, written in the background.

The dialog asks for the bed, the range and the file; the export streams rows from the store to
the file on a worker thread (never all in memory), reports progress, can be cancelled (no half
file is left), and says how many readings it wrote.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDateTime, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vitalstation.app.history import ExportCancelled, ExportResult, HistoryService
from vitalstation.storage.registry import BedInfo
from vitalstation.ui.detail_common import detail_style_sheet
from vitalstation.ui.tasks import BackgroundTasks
from vitalstation.ui.theme import palette_for

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

RANGE_PRESETS = (("Last hour", 1), ("Last 8 hours", 8), ("Last 24 hours", 24),
                 ("Last 72 hours", 72), ("Custom", 0))
DEFAULT_PRESET = 2


def export_readings_csv(
    parent: QWidget, runtime: Runtime, tasks: BackgroundTasks, bed_id: str | None = None
) -> ExportDialog:
    """Open the export dialog (non-modal), with ``bed_id`` chosen if given."""
    theme = getattr(parent, "theme", "day")  # the main window's day or night
    dialog = ExportDialog(runtime, tasks, parent, bed_id=bed_id,
                          theme=theme if theme in ("day", "night") else "day")
    dialog.show()
    dialog.raise_()
    return dialog


class ExportDialog(QDialog):
    """Bed, range and file; then the export runs on a worker thread. Deleted when closed.

    ``finished_export`` carries the :class:`ExportResult` (or the error) when done.
    """

    finished_export = Signal(object)
    _progressed = Signal(int)  # rows written, emitted on the worker thread (queued here)

    def __init__(
        self,
        runtime: Runtime,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        bed_id: str | None = None,
        theme: str = "day",
    ) -> None:
        super().__init__(parent)
        self.setStyleSheet(detail_style_sheet(palette_for(theme)))
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export readings as CSV")
        self._runtime = runtime
        self._tasks = tasks
        self._history = HistoryService(runtime.store, clock=runtime.clock)
        self._wanted_bed = bed_id
        self._cancel = threading.Event()
        self.running = False
        self.result: ExportResult | None = None
        self._setting_times = False
        self._build()
        self._progressed.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self.beds_loaded = False
        registry = runtime.store.registry
        tasks.submit(registry.list_beds, self._on_beds, self._on_error)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.bed_combo = QComboBox(self)
        form.addRow("Bed", self.bed_combo)
        self.range_combo = QComboBox(self)
        for label, hours in RANGE_PRESETS:
            self.range_combo.addItem(label, hours)
        self.range_combo.currentIndexChanged.connect(self._on_preset)
        form.addRow("Range", self.range_combo)
        now = self._runtime.clock()
        self.since_edit = QDateTimeEdit(self)
        self.until_edit = QDateTimeEdit(self)
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.dateTimeChanged.connect(self._on_custom_time)
        self._set_times(now - timedelta(hours=24), now)
        form.addRow("From", self.since_edit)
        form.addRow("To", self.until_edit)
        file_row = QHBoxLayout()
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText("File to write, e.g. bed-4.csv")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        file_row.addWidget(self.path_edit, 1)
        file_row.addWidget(browse)
        form.addRow("File", file_row)
        layout.addLayout(form)
        self.status = QLabel("Loading beds…", self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.export_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button = QPushButton("Cancel export", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._cancel.set)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.close)
        for button in (self.export_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.range_combo.setCurrentIndex(DEFAULT_PRESET)
        self.resize(520, 260)

    # -- inputs ----------------------------------------------------------------------------

    def time_range(self) -> tuple[datetime, datetime]:
        """The chosen range as UTC datetimes (a preset ends now, on the station's clock)."""
        hours = self.range_combo.currentData()
        if hours:
            until = self._runtime.clock()
            return until - timedelta(hours=hours), until
        return _utc(self.since_edit.dateTime()), _utc(self.until_edit.dateTime())

    def _set_times(self, since: datetime, until: datetime) -> None:
        self._setting_times = True
        try:
            self.since_edit.setDateTime(_qt(since))
            self.until_edit.setDateTime(_qt(until))
        finally:
            self._setting_times = False

    def _on_preset(self) -> None:
        hours = self.range_combo.currentData()
        if hours:
            now = self._runtime.clock()
            self._set_times(now - timedelta(hours=hours), now)

    def _on_custom_time(self) -> None:
        if not self._setting_times:
            self.range_combo.setCurrentIndex(len(RANGE_PRESETS) - 1)

    def _on_beds(self, beds: list[BedInfo]) -> None:
        for bed in beds:
            who = f" · {bed.patient_name} ({bed.patient_id})" if bed.patient_id else " · empty"
            self.bed_combo.addItem(f"Bed {bed.label}{who}", bed.label)
        if self._wanted_bed is not None:
            index = self.bed_combo.findData(self._wanted_bed)
            if index >= 0:
                self.bed_combo.setCurrentIndex(index)
        self.beds_loaded = True
        self.status.setText("" if beds else "No bed is registered.")
        if not self.path_edit.text() and self.bed_combo.currentData() is not None:
            stamp = self._runtime.clock().strftime("%Y%m%d-%H%M")
            self.path_edit.setText(str(Path.home() / f"bed-{self.bed_combo.currentData()}"
                                                      f"-{stamp}.csv"))

    def _browse(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export readings", self.path_edit.text(), "CSV files (*.csv)"
        )
        if path:
            self.path_edit.setText(path)

    # -- the export ------------------------------------------------------------------------

    def start_export(self) -> None:
        """Check the inputs and start writing on a worker thread."""
        bed = self.bed_combo.currentData()
        path = self.path_edit.text().strip()
        since, until = self.time_range()
        problem = (
            "Choose a bed." if bed is None else
            "Choose the file to write." if not path else
            "The range must end after it starts." if until <= since else
            f"The folder {Path(path).parent} does not exist." if not Path(path).parent.is_dir()
            else None
        )
        if problem is not None:
            self.status.setText(problem)
            return
        self._cancel.clear()
        self.running = True
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Exporting bed {bed}…")
        history, cancel, progressed = self._history, self._cancel, self._progressed

        def progress(rows: int) -> None:
            try:
                progressed.emit(rows)
            except RuntimeError:  # the dialog was closed and deleted: the export stops
                cancel.set()

        self._tasks.submit(
            lambda: history.export_csv(bed, since, until, path, progress=progress,
                                       cancelled=cancel.is_set),
            self._on_done, self._on_error,
        )

    def _on_progress(self, rows: int) -> None:
        if self.running:
            self.status.setText(f"Exporting… {rows:,} readings written")

    def _on_done(self, result: ExportResult) -> None:
        self.running = False
        self.result = result
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(f"Exported {result.rows:,} readings to {result.path}")
        self.finished_export.emit(result)

    def _on_error(self, error: BaseException) -> None:
        was_running, self.running = self.running, False
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if isinstance(error, ExportCancelled):
            self.status.setText("Export cancelled; no file was written.")
        else:
            self.status.setText(f"Not exported: {error}")
        if was_running:
            self.finished_export.emit(error)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._cancel.set()  # an export still running stops and removes its partial file
        super().closeEvent(event)


def _qt(at: datetime) -> QDateTime:
    return QDateTime.fromSecsSinceEpoch(int(at.timestamp()))


def _utc(value: QDateTime) -> datetime:
    return datetime.fromtimestamp(value.toSecsSinceEpoch(), UTC)
