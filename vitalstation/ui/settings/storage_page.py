"""Settings > Storage and display: the database (SQLite in the data home or a PostgreSQL URL,
with a connection test), how long things are kept, where secrets are kept, and this window's
theme and tile size (applied at once; the window remembers them)."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QGroupBox, QLabel, QWidget

from vitalstation.config.secrets import STORE_PASSWORD, SecretStatus
from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.forms import MessageLine, row
from vitalstation.ui.settings.groups import FormsPage

THEMES = ("day", "night")


class StoragePage(FormsPage):
    """Database, retention, secrets' home, and display."""

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(context, parent)
        store = self.add_group("Database", [("store", "url")], check="store",
                               secrets=[(STORE_PASSWORD, "PostgreSQL password")])
        intro = QLabel(
            "Empty: SQLite in the data home. PostgreSQL: postgresql+psycopg://user@host/db "
            "(a ward's stations can share one), its password below (kept in the keyring). "
            "A change applies at the next start.", store)
        intro.setWordWrap(True)
        store.layout().insertWidget(0, intro)
        self.add_group("Retention", [("filedrop", "retention_days"),
                                     ("rest", "activity_retention_days")])
        secrets = self.add_group("Secrets", [("secrets", "source")],
                                 choices={("secrets", "source"): ("keyring", "environment")})
        self.secrets_status = MessageLine(secrets)
        self.secrets_status.setObjectName("secrets_status")
        secrets.layout().addWidget(self.secrets_status)
        self._build_display()
        self.finish()
        self.load_secret_status()

    def _build_display(self) -> None:
        box = QGroupBox("Display (this window)", self.body)
        window = self.context.window
        self.theme = QComboBox(box)
        self.theme.setObjectName("display_theme")
        self.theme.addItems(list(THEMES))
        self.wall = QCheckBox("Wall mode: big tiles, readable at 4 m", box)
        self.wall.setObjectName("display_wall")
        can_theme = window is not None and hasattr(window, "apply_theme")
        can_wall = window is not None and hasattr(window, "set_wall_mode")
        if can_theme:
            self.theme.setCurrentText(str(getattr(window, "theme", "day")))
        if can_wall:
            self.wall.setChecked(bool(getattr(window, "wall_mode", False)))
        self.theme.setEnabled(can_theme)
        self.wall.setEnabled(can_wall)
        self.theme.currentTextChanged.connect(self._apply_theme)
        self.wall.toggled.connect(self._apply_wall)
        box.setLayout(row(QLabel("Theme", box), self.theme, self.wall))
        self.body_layout.addWidget(box)

    def _apply_theme(self, theme: str) -> None:
        window = self.context.window
        if window is not None and hasattr(window, "apply_theme"):
            window.apply_theme(theme)

    def _apply_wall(self, on: bool) -> None:
        window = self.context.window
        if window is not None and hasattr(window, "set_wall_mode"):
            window.set_wall_mode(on)

    def load_secret_status(self) -> None:
        """Says where secrets are kept and whether that works here (probes the keyring)."""
        store = self.context.secrets

        def show(status: SecretStatus) -> None:
            (self.secrets_status.ok if status.available else self.secrets_status.error)(
                status.description)

        self.context.run(store.status, show, self.secrets_status, "Checking the keyring…")
