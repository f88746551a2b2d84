"""The alarm list dock: every active and recent alarm, sortable, with acknowledge, audio pause,
escalate and comment, and who did what when.

The list is loaded once from the store off the GUI thread, then kept up to date from the
pushed transitions (:class:`AlarmFeed`), so it never waits on a query or on the alarm service's
lock. Every action runs on :class:`BackgroundTasks` (it stores its transition before it
returns) and is audited by the service with this station as its origin.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from vitalstation.alarms import AlarmState, AlarmTransition, Priority
from vitalstation.storage.alarms import AlarmEventRow, AlarmRow
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.detail_common import (
    alarm_qcolor,
    detail_style_sheet,
    details_text,
    event_text,
    local_time,
    make_table,
    on_alarm_qcolor,
    operator_name,
    priority_text,
    set_row,
    station_origin,
)
from vitalstation.ui.tasks import BackgroundTasks
from vitalstation.ui.theme import ThemeColors, palette_for

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

# How many alarms the list loads from the store (newest first) and keeps.
RECENT_ALARMS = 500
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ALARM_ID_ROLE = Qt.ItemDataRole.UserRole + 2

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class AlarmEntry:
    """One line of the list: an alarm as it stands, and the last thing done to it."""

    alarm_id: int | None
    key: str | None
    priority: Priority
    state: str
    bed: str | None
    patient_id: str | None
    message: str
    raised_at: datetime
    updated_at: datetime
    last_action: str = ""

    @property
    def is_open(self) -> bool:
        """Not resolved yet."""
        return self.state != AlarmState.RESOLVED.value

    @classmethod
    def from_row(cls, row: AlarmRow) -> AlarmEntry:
        """A stored alarm."""
        return cls(
            alarm_id=row.id, key=row.key, priority=Priority(row.priority), state=row.state,
            bed=row.bed, patient_id=row.patient_id, message=row.message,
            raised_at=row.raised_at, updated_at=row.updated_at,
        )

    @classmethod
    def from_transition(cls, transition: AlarmTransition) -> AlarmEntry:
        """An alarm after one of its transitions."""
        alarm = transition.alarm
        return cls(
            alarm_id=alarm.alarm_id, key=alarm.key, priority=alarm.priority,
            state=alarm.state.value, bed=alarm.bed_label, patient_id=alarm.patient_id,
            message=alarm.message, raised_at=alarm.raised_at,
            updated_at=max(alarm.updated_at, transition.at),
            last_action=action_text(transition.event, transition.actor, transition.at),
        )


def action_text(event: str, actor: str, at: datetime) -> str:
    """``acknowledged · nurse.jo · 03:14:07``."""
    return f"{event_text(event)} · {actor} · {local_time(at)}"


STATE_TEXT = {
    AlarmState.ACTIVE.value: "ACTIVE",
    AlarmState.AUDIO_PAUSED.value: "audio paused",
    AlarmState.ACKNOWLEDGED.value: "acknowledged",
    AlarmState.RESOLVED.value: "resolved",
}


class AlarmListModel(QAbstractTableModel):
    """The alarms, one row each, keyed by database id (or engine key before it has one)."""

    COLUMNS = ("Priority", "Bed", "Patient", "Alarm", "State", "Raised", "Last action")

    def __init__(self, colors: ThemeColors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colors = colors
        self._entries: list[AlarmEntry] = []

    def set_colors(self, colors: ThemeColors) -> None:
        """Day or night: every row is drawn again in the new palette."""
        self._colors = colors
        if self._entries:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self._entries) - 1, len(self.COLUMNS) - 1))

    # -- content ---------------------------------------------------------------------------

    def entries(self) -> list[AlarmEntry]:
        """Every row, in model order."""
        return list(self._entries)

    def entry(self, row: int) -> AlarmEntry:
        """The alarm of one model row."""
        return self._entries[row]

    def find(self, alarm_id: int | None, key: str | None) -> int | None:
        """The row of an alarm by id, else by key among rows without an id; None if absent."""
        for row, entry in enumerate(self._entries):
            if alarm_id is not None and entry.alarm_id == alarm_id:
                return row
        for row, entry in enumerate(self._entries):
            if key is not None and entry.key == key and entry.is_open and (
                entry.alarm_id is None or alarm_id is None
            ):
                return row
        return None

    def upsert(self, entry: AlarmEntry) -> None:
        """Add an alarm, or replace its row (keeping the last action if the new has none)."""
        row = self.find(entry.alarm_id, entry.key)
        if row is None:
            self.beginInsertRows(QModelIndex(), len(self._entries), len(self._entries))
            self._entries.append(entry)
            self.endInsertRows()
            self._trim()
            return
        old = self._entries[row]
        if not entry.last_action and old.last_action:
            entry = dataclasses.replace(entry, last_action=old.last_action)
        if entry.alarm_id is None and old.alarm_id is not None:
            entry = dataclasses.replace(entry, alarm_id=old.alarm_id)
        self._entries[row] = entry
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def merge_loaded(self, entries: list[AlarmEntry]) -> None:
        """Stored alarms loaded in the background; rows already updated live are kept."""
        for entry in entries:
            if self.find(entry.alarm_id, None) is None:
                self.upsert(entry)

    def _trim(self) -> None:
        """Keep at most RECENT_ALARMS rows: the oldest resolved alarms go first."""
        excess = len(self._entries) - RECENT_ALARMS
        if excess <= 0:
            return
        resolved = sorted(
            (e.updated_at, row) for row, e in enumerate(self._entries) if not e.is_open
        )
        for _updated, row in sorted((r for r in resolved[:excess]), key=lambda t: -t[1]):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._entries[row]
            self.endRemoveRows()

    # -- Qt model --------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(entry, column)
        if role == SORT_ROLE:
            return self._sort_key(entry, column)
        if role == ALARM_ID_ROLE:
            return entry.alarm_id
        if role == Qt.ItemDataRole.BackgroundRole and column == 0 and entry.is_open:
            return alarm_qcolor(self._colors, entry.priority)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == 0 and entry.is_open:
                return on_alarm_qcolor(self._colors, entry.priority)
            if not entry.is_open:
                return QColor(self._colors.stale_text)
        if role == Qt.ItemDataRole.FontRole and entry.state == AlarmState.ACTIVE.value:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry.message
        return None

    @staticmethod
    def _display(entry: AlarmEntry, column: int) -> str:
        return (
            priority_text(entry.priority),
            entry.bed or "—",
            entry.patient_id or "—",
            entry.message,
            STATE_TEXT.get(entry.state, entry.state),
            local_time(entry.raised_at),
            entry.last_action,
        )[column]

    @staticmethod
    def _sort_key(entry: AlarmEntry, column: int) -> Any:
        if column == 0:  # open, then unacknowledged, then priority, then newest
            unacknowledged = entry.state != AlarmState.ACKNOWLEDGED.value
            level = int(entry.is_open) * 100 + int(unacknowledged) * 10 + entry.priority.rank
            return level * 1e10 + entry.raised_at.timestamp()
        if column == 5:
            return entry.raised_at.timestamp()
        if column == 6:
            return entry.updated_at.timestamp()
        return AlarmListModel._display(entry, column).lower()


class AlarmListDock(QDockWidget):
    """Every active and recent alarm; act on the selected one; see its events below."""

    def __init__(
        self,
        runtime: Runtime,
        feed: AlarmFeed,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        theme: str = "day",
    ) -> None:
        super().__init__("Alarms", parent)
        self.setObjectName("alarmListDock")
        self._runtime = runtime
        self._tasks = tasks
        self._origin = station_origin(runtime)
        self.model = AlarmListModel(palette_for(theme), self)
        self._proxy = QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self.model)
        self._proxy.setSortRole(SORT_ROLE)

        body = QWidget(self)
        self._body = body
        body.setStyleSheet(detail_style_sheet(palette_for(theme), font_pt=None))
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.table = QTableView(body)
        self.table.setModel(self._proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)

        buttons = QHBoxLayout()
        self.ack_button = QPushButton("Acknowledge", body)
        self.pause_button = QPushButton("Pause audio 2 min", body)
        self.escalate_button = QPushButton("Escalate", body)
        self.escalate_button.setToolTip("Notify the next role: nurse, then doctor, then EMS")
        for button in (self.ack_button, self.pause_button, self.escalate_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.ack_button.clicked.connect(self.acknowledge_selected)
        self.pause_button.clicked.connect(self.pause_selected)
        self.escalate_button.clicked.connect(self.escalate_selected)

        comment_row = QHBoxLayout()
        self.comment_edit = QLineEdit(body)
        self.comment_edit.setPlaceholderText("Comment on the selected alarm…")
        self.comment_edit.returnPressed.connect(self.comment_selected)
        self.comment_button = QPushButton("Add comment", body)
        self.comment_button.clicked.connect(self.comment_selected)
        comment_row.addWidget(self.comment_edit, 1)
        comment_row.addWidget(self.comment_button)

        self.status = QLabel("", body)
        self.status.setObjectName("alarmListStatus")
        self.status.setWordWrap(True)

        self.events = make_table(("Time", "Event", "Who", "From", "Details"), body)

        splitter = QSplitter(Qt.Orientation.Vertical, body)
        splitter.addWidget(self.table)
        splitter.addWidget(self.events)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        layout.addLayout(comment_row)
        layout.addWidget(self.status)
        self.setWidget(body)
        self._update_buttons()

        feed.transition.connect(self._on_transition)
        self.loaded = False
        self._tasks.submit(self._load_recent, self._on_loaded, self._on_error)

    def set_theme(self, theme: str) -> None:
        """Day or night colours, when the station window switches (a white list beside a
        night grid would light up a dark ward)."""
        colors = palette_for(theme)
        self._body.setStyleSheet(detail_style_sheet(colors, font_pt=None))
        self.model.set_colors(colors)

    # -- selection -------------------------------------------------------------------------

    def selected_entry(self) -> AlarmEntry | None:
        """The alarm selected in the list, if any."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.entry(self._proxy.mapToSource(rows[0]).row())

    def select_alarm(self, alarm_id: int) -> bool:
        """Select an alarm's row (e.g. from the banner); False if it is not listed."""
        row = self.model.find(alarm_id, None)
        if row is None:
            return False
        index = self._proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        return True

    # -- actions (each off the GUI thread, audited by the service) -------------------------

    def acknowledge_selected(self) -> None:
        """Acknowledge the selected alarm (ends its escalation chain)."""
        self._act("acknowledged", lambda alarms, alarm_id, actor: alarms.acknowledge(
            alarm_id, actor=actor, origin=self._origin))

    def pause_selected(self) -> None:
        """Silence the selected alarm for the default pause (2 min)."""
        self._act("audio paused", lambda alarms, alarm_id, actor: alarms.pause_audio(
            alarm_id, actor=actor, origin=self._origin))

    def escalate_selected(self) -> None:
        """Notify the next role up the ladder now."""
        self._act("escalated", lambda alarms, alarm_id, actor: alarms.escalate(
            alarm_id, actor=actor, origin=self._origin))

    def comment_selected(self) -> None:
        """Add the typed comment to the selected alarm's trail."""
        text = self.comment_edit.text().strip()
        if not text:
            self._show("Type a comment first.")
            return
        self._act("comment added", lambda alarms, alarm_id, actor: alarms.comment(
            alarm_id, text, actor=actor, origin=self._origin), clear_comment=True)

    def _act(self, done: str, action: Any, *, clear_comment: bool = False) -> None:
        entry = self.selected_entry()
        if entry is None or entry.alarm_id is None or not entry.is_open:
            self._show("Select an open alarm first.")
            return
        alarm_id, actor, alarms = entry.alarm_id, operator_name(), self._runtime.alarms

        def finished(_transitions: object) -> None:
            self._show(f"Alarm {alarm_id}: {done} by {actor}.")
            if clear_comment:
                self.comment_edit.clear()
            self._load_events(alarm_id)

        self._tasks.submit(lambda: action(alarms, alarm_id, actor), finished, self._on_error)

    # -- updates ---------------------------------------------------------------------------

    def _load_recent(self) -> list[AlarmEntry]:
        """On a worker thread: the newest stored alarms with the last event of each open one."""
        alarms = self._runtime.alarms
        entries = [AlarmEntry.from_row(row) for row in alarms.list_alarms(limit=RECENT_ALARMS)]
        out = []
        for entry in entries:
            if entry.is_open and entry.alarm_id is not None:
                events = alarms.events(entry.alarm_id)
                if events:
                    last = events[-1]
                    entry = dataclasses.replace(
                        entry, last_action=action_text(last.event, last.actor, last.at)
                    )
            out.append(entry)
        return out

    def _on_loaded(self, entries: list[AlarmEntry]) -> None:
        self.model.merge_loaded(entries)
        self.loaded = True
        self._update_buttons()

    def _on_transition(self, transition: AlarmTransition) -> None:
        self.model.upsert(AlarmEntry.from_transition(transition))
        selected = self.selected_entry()
        if selected is not None and selected.alarm_id == transition.alarm.alarm_id:
            self._append_event(transition.at, transition.event, transition.actor,
                               transition.origin, dict(transition.details))
        self._update_buttons()

    def _on_selection(self, *_args: object) -> None:
        self._update_buttons()
        entry = self.selected_entry()
        self.events.setRowCount(0)
        if entry is not None and entry.alarm_id is not None:
            self._load_events(entry.alarm_id)

    def _load_events(self, alarm_id: int) -> None:
        alarms = self._runtime.alarms
        self._tasks.submit(
            lambda: (alarm_id, alarms.events(alarm_id)), self._on_events, self._on_error
        )

    def _on_events(self, loaded: tuple[int, list[AlarmEventRow]]) -> None:
        alarm_id, events = loaded
        selected = self.selected_entry()
        if selected is None or selected.alarm_id != alarm_id:
            return  # the selection moved on meanwhile
        self.events.setRowCount(0)
        for event in events:
            self._append_event(event.at, event.event, event.actor, event.origin, event.details)

    def _append_event(
        self, at: datetime, event: str, actor: str, origin: str, details: dict[str, Any]
    ) -> None:
        row = self.events.rowCount()
        self.events.insertRow(row)
        shown = details_text(details)
        set_row(self.events, row,
                (local_time(at, date=True), event_text(event), actor, origin, shown))

    def _update_buttons(self) -> None:
        entry = self.selected_entry()
        actionable = entry is not None and entry.alarm_id is not None and entry.is_open
        for button in (self.ack_button, self.pause_button, self.escalate_button,
                       self.comment_button):
            button.setEnabled(actionable)
        if entry is not None and entry.state == AlarmState.ACKNOWLEDGED.value:
            self.ack_button.setEnabled(False)

    def _on_error(self, error: BaseException) -> None:
        self._show(f"Not done: {error}")

    def _show(self, text: str) -> None:
        self.status.setText(text)
