"""Device API keys for the admin (CLI, Settings dialog), the REST input's wiring, and the
station's key-hashing secret.

The REST receiver (``ingest``) may not import the store; here, a layer above both, it is
handed the store's :class:`~vitalstation.storage.keys.KeyStore` as its key directory.

The key-hashing secret (``station.key_hashing_secret``) keys the HMAC-SHA256 that device keys
are stored under. It is read from the station's secrets (the OS keyring, or the environment
when the admin chose ``[secrets] source = "environment"``), never from a file or the database,
and created on first need (32 random bytes, URL-safe base64) when the keyring has none. Where
no secret can be had (no keyring, or the environment without the variable), the station says
so in its log and hashes keys with SHA-256, as before the secret existed; it never writes the
secret anywhere else. See docs/key-hashing.md.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import secrets as token_source
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vitalstation.config.secrets import (
    KEY_HASHING_SECRET,
    SecretStore,
    SecretStoreError,
    env_variable,
)
from vitalstation.config.settings import Settings
from vitalstation.ingest.base import Input
from vitalstation.ingest.rest import RestInput
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.keys import KeyStore
from vitalstation.storage.store import Store

__all__ = ["MIN_SECRET_CHARS", "StationSecret", "key_store", "make_rest_input"]

_LOGGER = logging.getLogger(__name__)

SECRET_BYTES = 32
# A secret given in the environment must be at least this long (a generated one is 43).
MIN_SECRET_CHARS = 32
# After a failure (keyring locked or absent) the keyring is asked again at most this often.
RETRY_S = 60.0


class StationSecret:
    """The key-hashing secret of one station's secrets, as bytes; None while unavailable.

    Read once and kept in memory (``__call__`` is then cheap, for every REST verification);
    created when the keyring holds none. Thread-safe; may block on the keyring, so never call
    it on the GUI thread. A failure is logged once (plainly: keys are hashed with SHA-256
    meanwhile) and retried after ``retry_s``.
    """

    def __init__(self, secrets: SecretStore, *, retry_s: float = RETRY_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._secrets = secrets
        self._retry_s = retry_s
        self._monotonic = monotonic
        self._value: bytes | None = None
        self._retry_at = float("-inf")
        self._said: str | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bytes | None:
        """The secret, or None (then SHA-256)."""
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is not None:
                return self._value
            if self._monotonic() < self._retry_at:
                return None
            try:
                text = self._read_or_create()
                problem = _problem(text, self._secrets)
            except SecretStoreError as exc:
                problem = str(exc)
            except Exception as exc:  # noqa: BLE001 - a keyring backend's own failure: the same
                problem = f"the OS keyring failed: {type(exc).__name__}: {exc}"
            if problem is not None:
                self._retry_at = self._monotonic() + self._retry_s
                if problem != self._said:
                    _LOGGER.warning(
                        "device keys are hashed with SHA-256, not HMAC-SHA256, and keys stored "
                        "as HMAC-SHA256 are refused: the station's key-hashing secret is not "
                        "available (%s); asked again in %g s", problem, self._retry_s)
                    self._said = problem
                return None
            assert text is not None
            if self._said is not None:
                _LOGGER.info("the station's key-hashing secret is available again: device keys "
                             "are hashed with HMAC-SHA256")
            self._said = None
            self._value = text.encode("utf-8")
            return self._value

    def _read_or_create(self) -> str | None:
        text = self._secrets.get(KEY_HASHING_SECRET)
        if text is not None or not self._secrets.writable:
            return text
        with _creation_lock(self._secrets.service):
            text = self._secrets.get(KEY_HASHING_SECRET)  # another process may have made it
            if text is None:
                new = base64.urlsafe_b64encode(token_source.token_bytes(SECRET_BYTES))
                self._secrets.set(KEY_HASHING_SECRET, new.rstrip(b"=").decode("ascii"))
                _LOGGER.info("created the station's key-hashing secret (%s, in the OS "
                             "keyring): new device keys are stored as HMAC-SHA256",
                             KEY_HASHING_SECRET)
                text = self._secrets.get(KEY_HASHING_SECRET)  # what the keyring holds now
        return text


def _problem(text: str | None, secrets: SecretStore) -> str | None:
    if text is None and secrets.source == "environment":
        return (f'[secrets] source = "environment" and {env_variable(KEY_HASHING_SECRET)} is '
                f"not set; give it at least {MIN_SECRET_CHARS} random characters, the same at "
                "every start")
    if text is None:
        return f"the OS keyring kept no {KEY_HASHING_SECRET} after it was stored"
    if len(text) < MIN_SECRET_CHARS:
        where = (env_variable(KEY_HASHING_SECRET) if secrets.source == "environment"
                 else f"the secret {KEY_HASHING_SECRET}")
        return f"{where} is shorter than {MIN_SECRET_CHARS} characters; refused"
    return None


@contextlib.contextmanager
def _creation_lock(service: str) -> Iterator[None]:
    """Serialises creating the secret between processes of one user (CLI and station started
    at once would otherwise each store their own). No lock where files cannot be locked."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the keyring write itself is the last word
        yield
        return
    name = hashlib.sha256(service.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"vitalstation-{os.getuid()}-{name}.lock"
    try:
        handle = open(path, "a")  # noqa: SIM115 - held for the block
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def key_store(store: Store, settings: Settings | None = None, *,
              secrets: SecretStore | None = None) -> KeyStore:
    """The store's device API keys, hashed with the station's key-hashing secret.

    The secret comes from ``secrets``, else from ``settings``' secret store; with neither the
    caller names no station, so its keys are hashed with SHA-256 (which the station accepts,
    and upgrades to its own secret on a key's first use).
    """
    if secrets is None:
        if settings is None:
            return KeyStore(store.engine)
        secrets = SecretStore.for_settings(settings)
    return KeyStore(store.engine, secret=StationSecret(secrets))


def make_rest_input(settings: Settings, pipeline: Pipeline, store: Store) -> Input | None:
    """The REST receiver of ``[rest]`` (None when disabled), verifying keys against the store."""
    if not settings.rest.enabled:
        return None
    return RestInput.from_settings(settings, pipeline, key_store(store, settings))
