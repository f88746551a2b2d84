"""Form pieces of the Settings dialog: fields for settings keys (typed from the settings
dataclasses), password fields for secrets, a message line, and simple tables.

A field remembers the value it was loaded with, so the dialog saves only what changed. A value
set by an environment variable is shown read-only, saying which variable to change instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitalstation.config.settings import Settings

Key = tuple[str, str]

ERROR_STYLE = "color: #b00020;"
# Settings are read in daylight by an admin: the system palette, whatever the ward screen's
# theme. A widget's own style sheet wins over its parents', so these rules undo the window's
# day/night rules (theme.style_sheet) for the dialogs and everything in them.
NEUTRAL_STYLE = """
QWidget { color: palette(window-text); }
QDialog, QScrollArea, QScrollArea > QWidget > QWidget { background: palette(window); }
QTableView { background: palette(base); color: palette(text); }
QHeaderView::section { background: palette(button); color: palette(button-text);
                       border: 1px solid palette(mid); padding: 2px 4px; }
QLabel { background: transparent; }
QPushButton { background: palette(button); color: palette(button-text);
              border: 1px solid palette(mid); border-radius: 4px; padding: 4px 12px; }
QPushButton:hover { border-color: palette(dark); }
QPushButton:disabled { color: palette(mid); }
"""
OK_STYLE = "color: #1b5e20;"
_MAX_INT = 2_147_483_647

# Labels an admin reads; keys without one get "Key name" from the key.
LABELS: dict[Key, str] = {
    ("mqtt", "url"): "Broker URL",
    ("mqtt", "tls_ca"): "TLS CA file",
    ("mqtt", "tls_cert"): "TLS client certificate",
    ("mqtt", "tls_key"): "TLS client key",
    ("mqtt", "qos"): "QoS",
    ("mqtt", "client_id"): "Client id",
    ("embedded_broker", "port"): "Embedded broker port",
    ("kinesis", "endpoint_url"): "Endpoint URL",
    ("kinesis", "poll_interval_ms"): "Poll interval (ms)",
    ("rest", "tls_cert"): "TLS certificate",
    ("rest", "tls_key"): "TLS key",
    ("rest", "rate_limit"): "Rate limit (requests/min/key)",
    ("rest", "max_body_bytes"): "Max body (bytes)",
    ("rest", "activity_retention_days"): "REST activity kept (days)",
    ("filedrop", "retention_days"): "Archive kept (days)",
    ("dynamodb", "endpoint_url"): "Endpoint URL",
    ("store", "url"): "Database URL",
    ("alarms", "profile"): "Alarm limit profile",
    ("alarms", "escalation_high_s"): "Escalate high priority after (s)",
    ("alarms", "escalation_medium_s"): "Escalate medium priority after (s)",
    ("alarms", "escalation_low_s"): "Escalate low priority after (s)",
    ("notifications", "smtp_host"): "SMTP server",
    ("notifications", "smtp_port"): "SMTP port",
    ("notifications", "smtp_security"): "SMTP security",
    ("notifications", "smtp_username"): "SMTP user name",
    ("notifications", "smtp_from"): "Sender address",
    ("notifications", "timeout_s"): "Timeout (s)",
    ("notifications", "retry_initial_s"): "First retry after (s)",
    ("notifications", "retry_max_s"): "Longest retry pause (s)",
    ("notifications", "max_attempts"): "Attempts per message",
}


def label_for(key: Key) -> str:
    """The label of a settings key."""
    return LABELS.get(key) or key[1].replace("_", " ").capitalize()


class MessageLine(QLabel):
    """One line saying what just happened: green when it worked, red with the reason if not."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def ok(self, text: str) -> None:
        """Shows a success."""
        self.setStyleSheet(OK_STYLE)
        self.setText(text)

    def error(self, text: str) -> None:
        """Shows a failure and why."""
        self.setStyleSheet(ERROR_STYLE)
        self.setText(text)

    def info(self, text: str) -> None:
        """Shows a neutral note (work in progress)."""
        self.setStyleSheet("")
        self.setText(text)


class SettingField:
    """One settings key: its editor widget, its loaded value and its error label."""

    def __init__(self, key: Key, default: Any, choices: Sequence[str] | None,
                 parent: QWidget) -> None:
        self.key = key
        self.kind = type(default)
        self.error = QLabel(parent)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.loaded: Any = default
        self.widget: QWidget
        if self.kind is bool:
            self.widget = QCheckBox(parent)
        elif self.kind is int:
            spin = QSpinBox(parent)
            spin.setRange(-1, _MAX_INT)  # -1 reaches the settings' own range check
            spin.setMinimumWidth(110)
            self.widget = spin
        elif choices:
            combo = QComboBox(parent)
            combo.addItems(list(choices))
            self.widget = combo
        else:
            line = QLineEdit(parent)
            line.setMinimumWidth(260)
            if self.kind is tuple:
                line.setPlaceholderText("comma-separated")
            self.widget = line
        self.widget.setObjectName(f"field_{key[0]}_{key[1]}")

    def load(self, settings: Settings) -> None:
        """Shows the value in force; read-only when an environment variable sets it."""
        value = getattr(getattr(settings, self.key[0]), self.key[1])
        self.loaded = value
        widget = self.widget
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QSpinBox):
            widget.setValue(int(value))
        elif isinstance(widget, QComboBox):
            index = widget.findText(str(value))
            if index < 0:
                widget.addItem(str(value))
                index = widget.count() - 1
            widget.setCurrentIndex(index)
        elif isinstance(widget, QLineEdit):
            widget.setText(", ".join(value) if isinstance(value, tuple) else str(value))
        source = settings.source_of(*self.key)
        from_env = source.startswith("env ")
        widget.setEnabled(not from_env)
        widget.setToolTip(
            f"set by the environment variable {source[4:]}: change it there" if from_env
            else f"{self.key[0]}.{self.key[1]} in vitalstation.toml"
        )
        self.set_error(None)
        if from_env:
            self.error.setStyleSheet("color: palette(mid);")
            self.error.setText(f"set by {source[4:]}; change it there")
            self.error.show()

    def value(self) -> Any:
        """The value shown now, typed like the setting."""
        widget = self.widget
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QSpinBox):
            return widget.value()
        if isinstance(widget, QComboBox):
            return widget.currentText()
        assert isinstance(widget, QLineEdit)
        text = widget.text()
        if self.kind is tuple:
            return tuple(item.strip() for item in text.split(",") if item.strip())
        return text.strip()

    def changed(self) -> bool:
        """Whether the admin changed it."""
        return self.widget.isEnabled() and self.value() != self.loaded

    def set_error(self, text: str | None) -> None:
        """Shows (or clears) the reason this value was refused, under the field."""
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setText(text or "")
        self.error.setVisible(bool(text))
        self.widget.setStyleSheet("border: 1px solid #b00020;" if text else "")


class SecretField(QWidget):
    """A secret: a password box that never shows the stored value. Empty keeps it;
    "Remove" deletes it at the next save."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.stored = False
        self._remove = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit(self)
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setObjectName(f"secret_{name}")
        self.edit.setMinimumWidth(220)
        self.edit.textEdited.connect(lambda _text: self._set_remove(False))
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(lambda: self._set_remove(True))
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.remove_button)
        self.error = QLabel(parent)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.set_stored(False)

    def set_stored(self, stored: bool, *, readable: bool = True) -> None:
        """Whether the keyring holds this secret (``readable`` False: no keyring)."""
        self.stored = stored
        self._remove = False
        self.edit.clear()
        if not readable:
            self.edit.setPlaceholderText("no keyring: see Storage and display")
        else:
            self.edit.setPlaceholderText(
                "stored in the keyring; type to replace" if stored else "not set"
            )
        self.remove_button.setEnabled(stored)

    def _set_remove(self, remove: bool) -> None:
        self._remove = remove and self.stored
        if self._remove:
            self.edit.clear()
            self.edit.setPlaceholderText("will be removed when you save")

    def pending(self) -> tuple[bool, str | None]:
        """(changed, new value or None to delete)."""
        if self._remove:
            return True, None
        if self.edit.text():
            return True, self.edit.text()
        return False, None

    def set_error(self, text: str | None) -> None:
        """Shows (or clears) why the keyring refused it."""
        self.error.setText(text or "")
        self.error.setVisible(bool(text))


class SettingsForm(QWidget):
    """A form of settings keys and secrets, in a QFormLayout with an error line under each."""

    def __init__(self, keys: Iterable[Key], settings: Settings, *,
                 choices: Mapping[Key, Sequence[str]] | None = None,
                 secrets: Iterable[tuple[str, str]] = (),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.fields: dict[Key, SettingField] = {}
        self.secret_fields: dict[str, SecretField] = {}
        choices = choices or {}
        for key in keys:
            default = getattr(getattr(Settings(home=settings.home), key[0]), key[1])
            field = SettingField(key, default, choices.get(key), self)
            self.fields[key] = field
            self.layout_.addRow(label_for(key), field.widget)
            self.layout_.addRow("", field.error)
        for name, label in secrets:
            secret = SecretField(name, self)
            self.secret_fields[name] = secret
            self.layout_.addRow(label, secret)
            self.layout_.addRow("", secret.error)
        self.load(settings)

    def load(self, settings: Settings) -> None:
        """Shows the settings in force."""
        for field in self.fields.values():
            field.load(settings)

    def changes(self) -> dict[Key, Any]:
        """The keys the admin changed, with their new values."""
        return {key: f.value() for key, f in self.fields.items() if f.changed()}

    def secret_changes(self) -> dict[str, str | None]:
        """The secrets typed or removed (None: remove)."""
        changes = {}
        for name, field in self.secret_fields.items():
            changed, value = field.pending()
            if changed:
                changes[name] = value
        return changes

    def show_error(self, key: Key | str, text: str) -> bool:
        """Puts ``text`` under the field of ``key`` (a settings key or secret name), if here."""
        target = self.fields.get(key) if isinstance(key, tuple) else self.secret_fields.get(key)
        if target is None:
            return False
        target.set_error(text)
        return True

    def clear_errors(self) -> None:
        """Removes every field's error."""
        for field in self.fields.values():
            field.set_error(None)
        for secret in self.secret_fields.values():
            secret.set_error(None)


def make_table(headers: Sequence[str], parent: QWidget | None = None) -> QTableWidget:
    """A read-only, row-selecting table with these column headers."""
    table = QTableWidget(0, len(headers), parent)
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setAlternatingRowColors(True)
    return table


def fill_table(table: QTableWidget, rows: Sequence[Sequence[Any]]) -> None:
    """Replaces the table's rows, keeping the selected row's first cell selected if present."""
    selected = selected_text(table)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, QTableWidgetItem("" if value is None else str(value)))
    if selected is not None:
        for r in range(table.rowCount()):
            item = table.item(r, 0)
            if item is not None and item.text() == selected:
                table.selectRow(r)
                break


def selected_text(table: QTableWidget, column: int = 0) -> str | None:
    """The text in ``column`` of the selected row, or None."""
    rows = table.selectionModel().selectedRows() if table.selectionModel() else []
    if not rows:
        return None
    item = table.item(rows[0].row(), column)
    return item.text() if item is not None else None


def selection_or_say(table: QTableWidget, message: MessageLine, what: str,
                     column: int = 0) -> str | None:
    """The selected row's text in ``column``; None after telling the admin to select one."""
    text = selected_text(table, column)
    if text is None:
        message.error(f"Select {what} first.")
    return text


def button(text: str, slot: Callable[[], None], parent: QWidget, name: str = "") -> QPushButton:
    """A push button calling ``slot`` (without the checked flag)."""
    widget = QPushButton(text, parent)
    widget.clicked.connect(lambda _checked=False: slot())
    if name:
        widget.setObjectName(name)
    return widget


def row(*widgets: QWidget, stretch: bool = True) -> QHBoxLayout:
    """A horizontal row of widgets, left-aligned."""
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    if stretch:
        layout.addStretch(1)
    return layout


def vbox(parent: QWidget) -> QVBoxLayout:
    """A vertical layout on ``parent``."""
    return QVBoxLayout(parent)
