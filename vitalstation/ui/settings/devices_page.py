"""Settings > Devices: registered devices (what they are, where they are assigned, their status,
last report, battery and signal), their API keys, and the devices seen but not registered.

Every change goes through the same app-layer operations as ``vitalstation device ...`` and is
audited. A new key is shown once, in its own window with a Copy button; the station keeps only
its hash (and, if asked, a copy in this station's keyring for the simulator).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vitalstation.app.settings_admin import DEVICE_STATUSES, DeviceView, IssuedKey
from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.forms import (
    MessageLine,
    button,
    fill_table,
    make_table,
    row,
    selected_text,
    selection_or_say,
)

UNASSIGNED = "(unassigned)"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} %"


class KeyShownDialog(QDialog):
    """The one time a new key is shown: select or copy it now; it cannot be shown again."""

    def __init__(self, issued: IssuedKey, kept_asked: bool, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setObjectName("key_shown_dialog")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"New API key for {issued.new.device_id}")
        self.key = QLineEdit(issued.key, self)
        self.key.setObjectName("new_key")
        self.key.setReadOnly(True)
        self.key.setMinimumWidth(520)
        self.key.selectAll()
        copy = button("Copy", self.copy, self, "copy_key")
        warning = QLabel(
            "This key is shown only now: the station keeps only its hash. Copy it into the "
            f"device (prefix {issued.new.prefix}, for {issued.new.name!r}).", self)
        warning.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(warning)
        layout.addLayout(row(self.key, copy, stretch=False))
        if issued.kept:
            layout.addWidget(QLabel("A copy is kept in this station's keyring for the "
                                    "simulator (vitalstation-sim).", self))
        elif kept_asked:
            problem = QLabel(f"Not kept for the simulator: {issued.kept_problem}", self)
            problem.setWordWrap(True)
            problem.setStyleSheet("color: #b00020;")
            layout.addWidget(problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)

    def copy(self) -> None:
        """Puts the key on the clipboard."""
        QGuiApplication.clipboard().setText(self.key.text())

    def done(self, result: int) -> None:
        """Forgets the key's text when the window goes."""
        self.key.clear()
        super().done(result)


class DevicesPage(QWidget):
    """Devices, their keys, and unregistered devices."""

    DEVICE_COLUMNS = ("Device id", "Name", "Type", "Manufacturer", "Model", "Firmware",
                      "Status", "Bed", "Patient", "Last seen (UTC)", "Battery", "Signal")
    KEY_COLUMNS = ("Prefix", "Name", "State", "Created (UTC)", "Expires", "Writes vitals",
                   "Reads patient", "Last used", "Uses", "Kept for simulator")
    UNKNOWN_COLUMNS = ("Device id", "First seen (UTC)", "Last seen", "Input", "Readings")

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.message = MessageLine(self)
        self.message.setObjectName("devices_message")
        self.devices: list[DeviceView] = []
        self.key_windows: list[KeyShownDialog] = []

        # Registered devices and what can be done to the selected one.
        self.table = make_table(self.DEVICE_COLUMNS, self)
        self.table.setObjectName("devices_table")
        self.table.itemSelectionChanged.connect(self._device_selected)
        self.assign_to = QComboBox(self)
        self.assign_to.setObjectName("assign_to")
        self.assign_to.setMinimumWidth(160)
        self.status = QComboBox(self)
        self.status.setObjectName("device_status")
        self.status.addItems(list(DEVICE_STATUSES))
        actions = row(QLabel("Selected device:", self), QLabel("assign to", self),
                      self.assign_to, button("Assign", self.assign, self, "assign_button"),
                      QLabel("status", self), self.status,
                      button("Set status", self.set_status, self, "status_button"),
                      button("Refresh", self.refresh, self))

        # Registering (also the one-click target of an unregistered device).
        register = QGroupBox("Register a device", self)
        self.reg_fields: dict[str, QLineEdit] = {}
        grid = QGridLayout(register)
        for index, (name, label) in enumerate((
            ("device_id", "Device id"), ("name", "Name"), ("device_type", "Type"),
            ("manufacturer", "Manufacturer"), ("model", "Model"), ("firmware", "Firmware"),
        )):
            edit = QLineEdit(register)
            edit.setObjectName(f"reg_{name}")
            self.reg_fields[name] = edit
            grid.addWidget(QLabel(label, register), index // 3, (index % 3) * 2)
            grid.addWidget(edit, index // 3, (index % 3) * 2 + 1)
        grid.addWidget(button("Register", self.register, register, "register_button"), 2, 5)

        # Keys of the selected device.
        keys = QGroupBox("API keys of the selected device", self)
        self.keys_table = make_table(self.KEY_COLUMNS, keys)
        self.keys_table.setObjectName("keys_table")
        self.key_name = QLineEdit("device", keys)
        self.key_name.setObjectName("key_name")
        self.key_name.setMinimumWidth(130)
        self.expires = QDoubleSpinBox(keys)
        self.expires.setObjectName("key_expires_days")
        self.expires.setRange(0, 3650)
        self.expires.setDecimals(0)
        self.expires.setSpecialValueText("never")
        self.expires.setSuffix(" days")
        self.can_write = QCheckBox("writes vitals", keys)
        self.can_write.setChecked(True)
        self.can_read = QCheckBox("reads its patient", keys)
        self.keep = QCheckBox("keep in this station's keyring for the simulator", keys)
        self.keep.setObjectName("keep_for_simulator")
        key_layout = QVBoxLayout(keys)
        key_layout.addWidget(self.keys_table)
        key_layout.addLayout(row(QLabel("Name", keys), self.key_name, QLabel("expires", keys),
                                 self.expires, self.can_write, self.can_read))
        key_layout.addLayout(row(self.keep))
        key_layout.addLayout(row(button("Issue key", self.issue_key, keys, "issue_key"),
                                 button("Rotate selected", self.rotate_key, keys, "rotate_key"),
                                 button("Revoke selected", self.revoke_key, keys, "revoke_key")))

        # Devices seen but not registered.
        unknown = QGroupBox("Seen but not registered", self)
        self.unknown_table = make_table(self.UNKNOWN_COLUMNS, unknown)
        self.unknown_table.setObjectName("unknown_table")
        self.unknown_table.itemSelectionChanged.connect(self._unknown_selected)
        self.payload = QPlainTextEdit(unknown)
        self.payload.setObjectName("last_payload")
        self.payload.setReadOnly(True)
        self.payload.setPlaceholderText("the last payload of the selected device")
        self.payload.setMaximumHeight(70)
        unknown_layout = QVBoxLayout(unknown)
        unknown_layout.addWidget(self.unknown_table, 1)
        unknown_layout.addWidget(self.payload)
        unknown_layout.addWidget(button("Register selected (one click)", self.register_unknown,
                                        unknown, "register_unknown"))

        lower = QSplitter(self)
        lower.addWidget(keys)
        lower.addWidget(unknown)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        lower.setSizes([560, 460])
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 2)
        layout.addLayout(actions)
        layout.addWidget(register)
        layout.addWidget(lower, 4)
        layout.addWidget(self.message)
        self.refresh()

    # -- loading -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reloads devices, beds, patients and unregistered devices."""
        admin = self.context.admin

        def load() -> tuple[Any, ...]:
            return (admin.devices(), admin.unknown_devices(), admin.beds(), admin.patients())

        self.context.run(load, self._loaded, self.message, "Loading devices…")

    def _loaded(self, loaded: tuple[Any, ...]) -> None:
        devices, unknown, beds, patients = loaded
        self.devices = devices
        fill_table(self.table, [
            (d.device_id, d.info.name, d.info.device_type, d.manufacturer, d.model, d.firmware,
             d.info.status, d.info.bed, d.info.patient_id, _when(d.info.last_seen_at),
             _percent(d.info.battery_level), _percent(d.info.signal_quality))
            for d in devices
        ])
        fill_table(self.unknown_table, [
            (u.device_id, _when(u.first_seen_at), _when(u.last_seen_at), u.last_input,
             u.reading_count) for u in unknown
        ])
        current = self.assign_to.currentText()
        self.assign_to.clear()
        self.assign_to.addItem(UNASSIGNED)
        self.assign_to.addItems([f"bed {b.label}" for b in beds])
        self.assign_to.addItems([f"patient {p.patient_id}" for p in patients])
        if current:
            self.assign_to.setCurrentText(current)
        self.message.info(f"{len(devices)} devices registered, {len(unknown)} seen but not "
                          "registered.")
        self._device_selected()

    def selected_device(self) -> str | None:
        """The device id of the selected row."""
        return selected_text(self.table)

    def _device_selected(self) -> None:
        device_id = self.selected_device()
        view = next((d for d in self.devices if d.device_id == device_id), None)
        if view is None:
            fill_table(self.keys_table, [])
            return
        self.status.setCurrentText(view.info.status)
        target = (f"bed {view.info.bed}" if view.info.bed else UNASSIGNED)
        self.assign_to.setCurrentText(target)
        self._load_keys(view.device_id)

    def _load_keys(self, device_id: str, then: str | None = None) -> None:
        admin = self.context.admin

        def load() -> tuple[list[Any], str | None]:
            return admin.keys(device_id), admin.kept_key_prefix(device_id)

        def show(loaded: tuple[list[Any], str | None]) -> None:
            keys, kept = loaded
            if self.selected_device() != device_id:
                return
            fill_table(self.keys_table, [
                (k.prefix, k.name, k.state, _when(k.created_at),
                 _when(k.expires_at) if k.expires_at else "never",
                 "yes" if k.can_write_vitals else "no", "yes" if k.can_read_patient else "no",
                 _when(k.last_used_at), k.use_count, "yes" if k.prefix == kept else "")
                for k in keys
            ])
            if then:
                self.message.ok(then)
            else:
                self.message.info(f"{device_id}: {len(keys)} keys.")

        self.context.run(load, show, self.message, f"Loading the keys of {device_id}…")

    def _unknown_selected(self) -> None:
        device_id = selected_text(self.unknown_table)
        if device_id is None:
            self.payload.clear()
            return
        admin = self.context.admin

        def show(payload: str | None) -> None:
            if selected_text(self.unknown_table) == device_id:
                self.payload.setPlainText(payload or "(no payload stored)")
                self.message.info("")

        self.context.run(lambda: admin.last_payload(device_id), show, self.message,
                         "Loading the last payload…")

    # -- changes -----------------------------------------------------------------------------

    def _change(self, work: Any, done_text: str) -> None:
        def finished(_result: object) -> None:
            self.message.ok(done_text)
            self.refresh_keep_message(done_text)

        self.context.run(work, finished, self.message)

    def refresh_keep_message(self, text: str) -> None:
        """Reloads the lists, then shows ``text`` again."""
        admin = self.context.admin

        def load() -> tuple[Any, ...]:
            return (admin.devices(), admin.unknown_devices(), admin.beds(), admin.patients())

        def loaded(result: tuple[Any, ...]) -> None:
            self._loaded(result)
            self.message.ok(text)

        self.context.run(load, loaded, self.message, text)

    def register(self) -> None:
        """Registers the device of the form (as ``vitalstation device add``)."""
        values = {name: edit.text().strip() for name, edit in self.reg_fields.items()}
        device_id = values.pop("device_id")
        if not device_id:
            self.message.error("Give the device id the device sends.")
            return
        admin = self.context.admin

        def work() -> None:
            admin.register_device(device_id, **values)

        for edit in self.reg_fields.values():
            edit.clear()
        self._change(work, f"Device {device_id} registered.")

    def register_unknown(self) -> None:
        """One click: registers the selected unregistered device by its id."""
        device_id = selection_or_say(self.unknown_table, self.message,
                                     'a device in "Seen but not registered"')
        if device_id is None:
            return
        self.reg_fields["device_id"].setText(device_id)
        self.register()

    def assign(self) -> None:
        """Assigns the selected device to the chosen bed or patient (or unassigns it)."""
        device_id = selection_or_say(self.table, self.message, "a device")
        if device_id is None:
            return
        target = self.assign_to.currentText()
        bed = target[4:] if target.startswith("bed ") else None
        patient = target[8:] if target.startswith("patient ") else None
        admin = self.context.admin
        self._change(lambda: admin.assign_device(device_id, bed_label=bed, patient_id=patient),
                     f"Device {device_id} assigned to {target}.")

    def set_status(self) -> None:
        """Sets the selected device's status (retired: its readings are refused)."""
        device_id = selection_or_say(self.table, self.message, "a device")
        if device_id is None:
            return
        status = self.status.currentText()
        admin = self.context.admin
        self._change(lambda: admin.set_device_status(device_id, status),
                     f"Device {device_id} is now {status}.")

    def issue_key(self) -> None:
        """Issues a key for the selected device and shows it once."""
        device_id = selection_or_say(self.table, self.message, "the device the key is for")
        if device_id is None:
            return
        admin = self.context.admin
        name = self.key_name.text().strip() or "device"
        days = self.expires.value() or None
        write, read, keep = (self.can_write.isChecked(), self.can_read.isChecked(),
                             self.keep.isChecked())

        def work() -> IssuedKey:
            return admin.issue_key(device_id, name=name, expires_days=days,
                                   can_write_vitals=write, can_read_patient=read,
                                   keep_for_simulator=keep)

        self.context.run(work, lambda issued: self._show_key(issued, keep, "issued"),
                         self.message, "Issuing the key…")

    def rotate_key(self) -> None:
        """Replaces the selected key by a new one (the old one stops working)."""
        prefix = selection_or_say(self.keys_table, self.message, "a key")
        if prefix is None:
            return
        admin = self.context.admin
        kept = selected_text(self.keys_table, 9) == "yes"
        self.context.run(lambda: admin.rotate_key(prefix),
                         lambda issued: self._show_key(issued, kept, f"rotated ({prefix} "
                                                       "revoked)"),
                         self.message, "Rotating the key…")

    def revoke_key(self) -> None:
        """Revokes the selected key at once."""
        prefix = selection_or_say(self.keys_table, self.message, "a key")
        if prefix is None:
            return
        admin = self.context.admin
        device_id = self.selected_device() or ""

        def done(_device: str) -> None:
            self.message.ok(f"Key {prefix} revoked.")
            self._load_keys_then(device_id, f"Key {prefix} revoked.")

        self.context.run(lambda: admin.revoke_key(prefix), done, self.message)

    def _load_keys_then(self, device_id: str, text: str) -> None:
        self._load_keys(device_id, text)

    def _show_key(self, issued: IssuedKey, kept_asked: bool, what: str) -> None:
        window = KeyShownDialog(issued, kept_asked, self)
        window.finished.connect(lambda _code=0, w=window: self._forget_window(w))
        self.key_windows.append(window)
        window.show()
        text = f"Key {issued.new.prefix} {what} for {issued.new.device_id}."
        self._load_keys_then(issued.new.device_id, text)

    def _forget_window(self, window: KeyShownDialog) -> None:
        if window in self.key_windows:
            self.key_windows.remove(window)


