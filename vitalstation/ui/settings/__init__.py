"""Settings: the admin lock, then the Settings dialog (``open_settings`` is what the main
window's Settings menu calls)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_admin import audited_admin_lock
from vitalstation.ui.settings.dialog import SettingsDialog
from vitalstation.ui.settings.lock import AdminLockDialog
from vitalstation.ui.tasks import BackgroundTasks

__all__ = ["AdminLockDialog", "SettingsDialog", "open_settings"]


def open_settings(parent: QWidget, runtime: Runtime) -> None:
    """Asks for the admin password, then shows Settings (non-modal; one at a time).

    Uses the window's ``tasks`` (BackgroundTasks) when it has them, else the dialogs' own.
    """
    for existing in parent.findChildren(SettingsDialog, "settings_dialog"):
        if existing.isVisible():  # a closed one may await its deletion
            existing.raise_()
            existing.activateWindow()
            return
    try:
        runtime.store  # noqa: B018 - raises until the runtime has started
    except RuntimeError:
        note = QMessageBox(QMessageBox.Icon.Information, "Settings",
                           "The station is still starting; open Settings in a moment.",
                           QMessageBox.StandardButton.Close, parent)
        note.setObjectName("settings_not_ready")
        note.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        note.show()
        return
    shared = getattr(parent, "tasks", None)
    tasks = shared if isinstance(shared, BackgroundTasks) else None
    lock = AdminLockDialog(
        audited_admin_lock(runtime.settings.home, runtime.store, clock=runtime.clock), tasks,
        parent,
    )

    def show_settings() -> None:
        SettingsDialog(runtime, parent, tasks=tasks).show()

    lock.unlocked.connect(show_settings)
    lock.show()
