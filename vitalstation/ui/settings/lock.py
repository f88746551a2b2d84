"""The admin lock in front of Settings: choose the admin password on first use, then ask for
it. Checking runs off the GUI thread (scrypt takes ~0.1 s on purpose); the ward screen stays
live and usable by nurses meanwhile.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from vitalstation.app.settings_admin import MIN_PASSWORD_CHARS, AdminLock
from vitalstation.ui.settings.forms import NEUTRAL_STYLE, MessageLine
from vitalstation.ui.tasks import BackgroundTasks


class AdminLockDialog(QDialog):
    """Emits ``unlocked`` once the right password is given (or a first one chosen)."""

    unlocked = Signal()

    def __init__(self, lock: AdminLock, tasks: BackgroundTasks | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("admin_lock_dialog")
        self.setStyleSheet(NEUTRAL_STYLE)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle("Settings are locked")
        self._lock = lock
        self._owns_tasks = tasks is None
        self._tasks = tasks if tasks is not None else BackgroundTasks(self)
        self.first_use = not lock.is_set()
        self.password = QLineEdit(self)
        self.password.setObjectName("admin_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit(self)
        self.repeat.setObjectName("admin_password_repeat")
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = MessageLine(self)
        self.message.setObjectName("lock_message")
        intro = QLabel(self)
        intro.setWordWrap(True)
        form = QFormLayout()
        if self.first_use:
            intro.setText(
                "Choose the admin password that will protect Settings on this station "
                f"(at least {MIN_PASSWORD_CHARS} characters). The ward screen stays in use "
                "while Settings is locked."
            )
            form.addRow("New admin password", self.password)
            form.addRow("Repeat it", self.repeat)
        else:
            intro.setText("Settings are for the station's administrators. Enter the admin "
                          "password; the ward screen stays in use meanwhile.")
            form.addRow("Admin password", self.password)
            self.repeat.hide()
        buttons = QDialogButtonBox(self)
        self.ok_button = buttons.addButton(
            "Set password and open" if self.first_use else "Unlock",
            QDialogButtonBox.ButtonRole.AcceptRole,
        )
        self.ok_button.setObjectName("unlock_button")
        self.ok_button.setDefault(True)
        self.ok_button.clicked.connect(lambda _checked=False: self.submit())
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel).clicked.connect(
            lambda _checked=False: self.close())
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def submit(self) -> None:
        """Checks (or sets) the password on a worker thread."""
        password = self.password.text()
        if self.first_use:
            if password != self.repeat.text():
                self.message.error("The two passwords differ.")
                return
            if len(password) < MIN_PASSWORD_CHARS:
                self.message.error(f"At least {MIN_PASSWORD_CHARS} characters, please.")
                return
        self.ok_button.setEnabled(False)
        self.message.info("Checking…")
        lock = self._lock
        if self.first_use:
            def work() -> bool:
                lock.set_password(password)
                return True
        else:
            def work() -> bool:
                return lock.verify(password)
        self._tasks.submit(work, self._checked, self._failed)

    def _checked(self, matches: bool) -> None:
        self.ok_button.setEnabled(True)
        self.password.clear()
        self.repeat.clear()
        if not matches:
            self.message.error("Wrong password.")
            self.password.setFocus()
            return
        self.unlocked.emit()
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Joins the workers this dialog started (a check in flight ends within ~0.1 s)."""
        if self._owns_tasks:
            self._tasks.shutdown(wait=True)
        super().closeEvent(event)

    def _failed(self, exc: BaseException) -> None:
        self.ok_button.setEnabled(True)
        self.password.clear()
        self.message.error(str(exc))
