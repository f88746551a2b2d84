"""A real station runtime for widget tests: SQLite in tmp_path, no network inputs, a fake clock,
patients, beds and devices registered."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtWidgets import QWidget

from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import CONFIG_FILE_NAME, load_settings
from vitalstation.domain.clock import FakeClock
from vitalstation.storage.store import Store
from vitalstation.ui.settings import SettingsDialog

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)

# bed label -> (patient id, name, device id); None: an empty bed
WARD: dict[str, tuple[str, str, str] | None] = {
    "1": ("P1", "Ada Lovelace", "DEV1"),
    "2": ("P2", "Alan Turing", "DEV2"),
    "3": ("P3", "Grace Hopper", "DEV3"),
    "4": None,
}


def register_ward(store_url: str, ward: dict[str, tuple[str, str, str] | None] = WARD,
                  *, at: datetime = NOW - timedelta(hours=2)) -> None:
    """Patients, beds and devices (one per occupied bed), plus one unassigned device."""
    store = Store.open(store_url)
    try:
        registry = store.registry
        for bed, occupant in ward.items():
            registry.add_bed(bed, None, actor="test", at=at)
            if occupant is None:
                continue
            patient, name, device = occupant
            registry.add_patient(patient, name, actor="test", at=at)
            registry.admit(patient, bed, actor="test", at=at)
            registry.add_device(device, actor="test", at=at)
            registry.assign_device(device, bed_label=bed, actor="test", at=at)
        registry.add_device("SPARE", actor="test", at=at)
    finally:
        store.close()


_TEMPLATES: dict[str, Path] = {}


def _ward_database(ward: dict[str, tuple[str, str, str] | None]) -> Path:
    """A migrated database with ``ward`` registered, made once per test run and copied per
    test (migrating and registering cost ~0.4 s a test)."""
    key = repr(sorted(ward.items()))
    if key not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="vitalstation-ui-template-"))
        atexit.register(shutil.rmtree, folder, True)
        register_ward(f"sqlite:///{folder / 'station.db'}", ward)
        _TEMPLATES[key] = folder / "station.db"
    return _TEMPLATES[key]


@contextmanager
def running_station(home: Path, *, clock: FakeClock | None = None,
                    ward: dict[str, tuple[str, str, str] | None] = WARD) -> Iterator[Runtime]:
    """A started Runtime on a fresh SQLite data home with no inputs; stopped afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_ward_database(ward), home / "station.db")
    store_url = f"sqlite:///{home / 'station.db'}"
    env = {"VITALSTATION_STORE__URL": store_url}
    runtime = Runtime(load_settings(home, env), clock=clock or FakeClock(NOW),
                      input_factories=[])
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


@contextmanager
def settings_station(tmp_path: Path, inputs_config: str) -> Iterator[Runtime]:
    """A started Runtime for Settings tests: its own ``vitalstation.toml`` (the store, then
    ``inputs_config``), the ward registered; stopped afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    store_url = f"sqlite:///{home / 'station.db'}"
    (home / CONFIG_FILE_NAME).write_text(f'[store]\nurl = "{store_url}"\n{inputs_config}')
    register_ward(store_url)
    runtime = Runtime(load_settings(home, {}), clock=FakeClock(NOW))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


@contextmanager
def settings_dialog(runtime: Runtime) -> Iterator[SettingsDialog]:
    """The Settings dialog shown on ``runtime``, its first loads done; closed afterwards."""
    dialog = SettingsDialog(runtime, actor="settings:test")
    dialog.show()
    idle(dialog)
    try:
        yield dialog
    finally:
        if dialog.isVisible():
            dialog.close()


def idle(dialog: SettingsDialog) -> None:
    """Wait until the dialog's background work (loads, saves, tests) is done."""
    assert dialog.tasks.wait_idle(10_000)


def find(parent: QWidget, kind: type, name: str):
    """The child widget of ``kind`` named ``name`` (asserted to exist)."""
    found = parent.findChild(kind, name)
    assert found is not None, name
    return found
