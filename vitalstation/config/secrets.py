"""Secrets (broker passwords, key passphrases, AWS keys, the SMTP password, the key-hashing secret,
device keys kept for the simulator) in the OS keyring, the only module that imports ``keyring``.

Settings and the database hold only the *names* of secrets (``mqtt.password``); the values live in
the OS keyring (Secret Service on Linux, the macOS Keychain, the Windows Credential Manager) under
one service name per data home, so two stations on one machine never share or overwrite secrets.

Where no keyring works (a headless server without a D-Bus session), the store says so plainly,
and the station reads secrets from ``VITALSTATION_SECRET_<NAME>`` environment variables only when
the admin chose that (``[secrets] source = "environment"``). It never falls back to a file on its
own: a plaintext backend such as ``keyrings.alt``'s is refused like a missing one.

Every value read or written here is remembered (in memory only) so that :func:`redact` (used by
the station's log filter, ``app.logging_setup``) can keep it out of logs and diagnostics.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from vitalstation.config.settings import SECRET_SOURCES, Settings

if TYPE_CHECKING:
    import keyring.backend

# keyring itself is imported on first use (~75 ms, on every command's start otherwise).

__all__ = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "KEY_HASHING_SECRET",
    "KNOWN_SECRETS",
    "MQTT_KEY_PASSPHRASE",
    "MQTT_PASSWORD",
    "SECRET_ENV_PREFIX",
    "SMTP_PASSWORD",
    "STORE_PASSWORD",
    "AwsCredentials",
    "SecretStatus",
    "SecretStore",
    "SecretStoreError",
    "SecretsUnavailable",
    "env_variable",
    "redact",
    "service_name",
    "simulator_key_name",
]

SECRET_ENV_PREFIX = "VITALSTATION_SECRET_"

# The station's well-known secrets (settings refer to them by these names).
MQTT_PASSWORD = "mqtt.password"
MQTT_KEY_PASSPHRASE = "mqtt.key_passphrase"
AWS_ACCESS_KEY_ID = "aws.access_key_id"
AWS_SECRET_ACCESS_KEY = "aws.secret_access_key"
AWS_SESSION_TOKEN = "aws.session_token"
SMTP_PASSWORD = "smtp.password"
KEY_HASHING_SECRET = "station.key_hashing_secret"
_SIMULATOR_KEY_PREFIX = "simulator.key."
STORE_PASSWORD = "store.password"
KNOWN_SECRETS = {
    MQTT_PASSWORD: "MQTT broker password (with mqtt.username)",
    MQTT_KEY_PASSPHRASE: "passphrase of the MQTT TLS client key",
    AWS_ACCESS_KEY_ID: "AWS access key id (Kinesis, DynamoDB)",
    AWS_SECRET_ACCESS_KEY: "AWS secret access key",
    AWS_SESSION_TOKEN: "AWS session token (temporary credentials)",
    SMTP_PASSWORD: "SMTP password (with notifications.smtp_username)",
    STORE_PASSWORD: "PostgreSQL password (for the user in store.url)",
    KEY_HASHING_SECRET: "keys the HMAC of stored device API keys (made by the station; "
    "replacing it invalidates every key)",
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}")
_PROBE_NAME = "vitalstation.probe"
_MIN_REDACTED_LENGTH = 4  # shorter values would blank ordinary words out of every log line

_T = TypeVar("_T")


class SecretStoreError(Exception):
    """A secret could not be read, written or deleted; the message says why and what to do."""


class SecretsUnavailable(SecretStoreError):
    """No usable OS keyring (and secrets are not taken from the environment)."""


@dataclass(frozen=True, slots=True)
class SecretStatus:
    """What the Settings dialog and diagnostics show about where secrets are kept."""

    available: bool
    source: str  # "keyring" or "environment"
    description: str  # one plain sentence, e.g. "OS keyring: SecretService Keyring"


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair (and session token) for boto3; repr never shows the secret parts."""

    access_key_id: str
    secret_access_key: str = ""
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key_id={self.access_key_id!r}, secret_access_key=***)"


def service_name(home: str | os.PathLike[str]) -> str:
    """The keyring service of one data home: ``vitalstation:/abs/path/of/home``."""
    return f"vitalstation:{Path(os.path.abspath(os.fspath(home))).as_posix()}"


def simulator_key_name(device_id: str) -> str:
    """The secret holding a device's REST API key, kept for the simulator."""
    return _SIMULATOR_KEY_PREFIX + device_id


def env_variable(name: str) -> str:
    """``mqtt.password`` → ``VITALSTATION_SECRET_MQTT_PASSWORD`` (non-alphanumerics become _)."""
    _check_name(name)
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a secret name (letters, digits and . _ : @ -, at most 200 characters)"
        )


def _backend_problem(backend: keyring.backend.KeyringBackend) -> str | None:
    """Why this backend cannot hold the station's secrets, or None if it may."""
    from keyring.backends import chainer, fail

    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        backend = fail.Keyring()
    if isinstance(backend, fail.Keyring):
        return (
            "no OS keyring is available (no Secret Service on a D-Bus session, no macOS "
            "Keychain, no Windows Credential Manager)"
        )
    module = type(backend).__module__
    if module.startswith("keyrings.alt") or module == "keyring.backends.null":
        return (
            f"the keyring backend {module}.{type(backend).__name__} does not keep secrets "
            "safely (a plain file or nothing); refused"
        )
    return None


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    return f"{type(backend).__module__.rsplit('.', 1)[-1]} {type(backend).__name__}"


_revealed: set[str] = set()
_revealed_lock = threading.Lock()


def _remember(value: str) -> None:
    if len(value) >= _MIN_REDACTED_LENGTH:
        with _revealed_lock:
            _revealed.add(value)


def redact(text: str) -> str:
    """``text`` with every secret this process has read or written replaced by ``***``."""
    with _revealed_lock:
        values = sorted(_revealed, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


class SecretStore:
    """The secrets of one data home: ``get``, ``set`` and ``delete`` by name.

    ``source`` is ``"keyring"`` (the default: the OS keyring, or ``backend`` in tests) or
    ``"environment"`` (read-only, from ``VITALSTATION_SECRET_<NAME>`` in ``environ``).
    Thread-safe. Calls may block (a D-Bus round trip, an unlock prompt): never call them on the
    GUI thread.
    """

    def __init__(
        self,
        service: str,
        *,
        source: str = "keyring",
        backend: keyring.backend.KeyringBackend | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if source not in SECRET_SOURCES:
            raise ValueError(f"{source!r} is not a secret source ({', '.join(SECRET_SOURCES)})")
        self.service = service
        self.source = source
        self._backend = backend
        self._environ = environ
        self._lock = threading.Lock()

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        backend: keyring.backend.KeyringBackend | None = None,
    ) -> SecretStore:
        """The store of ``settings.home``, from the source ``[secrets] source`` chose."""
        return cls(
            service_name(settings.home),
            source=settings.secrets.source,
            backend=backend,
            environ=environ,
        )

    # -- where secrets are kept --------------------------------------------------------------

    def backend(self) -> keyring.backend.KeyringBackend:
        """The keyring backend used (the injected one, else keyring's choice for this OS)."""
        if self._backend is not None:
            return self._backend
        import keyring

        return keyring.get_keyring()

    def status(self) -> SecretStatus:
        """Whether secrets can be read here, and a plain description; probes the keyring."""
        if self.source == "environment":
            return SecretStatus(
                True,
                "environment",
                f"secrets come from {SECRET_ENV_PREFIX}<NAME> environment variables "
                '([secrets] source = "environment"); they cannot be changed from the station',
            )
        backend = self.backend()
        problem = _backend_problem(backend)
        if problem is None:
            try:
                with self._lock:
                    backend.get_password(self.service, _PROBE_NAME)
            except Exception as exc:  # noqa: BLE001 - any backend failure means "not usable"
                problem = f"the OS keyring ({_backend_name(backend)}) does not answer: {exc}"
        if problem is not None:
            return SecretStatus(False, "keyring", problem + _ENV_HINT)
        return SecretStatus(True, "keyring", f"OS keyring: {_backend_name(backend)}")

    @property
    def available(self) -> bool:
        """True when secrets can be read (probes the keyring: not on the GUI thread)."""
        return self.status().available

    @property
    def writable(self) -> bool:
        """Whether ``set`` and ``delete`` can work: only the keyring source writes."""
        return self.source == "keyring"

    # -- secrets -----------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The secret ``name``, or None if none is stored; raises SecretsUnavailable without a
        keyring (saying how to fix it) rather than pretending the secret is unset."""
        _check_name(name)
        if self.source == "environment":
            environ = os.environ if self._environ is None else self._environ
            value = environ.get(env_variable(name)) or None
        else:
            value = self._call("read", name, lambda b: b.get_password(self.service, name))
        if value is not None:
            _remember(value)
        return value

    def set(self, name: str, value: str) -> None:
        """Stores ``value`` as the secret ``name`` in the OS keyring (replacing any other)."""
        _check_name(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"the secret {name} is empty; delete it instead of storing nothing")
        self._refuse_environment(name)
        _remember(value)
        self._call("store", name, lambda b: b.set_password(self.service, name, value))

    def delete(self, name: str) -> bool:
        """Removes the secret ``name``; False if there was none."""
        _check_name(name)
        self._refuse_environment(name)

        def remove(backend: keyring.backend.KeyringBackend) -> bool:
            from keyring.errors import PasswordDeleteError

            try:
                backend.delete_password(self.service, name)
            except PasswordDeleteError:
                return False
            return True

        return self._call("delete", name, remove)

    def overlay(self, values: Mapping[str, str | None]) -> SecretStore:
        """A read view of this store where ``values`` (not yet saved; None: deleted) win: what
        "Test connection" uses for a password typed but not saved."""
        return _OverlayStore(self, dict(values))

    def aws_credentials(self) -> AwsCredentials | None:
        """The AWS key pair kept here, or None (then boto3's default chain applies)."""
        access_key_id = self.get(AWS_ACCESS_KEY_ID)
        if not access_key_id:
            return None
        secret_access_key = self.get(AWS_SECRET_ACCESS_KEY)
        if not secret_access_key:
            raise SecretStoreError(
                f"the secret {AWS_ACCESS_KEY_ID} is set but {AWS_SECRET_ACCESS_KEY} is not; "
                "AWS needs both"
            )
        return AwsCredentials(access_key_id, secret_access_key, self.get(AWS_SESSION_TOKEN))

    def _refuse_environment(self, name: str) -> None:
        if self.source == "environment":
            raise SecretStoreError(
                f'secrets come from environment variables here ([secrets] source = "environment"):'
                f" set {env_variable(name)} in the station's environment"
            )

    def _call(
        self, verb: str, name: str, action: Callable[[keyring.backend.KeyringBackend], _T]
    ) -> _T:
        backend = self.backend()
        problem = _backend_problem(backend)
        if problem is not None:
            # "<name> because", not "<name>: ": the log filter masks the word after "password:".
            raise SecretsUnavailable(
                f"cannot {verb} the secret {name} because {problem}{_env_hint(name)}"
            )
        from keyring.errors import KeyringError

        try:
            with self._lock:
                return action(backend)
        except KeyringError as exc:
            raise SecretsUnavailable(
                f"cannot {verb} the secret {name} because the OS keyring "
                f"({_backend_name(backend)}) refused: {exc or type(exc).__name__}"
            ) from None


class _OverlayStore(SecretStore):
    """``SecretStore.overlay``: unsaved values first, then the store; never writes."""

    def __init__(self, base: SecretStore, values: dict[str, str | None]) -> None:
        super().__init__(base.service, source=base.source, backend=base._backend,
                         environ=base._environ)
        self._values = values
        self._base = base

    def get(self, name: str) -> str | None:
        """The unsaved value if there is one (None if deleted), else the stored one."""
        if name in self._values:
            value = self._values[name]
            if value:
                _remember(value)
            return value or None
        return self._base.get(name)

    def set(self, name: str, value: str) -> None:
        """Refused: an overlay is for reading."""
        raise SecretStoreError("an overlay of unsaved secrets cannot be written")

    def delete(self, name: str) -> bool:
        """Refused: an overlay is for reading."""
        raise SecretStoreError("an overlay of unsaved secrets cannot be written")


_ENV_HINT = (
    '. On a server without a keyring, set [secrets] source = "environment" and give secrets as '
    f"{SECRET_ENV_PREFIX}<NAME> environment variables"
)


def _env_hint(name: str) -> str:
    return (
        '. On a server without a keyring, set [secrets] source = "environment" and '
        f"{env_variable(name)} in the station's environment"
    )
