"""Settings > Audit log: who did what, newest first, as ``vitalstation audit`` lists it: the
register, settings, keys, limit overrides, NEWS2 entries and contacts, with every step a person
took on an alarm. Read-only; loaded off the GUI thread when the page is first shown, on
Refresh and when the range changes, so opening Settings never waits for it."""

from __future__ import annotations

from datetime import timedelta

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from vitalstation.app.audit import AuditEntry, details_text, subject_text
from vitalstation.app.settings_admin import AUDIT_PAGE_LIMIT
from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.forms import MessageLine, button, fill_table, make_table, row

# (label, how far back); None: everything kept.
RANGES: tuple[tuple[str, timedelta | None], ...] = (
    ("last hour", timedelta(hours=1)),
    ("last 12 hours", timedelta(hours=12)),
    ("last 24 hours", timedelta(hours=24)),
    ("last 7 days", timedelta(days=7)),
    ("last 30 days", timedelta(days=30)),
    ("everything", None),
)
DEFAULT_RANGE = "last 24 hours"
COLUMNS = ("At (UTC)", "Who", "From", "Action", "Subject", "Details")


class AuditPage(QWidget):
    """The audit trail, filtered by time range and by who."""

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.entries: list[AuditEntry] = []
        self.range = QComboBox(self)
        self.range.setObjectName("audit_range")
        self.range.addItems([label for label, _ in RANGES])
        self.range.setCurrentText(DEFAULT_RANGE)
        self.range.currentTextChanged.connect(lambda _text: self.refresh())
        self.actor = QLineEdit(self)
        self.actor.setObjectName("audit_actor")
        self.actor.setPlaceholderText("anyone")
        self.actor.setToolTip("Only what this person did, named exactly as recorded "
                              "(e.g. nurse:jo, settings:admin, cli:root); Enter to apply.")
        self.actor.setMinimumWidth(200)
        self.actor.returnPressed.connect(self.refresh)
        self.table = make_table(COLUMNS, self)
        self.table.setObjectName("audit_table")
        self.table.setWordWrap(False)
        self.message = MessageLine(self)
        self.message.setObjectName("audit_message")
        layout = QVBoxLayout(self)
        layout.addLayout(row(QLabel("Show", self), self.range, QLabel("by", self), self.actor,
                             button("Refresh", self.refresh, self, "audit_refresh")))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        self._loaded_once = False
        self._generation = 0

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        """The first time the page is shown: load it (not when Settings opens)."""
        super().showEvent(event)
        if not self._loaded_once:
            self._loaded_once = True
            self.refresh()

    def refresh(self) -> None:
        """Reloads the entries in the chosen range, by the chosen actor. Loads run on two
        threads and may finish out of order: only the latest one's result is shown."""
        self._loaded_once = True
        self._generation += 1
        generation = self._generation
        label = self.range.currentText()
        back = dict(RANGES)[label]
        actor = self.actor.text().strip() or None
        admin = self.context.admin

        def loaded(entries: list[AuditEntry]) -> None:
            if generation != self._generation:
                return  # a later refresh is on its way
            self.entries = entries
            fill_table(self.table, [
                (e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.origin, e.action,
                 subject_text(e), details_text(e))
                for e in entries
            ])
            for r in range(self.table.rowCount()):  # long subjects and details, whole
                for c in (COLUMNS.index("Subject"), COLUMNS.index("Details")):
                    item = self.table.item(r, c)
                    item.setToolTip(item.text())
            who = f" by {actor}" if actor else ""
            if len(entries) >= AUDIT_PAGE_LIMIT:
                self.message.info(f"The newest {AUDIT_PAGE_LIMIT} entries{who}, {label}: "
                                  "choose a shorter range or a person for the others.")
            else:
                self.message.info(f"{len(entries)} entries{who}, {label}.")

        self.context.run(lambda: admin.audit_entries(back=back, actor=actor), loaded,
                         self.message, "Loading the audit log…")
