"""Device API keys: issued, listed, revoked and rotated by the admin; verified per request.

A key is ``vs_<8 characters>_<43 characters>``: a vendor tag, a public identifier (the
*prefix* ``vs_XXXXXXXX``, stored in clear and unique, used to find the key) and 32 random bytes
in URL-safe base64. Only a hash of the whole key is stored, in one of two schemes:

- ``hmac-sha256$<secret id>$<hex>``: HMAC-SHA256 keyed with the station's key-hashing secret,
  which lives in the OS keyring (never in a file or the database; ``app.keys`` creates it on
  first need). A copy of the database alone is then of no use for checking guesses. The secret
  id is a 32-bit fingerprint of the secret (not the secret), so a hash made with another
  station's secret is recognised and logged rather than silently refused.
- ``sha256$<hex>``: the plain SHA-256 of the key, written when no secret is available (no
  keyring and no secret in the environment: the station says so in its log) and by stores
  before the keyed scheme existed. Such a hash still verifies, and is rewritten in the keyed
  scheme on the key's next successful use once a secret is available.

The key carries 256 bits of randomness, so a slow password hash buys nothing (nobody can guess
it offline any faster than online) and per request it would be a denial-of-service lever: the
seed paid PBKDF2 with 600,000 iterations (~0.3 s of CPU) on every request.

Verification looks the prefix up, then compares digests with :func:`hmac.compare_digest`; an
unknown prefix is compared against a dummy hash of the scheme in use, and a hash of an unknown
scheme or another secret against a digest computed all the same, so "no such key", "wrong key"
and "wrong secret" cost the same query and about the same hashing, and get the same answer.

Usage counters (``use_count``, ``last_used_at``) are not updated here but by the single writer,
in batches, with ``use_count = use_count + n`` (:func:`bump_usage`): no read-modify-write, so no
increment is lost, whichever stations and threads use the key at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from vitalstation.domain.errors import UserError
from vitalstation.storage.outbox import write_audit
from vitalstation.storage.registry import Conflict, NotFound
from vitalstation.storage.schema import (
    admissions,
    api_keys,
    beds,
    device_assignments,
    devices,
    patients,
    vital_signs,
)

KEY_TAG = "vs_"
PREFIX_ID_CHARS = 8
PREFIX_CHARS = len(KEY_TAG) + PREFIX_ID_CHARS
SECRET_BYTES = 32
MAX_NAME_CHARS = 100
# The longest an admin may make a key last (the seed allowed any number of days).
MAX_EXPIRES_DAYS = 3650

_PREFIX_ALPHABET = string.ascii_letters + string.digits
_SECRET_CHARS = len(base64.urlsafe_b64encode(bytes(SECRET_BYTES)).rstrip(b"="))
KEY_CHARS = PREFIX_CHARS + 1 + _SECRET_CHARS
_KEY_RE = re.compile(
    rf"^{KEY_TAG}[A-Za-z0-9]{{{PREFIX_ID_CHARS}}}_[A-Za-z0-9_-]{{{_SECRET_CHARS}}}$"
)
_PREFIX_RE = re.compile(rf"^{KEY_TAG}[A-Za-z0-9]{{{PREFIX_ID_CHARS}}}$")
SHA256_SCHEME = "sha256$"
HMAC_SCHEME = "hmac-sha256$"
# Stands in for a secret this station does not have, so that the digest is computed anyway.
_NOT_OUR_SECRET = b"\0" * 32
_LOGGER = logging.getLogger(__name__)

SecretSource = Callable[[], bytes | None]
"""The station's key-hashing secret, or None when none is available (then SHA-256)."""


def secret_id(secret: bytes) -> str:
    """A public fingerprint of a key-hashing secret (8 hex digits), stored with each hash."""
    return hashlib.sha256(b"vitalstation key-hashing secret id\0" + secret).hexdigest()[:8]


def hash_key(key: str, secret: bytes | None = None) -> str:
    """The stored form of ``key``: ``hmac-sha256$<secret id>$<hex>`` with a secret, else
    ``sha256$<hex>``."""
    data = key.encode("utf-8", "surrogatepass")
    if secret is None:
        return SHA256_SCHEME + hashlib.sha256(data).hexdigest()
    return f"{HMAC_SCHEME}{secret_id(secret)}${hmac.new(secret, data, 'sha256').hexdigest()}"


def _presented(key: str, stored: str | None, secret: bytes | None) -> str:
    """The hash of ``key`` to compare with ``stored``, computed in ``stored``'s scheme.

    A hash that cannot match (unknown prefix, unknown scheme, another station's secret) is
    still computed, in the scheme in use, so every failure costs about the same."""
    if stored is not None and stored.startswith(SHA256_SCHEME):
        return hash_key(key)
    if stored is not None and stored.startswith(HMAC_SCHEME):
        stored_id = stored[len(HMAC_SCHEME):].partition("$")[0]
        if secret is not None and stored_id == secret_id(secret):
            return hash_key(key, secret)
        return hash_key(key, _NOT_OUR_SECRET)
    return hash_key(key, secret)


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key (``vs_XXXXXXXX``), else None."""
    if len(key) == KEY_CHARS and _KEY_RE.match(key):
        return key[:PREFIX_CHARS]
    return None


def is_prefix(text: str) -> bool:
    """True when ``text`` has the shape of a key prefix."""
    return bool(_PREFIX_RE.match(text))


def _new_key() -> tuple[str, str]:
    ident = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_ID_CHARS))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
    prefix = KEY_TAG + ident
    return f"{prefix}_{secret}", prefix


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just issued: ``key`` is shown once and never stored."""

    key: str
    prefix: str
    device_id: str
    name: str
    expires_at: datetime | None
    can_write_vitals: bool
    can_read_patient: bool


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as the admin lists it (never the key itself)."""

    prefix: str
    device_id: str
    name: str
    state: str  # active | expired | revoked
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    can_write_vitals: bool
    can_read_patient: bool
    last_used_at: datetime | None
    use_count: int


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What a verified key allows, and the state of its device when it was verified.

    ``assigned`` is whether the device has a current bed or patient assignment.
    """

    prefix: str
    device_id: str
    device_status: str
    assigned: bool
    can_write_vitals: bool
    can_read_patient: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceStatusInfo:
    """A device's self-check (``GET /api/iot/status/``)."""

    device_id: str
    name: str
    device_type: str
    status: str
    patient_assigned: bool
    patient_id: str | None
    bed: str | None
    last_reading: datetime | None

    @property
    def is_active(self) -> bool:
        """Active, or in maintenance (its readings are still taken); not inactive or retired."""
        return self.status in ("active", "maintenance")


def _state(expires_at: datetime | None, revoked_at: datetime | None, now: datetime) -> str:
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UserError("the key's name must not be empty (e.g. --name 'Primary API Key')")
    if len(name) > MAX_NAME_CHARS:
        raise UserError(f"the key's name is longer than {MAX_NAME_CHARS} characters")
    if any(ord(ch) < 32 for ch in name):
        raise UserError("the key's name must not contain control characters")
    return name


def _current_assignment(device_ref_column: Any, now: datetime) -> Any:
    """The device's open assignment at ``now`` (a correlated EXISTS)."""
    return (
        select(device_assignments.c.id)
        .where(
            device_assignments.c.device_ref == device_ref_column,
            device_assignments.c.assigned_at <= now,
            or_(
                device_assignments.c.unassigned_at.is_(None),
                device_assignments.c.unassigned_at > now,
            ),
        )
        .exists()
    )


_USAGE = (
    api_keys.update()
    .where(api_keys.c.prefix == bindparam("p"))
    .values(
        use_count=api_keys.c.use_count + bindparam("n"),
        last_used_at=case(
            (
                or_(
                    api_keys.c.last_used_at.is_(None),
                    api_keys.c.last_used_at < bindparam("at", type_=api_keys.c.last_used_at.type),
                ),
                bindparam("at", type_=api_keys.c.last_used_at.type),
            ),
            else_=api_keys.c.last_used_at,
        ),
    )
)


def bump_usage(connection: Connection, usage: Mapping[str, tuple[int, datetime]]) -> None:
    """Add ``count`` to each key's ``use_count`` and move ``last_used_at`` forward, atomically.

    ``usage`` maps a prefix to (requests, latest use). One statement per call, inside the
    caller's transaction; unknown prefixes are ignored.
    """
    if usage:
        connection.execute(
            _USAGE,
            [{"p": prefix, "n": count, "at": at} for prefix, (count, at) in usage.items()],
        )


class KeyStore:
    """Issue, list, revoke, rotate and verify device API keys. Thread-safe: one transaction
    per call.

    ``secret`` gives the station's key-hashing secret (``app.keys.key_store`` passes the one in
    the OS keyring); without one, or while it answers None, keys are hashed with SHA-256.
    """

    def __init__(self, engine: Engine, *, secret: SecretSource | None = None) -> None:
        self._engine = engine
        self._secret_source = secret
        self._foreign_ids: set[str] = set()
        self._foreign_lock = threading.Lock()
        self._lookup = (
            select(
                api_keys.c.id, api_keys.c.key_hash, api_keys.c.expires_at, api_keys.c.revoked_at,
                api_keys.c.can_write_vitals, api_keys.c.can_read_patient,
                devices.c.device_id, devices.c.status,
                _current_assignment(
                    devices.c.id, bindparam("now", type_=device_assignments.c.assigned_at.type)
                ).label("assigned"),
            )
            .join(devices, devices.c.id == api_keys.c.device_ref)
            .where(api_keys.c.prefix == bindparam("prefix"))
        )

    def _secret(self) -> bytes | None:
        return self._secret_source() if self._secret_source is not None else None

    # -- admin -----------------------------------------------------------------------------

    def create(
        self,
        device_id: str,
        *,
        name: str,
        expires_days: float | None = None,
        can_write_vitals: bool = True,
        can_read_patient: bool = False,
        actor: str,
        at: datetime,
    ) -> NewKey:
        """Issue a key for a registered device; the key is in the result and nowhere else."""
        name = _check_name(name)
        if expires_days is not None and not (0 < expires_days <= MAX_EXPIRES_DAYS):
            raise UserError(
                f"--expires-days must be more than 0 and at most {MAX_EXPIRES_DAYS} "
                f"(got {expires_days:g}); leave it out for a key that does not expire"
            )
        expires_at = at + timedelta(days=expires_days) if expires_days is not None else None
        secret = self._secret()  # before the transaction: it may ask the keyring
        with self._engine.begin() as connection:
            row = connection.execute(
                select(devices.c.id, devices.c.status).where(devices.c.device_id == device_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"no device {device_id} (see `vitalstation device list`)")
            if row.status == "retired":
                raise Conflict(f"device {device_id} is retired; a key for it would be refused")
            new = self._insert(
                connection, row.id, device_id, name, expires_at, can_write_vitals,
                can_read_patient, at, secret,
            )
            write_audit(connection, at, actor, "key.create", new.prefix, {
                "device": device_id, "name": name, "expires": _iso(expires_at),
                "write": can_write_vitals, "read_patient": can_read_patient,
            })
        return new

    def list(self, device_id: str | None = None, *, now: datetime) -> list[KeyInfo]:
        """Keys, of one device or all, oldest first."""
        query = (
            select(
                api_keys.c.prefix, devices.c.device_id, api_keys.c.name, api_keys.c.created_at,
                api_keys.c.expires_at, api_keys.c.revoked_at, api_keys.c.can_write_vitals,
                api_keys.c.can_read_patient, api_keys.c.last_used_at, api_keys.c.use_count,
            )
            .join(devices, devices.c.id == api_keys.c.device_ref)
            .order_by(devices.c.device_id, api_keys.c.created_at, api_keys.c.id)
        )
        with self._engine.connect() as connection:
            if device_id is not None:
                exists = connection.execute(
                    select(devices.c.id).where(devices.c.device_id == device_id)
                ).scalar_one_or_none()
                if exists is None:
                    raise NotFound(f"no device {device_id} (see `vitalstation device list`)")
                query = query.where(devices.c.device_id == device_id)
            return [
                KeyInfo(
                    prefix=row.prefix, device_id=row.device_id, name=row.name,
                    state=_state(row.expires_at, row.revoked_at, now),
                    created_at=row.created_at, expires_at=row.expires_at,
                    revoked_at=row.revoked_at, can_write_vitals=bool(row.can_write_vitals),
                    can_read_patient=bool(row.can_read_patient), last_used_at=row.last_used_at,
                    use_count=int(row.use_count),
                )
                for row in connection.execute(query)
            ]

    def revoke(self, prefix: str, *, actor: str, at: datetime) -> str:
        """Revoke a key at once (a running station refuses it within its key cache's TTL).

        Returns the device id the key belonged to.
        """
        with self._engine.begin() as connection:
            row = self._key_row(connection, prefix)
            if row.revoked_at is not None:
                raise Conflict(f"key {prefix} was already revoked on {_iso(row.revoked_at)}")
            connection.execute(
                api_keys.update().where(api_keys.c.id == row.id).values(revoked_at=at)
            )
            write_audit(connection, at, actor, "key.revoke", prefix, {"device": row.device_id})
            return str(row.device_id)

    def rotate(self, prefix: str, *, actor: str, at: datetime) -> NewKey:
        """Replace a key: a new key with the same name, permissions and expiry; the old revoked.

        The expiry is kept as it was (the same moment), so the remaining lifetime carries over
        and an expiring key never becomes a never-expiring one (the seed's "regenerate" did
        that to keys with less than a day left). An expired or revoked key is not rotated:
        issue a new one with ``key create``.
        """
        secret = self._secret()  # before the transaction: it may ask the keyring
        with self._engine.begin() as connection:
            row = self._key_row(connection, prefix)
            if row.revoked_at is not None:
                raise Conflict(
                    f"key {prefix} was revoked on {_iso(row.revoked_at)}; create a new key instead"
                )
            if row.expires_at is not None and row.expires_at <= at:
                raise Conflict(
                    f"key {prefix} expired on {_iso(row.expires_at)}; create a new key instead"
                )
            if row.status == "retired":
                raise Conflict(f"device {row.device_id} is retired; its keys are not rotated")
            new = self._insert(
                connection, row.device_ref, row.device_id, row.name, row.expires_at,
                bool(row.can_write_vitals), bool(row.can_read_patient), at, secret,
            )
            connection.execute(
                api_keys.update().where(api_keys.c.id == row.id).values(revoked_at=at)
            )
            write_audit(connection, at, actor, "key.rotate", prefix, {
                "device": row.device_id, "new": new.prefix, "expires": _iso(row.expires_at),
            })
        return new

    # -- per request -----------------------------------------------------------------------

    def verify(self, key: str, *, now: datetime) -> KeyGrant | None:
        """The grant of a valid key; None for a malformed, unknown, wrong, revoked or expired key.

        The caller answers every None the same way (401). A well-formed key costs one indexed
        query and one constant-time comparison whether or not its prefix exists.
        """
        prefix = key_prefix(key)
        if prefix is None:
            return None
        secret = self._secret()
        with self._engine.connect() as connection:
            row = connection.execute(self._lookup, {"prefix": prefix, "now": now}).one_or_none()
        stored = row.key_hash if row is not None else None
        presented = _presented(key, stored, secret)
        # No row: the presented hash against itself made unequal, at the same cost.
        expected = stored if stored is not None else "!" + presented[1:]
        matches = hmac.compare_digest(presented.encode(), expected.encode())
        if row is None or not matches:
            if stored is not None and stored.startswith(HMAC_SCHEME):
                self._note_foreign(prefix, stored, secret)
            return None
        if _state(row.expires_at, row.revoked_at, now) != "active":
            return None
        if secret is not None and stored is not None and stored.startswith(SHA256_SCHEME):
            self._upgrade(row.id, prefix, stored, hash_key(key, secret))
        return KeyGrant(
            prefix=prefix,
            device_id=row.device_id,
            device_status=row.status,
            assigned=bool(row.assigned),
            can_write_vitals=bool(row.can_write_vitals),
            can_read_patient=bool(row.can_read_patient),
            expires_at=row.expires_at,
        )

    def device_status(self, device_id: str, *, now: datetime) -> DeviceStatusInfo | None:
        """A registered device's state, its patient now, and its newest stored reading."""
        with self._engine.connect() as connection:
            device = connection.execute(
                select(devices.c.id, devices.c.name, devices.c.device_type, devices.c.status)
                .where(devices.c.device_id == device_id)
            ).one_or_none()
            if device is None:
                return None
            assignment = connection.execute(
                select(device_assignments.c.bed_ref, device_assignments.c.patient_ref)
                .where(
                    device_assignments.c.device_ref == device.id,
                    device_assignments.c.assigned_at <= now,
                    or_(
                        device_assignments.c.unassigned_at.is_(None),
                        device_assignments.c.unassigned_at > now,
                    ),
                )
                .order_by(device_assignments.c.assigned_at.desc())
                .limit(1)
            ).one_or_none()
            patient_ref = None
            bed = None
            if assignment is not None:
                patient_ref = assignment.patient_ref
                if assignment.bed_ref is not None:
                    bed = self._bed_label(connection, assignment.bed_ref)
                    patient_ref = connection.execute(
                        select(admissions.c.patient_ref).where(
                            admissions.c.bed_ref == assignment.bed_ref,
                            admissions.c.admitted_at <= now,
                            or_(
                                admissions.c.discharged_at.is_(None),
                                admissions.c.discharged_at > now,
                            ),
                        )
                    ).scalar_one_or_none()
            patient_id = None
            if patient_ref is not None:
                patient_id = connection.execute(
                    select(patients.c.patient_id).where(patients.c.id == patient_ref)
                ).scalar_one()
            last = connection.execute(
                select(func.max(vital_signs.c.measured_at)).where(
                    vital_signs.c.device_id == device_id
                )
            ).scalar_one_or_none()
        return DeviceStatusInfo(
            device_id=device_id,
            name=device.name,
            device_type=device.device_type,
            status=device.status,
            patient_assigned=patient_id is not None,
            patient_id=patient_id,
            bed=bed,
            last_reading=last,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _upgrade(self, key_id: int, prefix: str, old: str, new: str) -> None:
        """Rewrites a verified key's SHA-256 hash in the keyed scheme (only if unchanged since
        it was read); a failure is logged and the key keeps working with its old hash."""
        try:
            with self._engine.begin() as connection:
                done = connection.execute(
                    api_keys.update()
                    .where(api_keys.c.id == key_id, api_keys.c.key_hash == old)
                    .values(key_hash=new)
                ).rowcount
        except SQLAlchemyError as exc:
            _LOGGER.warning("key %s: its SHA-256 hash was not upgraded to HMAC-SHA256 (%s); "
                            "next use tries again", prefix, type(exc).__name__)
            return
        if done:
            _LOGGER.info("key %s: hash upgraded from SHA-256 to HMAC-SHA256", prefix)

    def _note_foreign(self, prefix: str, stored: str, secret: bytes | None) -> None:
        """Says once per secret id when keys were hashed with a secret this station lacks (two
        stations sharing a database must share the secret)."""
        stored_id = stored[len(HMAC_SCHEME):].partition("$")[0]
        if secret is not None and stored_id == secret_id(secret):
            return  # our secret, a wrong key: nothing to say
        with self._foreign_lock:
            if stored_id in self._foreign_ids:
                return
            self._foreign_ids.add(stored_id)
        _LOGGER.warning(
            "key %s was hashed with a key-hashing secret this station %s (id %s): its requests "
            "are refused. Stations sharing a database must share the secret "
            "station.key_hashing_secret (see docs/key-hashing.md)", prefix,
            "does not have" if secret is None else "does not use", stored_id,
        )

    @staticmethod
    def _bed_label(connection: Connection, bed_ref: int) -> str | None:
        return connection.execute(
            select(beds.c.label).where(beds.c.id == bed_ref)
        ).scalar_one_or_none()

    @staticmethod
    def _insert(
        connection: Connection,
        device_ref: int,
        device_id: str,
        name: str,
        expires_at: datetime | None,
        can_write_vitals: bool,
        can_read_patient: bool,
        at: datetime,
        secret: bytes | None,
    ) -> NewKey:
        for _ in range(5):  # a prefix collision (1 in 2^47 per pair of keys) draws again
            key, prefix = _new_key()
            taken = connection.execute(
                select(api_keys.c.id).where(api_keys.c.prefix == prefix)
            ).first()
            if taken is not None:
                continue
            connection.execute(
                api_keys.insert().values(
                    device_ref=device_ref, name=name, prefix=prefix,
                    key_hash=hash_key(key, secret),
                    created_at=at, expires_at=expires_at,
                    can_write_vitals=can_write_vitals, can_read_patient=can_read_patient,
                    use_count=0,
                )
            )
            return NewKey(
                key=key, prefix=prefix, device_id=device_id, name=name, expires_at=expires_at,
                can_write_vitals=can_write_vitals, can_read_patient=can_read_patient,
            )
        raise RuntimeError("could not draw an unused key prefix")  # pragma: no cover

    @staticmethod
    def _key_row(connection: Connection, prefix: str) -> Any:
        prefix = prefix.strip()
        if not is_prefix(prefix):
            raise UserError(
                f"{prefix[:20]!r} is not a key prefix (it looks like {KEY_TAG}XXXXXXXX; "
                "see `vitalstation device key list`)"
            )
        row = connection.execute(
            select(
                api_keys.c.id, api_keys.c.name, api_keys.c.expires_at, api_keys.c.revoked_at,
                api_keys.c.can_write_vitals, api_keys.c.can_read_patient,
                api_keys.c.device_ref, devices.c.device_id, devices.c.status,
            )
            .join(devices, devices.c.id == api_keys.c.device_ref)
            .where(api_keys.c.prefix == prefix)
        ).one_or_none()
        if row is None:
            raise NotFound(f"no key {prefix} (see `vitalstation device key list`)")
        return row


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "never"

