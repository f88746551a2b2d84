"""A titled group of settings with its own "Test connection" button, and the page that holds
such groups (Inputs, Alarms, Storage and display share it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtWidgets import QGroupBox, QScrollArea, QVBoxLayout, QWidget

from vitalstation.app.connection_tests import CheckResult, run_check, running_counterpart
from vitalstation.config.secrets import SecretStoreError
from vitalstation.config.settings import Settings
from vitalstation.config.settings_file import preview_settings
from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.forms import Key, MessageLine, SettingsForm, button, row


class CheckedGroup(QGroupBox):
    """Settings keys and secrets of one input, sink or server, and its Test connection."""

    def __init__(self, page: FormsPage, title: str, keys: Sequence[Key], *,
                 check: str | None = None, secrets: Sequence[tuple[str, str]] = (),
                 choices: Mapping[Key, Sequence[str]] | None = None) -> None:
        super().__init__(title, page.body)
        self.page = page
        self.check = check
        self.form = SettingsForm(keys, page.context.runtime.settings, choices=choices,
                                 secrets=secrets, parent=self)
        self.result = MessageLine(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        if check is not None:
            self.result.setObjectName(f"check_{check}_result")
            test = button("Test connection", self.test, self, f"check_{check}")
            layout.addLayout(row(test, self.result))

    def test(self) -> None:
        """Runs the check with the values on screen (saved or not), off the GUI thread."""
        assert self.check is not None
        context = self.page.context
        changes, secret_changes = self.page.pending()
        name, home = self.check, context.runtime.settings.home
        store = context.secrets.overlay(secret_changes)
        running = running_counterpart(name, context.runtime.inputs)

        def work() -> CheckResult:
            try:
                settings = preview_settings(home, changes)
            except (ValueError, SecretStoreError) as exc:
                return CheckResult(False, f"not tested: {exc}")
            return run_check(name, settings, store, running)

        def show(result: CheckResult) -> None:
            (self.result.ok if result.ok else self.result.error)(result.detail)

        context.run(work, show, self.result, "Testing…")


class FormsPage(QWidget):
    """A scrolling page of CheckedGroups; saved by the dialog's Save and apply."""

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.groups: list[CheckedGroup] = []
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.body = QWidget(self.scroll)
        self.body_layout = QVBoxLayout(self.body)
        self.scroll.setWidget(self.body)
        self.message = MessageLine(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.message)

    def add_group(self, title: str, keys: Sequence[Key], **options: Any) -> CheckedGroup:
        """Adds a group of keys (and secrets) with an optional Test connection."""
        group = CheckedGroup(self, title, keys, **options)
        self.groups.append(group)
        self.body_layout.addWidget(group)
        return group

    def finish(self) -> None:
        """Call after the last group: pushes groups up and loads the secrets' state."""
        self.body_layout.addStretch(1)
        self.load_secrets()

    @property
    def forms(self) -> list[SettingsForm]:
        """The forms the dialog saves."""
        return [group.form for group in self.groups]

    def pending(self) -> tuple[dict[Key, Any], dict[str, str | None]]:
        """Unsaved changes of every form on this page: keys and secrets."""
        changes: dict[Key, Any] = {}
        secrets: dict[str, str | None] = {}
        for form in self.forms:
            changes.update(form.changes())
            secrets.update(form.secret_changes())
        return changes, secrets

    def load(self, settings: Settings) -> None:
        """Shows the settings now in force (after a save) and the secrets' state."""
        for form in self.forms:
            form.load(settings)
        self.load_secrets()

    def load_secrets(self) -> None:
        """Which secrets the keyring holds (never their values on screen), off the GUI thread."""
        fields = [field for form in self.forms for field in form.secret_fields.values()]
        if not fields:
            return
        store = self.context.secrets
        names = [field.name for field in fields]

        def work() -> dict[str, bool | None]:
            state: dict[str, bool | None] = {}
            for name in names:
                try:
                    state[name] = store.get(name) is not None
                except SecretStoreError:
                    state[name] = None
            return state

        def show(state: dict[str, bool | None]) -> None:
            for field in fields:
                stored = state.get(field.name)
                field.set_stored(bool(stored), readable=stored is not None)
            self.message.info("")

        self.context.run(work, show, self.message, "")
