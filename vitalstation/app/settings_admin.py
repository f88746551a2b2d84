"""Administration behind the Settings dialog: the admin lock, and the register and device keys
through the same store operations as the command line (``vitalstation patient|bed|device``).

No Qt here: the dialog calls these from its worker threads (every call may do SQL or a keyring
round trip), and the tests call them directly.

The admin lock
    Settings opens only with the admin password, set on first use. It is kept as a salted
    scrypt hash in ``<home>/admin-password.json`` (mode 0600; never in the TOML file, which
    admins copy around, nor in a database other stations share), verified in constant time.
    After :data:`MAX_FAILURES` wrong passwords in a row the lock refuses every attempt for
    :data:`LOCKOUT_S` seconds. Nurses keep using the station meanwhile: the lock guards only
    Settings.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import secrets as token_source
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vitalstation.app.audit import AuditEntry, audit_entries
from vitalstation.app.keys import key_store
from vitalstation.config.secrets import SecretStore, SecretStoreError, simulator_key_name
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.errors import UserError
from vitalstation.storage.keys import KeyInfo, NewKey, key_prefix
from vitalstation.storage.outbox import ContactRow, ContactScope, OutboxStore
from vitalstation.storage.register_admin import RegisterAdmin
from vitalstation.storage.registry import (
    DEVICE_STATUSES,
    BedInfo,
    DeviceInfo,
    PatientInfo,
    UnknownDeviceInfo,
)
from vitalstation.storage.store import Store

_LOGGER = logging.getLogger(__name__)
# Settings > Audit log shows at most this many entries, the newest (a range narrows it).
AUDIT_PAGE_LIMIT = 500

__all__ = [
    "ADMIN_PASSWORD_FILE",
    "CONTACT_CHANNELS",
    "CONTACT_ROLES",
    "DEVICE_STATUSES",
    "LOCKOUT_S",
    "MAX_FAILURES",
    "MIN_PASSWORD_CHARS",
    "AdminLock",
    "AdminLockedOut",
    "AdminService",
    "DeviceView",
    "IssuedKey",
    "default_actor",
]

ADMIN_PASSWORD_FILE = "admin-password.json"
CONTACT_ROLES = ("nurse", "doctor", "ems")
CONTACT_CHANNELS = ("email", "webhook")
MIN_PASSWORD_CHARS = 8
MAX_FAILURES = 5
LOCKOUT_S = 30.0
# scrypt cost: 2**15 x 8 x 128 B = 32 MiB and ~0.1 s per try; stored with the hash, so a
# later version can raise it and still read older files.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


class AdminLockedOut(UserError):
    """Too many wrong passwords: Settings refuses attempts for a while."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"too many wrong passwords; try again in {max(1, round(seconds))} s"
        )


def default_actor() -> str:
    """Who the audit log names for changes made in Settings: ``settings:<OS user>``."""
    try:
        return f"settings:{getpass.getuser()}"
    except (KeyError, OSError):
        return "settings"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )


class AdminLock:
    """The admin password of one data home. Thread-safe."""

    def __init__(self, home: str | os.PathLike[str], *,
                 monotonic: Callable[[], float] = time.monotonic,
                 audit: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.path = Path(home) / ADMIN_PASSWORD_FILE
        self._monotonic = monotonic
        self._audit = audit
        self._lock = threading.Lock()
        self._failures = 0
        self._locked_until = 0.0

    def is_set(self) -> bool:
        """Whether an admin password exists (else the dialog asks to choose one)."""
        return self.path.exists()

    def set_password(self, new: str, *, current: str | None = None) -> None:
        """Sets the password: the first time freely, later only with the ``current`` one."""
        if len(new) < MIN_PASSWORD_CHARS:
            raise UserError(f"the admin password needs at least {MIN_PASSWORD_CHARS} characters")
        if new != new.strip():
            raise UserError("the admin password must not start or end with a space")
        if self.is_set() and (current is None or not self.verify(current)):
            raise UserError("the current admin password is wrong")
        salt = token_source.token_bytes(16)
        record = {
            "algorithm": "scrypt",
            "n": _SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
            "salt": salt.hex(),
            "hash": _scrypt(new, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P).hex(),
        }
        self._write(record)

    def verify(self, password: str) -> bool:
        """True if ``password`` is the admin password (constant-time comparison).

        Raises AdminLockedOut while locked out after too many failures, and UserError when no
        password is set or its file is damaged (so it is never silently open).
        """
        with self._lock:
            remaining = self._locked_until - self._monotonic()
            if remaining > 0:
                raise AdminLockedOut(remaining)
        record = self._read()
        try:
            expected = bytes.fromhex(record["hash"])
            actual = _scrypt(password, bytes.fromhex(record["salt"]), int(record["n"]),
                             int(record["r"]), int(record["p"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"the admin password file {self.path} is damaged ({exc}); delete it to choose "
                "a new password (that file only holds the password's hash)"
            ) from None
        matches = hmac.compare_digest(expected, actual)
        locked_out = False
        with self._lock:
            if matches:
                self._failures = 0
            else:
                self._failures += 1
                if self._failures >= MAX_FAILURES:
                    self._failures = 0
                    self._locked_until = self._monotonic() + LOCKOUT_S
                    locked_out = True
        if not matches and self._audit is not None:
            try:  # a wrong guess at the admin password is worth a line in the audit log
                self._audit("settings.unlock_failed", {"locked_out_s": LOCKOUT_S if locked_out
                                                       else 0})
            except Exception:  # noqa: BLE001 - the answer to the user must not depend on it
                _LOGGER.exception("could not audit a failed Settings unlock")
        return matches

    def _read(self) -> dict[str, Any]:
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError("no admin password is set yet") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the admin password file {self.path}: {exc}") from None
        if not isinstance(record, dict) or record.get("algorithm") != "scrypt":
            raise UserError(f"the admin password file {self.path} is not an scrypt record")
        return record

    def _write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".admin-password.", dir=self.path.parent)
        try:
            if os.name == "posix":
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise UserError(f"cannot save the admin password: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A registered device as Settings > Devices lists it: the register's row and what the
    device is."""

    info: DeviceInfo
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""

    @property
    def device_id(self) -> str:
        """The id the device sends."""
        return self.info.device_id


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just issued or rotated: ``key`` is shown once. ``kept`` says whether it is now in
    this station's keyring for the simulator, ``kept_problem`` why not when that was asked."""

    new: NewKey
    kept: bool = False
    kept_problem: str | None = None

    @property
    def key(self) -> str:
        """The key itself (shown once, never stored by the station)."""
        return self.new.key


def audited_admin_lock(home: str | os.PathLike[str], store: Store, *, clock: Clock = utc_now,
                       actor: str | None = None) -> AdminLock:
    """The admin lock of ``home`` whose failed unlocks go to ``store``'s audit log."""
    register = RegisterAdmin(store.engine)
    who = actor or default_actor()

    def audit(action: str, details: dict[str, Any]) -> None:
        register.audit(clock(), who, action, "settings", details)

    return AdminLock(home, audit=audit)


class AdminService:
    """The register and device keys, for Settings. Each call is one transaction, audited with
    ``actor``; thread-safe (but blocking: SQL, keyring)."""

    def __init__(self, store: Store, secrets: SecretStore, *, clock: Clock = utc_now,
                 actor: str | None = None) -> None:
        self._store = store
        self._registry = store.registry
        self._keys = key_store(store, secrets=secrets)
        self._register = RegisterAdmin(store.engine)
        self._outbox = OutboxStore(store.engine)
        self._secrets = secrets
        self._clock = clock
        self.actor = actor or default_actor()

    # -- patients and beds -----------------------------------------------------------------

    def patients(self) -> list[PatientInfo]:
        """Every patient with their current bed."""
        return self._registry.list_patients()

    def beds(self) -> list[BedInfo]:
        """Every bed with its current patient."""
        return self._registry.list_beds()

    def add_patient(self, patient_id: str, name: str) -> None:
        """As ``vitalstation patient add``."""
        self._registry.add_patient(patient_id, name, actor=self.actor, at=self._clock())

    def add_bed(self, label: str, ward: str = "") -> None:
        """As ``vitalstation bed add``."""
        self._registry.add_bed(label, ward.strip() or None, actor=self.actor, at=self._clock())

    def admit(self, patient_id: str, bed_label: str) -> None:
        """As ``vitalstation admit``."""
        self._registry.admit(patient_id, bed_label, actor=self.actor, at=self._clock())

    def transfer(self, patient_id: str, bed_label: str) -> str:
        """Moves an admitted patient to another bed, keeping their limits; returns the old bed."""
        return self._register.transfer(patient_id, bed_label, actor=self.actor, at=self._clock())

    def discharge(self, patient_id: str) -> str:
        """As ``vitalstation discharge`` (the patient's own limits revert); returns the bed."""
        return self._registry.discharge(patient_id, actor=self.actor, at=self._clock())

    # -- devices ---------------------------------------------------------------------------

    def devices(self) -> list[DeviceView]:
        """Every registered device with its details, assignment and last report."""
        details = self._register.device_details()
        views = []
        for info in self._registry.list_devices():
            detail = details.get(info.device_id)
            if detail is None:
                views.append(DeviceView(info))
            else:
                views.append(DeviceView(info, detail.manufacturer, detail.model, detail.firmware))
        return views

    def unknown_devices(self) -> list[UnknownDeviceInfo]:
        """Devices seen but not registered, most recent first."""
        return self._registry.list_unknown_devices()

    def last_payload(self, device_id: str) -> str | None:
        """The latest raw payload stored from ``device_id``."""
        return self._register.last_payload(device_id)

    def register_device(
        self, device_id: str, *, name: str = "", device_type: str = "", manufacturer: str = "",
        model: str = "", firmware: str = "",
    ) -> None:
        """As ``vitalstation device add``, with what the device is (manufacturer, model,
        firmware). An unregistered device's readings are attributed from now on."""
        at = self._clock()
        self._registry.add_device(device_id, name=name.strip(), device_type=device_type.strip(),
                                  actor=self.actor, at=at)
        if manufacturer.strip() or model.strip() or firmware.strip():
            self._register.set_device_details(
                device_id.strip(), manufacturer=manufacturer, model=model, firmware=firmware,
                actor=self.actor, at=at,
            )

    def set_device_details(self, device_id: str, *, manufacturer: str, model: str,
                           firmware: str) -> None:
        """Records a device's manufacturer, model and firmware."""
        self._register.set_device_details(device_id, manufacturer=manufacturer, model=model,
                                          firmware=firmware, actor=self.actor, at=self._clock())

    def assign_device(self, device_id: str, *, bed_label: str | None = None,
                      patient_id: str | None = None) -> None:
        """As ``vitalstation device assign`` (neither: unassigned)."""
        self._registry.assign_device(device_id, bed_label=bed_label, patient_id=patient_id,
                                     actor=self.actor, at=self._clock())

    def set_device_status(self, device_id: str, status: str) -> None:
        """As ``vitalstation device status`` (retired: its readings are refused)."""
        self._registry.set_device_status(device_id, status, actor=self.actor, at=self._clock())

    # -- device API keys -------------------------------------------------------------------

    def keys(self, device_id: str | None = None) -> list[KeyInfo]:
        """As ``vitalstation device key list`` (never the keys themselves)."""
        return self._keys.list(device_id, now=self._clock())

    def issue_key(
        self, device_id: str, *, name: str, expires_days: float | None = None,
        can_write_vitals: bool = True, can_read_patient: bool = False,
        keep_for_simulator: bool = False,
    ) -> IssuedKey:
        """As ``vitalstation device key create``; optionally keeps the key in this station's
        keyring, where ``vitalstation-sim`` finds it."""
        new = self._keys.create(
            device_id, name=name, expires_days=expires_days, can_write_vitals=can_write_vitals,
            can_read_patient=can_read_patient, actor=self.actor, at=self._clock(),
        )
        return self._kept(new, keep_for_simulator)

    def rotate_key(self, prefix: str) -> IssuedKey:
        """As ``vitalstation device key rotate``; a kept copy of the old key is replaced."""
        old = self._kept_prefix(self._device_of(prefix))
        new = self._keys.rotate(prefix, actor=self.actor, at=self._clock())
        return self._kept(new, keep=old == prefix)

    def revoke_key(self, prefix: str) -> str:
        """As ``vitalstation device key revoke``; a kept copy is deleted. Returns the device."""
        device_id = self._keys.revoke(prefix, actor=self.actor, at=self._clock())
        if self._kept_prefix(device_id) == prefix:
            self._forget(device_id)
        return device_id

    def kept_key_prefix(self, device_id: str) -> str | None:
        """The prefix of the key kept for the simulator for ``device_id``, if any."""
        return self._kept_prefix(device_id)

    def _device_of(self, prefix: str) -> str | None:
        for info in self._keys.list(now=self._clock()):
            if info.prefix == prefix:
                return info.device_id
        return None

    def _kept_prefix(self, device_id: str | None) -> str | None:
        if device_id is None:
            return None
        try:
            kept = self._secrets.get(simulator_key_name(device_id))
        except SecretStoreError:
            return None
        return key_prefix(kept) if kept else None

    def _kept(self, new: NewKey, keep: bool) -> IssuedKey:
        if not keep:
            return IssuedKey(new)
        try:
            self._secrets.set(simulator_key_name(new.device_id), new.key)
        except SecretStoreError as exc:
            return IssuedKey(new, kept=False, kept_problem=str(exc))
        self._register.audit(self._clock(), self.actor, "secret.set",
                             simulator_key_name(new.device_id), {"prefix": new.prefix})
        return IssuedKey(new, kept=True)

    def _forget(self, device_id: str) -> None:
        try:
            self._secrets.delete(simulator_key_name(device_id))
        except SecretStoreError:
            return
        self._register.audit(self._clock(), self.actor, "secret.delete",
                             simulator_key_name(device_id), {})

    # -- notification contacts -------------------------------------------------------------

    def contacts(self) -> list[ContactRow]:
        """Who each role (nurse, doctor, EMS) is reached at, by email or webhook."""
        return self._outbox.contacts()

    def add_contact(self, role: str, channel: str, address: str, *, ward: str = "",
                    patient_id: str | None = None) -> ContactRow:
        """A ward's contact (``ward`` empty: every ward) or, with ``patient_id``, a patient's."""
        address = address.strip()
        if role not in CONTACT_ROLES:
            raise UserError(f"role must be one of {', '.join(CONTACT_ROLES)}")
        if channel not in CONTACT_CHANNELS:
            raise UserError(f"channel must be one of {', '.join(CONTACT_CHANNELS)}")
        if channel == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
            raise UserError(f"{address!r} is not an email address")
        if channel == "webhook" and urlsplit(address).scheme not in ("http", "https"):
            raise UserError(f"{address!r} is not an http:// or https:// URL")
        if patient_id:
            scope, scope_id = ContactScope.PATIENT, patient_id.strip()
        else:
            scope, scope_id = ContactScope.WARD, ward.strip()
        return self._outbox.add_contact(scope, scope_id, role, channel, address,
                                        actor=self.actor, at=self._clock())

    def remove_contact(self, contact_id: int) -> bool:
        """Removes a contact; False if it was already gone."""
        return self._outbox.remove_contact(contact_id, actor=self.actor, at=self._clock())

    # -- secrets -----------------------------------------------------------------------------

    def set_secret(self, name: str, value: str) -> None:
        """Stores a secret in the keyring; the audit log names it, never its value."""
        self._secrets.set(name, value)
        self.audit("secret.set", name)

    def delete_secret(self, name: str) -> bool:
        """Removes a secret from the keyring (audited); False if it was not set."""
        deleted = self._secrets.delete(name)
        if deleted:
            self.audit("secret.delete", name)
        return deleted

    # -- audit -----------------------------------------------------------------------------

    def audit_entries(self, *, back: timedelta | None = None, actor: str | None = None,
                      limit: int = AUDIT_PAGE_LIMIT) -> list[AuditEntry]:
        """The audit log with people's alarm steps in the last ``back`` (all kept: None), by
        ``actor`` if given, newest first: Settings > Audit log, as ``vitalstation audit``."""
        since = None if back is None else self._clock() - back
        return audit_entries(self._store, since=since, actor=actor, limit=limit)

    def audit(self, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
        """An audit row for a Settings action (unlock, settings saved, secret changed)."""
        self._register.audit(self._clock(), self.actor, action, subject, details or {})
