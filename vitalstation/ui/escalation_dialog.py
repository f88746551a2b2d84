"""The escalation dialog: the engine asked the patient; the nurse records the answer, sees the
countdown to automatic escalation and the state of each notification, and acknowledges.

Non-modal: the rest of the station (every other bed) stays visible and usable. The dialog
reads the chain from the engine off the GUI thread and follows the alarm's transitions pushed
by :class:`AlarmFeed`; the countdown is ticked locally once a second from the chain's absolute
due time, on the station's clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vitalstation.alarms import (
    Alarm,
    AlarmTransition,
    ChainStage,
    ChainState,
    PatientAnswer,
    TransitionKind,
)
from vitalstation.alarms.model import SYSTEM_ACTOR
from vitalstation.storage.alarms import AlarmEventRow
from vitalstation.storage.outbox import OutboxRow
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.detail_common import (
    detail_style_sheet,
    details_text,
    event_text,
    local_time,
    make_font,
    make_table,
    operator_name,
    priority_text,
    set_row,
    station_origin,
)
from vitalstation.ui.tasks import BackgroundTasks
from vitalstation.ui.theme import palette_for

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

COUNTDOWN_INTERVAL_MS = 1000
# Notification delivery states are re-read this often while the chain runs (every N ticks).
NOTIFICATIONS_EVERY_TICKS = 5

ANSWER_BUTTONS = (
    (PatientAnswer.DOCTOR, "Wants the doctor"),
    (PatientAnswer.NURSE, "Wants the nurse"),
    (PatientAnswer.EMS, "Wants EMS"),
    (PatientAnswer.ALL, "Wants all"),
    (PatientAnswer.DECLINED, "Declines help"),
)

ROLE_TEXT = {"patient": "patient", "nurse": "nurse", "doctor": "doctor", "ems": "EMS"}

STAGE_TEXT = {
    ChainStage.ASKING_PATIENT: "Asking the patient what they want",
    ChainStage.AWAITING_ACK: "Notified; waiting for a clinician to acknowledge",
    ChainStage.DECLINED: "The patient declined help",
    ChainStage.ENDED: "Escalation ended",
}


def should_open_escalation(transition: AlarmTransition) -> bool:
    """True when this transition should bring up the alarm's escalation dialog.

    The chain's first step (the patient is asked), and any automatic escalation (nobody
    answered in time): the nurse must see both at once. The caller keeps one dialog per alarm
    and raises it if it is already open.
    """
    if transition.kind is TransitionKind.PATIENT_ASKED:
        return True
    return transition.kind is TransitionKind.ESCALATED and transition.actor == SYSTEM_ACTOR


def format_countdown(remaining: timedelta) -> str:
    """``1:42``: minutes and seconds left (never negative)."""
    seconds = max(0, int(remaining.total_seconds() + 0.999))
    return f"{seconds // 60}:{seconds % 60:02d}"


class EscalationDialog(QDialog):
    """One alarm's escalation, non-modal; deleted when closed.

    ``updated`` is emitted after the chain, notifications or events were (re)loaded.
    """

    updated = Signal()

    def __init__(
        self,
        runtime: Runtime,
        alarm_id: int,
        feed: AlarmFeed,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        theme: str = "day",
        embedded: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setModal(False)
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.setObjectName("escalationDialog")
        self.alarm_id = alarm_id
        self._runtime = runtime
        self._tasks = tasks
        self._colors = palette_for(theme)
        self.colors = self._colors
        self._origin = station_origin(runtime)
        self.alarm: Alarm | None = None
        self.chain: ChainState | None = None
        self.ended = False
        self._ended_by: tuple[str, datetime | None, str] = ("", None, "ended")
        self._patient_names: dict[str, str] = {}
        self._ticks = 0
        self.setWindowTitle(f"Escalation · alarm {alarm_id}")
        if embedded:
            # A page of :class:`EscalationWindow`: no window of its own, and the window's
            # style sheet reaches it (a sheet of its own costs ~0.6 MiB a page).
            self.setWindowFlags(Qt.WindowType.Widget)
        else:
            self.setStyleSheet(detail_style_sheet(self._colors))
        self.resize(820, 640)
        self._build()
        if embedded:
            self.close_button.setToolTip("Take this alarm off the list; the escalation goes on,"
                                         " and an automatic step brings it back")
        self._countdown = QTimer(self)
        self._countdown.setObjectName("escalationCountdown")
        self._countdown.setInterval(COUNTDOWN_INTERVAL_MS)
        self._countdown.timeout.connect(self._on_tick)
        feed.transition.connect(self._on_transition)
        self.reload()

    # -- building --------------------------------------------------------------------------

    def _build(self) -> None:
        c = self._colors
        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        self.alarm_label = QLabel(f"Alarm {self.alarm_id}", self)
        self.alarm_label.setObjectName("escalationAlarm")
        self.alarm_label.setFont(make_font(15, bold=True))
        self.alarm_label.setWordWrap(True)
        self.alarm_label.setMargin(8)
        layout.addWidget(self.alarm_label)

        state = QHBoxLayout()
        self.stage_label = QLabel("Loading…", self)
        self.stage_label.setFont(make_font(12, bold=True))
        self.stage_label.setWordWrap(True)
        self.countdown_label = QLabel("", self)
        self.countdown_label.setObjectName("escalationCountdownLabel")
        self.countdown_label.setFont(make_font(13, bold=True))
        self.countdown_label.setAlignment(
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        )
        state.addWidget(self.stage_label, 1)
        state.addWidget(self.countdown_label)
        layout.addLayout(state)
        self.answer_label = QLabel("", self)
        self.answer_label.setWordWrap(True)
        self.answer_label.setStyleSheet(f"color: {c.muted_text};")
        layout.addWidget(self.answer_label)

        answers = QGroupBox("The patient's answer", self)
        grid = QGridLayout(answers)
        self.answer_buttons: dict[PatientAnswer, QPushButton] = {}
        for index, (answer, text) in enumerate(ANSWER_BUTTONS):
            button = QPushButton(text, answers)
            button.setMinimumHeight(34)
            button.setAutoDefault(False)  # Enter must never answer for the patient
            button.clicked.connect(lambda _=False, a=answer: self.record_answer(a))
            grid.addWidget(button, 0, index)
            self.answer_buttons[answer] = button
        layout.addWidget(answers)

        notified = QGroupBox("Notifications", self)
        box = QVBoxLayout(notified)
        self.notifications = make_table(("Role", "Channel", "To", "State", "Tries", "Last error"),
                                    notified)
        box.addWidget(self.notifications)
        layout.addWidget(notified, 2)

        trail = QGroupBox("Who did what", self)
        trail_box = QVBoxLayout(trail)
        self.events = make_table(("Time", "Step", "Who", "From", "Details"), trail)
        trail_box.addWidget(self.events)
        layout.addWidget(trail, 2)

        buttons = QHBoxLayout()
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.escalate_button = QPushButton("Escalate now", self)
        self.escalate_button.setToolTip("Notify the next role: nurse, then doctor, then EMS")
        self.escalate_button.clicked.connect(self.escalate_now)
        self.ack_button = QPushButton("Acknowledge (ends escalation)", self)
        self.ack_button.setFont(make_font(11, bold=True))
        self.ack_button.setMinimumHeight(36)
        self.ack_button.clicked.connect(self.acknowledge)
        self.close_button = QPushButton("Close", self)
        self.close_button.setToolTip("Hide this dialog; the escalation goes on")
        self.close_button.clicked.connect(self.close)
        for button in (self.escalate_button, self.ack_button, self.close_button):
            button.setAutoDefault(False)
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.escalate_button)
        buttons.addWidget(self.ack_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

    # -- loading ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the alarm, its chain, notifications and events (off the GUI thread)."""
        alarms, alarm_id = self._runtime.alarms, self.alarm_id

        registry = self._runtime.store.registry

        def load() -> tuple[Alarm | None, ChainState | None, list[OutboxRow],
                            list[AlarmEventRow], dict[str, str]]:
            names = {p.patient_id: p.name for p in registry.list_patients()}
            return (alarms.alarm(alarm_id), alarms.escalation(alarm_id),
                    alarms.notifications(alarm_id), alarms.events(alarm_id), names)

        self._tasks.submit(load, self._on_loaded, self._on_error)

    def _reload_notifications(self) -> None:
        alarms, alarm_id = self._runtime.alarms, self.alarm_id
        self._tasks.submit(lambda: alarms.notifications(alarm_id), self._show_notifications,
                           self._on_error)

    def _on_loaded(self, loaded: tuple) -> None:
        alarm, chain, notifications, events, names = loaded
        self._patient_names = names
        if alarm is not None:
            self.alarm = alarm
        if chain is not None or self.chain is None or not self.chain.active:
            self.chain = chain
        if alarm is None or chain is None:
            ended = next((e for e in reversed(events)
                          if e.event in ("escalation_ended", "acknowledged", "resolved")), None)
            self.ended = ended is not None or alarm is None
            if self.ended and ended is not None:
                self._ended_by = (ended.actor, ended.at, ended.details.get("reason", ended.event))
        self._show_alarm()
        self._show_chain()
        self._show_notifications(notifications)
        self._show_events(events)
        self.updated.emit()

    # -- updates ---------------------------------------------------------------------------

    def _on_transition(self, transition: AlarmTransition) -> None:
        if transition.alarm.alarm_id != self.alarm_id:
            return
        self.alarm = transition.alarm
        if transition.escalation is not None:
            self.chain = transition.escalation
        if transition.kind is TransitionKind.ESCALATION_ENDED or not transition.alarm.is_open:
            self.ended = True
            reason = transition.details.get("reason", transition.event)
            self._ended_by = (transition.actor, transition.at, reason)
        self._append_event(transition.at, transition.event, transition.actor, transition.origin,
                           dict(transition.details))
        self._show_alarm()
        self._show_chain()
        if transition.notifications or transition.kind in (
            TransitionKind.ESCALATED, TransitionKind.PATIENT_ANSWERED,
            TransitionKind.PATIENT_ASKED,
        ):
            self._reload_notifications()
        self.updated.emit()

    def _on_tick(self) -> None:
        if not self._runtime.running:  # the station stopped; the window is closing
            self._countdown.stop()
            return
        self._ticks += 1
        self._show_countdown()
        if self._ticks % NOTIFICATIONS_EVERY_TICKS == 0:
            self._reload_notifications()

    def _show_alarm(self) -> None:
        alarm = self.alarm
        if alarm is None:
            return
        c = self._colors
        where = f"Bed {alarm.bed_label}" if alarm.bed_label else (alarm.device_id or "")
        name = self._patient_names.get(alarm.patient_id or "")
        who = (f" · {name} ({alarm.patient_id})" if name
               else f" · {alarm.patient_id}" if alarm.patient_id else "")
        self.alarm_label.setText(
            f"{priority_text(alarm.priority)} · {where}{who}\n{alarm.message}"
            f" · raised {local_time(alarm.raised_at)}"
        )
        self.alarm_label.setStyleSheet(
            f"background: {c.alarm_color(alarm.priority)};"
            f" color: {c.on_alarm_color(alarm.priority)}; border-radius: 4px;"
        )
        self.setWindowTitle(f"Escalation · {where} · {alarm.message}")

    def _show_chain(self) -> None:
        chain = self.chain
        running = chain is not None and chain.active and not self.ended
        for button in self.answer_buttons.values():
            button.setEnabled(running and chain is not None
                              and chain.stage is ChainStage.ASKING_PATIENT)
        self.escalate_button.setEnabled(not self.ended and self.alarm is not None)
        self.ack_button.setEnabled(
            not self.ended and self.alarm is not None
            and self.alarm.state.value != "acknowledged"
        )
        if self.ended:
            actor, at, reason = self._ended_by
            self.stage_label.setText(
                f"Escalation ended: {event_text(str(reason))}"
                + (f" by {actor} at {local_time(at)}" if actor else "")
            )
            self.countdown_label.setText("")
            self._countdown.stop()
        elif chain is None:
            self.stage_label.setText("No escalation running for this alarm")
            self.countdown_label.setText("")
            self._countdown.stop()
        else:
            notified = ", ".join(ROLE_TEXT.get(r.value, r.value) for r in chain.notified)
            self.stage_label.setText(
                STAGE_TEXT[chain.stage] + (f" (notified: {notified})" if notified else "")
            )
            if not self._countdown.isActive():
                self._countdown.start()
            self._show_countdown()
        if chain is not None and chain.answer is not None:
            self.answer_label.setText(
                f"Patient's answer: {chain.answer.value} — recorded by {chain.answered_by}"
                f" at {local_time(chain.answered_at)}"
            )

    def _show_countdown(self) -> None:
        chain = self.chain
        if chain is None or self.ended or chain.due_at is None:
            self.countdown_label.setText("" if self.ended else "no automatic step due")
            return
        remaining = chain.remaining(self._runtime.clock()) or timedelta(0)
        target = self._next_role(chain)
        self.countdown_label.setText(
            f"Automatic escalation{' to the ' + target if target else ''}"
            f" in {format_countdown(remaining)}"
        )

    def _next_role(self, chain: ChainState) -> str:
        """Whom the next automatic step notifies: the rung above the highest notified (the
        ward nurse only, after a decline)."""
        policy = self._runtime.alarms.engine.policy.escalation
        if policy is None:
            return ""
        if chain.stage is ChainStage.DECLINED:
            return "" if policy.declined_cap is None else ROLE_TEXT.get(
                policy.declined_cap.value, policy.declined_cap.value)
        rungs = [policy.ladder.index(r) for r in chain.notified if r in policy.ladder]
        following = max(rungs) + 1 if rungs else 0
        if following >= len(policy.ladder):
            return ""
        role = policy.ladder[following].value
        return ROLE_TEXT.get(role, role)

    def _show_notifications(self, rows: list[OutboxRow]) -> None:
        self.notifications.setRowCount(0)
        for row in rows:
            index = self.notifications.rowCount()
            self.notifications.insertRow(index)
            role = str(row.payload.get("role", ""))
            state = row.status.value
            # Bedside devices have no way to receive a message: the question for the patient
            # is shown here for the nurse to ask, so "delivered" must not suggest otherwise.
            to_device = row.channel == "device" and state == "delivered"
            items = set_row(self.notifications, index, (
                ROLE_TEXT.get(role, role), row.channel, row.recipient,
                "shown here" if to_device else state, str(row.attempts), row.last_error or "",
            ))
            if to_device:
                items[3].setToolTip("The bedside device cannot display messages: ask the "
                                    "patient and record the answer above.")
            colour = {"failed": self._colors.alarm_high, "delivered": self._colors.ok}.get(
                row.status.value)
            if colour is not None:
                items[3].setForeground(QColor(colour))
                font = items[3].font()
                font.setBold(True)
                items[3].setFont(font)

    def _show_events(self, events: list[AlarmEventRow]) -> None:
        self.events.setRowCount(0)
        for event in events:
            self._append_event(event.at, event.event, event.actor, event.origin, event.details)

    def _append_event(self, at: datetime, event: str, actor: str, origin: str,
                      details: dict[str, Any]) -> None:
        index = self.events.rowCount()
        self.events.insertRow(index)
        shown = details_text(details)
        set_row(self.events, index, (local_time(at), event_text(event), actor, origin, shown))
        self.events.scrollToBottom()

    # -- actions ---------------------------------------------------------------------------

    def record_answer(self, answer: PatientAnswer) -> None:
        """The patient's answer, brought by the nurse (audited with this station as origin)."""
        alarms, alarm_id, actor = self._runtime.alarms, self.alarm_id, operator_name()
        self._run(lambda: alarms.record_patient_answer(alarm_id, answer, actor=actor,
                                                       origin=self._origin),
                  f"Answer recorded: {answer.value}.")

    def acknowledge(self) -> None:
        """Acknowledge the alarm: the chain ends."""
        alarms, alarm_id, actor = self._runtime.alarms, self.alarm_id, operator_name()
        self._run(lambda: alarms.acknowledge(alarm_id, actor=actor, origin=self._origin),
                  f"Acknowledged by {actor}.")

    def escalate_now(self) -> None:
        """Notify the next role up the ladder now."""
        alarms, alarm_id, actor = self._runtime.alarms, self.alarm_id, operator_name()
        self._run(lambda: alarms.escalate(alarm_id, actor=actor, origin=self._origin),
                  "Escalated.")

    def _run(self, fn: Any, done: str) -> None:
        self.status.setText("…")
        self._tasks.submit(fn, lambda _result: self.status.setText(done), self._on_error)

    def _on_error(self, error: BaseException) -> None:
        self.status.setText(f"Not done: {error}")

    # -- Qt --------------------------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._countdown.stop()
        super().closeEvent(event)

    def done(self, result: int) -> None:  # Esc closes the dialog the same way
        self._countdown.stop()
        super().done(result)


class EscalationWindow(QWidget):
    """One non-modal window for every pending escalation: a list of the alarms on the left
    (each in its priority colour, with the chain's stage), the selected one's
    :class:`EscalationDialog` (embedded as a page) on the right.

    Why one window and one page: a top-level dialog per open alarm cost ~2.9 MiB each (its own
    backing store and style sheet) and a page per alarm still ~0.8 MiB (55 widgets under a
    style sheet), so the station grew with every unacknowledged alarm of a shift. A list entry
    costs a few hundred bytes; the page is built for the alarm selected and deleted when
    another is selected, closed (taking that alarm off the list) or over. The window hides
    when the list is empty.
    """

    def __init__(
        self,
        runtime: Runtime,
        feed: AlarmFeed,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        theme: str = "day",
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("escalationWindow")
        self._runtime = runtime
        self._feed = feed
        self._tasks = tasks
        self._theme = theme
        self._colors = palette_for(theme)
        self.setStyleSheet(detail_style_sheet(self._colors))
        self.resize(1100, 680)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.alarm_list = QListWidget(splitter)
        self.alarm_list.setObjectName("escalationList")
        self.alarm_list.setFont(make_font(12, bold=True))
        self.alarm_list.setWordWrap(True)
        self.alarm_list.setSpacing(3)  # each alarm a block of its own colour
        self.alarm_list.setMinimumWidth(220)
        self._holder = QWidget(splitter)
        self._holder_layout = QVBoxLayout(self._holder)
        self._holder_layout.setContentsMargins(0, 0, 0, 0)
        splitter.addWidget(self.alarm_list)
        splitter.addWidget(self._holder)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 840])
        layout.addWidget(splitter)
        self.page: EscalationDialog | None = None
        self._items: dict[int, QListWidgetItem] = {}
        self._states: dict[int, tuple[Alarm, str]] = {}
        self._retitle()
        self.alarm_list.currentRowChanged.connect(self._on_row)
        feed.transition.connect(self._on_transition)

    def pending(self) -> list[int]:
        """The listed alarms' ids, in the order they came."""
        return list(self._items)

    def pages(self) -> dict[int, EscalationDialog]:
        """The page that exists (the selected alarm's), by alarm id."""
        page = self.page
        return {} if page is None or not shiboken6.isValid(page) else {page.alarm_id: page}

    def add(self, alarm: Alarm, chain: ChainState | None = None) -> None:
        """List this alarm (once); :meth:`show_alarm` then brings the window up."""
        alarm_id = alarm.alarm_id
        if alarm_id is None or alarm_id in self._items:
            return
        item = QListWidgetItem()
        self._items[alarm_id] = item
        self._states[alarm_id] = (alarm, self._stage_text(chain, ended=False))
        self.alarm_list.addItem(item)
        self._refresh(alarm_id)
        self._retitle()

    def remove(self, alarm_id: int) -> None:
        """Take this alarm off the list (over, or closed by the nurse); its page goes too."""
        item = self._items.pop(alarm_id, None)
        self._states.pop(alarm_id, None)
        if item is None:
            return
        page = self.page
        if page is not None and shiboken6.isValid(page) and page.alarm_id == alarm_id:
            self._drop_page()
        self.alarm_list.takeItem(self.alarm_list.row(item))  # selects the next one, if any
        self._retitle()
        if not self._items:
            self.hide()

    def show_alarm(self, alarm_id: int) -> None:
        """Bring the window up with this alarm listed; its page is selected only when the
        window was hidden or showed nothing, never switched under a nurse reading (or about to
        answer for) another patient: a newcomer is scrolled into view, in its priority colour.
        """
        item = self._items.get(alarm_id)
        if item is None:
            return
        if not self.isVisible() or self.page is None:
            self.alarm_list.setCurrentItem(item)
            self._on_row(self.alarm_list.row(item))
        else:
            self.alarm_list.scrollToItem(item)
        self.show()
        self.raise_()

    def set_theme(self, theme: str) -> None:
        """Day or night colours, when the station window switches: the list is recoloured and
        the page shown is built again in the new palette (its alarm and notification colours
        are set when it fills in)."""
        if theme == self._theme:
            return
        self._theme = theme
        self._colors = palette_for(theme)
        self.setStyleSheet(detail_style_sheet(self._colors))
        page = self.page
        shown = page.alarm_id if page is not None and shiboken6.isValid(page) else None
        self.alarm_list.setStyleSheet("")
        if shown is not None:
            self._drop_page()
            item = self._items.get(shown)
            if item is not None:
                self._on_row(self.alarm_list.row(item))
        for alarm_id in self._items:
            self._refresh(alarm_id)
        self._mark_selection()

    # -- internals -------------------------------------------------------------------------

    def _on_row(self, row: int) -> None:
        item = self.alarm_list.item(row)
        alarm_id = next((a for a, i in self._items.items() if i is item), None)
        if alarm_id is None:
            return
        page = self.page
        if page is not None and shiboken6.isValid(page) and page.alarm_id == alarm_id:
            return
        self._drop_page()
        page = EscalationDialog(self._runtime, alarm_id, self._feed, self._tasks, self._holder,
                                theme=self._theme, embedded=True)
        page.updated.connect(lambda a=alarm_id: self._on_page_updated(a))
        page.destroyed.connect(lambda _=None, a=alarm_id: self._on_page_destroyed(a))
        self._holder_layout.addWidget(page)
        self.page = page
        page.show()
        self._mark_selection()

    def _drop_page(self) -> None:
        page, self.page = self.page, None
        if page is not None and shiboken6.isValid(page):
            page.updated.disconnect()
            page.destroyed.disconnect()
            page.hide()
            page.deleteLater()

    def _on_page_destroyed(self, alarm_id: int) -> None:
        # Closed by the nurse (Close, Esc): the alarm comes off the list; an automatic
        # escalation of it lists it again.
        if not shiboken6.isValid(self):  # the window itself is being deleted
            return
        self.page = None
        self.remove(alarm_id)

    def _on_page_updated(self, alarm_id: int) -> None:
        page = self.page
        if page is None or alarm_id not in self._states:
            return
        alarm = page.alarm or self._states[alarm_id][0]
        self._states[alarm_id] = (alarm, self._stage_text(page.chain, ended=page.ended))
        self._refresh(alarm_id)

    def _on_transition(self, transition: AlarmTransition) -> None:
        alarm_id = transition.alarm.alarm_id
        if alarm_id is None or alarm_id not in self._states:
            return
        ended = (transition.kind is TransitionKind.ESCALATION_ENDED
                 or not transition.alarm.is_open)
        _alarm, stage = self._states[alarm_id]
        if transition.escalation is not None or ended:
            stage = self._stage_text(transition.escalation, ended=ended)
        self._states[alarm_id] = (transition.alarm, stage)
        self._refresh(alarm_id)

    @staticmethod
    def _stage_text(chain: ChainState | None, *, ended: bool) -> str:
        if ended:
            return "escalation ended"
        if chain is None:
            return "escalation"
        if chain.stage is ChainStage.ASKING_PATIENT:
            return "asking the patient"
        if chain.stage is ChainStage.DECLINED:
            return "the patient declined"
        notified = ", ".join(ROLE_TEXT.get(r.value, r.value) for r in chain.notified)
        return f"notified: {notified}" if notified else STAGE_TEXT[chain.stage].lower()

    def _refresh(self, alarm_id: int) -> None:
        item, state = self._items.get(alarm_id), self._states.get(alarm_id)
        if item is None or state is None:
            return
        alarm, stage = state
        where = f"Bed {alarm.bed_label}" if alarm.bed_label else (alarm.device_id or "")
        page = self.page
        shown = page is not None and shiboken6.isValid(page) and page.alarm_id == alarm_id
        item.setText(f"{'▶ ' if shown else ''}{where} · {alarm.message}\n{stage}")
        c = self._colors
        item.setBackground(QColor(c.alarm_color(alarm.priority)))
        item.setForeground(QColor(c.on_alarm_color(alarm.priority)))
        if shown:
            self._mark_selection()

    def _mark_selection(self) -> None:
        """The selected entry keeps its priority colour and is marked ▶: a selection
        highlight would hide that the alarm is high."""
        page = self.page
        state = self._states.get(page.alarm_id) if page is not None else None
        if state is not None:
            c, priority = self._colors, state[0].priority
            sheet = (f"QListWidget::item:selected {{ background: {c.alarm_color(priority)};"
                     f" color: {c.on_alarm_color(priority)}; }}")
            if self.alarm_list.styleSheet() != sheet:
                self.alarm_list.setStyleSheet(sheet)
        for alarm_id, item in self._items.items():
            marked = item.text().startswith("▶ ")
            shown = page is not None and page.alarm_id == alarm_id
            if marked != shown:
                text = item.text()
                item.setText(f"▶ {text}" if shown else text.removeprefix("▶ "))

    def _retitle(self) -> None:
        self.setWindowTitle(f"Escalations ({len(self._items)})")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._drop_page()
        super().closeEvent(event)
