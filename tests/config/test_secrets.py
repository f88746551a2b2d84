"""SecretStore: a real Secret Service keyring (gnome-keyring under dbus-run-session), keyring's
fail backend (a headless server), the explicit environment source, and redaction."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from keyring.backends import fail

from tests.conftest import IN_CI
from tests.factories import memory_keyring
from vitalstation.app.logging_setup import redact as redact_log_line
from vitalstation.config.secrets import (
    MQTT_PASSWORD,
    SMTP_PASSWORD,
    SecretStore,
    SecretStoreError,
    SecretsUnavailable,
    env_variable,
    redact,
    service_name,
    simulator_key_name,
)
from vitalstation.config.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]

# Run in a child process under its own D-Bus session with an unlocked gnome-keyring (PLATFORM.md).
_CHILD = textwrap.dedent(
    """
    import json, sys
    from vitalstation.config.secrets import SecretStore, service_name
    store = SecretStore(service_name(sys.argv[1]))
    action, name = sys.argv[2], sys.argv[3]
    result = {"backend": type(store.backend()).__module__, "status": store.status().description}
    if action == "set":
        store.set(name, sys.argv[4])
    elif action == "delete":
        result["deleted"] = store.delete(name)
    result["value"] = store.get(name)
    print(json.dumps(result))
    """
)


def _secret_service_tools() -> None:
    missing = [t for t in ("dbus-run-session", "gnome-keyring-daemon") if not shutil.which(t)]
    if missing:
        reason = f"{', '.join(missing)} not installed (./scripts/setup installs gnome-keyring)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true needs the real keyring test")
        pytest.skip(reason)


def _in_keyring_session(tmp_path: Path, *args: str) -> dict:
    """Runs the child once in a fresh D-Bus session; the keyring files persist in ``tmp_path``."""
    user_home = tmp_path / "user"
    runtime_dir = tmp_path / "run"
    for folder in (user_home, runtime_dir):
        folder.mkdir(mode=0o700, exist_ok=True)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DBUS_", "XDG_", "VITALSTATION_", "PYTHON_KEYRING"))
    }
    env.update(HOME=str(user_home), XDG_RUNTIME_DIR=str(runtime_dir), PYTHONPATH=str(REPO))
    command = [sys.executable, str(script), *args]
    quoted = " ".join(f"'{part}'" for part in command)
    shell = (
        "echo -n station-login | gnome-keyring-daemon --unlock --components=secrets >/dev/null"
        f" && exec {quoted}"
    )
    done = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", shell],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_real_secret_service_keyring_round_trip(tmp_path) -> None:
    _secret_service_tools()
    home = tmp_path / "station"
    value = "broker-Pa55-7f3e91"

    stored = _in_keyring_session(tmp_path, str(home), "set", MQTT_PASSWORD, value)
    assert stored["backend"] == "keyring.backends.SecretService"
    assert stored["status"].startswith("OS keyring: SecretService")
    assert stored["value"] == value
    # A later session (a restarted station) reads it back from the keyring's own files ...
    assert _in_keyring_session(tmp_path, str(home), "get", MQTT_PASSWORD)["value"] == value
    # ... which are encrypted: the value is nowhere on disk in clear.
    keyring_files = list((tmp_path / "user").rglob("*.keyring"))
    assert keyring_files
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert value.encode() not in file.read_bytes(), file
    # Another data home is another service: it does not see this station's secret.
    assert _in_keyring_session(tmp_path, str(tmp_path / "other"), "get", MQTT_PASSWORD)[
        "value"
    ] is None
    deleted = _in_keyring_session(tmp_path, str(home), "delete", MQTT_PASSWORD)
    assert (deleted["deleted"], deleted["value"]) == (True, None)


def test_without_a_keyring_it_says_so_and_never_pretends_a_secret_is_unset(tmp_path) -> None:
    store = SecretStore(service_name(tmp_path), backend=fail.Keyring())
    status = store.status()
    assert not status.available and not store.available
    assert "no OS keyring is available" in status.description
    assert 'source = "environment"' in status.description
    with pytest.raises(SecretsUnavailable, match="VITALSTATION_SECRET_MQTT_PASSWORD") as caught:
        store.get(MQTT_PASSWORD)
    assert "cannot read the secret mqtt.password because no OS keyring" in str(caught.value)
    with pytest.raises(SecretsUnavailable, match="cannot store the secret smtp.password"):
        store.set(SMTP_PASSWORD, "x" * 12)
    # Logged, the reason survives the log filter that masks the word after "password:".
    assert "because no OS keyring" in redact_log_line(str(caught.value))
    with pytest.raises(SecretsUnavailable, match="cannot delete"):
        store.delete(SMTP_PASSWORD)
    # No file appeared in the data home as a fallback.
    assert list(tmp_path.iterdir()) == []


def test_a_plaintext_backend_is_refused_like_a_missing_one(tmp_path) -> None:
    backend_class = type(
        "PlaintextKeyring",
        (type(memory_keyring()),),
        {"__module__": "keyrings.alt.file"},
    )
    store = SecretStore(service_name(tmp_path), backend=backend_class())
    assert not store.available
    assert "does not keep secrets safely" in store.status().description
    with pytest.raises(SecretsUnavailable):
        store.set(MQTT_PASSWORD, "plaintext-would-leak")


def test_environment_secrets_only_by_explicit_choice(tmp_path) -> None:
    environ = {"VITALSTATION_SECRET_MQTT_PASSWORD": "from-env-pw"}
    settings = load_settings(tmp_path, {})
    default = SecretStore.for_settings(settings, environ, backend=fail.Keyring())
    with pytest.raises(SecretsUnavailable):
        default.get(MQTT_PASSWORD)  # the variable is there, but nobody chose the environment

    chosen = load_settings(tmp_path, {"VITALSTATION_SECRETS__SOURCE": "environment"})
    store = SecretStore.for_settings(chosen, environ, backend=fail.Keyring())
    assert store.status().available and store.status().source == "environment"
    assert store.get(MQTT_PASSWORD) == "from-env-pw"
    assert store.get(SMTP_PASSWORD) is None
    assert not store.writable
    with pytest.raises(SecretStoreError, match="set VITALSTATION_SECRET_SMTP_PASSWORD"):
        store.set(SMTP_PASSWORD, "secret-value")
    with pytest.raises(ConfigError, match='"keyring"'):
        load_settings(tmp_path, {"VITALSTATION_SECRETS__SOURCE": "file"})


def test_memory_backend_round_trip_and_names(tmp_path) -> None:
    store = SecretStore(service_name(tmp_path), backend=memory_keyring())
    assert store.status().available
    assert store.get(MQTT_PASSWORD) is None
    store.set(MQTT_PASSWORD, "first-pw")
    store.set(MQTT_PASSWORD, "second-pw")
    assert store.get(MQTT_PASSWORD) == "second-pw"
    assert store.delete(MQTT_PASSWORD) is True
    assert store.delete(MQTT_PASSWORD) is False
    assert store.get(MQTT_PASSWORD) is None
    with pytest.raises(ValueError, match="empty"):
        store.set(MQTT_PASSWORD, "")
    with pytest.raises(ValueError, match="not a secret name"):
        store.get("white space")
    assert env_variable(simulator_key_name("BSM-G101")) == (
        "VITALSTATION_SECRET_SIMULATOR_KEY_BSM_G101"
    )
    assert service_name(tmp_path / "a" / "..") == f"vitalstation:{tmp_path.as_posix()}"


def test_aws_credentials_need_both_halves(tmp_path) -> None:
    store = SecretStore(service_name(tmp_path), backend=memory_keyring())
    assert store.aws_credentials() is None
    store.set("aws.access_key_id", "AKIAEXAMPLE")
    with pytest.raises(SecretStoreError, match="AWS needs both"):
        store.aws_credentials()
    store.set("aws.secret_access_key", "wJalrXUtnFEMI-secret")
    credentials = store.aws_credentials()
    assert credentials is not None
    assert (credentials.access_key_id, credentials.secret_access_key) == (
        "AKIAEXAMPLE", "wJalrXUtnFEMI-secret"
    )
    assert "wJalr" not in repr(credentials)


def test_secrets_read_or_written_are_redacted_from_logs(tmp_path, caplog) -> None:
    store = SecretStore(service_name(tmp_path), backend=memory_keyring())
    store.set(SMTP_PASSWORD, "smtp-hunter2-secret")
    assert redact("login with smtp-hunter2-secret failed") == "login with *** failed"
    from vitalstation.app.logging_setup import RedactingFilter

    logger = logging.getLogger("tests.secrets")
    redacting = RedactingFilter()
    logger.addFilter(redacting)
    try:
        with caplog.at_level(logging.INFO, logger="tests.secrets"):
            logger.info("server said %s", "bad password smtp-hunter2-secret")
    finally:
        logger.removeFilter(redacting)
    assert "smtp-hunter2-secret" not in caplog.text
    assert "bad password ***" in caplog.text


# --- the inputs take their secrets from here ---------------------------------------------------


def test_mqtt_reads_its_password_and_passphrase_from_the_keyring(tmp_path) -> None:
    from vitalstation.ingest.mqtt import MqttOptions

    (tmp_path / "vitalstation.toml").write_text(
        '[mqtt]\nurl = "mqtts://iot.example:8883"\nusername = "station"\n'
        'tls_cert = "c.pem"\ntls_key = "k.pem"\n'
    )
    settings = load_settings(tmp_path, {})
    store = SecretStore.for_settings(settings)  # the keyring keyring chose (this test's)
    store.set(MQTT_PASSWORD, "broker-pw-1")
    store.set("mqtt.key_passphrase", "key-phrase-1")
    # The old variables are not read any more; the TOML names no secret.
    options = MqttOptions.from_settings(settings, {"VITALSTATION_MQTT_PASSWORD": "old"})
    assert (options.password, options.key_passphrase) == ("broker-pw-1", "key-phrase-1")
    assert "broker-pw-1" not in (tmp_path / "vitalstation.toml").read_text()

    # No keyring: the input refuses to start with the reason, rather than log in without one.
    with pytest.raises(SecretsUnavailable, match="cannot read the secret mqtt.password"):
        MqttOptions.from_settings(
            settings, secrets=SecretStore.for_settings(settings, backend=fail.Keyring())
        )
    # Without a user name no password is needed, so no keyring is asked.
    plain = load_settings(tmp_path, {"VITALSTATION_MQTT__USERNAME": "",
                                     "VITALSTATION_MQTT__TLS_KEY": "",
                                     "VITALSTATION_MQTT__TLS_CERT": ""})
    none = MqttOptions.from_settings(
        plain, secrets=SecretStore.for_settings(plain, backend=fail.Keyring())
    )
    assert (none.password, none.key_passphrase) == (None, None)


def test_kinesis_clients_sign_with_the_keyring_keys(tmp_path, caplog) -> None:
    from vitalstation.app.credentials import aws_credentials
    from vitalstation.ingest.kinesis import boto3_client_factory

    settings = load_settings(tmp_path, {})
    store = SecretStore.for_settings(settings)
    store.set("aws.access_key_id", "AKIAKEYRING")
    store.set("aws.secret_access_key", "keyring-secret-key")
    credentials = aws_credentials(settings)
    client = boto3_client_factory(settings.kinesis, credentials)()
    frozen = client._request_signer._credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == ("AKIAKEYRING", "keyring-secret-key")
    # No keyring: boto3's default chain (instance roles are legitimate), said in the log.
    with caplog.at_level(logging.WARNING):
        fallback = aws_credentials(
            settings, SecretStore.for_settings(settings, backend=fail.Keyring())
        )
    assert fallback is None
    assert "boto3's default chain" in caplog.text


def test_an_overlay_reads_unsaved_values_first_and_never_writes(tmp_path) -> None:
    store = SecretStore(service_name(tmp_path), backend=memory_keyring())
    store.set(MQTT_PASSWORD, "saved-pw-1")
    store.set(SMTP_PASSWORD, "saved-smtp-1")
    view = store.overlay({MQTT_PASSWORD: "typed-pw-2", SMTP_PASSWORD: None})
    assert view.get(MQTT_PASSWORD) == "typed-pw-2"
    assert view.get(SMTP_PASSWORD) is None  # removed in the form, not yet saved
    assert view.get("aws.access_key_id") is None
    with pytest.raises(SecretStoreError):
        view.set(MQTT_PASSWORD, "x" * 8)
    assert store.get(MQTT_PASSWORD) == "saved-pw-1"
    assert redact("typed-pw-2 leaked") == "*** leaked"
