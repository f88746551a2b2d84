"""Device API keys the simulator sends with ``--transport rest``.

``--register`` issues one key per simulated device through the station's own key store and
keeps them in the station's OS keyring (``config.secrets``: the secret
``simulator.key.<device id>``, the same place Settings keeps a key "for the simulator"); later
runs read them there. ``--key-file PATH`` keeps them in a JSON file of the admin's choosing
instead (``{device_id: key}``, mode 0600, written atomically). Where no keyring works, the
command line says so and uses ``<home>/simulator-keys.json`` (the simulator is a test tool; the
station's own secrets never fall back to a file). A key that the store no longer honours
(revoked, expired, another database) is replaced.

Earlier versions kept the keys in ``<home>/simulator-keys.json``: such a file is moved into the
keyring (and deleted) at the first run that finds it, when a keyring works.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from vitalstation.config.secrets import SecretStore, SecretStoreError, simulator_key_name
from vitalstation.config.settings import Settings

__all__ = [
    "KEY_FILE_NAME",
    "KeyFileError",
    "issue_keys",
    "load_key_file",
    "load_keyring_keys",
    "save_key_file",
    "save_keyring_keys",
]

KEY_FILE_NAME = "simulator-keys.json"
KEY_NAME = "vitalstation-sim"


class KeyFileError(ValueError):
    """A key file that cannot be read or written; the message says which and why."""


def load_key_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{device_id: key}`` from a JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"no key file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from None
    except ValueError as exc:
        raise KeyFileError(f"the key file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise KeyFileError(f'the key file {path} must be a JSON object {{"DEVICE_ID": "KEY"}}')
    return data


def save_key_file(path: str | os.PathLike[str], keys: Mapping[str, str]) -> None:
    """Write ``keys`` to ``path`` atomically, readable and writable by its owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(sorted(keys.items())), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise KeyFileError(f"cannot write the key file {path}: {exc.strerror or exc}") from None


def _no_keyring(exc: SecretStoreError) -> KeyFileError:
    return KeyFileError(
        f"{exc}. To run REST simulations here, keep the simulator's keys in a file you choose: "
        "--key-file PATH (with --register to issue them)"
    )


def load_keyring_keys(
    settings: Settings, device_ids: Iterable[str], secrets: SecretStore | None = None
) -> tuple[dict[str, str], str | None]:
    """``{device_id: key}`` kept in the station's keyring for these devices, and a note when an
    old ``<home>/simulator-keys.json`` was moved into the keyring. KeyFileError without a
    keyring, saying how to go on (``--key-file``)."""
    secrets = secrets or SecretStore.for_settings(settings)
    legacy = settings.home / KEY_FILE_NAME
    note = None
    try:
        if legacy.exists():
            moved = load_key_file(legacy)
            save_keyring_keys(settings, moved, secrets)
            legacy.unlink()
            note = f"moved {len(moved)} simulator key(s) from {legacy} into the keyring"
        keys = {}
        for device_id in device_ids:
            key = secrets.get(simulator_key_name(device_id))
            if key:
                keys[device_id] = key
    except SecretStoreError as exc:
        raise _no_keyring(exc) from None
    return keys, note


def save_keyring_keys(
    settings: Settings, keys: Mapping[str, str], secrets: SecretStore | None = None
) -> None:
    """Keeps ``keys`` in the station's keyring (KeyFileError without one, saying what to do)."""
    secrets = secrets or SecretStore.for_settings(settings)
    try:
        for device_id, key in keys.items():
            secrets.set(simulator_key_name(device_id), key)
    except SecretStoreError as exc:
        raise _no_keyring(exc) from None


def issue_keys(
    store,
    device_ids: Iterable[str],
    existing: Mapping[str, str],
    *,
    settings=None,
    actor: str,
    at: datetime,
) -> tuple[dict[str, str], list[str]]:
    """Keys for ``device_ids``: those in ``existing`` the store still honours, new ones else.

    Returns all keys (``existing`` merged) and the devices that got a new key. Uses the
    station's key store (``vitalstation.app.keys``) with ``settings``' key-hashing secret, so
    the keys are verified by the station's REST receiver like any admin-issued key (without
    ``settings``, hashed with SHA-256, which the station also accepts and upgrades on use).
    """
    from vitalstation.app.keys import key_store  # only REST needs it, and it needs the store

    keys = key_store(store, settings)
    result = dict(existing)
    created: list[str] = []
    for device_id in device_ids:
        current = result.get(device_id)
        if current is not None:
            grant = keys.verify(current, now=at)
            if grant is not None and grant.device_id == device_id and grant.can_write_vitals:
                continue
        new = keys.create(device_id, name=KEY_NAME, actor=actor, at=at)
        result[device_id] = new.key
        created.append(device_id)
    return result, created
