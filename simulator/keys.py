"""Device API keys the simulator sends with ``--transport rest``.

``--register`` issues one key per simulated device through the station's own key store and
keeps them in ``<home>/simulator-keys.json`` (``{device_id: key}``, mode 0600, written
atomically); later runs read that file, or any file given with ``--key-file``. A key in the
file that the store no longer honours (revoked, expired, another database) is replaced.

This file is a stop-gap: DESIGN.md keeps device keys in the OS keyring, and moving these there
is a later issue (the keyring integration). Until then the file is readable by its owner only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

__all__ = ["KEY_FILE_NAME", "KeyFileError", "issue_keys", "load_key_file", "save_key_file"]

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


def issue_keys(
    store, device_ids: Iterable[str], existing: Mapping[str, str], *, actor: str, at: datetime
) -> tuple[dict[str, str], list[str]]:
    """Keys for ``device_ids``: those in ``existing`` the store still honours, new ones else.

    Returns all keys (``existing`` merged) and the devices that got a new key. Uses the
    station's key store (``vitalstation.app.keys``), so the keys are verified by the station's
    REST receiver like any admin-issued key.
    """
    from vitalstation.app.keys import key_store  # only REST needs it, and it needs the store

    keys = key_store(store)
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
