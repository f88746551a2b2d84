"""After a full run (secrets set through Settings' operations, MQTT logging in with its keyring
password, a device key issued and used over REST, a secret even logged by mistake), no secret
is anywhere in the data home: not in the TOML file, the database, the logs."""

from __future__ import annotations

import logging

from tests.app.support import post_heart_rate
from tests.ingest.mosquitto import Mosquitto, add_password, wait_until
from vitalstation.app.connection_tests import run_check
from vitalstation.app.logging_setup import configure_logging, remove_station_logging
from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_admin import AdminLock, AdminService
from vitalstation.app.settings_apply import apply_settings
from vitalstation.config.secrets import SecretStore
from vitalstation.config.settings import load_settings
from vitalstation.ingest.base import InputState


def test_no_secret_used_in_a_run_lands_in_the_data_home(tmp_path) -> None:
    secrets_used = {
        "mqtt.password": "mqtt-Pa55-word-31",
        "smtp.password": "smtp-Pa55-word-32",
        "aws.access_key_id": "AKIAKEYRINGONLY33",
        "aws.secret_access_key": "aws-secret-key-34",
    }
    passwords = tmp_path / "passwd"
    add_password(passwords, "station", secrets_used["mqtt.password"])
    broker = Mosquitto(tmp_path / "broker", allow_anonymous=False,
                       password_file=passwords).start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text(
        "[rest]\nport = 0\n[mqtt]\nenabled = false\n"
    )
    configure_logging(home)
    runtime = Runtime(load_settings(home, {}))
    runtime.start()
    try:
        store = SecretStore.for_settings(runtime.settings)
        admin = AdminService(runtime.store, store, actor="settings:test")
        AdminLock(home).set_password("admin-Pa55-35")
        for name, value in secrets_used.items():
            admin.set_secret(name, value)
        result = apply_settings(runtime, {
            ("mqtt", "enabled"): True, ("mqtt", "url"): f"mqtt://127.0.0.1:{broker.port}",
            ("mqtt", "username"): "station", ("notifications", "smtp_host"): "127.0.0.1",
            ("notifications", "smtp_username"): "alarms",
        }, secrets_changed=list(secrets_used), environ={})
        assert "mqtt" in result.restarted
        mqtt = next(i for i in runtime.inputs if i.name == "mqtt")
        wait_until(lambda: mqtt.health().state is InputState.UP, 10,
                   lambda: mqtt.health().detail)

        admin.register_device("DEV-S")
        admin.add_bed("1")
        admin.assign_device("DEV-S", bed_label="1")
        issued = admin.issue_key("DEV-S", name="sim", keep_for_simulator=True)
        assert issued.kept
        secrets_used["device key"] = issued.key
        rest = next(i for i in runtime.inputs if i.name == "rest")
        assert post_heart_rate(rest.url, issued.key, "DEV-S", 70) == 200
        # A check that fails (no SMTP server there) and a secret logged by mistake.
        assert not run_check("smtp", runtime.settings, store).ok
        logging.getLogger("vitalstation.test").error(
            "login with %s failed", secrets_used["mqtt.password"])
        secrets_used["admin password"] = "admin-Pa55-35"
    finally:
        runtime.stop()
        broker.stop()
        remove_station_logging()
    log = (home / "logs" / "vitalstation.log").read_text()
    assert "login with *** failed" in log
    files = [f for f in home.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"vitalstation.toml", "vitalstation.db",
                                        "vitalstation.log", "admin-password.json"}
    for file in files:
        data = file.read_bytes()
        for what, value in secrets_used.items():
            assert value.encode() not in data, f"{what} found in {file}"
