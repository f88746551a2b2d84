"""Runtime.restart_inputs: one input restarts with new settings, the others keep running
(real REST on loopback, real file drop, SQLite)."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.app.support import post_heart_rate as post
from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_admin import AdminService
from vitalstation.config.secrets import SecretStore
from vitalstation.config.settings import load_settings
from vitalstation.ingest.base import InputState
from vitalstation.storage.schema import vital_signs


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def stored(runtime: Runtime, device_id: str) -> int:
    with runtime.store.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(vital_signs)
            .where(vital_signs.c.device_id == device_id)
        ).scalar_one()


def drop(runtime: Runtime, device_id: str, heart_rate: int) -> None:
    inbox = runtime.settings.path(runtime.settings.filedrop.inbox)
    payload = {"device_id": device_id, "heart_rate": heart_rate,
               "timestamp": datetime.now(UTC).isoformat()}
    temp = inbox / f".{device_id}-{heart_rate}.tmp"
    temp.write_text(json.dumps(payload))
    temp.rename(inbox / f"{device_id}-{heart_rate}.json")


@pytest.fixture
def runtime(tmp_path):
    (tmp_path / "vitalstation.toml").write_text(
        "[rest]\nport = 0\n[mqtt]\nenabled = false\n"
    )
    runtime = Runtime(load_settings(tmp_path, {}))
    runtime.start()
    yield runtime
    runtime.stop()


def by_name(runtime: Runtime) -> dict:
    return {input_.name: input_ for input_ in runtime.inputs}


def test_only_the_changed_input_restarts_and_the_others_keep_running(runtime) -> None:
    admin = AdminService(runtime.store, SecretStore.for_settings(runtime.settings))
    admin.register_device("DEV-R")
    admin.add_bed("1")
    admin.assign_device("DEV-R", bed_label="1")
    key = admin.issue_key("DEV-R", name="test").key
    before = by_name(runtime)
    assert set(before) == {"rest", "filedrop"}
    assert post(before["rest"].url, key, "DEV-R", 71) == 200
    drop(runtime, "DEV-F", 72)
    wait_until(lambda: stored(runtime, "DEV-F") == 1)

    settings = dataclasses.replace(
        runtime.settings, rest=dataclasses.replace(runtime.settings.rest, rate_limit=2)
    )
    assert runtime.restart_inputs(["rest"], settings) == ["rest"]
    after = by_name(runtime)
    assert after["filedrop"] is before["filedrop"]  # untouched, still the same running input
    assert after["rest"] is not before["rest"]
    assert runtime.settings.rest.rate_limit == 2
    # The new REST receiver works with the new settings: 2 requests a minute, then 429.
    url = after["rest"].url
    assert [post(url, key, "DEV-R", hr) for hr in (73, 74, 75)] == [200, 200, 429]
    assert stored(runtime, "DEV-R") == 3
    # ... and the file drop never stopped.
    drop(runtime, "DEV-F", 76)
    wait_until(lambda: stored(runtime, "DEV-F") == 2)
    assert [i.name for i in runtime.health().inputs] == ["rest", "filedrop"]


def test_an_input_disabled_stops_and_enabled_starts_again(runtime) -> None:
    rest = by_name(runtime)["rest"]
    disabled = dataclasses.replace(
        runtime.settings, filedrop=dataclasses.replace(runtime.settings.filedrop, enabled=False)
    )
    assert runtime.restart_input("filedrop", disabled) is None
    assert set(by_name(runtime)) == {"rest"}
    enabled = dataclasses.replace(
        disabled, filedrop=dataclasses.replace(disabled.filedrop, enabled=True)
    )
    health = runtime.restart_input("filedrop", enabled)
    assert health is not None and health.name == "filedrop"
    assert [i.name for i in runtime.inputs] == ["rest", "filedrop"]  # start order kept
    assert by_name(runtime)["rest"] is rest
    drop(runtime, "DEV-G", 80)
    wait_until(lambda: stored(runtime, "DEV-G") == 1)


def test_an_input_that_cannot_start_is_down_with_the_reason_and_can_be_fixed(runtime) -> None:
    filedrop = by_name(runtime)["filedrop"]
    # Another program holds the port the new settings name.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        clash = dataclasses.replace(
            runtime.settings,
            rest=dataclasses.replace(runtime.settings.rest, port=holder.getsockname()[1]),
        )
        health = runtime.restart_input("rest", clash)
        assert health is not None and health.state is InputState.DOWN
        assert "could not start" in health.detail
        assert by_name(runtime) == {"filedrop": filedrop}
    finally:
        holder.close()
    fixed = dataclasses.replace(clash, rest=dataclasses.replace(clash.rest, port=0))
    health = runtime.restart_input("rest", fixed)
    assert health is not None and health.state is InputState.UP
    assert [h.name for h in runtime.health().inputs] == ["rest", "filedrop"]


def test_saving_settings_applies_them_by_restarting_only_the_changed_input(runtime) -> None:
    from vitalstation.app.settings_apply import affected_inputs, apply_settings
    from vitalstation.config.errors import ConfigError

    before = by_name(runtime)
    result = apply_settings(runtime, {("rest", "rate_limit"): 3, ("alarms", "profile"):
                                      "inhealth", ("notifications", "smtp_port"): 25},
                            environ={})
    assert result.restarted == ("rest",)
    assert result.changed == ("alarms.profile", "notifications.smtp_port", "rest.rate_limit")
    assert result.at_next_start == ("notifications.smtp_port",)
    assert runtime.alarms.engine.profile.name == "inhealth"  # alarm settings apply at once
    after = by_name(runtime)
    assert after["filedrop"] is before["filedrop"] and after["rest"] is not before["rest"]
    assert runtime.settings.rest.rate_limit == 3
    assert "rate_limit = 3" in (runtime.settings.home / "vitalstation.toml").read_text()

    text = (runtime.settings.home / "vitalstation.toml").read_text()
    with pytest.raises(ConfigError) as refused:
        apply_settings(runtime, {("rest", "port"): -1, ("filedrop", "retention_days"): 5},
                       environ={})
    assert refused.value.key == "rest.port"
    assert (runtime.settings.home / "vitalstation.toml").read_text() == text  # nothing half-saved
    assert by_name(runtime) == after  # and nothing restarted

    # A changed secret restarts the inputs that read it; nothing else.
    assert affected_inputs([], ["mqtt.password"]) == ["mqtt"]
    assert affected_inputs([("mqtt", "url")]) == ["mqtt", "mqtt-broker"]
    assert affected_inputs([("embedded_broker", "port")]) == ["mqtt-broker", "mqtt"]
    assert affected_inputs([("alarms", "profile"), ("store", "url")]) == []
    unchanged = apply_settings(runtime, {}, secrets_changed=["aws.access_key_id"])
    assert unchanged.restarted == () and by_name(runtime) == after  # kinesis is disabled
