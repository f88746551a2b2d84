"""Settings > Alarms: the limit profile with its limits, delays and escalation timeouts
(editable, the values in force shown), the SMTP server for escalation emails with its password
and a Test, and the contacts each role (nurse, doctor, EMS) is reached at by email or webhook.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QGroupBox, QLineEdit, QVBoxLayout, QWidget

from vitalstation.app.settings_admin import CONTACT_CHANNELS, CONTACT_ROLES
from vitalstation.config.secrets import SMTP_PASSWORD
from vitalstation.config.settings import ALARM_PROFILES, Settings
from vitalstation.ui.settings.alarm_limits import AlarmLimitsForm
from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.forms import (
    MessageLine,
    SettingsForm,
    button,
    fill_table,
    make_table,
    row,
    selection_or_say,
)
from vitalstation.ui.settings.groups import FormsPage


class AlarmsPage(FormsPage):
    """The alarm profile, its limits, delays and escalation timeouts; SMTP; contacts."""

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(context, parent)
        profile = self.add_group("Alarm limits, delays and escalation", [("alarms", "profile")],
                                 choices={("alarms", "profile"): ALARM_PROFILES})
        combo = profile.form.fields[("alarms", "profile")].widget
        assert isinstance(combo, QComboBox)
        self.limits_form = AlarmLimitsForm(context.runtime.settings, combo, profile)
        profile.layout().insertWidget(1, self.limits_form)
        self.add_group(
            "Email (SMTP) for escalations",
            [("notifications", key) for key in (
                "smtp_host", "smtp_port", "smtp_security", "smtp_username", "smtp_from",
                "timeout_s", "retry_initial_s", "retry_max_s", "max_attempts")],
            check="smtp", secrets=[(SMTP_PASSWORD, "SMTP password")],
            choices={("notifications", "smtp_security"): ("starttls", "ssl", "none")},
        )
        self._build_contacts()
        self.finish()
        self.refresh_contacts()

    @property
    def forms(self) -> list[SettingsForm]:
        """The groups' forms and the limits grid: what the dialog saves."""
        return [*super().forms, self.limits_form]

    def _build_contacts(self) -> None:
        box = QGroupBox("Contacts (who escalations reach; webhooks are contacts too)",
                        self.body)
        self.contacts_table = make_table(("Id", "Role", "Channel", "Address", "For"), box)
        self.contacts_table.setObjectName("contacts_table")
        self.contacts_table.setMinimumHeight(150)
        self.role = QComboBox(box)
        self.role.addItems(list(CONTACT_ROLES))
        self.channel = QComboBox(box)
        self.channel.addItems(list(CONTACT_CHANNELS))
        self.address = QLineEdit(box)
        self.address.setObjectName("contact_address")
        self.address.setPlaceholderText("email address or webhook URL")
        self.address.setMinimumWidth(260)
        self.scope = QLineEdit(box)
        self.scope.setPlaceholderText("ward (empty: all)")
        self.contacts_message = MessageLine(box)
        layout = QVBoxLayout(box)
        layout.addWidget(self.contacts_table)
        layout.addLayout(row(self.role, self.channel, self.address, self.scope,
                             button("Add contact", self.add_contact, box, "add_contact"),
                             button("Remove selected", self.remove_contact, box)))
        layout.addWidget(self.contacts_message)
        self.body_layout.addWidget(box)

    def load(self, settings: Settings) -> None:
        """Shows the settings in force: profile, limits, delays, timeouts, SMTP."""
        super().load(settings)

    def refresh_contacts(self, then: str | None = None) -> None:
        """Reloads the contacts."""
        admin = self.context.admin

        def show(contacts: list[Any]) -> None:
            fill_table(self.contacts_table, [
                (c.id, c.role, c.channel, c.address,
                 f"patient {c.scope_id}" if c.scope.value == "patient"
                 else f"ward {c.scope_id}" if c.scope_id else "every ward")
                for c in contacts
            ])
            (self.contacts_message.ok if then else self.contacts_message.info)(then or "")

        self.context.run(admin.contacts, show, self.contacts_message, "Loading contacts…")

    def add_contact(self) -> None:
        """Adds a ward contact for the chosen role and channel."""
        admin = self.context.admin
        role, channel = self.role.currentText(), self.channel.currentText()
        address, ward = self.address.text(), self.scope.text()
        self.context.run(lambda: admin.add_contact(role, channel, address, ward=ward),
                         lambda c: self.refresh_contacts(f"{c.role} reached at {c.address}."),
                         self.contacts_message)

    def remove_contact(self) -> None:
        """Removes the selected contact."""
        selected = selection_or_say(self.contacts_table, self.contacts_message, "a contact")
        if selected is None:
            return
        admin = self.context.admin
        self.context.run(lambda: admin.remove_contact(int(selected)),
                         lambda _ok: self.refresh_contacts("Contact removed."),
                         self.contacts_message)
