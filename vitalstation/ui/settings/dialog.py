"""The Settings dialog: tabs for devices, patients and beds, inputs, alarms, storage and display.

Non-modal: the ward screen stays live behind it. Every database, keyring and network call runs
on the dialog's BackgroundTasks; results come back on the GUI thread. Saving writes only what
changed, checks the whole file first (a refused value is shown under its field and nothing is
saved), stores typed secrets in the keyring, then restarts only the affected inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_admin import AdminService
from vitalstation.app.settings_apply import ApplyResult, apply_settings, check_settings
from vitalstation.config.errors import ConfigError
from vitalstation.config.secrets import SecretStore, SecretStoreError
from vitalstation.domain.errors import UserError
from vitalstation.ui.settings.forms import NEUTRAL_STYLE, MessageLine, SettingsForm
from vitalstation.ui.tasks import BackgroundTasks

T = TypeVar("T")


@dataclasses.dataclass
class SettingsContext:
    """What every page uses: the runtime, the workers, the admin service, the secrets, and
    the window behind (for display settings)."""

    runtime: Runtime
    tasks: BackgroundTasks
    admin: AdminService
    secrets: SecretStore
    window: QWidget | None

    def run(self, fn: Callable[[], T], on_done: Callable[[T], None],
            message: MessageLine, busy: str = "Working…") -> None:
        """Runs ``fn`` off the GUI thread; a failure's message goes to ``message`` in red."""
        message.info(busy)

        def done(result: T) -> None:
            if shiboken6.isValid(message):  # the page may have closed meanwhile
                on_done(result)

        def failed(exc: BaseException) -> None:
            if shiboken6.isValid(message):
                message.error(_reason(exc))

        self.tasks.submit(fn, done, failed)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    plain = ValueError | LookupError | SecretStoreError | UserError | ConfigError
    return text if isinstance(exc, plain) else (
        f"{type(exc).__name__}: {text}")


class SettingsDialog(QDialog):
    """The unlocked Settings window (one per station window)."""

    def __init__(self, runtime: Runtime, parent: QWidget | None = None, *,
                 tasks: BackgroundTasks | None = None, secrets: SecretStore | None = None,
                 actor: str | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settings_dialog")
        self.setStyleSheet(NEUTRAL_STYLE)
        self.setWindowTitle(f"Settings — {runtime.settings.station.name}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._owns_tasks = tasks is None
        self.tasks = tasks if tasks is not None else BackgroundTasks(self)
        self.secrets = secrets or SecretStore.for_settings(runtime.settings)
        self.context = SettingsContext(
            runtime, self.tasks,
            AdminService(runtime.store, self.secrets, clock=runtime.clock, actor=actor),
            self.secrets, parent,
        )
        # Imported here: the pages import this module's SettingsContext.
        from vitalstation.ui.settings.alarms_page import AlarmsPage
        from vitalstation.ui.settings.audit_page import AuditPage
        from vitalstation.ui.settings.devices_page import DevicesPage
        from vitalstation.ui.settings.inputs_page import InputsPage
        from vitalstation.ui.settings.patients_page import PatientsPage
        from vitalstation.ui.settings.storage_page import StoragePage

        self.tabs = QTabWidget(self)
        self.devices = DevicesPage(self.context, self)
        self.patients = PatientsPage(self.context, self)
        self.inputs = InputsPage(self.context, self)
        self.alarms = AlarmsPage(self.context, self)
        self.storage = StoragePage(self.context, self)
        self.audit_log = AuditPage(self.context, self)
        for page, title in ((self.devices, "Devices"), (self.patients, "Patients and beds"),
                            (self.inputs, "Inputs"), (self.alarms, "Alarms"),
                            (self.storage, "Storage and display"), (self.audit_log, "Audit log")):
            self.tabs.addTab(page, title)
        self.message = MessageLine(self)
        self.message.setObjectName("save_message")
        buttons = QDialogButtonBox(self)
        self.save_button = buttons.addButton("Save and apply",
                                             QDialogButtonBox.ButtonRole.ApplyRole)
        self.save_button.setObjectName("save_button")
        self.save_button.clicked.connect(lambda _checked=False: self.save())
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(lambda _checked=False: self.close())
        note = QLabel("Devices, patients and keys change at once. Inputs, alarms and storage "
                      "change when you press Save and apply.", self)
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(note)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(1100, 800)
        self.context.run(lambda: self.context.admin.audit("settings.unlock", "settings"),
                         lambda _none: self.message.info(""), self.message, "")

    # -- saving ------------------------------------------------------------------------------

    def forms(self) -> list[SettingsForm]:
        """Every form of settings keys and secrets, on every page."""
        return [*self.inputs.forms, *self.alarms.forms, *self.storage.forms]

    def save(self) -> None:
        """Checks, stores secrets, saves and applies, off the GUI thread."""
        forms = self.forms()
        for form in forms:
            form.clear_errors()
        changes: dict[tuple[str, str], Any] = {}
        secrets: dict[str, str | None] = {}
        for form in forms:
            changes.update(form.changes())
            secrets.update(form.secret_changes())
        if not changes and not secrets:
            self.message.info("Nothing changed.")
            return
        self.save_button.setEnabled(False)
        runtime, store = self.context.runtime, self.secrets
        admin = self.context.admin
        home = runtime.settings.home

        def work() -> ApplyResult:
            check_settings(home, changes)  # refused values stop everything here
            for name, value in secrets.items():
                try:
                    if value is None:
                        store.delete(name)
                    else:
                        store.set(name, value)
                except SecretStoreError as exc:
                    raise _SecretRefused(name, str(exc)) from None
            result = apply_settings(runtime, changes, secrets_changed=list(secrets))
            admin.audit("settings.save", "vitalstation.toml",
                        {"changed": list(result.changed), "secrets": sorted(secrets),
                         "restarted": list(result.restarted)})
            for change in result.alarm_changes:
                admin.audit("alarms.setting", change.what,
                            {"old": change.old, "new": change.new})
            return result

        self.message.info("Saving…")
        self.tasks.submit(work, self._saved, self._not_saved)

    def _saved(self, result: ApplyResult) -> None:
        self.save_button.setEnabled(True)
        for page in (self.inputs, self.alarms, self.storage):
            page.load(result.settings)
        parts = ["Saved."]
        if result.restarted:
            parts.append(f"Restarted: {', '.join(result.restarted)}; the other inputs kept "
                         "running.")
        if result.at_next_start:
            parts.append(f"Applies at the next start of the station: "
                         f"{', '.join(result.at_next_start)}.")
        self.message.ok(" ".join(parts))

    def _not_saved(self, exc: BaseException) -> None:
        self.save_button.setEnabled(True)
        if isinstance(exc, ConfigError) and exc.key:
            section, _, key = exc.key.partition(".")
            self._show_at((section, key), exc.reason)
            self.message.error(f"Not saved: {exc.key}: {exc.reason}")
        elif isinstance(exc, _SecretRefused):
            self._show_at(exc.name, exc.reason)
            self.message.error(f"Not saved: {exc.reason}")
        else:
            self.message.error(f"Not saved: {_reason(exc)}")

    def _show_at(self, key: tuple[str, str] | str, text: str) -> None:
        for page in (self.inputs, self.alarms, self.storage):
            for form in page.forms:
                if form.show_error(key, text):
                    self.tabs.setCurrentWidget(page)
                    return

    # -- closing -----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Drops pending results; joins the workers this dialog started."""
        if self._owns_tasks:
            self.tasks.shutdown(wait=True)
        super().closeEvent(event)


class _SecretRefused(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason
