"""``vitalstation-sim`` end to end, and ``--register`` against a data home's SQLite store."""

from __future__ import annotations

import io
import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from simulator import Simulation, SimulationConfig
from simulator.cli import main
from simulator.keys import KEY_FILE_NAME, load_key_file
from simulator.register import register_beds
from tests.simulator.conftest import RestStub, free_port
from tests.simulator.helpers import T0
from vitalstation.app.admin import open_store
from vitalstation.config.secrets import SecretStore, simulator_key_name
from vitalstation.config.settings import load_settings


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), clock=lambda: T0, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


FAST = ("--duration", "0.2", "--rate-multiplier", "300", "--seed", "3")


def test_file_transport_end_to_end(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    code, out, err = run_cli("--beds", "2", "--transport", "file", "--inbox", str(inbox),
                             "--home", str(tmp_path / "home"), "-v", *FAST)
    assert code == 0, err
    files = list(inbox.glob("*.json"))
    assert files
    assert f"file: sent {len(files)}, acknowledged {len(files)}, failed 0, " \
           "expected refusals 0" in out
    assert "SIM-BSM-02: sent" in out  # -v: per device
    assert "seed 3" in out


def test_the_target_comes_from_the_data_home_and_its_overrides(tmp_path: Path,
                                                               monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text('[filedrop]\ninbox = "drop"\n')
    assert run_cli("--transport", "file", "--home", str(home), *FAST)[0] == 0
    assert list((home / "drop").glob("*.json"))
    monkeypatch.setenv("VITALSTATION_HOME", str(home))
    monkeypatch.setenv("VITALSTATION_FILEDROP__INBOX", str(tmp_path / "elsewhere"))
    assert run_cli("--transport", "file", *FAST)[0] == 0
    assert list((tmp_path / "elsewhere").glob("*.json"))


def test_json_summary_and_expected_refusals(tmp_path: Path) -> None:
    code, out, _ = run_cli("--transport", "file", "--inbox", str(tmp_path), "--json",
                           "--scenario", "malformed:1", "--scenario", "clock-skew:2", *FAST)
    summary = json.loads(out)
    assert code == 0
    assert summary["failed"] == 0 and summary["expected_refusals"] > 0
    assert summary["sent"] == summary["acknowledged"] + summary["expected_refusals"]
    assert summary["devices"]["SIM-BSM-02"]["expected_refusals"] == \
        summary["devices"]["SIM-BSM-02"]["sent"]


def test_same_seed_and_start_time_give_the_same_files(tmp_path: Path) -> None:
    def files(inbox: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(inbox.iterdir())}

    args = ("--transport", "file", "--start-time", "2026-11-02T07:00:00Z", *FAST)
    assert run_cli(*args, "--inbox", str(tmp_path / "a"))[0] == 0
    assert run_cli(*args, "--inbox", str(tmp_path / "b"))[0] == 0
    assert files(tmp_path / "a") == files(tmp_path / "b") != {}


def test_unreachable_rest_exits_non_zero(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({f"SIM-BSM-0{n}": "k" for n in range(1, 5)}))
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_cli("--transport", "rest", "--url", url, "--key-file", str(keys), *FAST)
    assert code == 1
    assert f"cannot reach the station's REST receiver at {url}: connection refused" in err


def test_rest_without_keys_says_how_to_get_them(tmp_path: Path) -> None:
    code, _, err = run_cli("--transport", "rest", "--home", str(tmp_path), *FAST)
    assert code == 2
    assert "--register" in err and "--key-file" in err


def test_usage_mistakes(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--scenario", "sepsis"])
    assert exit_info.value.code == 2
    assert "unknown scenario 'sepsis'" in capsys.readouterr().err
    code, _, err = run_cli("--beds", "2", "--scenario", "bradycardia:3", "--transport", "file",
                           "--inbox", str(tmp_path), *FAST)
    assert code == 2 and "only 2 beds" in err


def test_rest_end_to_end_with_a_key_file(tmp_path: Path) -> None:
    keys = {"SIM-BSM-01": "key-one", "SIM-BSM-02": "key-two"}
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    with RestStub(keys) as stub:
        code, out, err = run_cli("--beds", "2", "--transport", "rest", "--url", stub.url,
                                 "--key-file", str(tmp_path / "keys.json"), *FAST)
    assert code == 0, err
    assert f"rest: sent {len(stub.requests)}, acknowledged {len(stub.requests)}, " in out


def test_the_library_aims_at_the_station_of_a_data_home(tmp_path: Path) -> None:
    (tmp_path / "vitalstation.toml").write_text('[filedrop]\ninbox = "drop"\n')
    config = SimulationConfig(beds=2, seed=1, duration=0.2, rate_multiplier=300)
    simulation = Simulation.for_station(config, load_settings(tmp_path), "file")
    simulation.start()
    assert simulation.wait(5)
    stats = simulation.stats()
    assert stats.ok and not simulation.running
    assert stats.totals.acknowledged == len(list((tmp_path / "drop").glob("*.json"))) > 0


# --- --register --------------------------------------------------------------------------------


def test_register_is_idempotent_and_admits_and_assigns(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    store = open_store(settings)
    try:
        first = register_beds(store.registry, 3, at=T0)
        again = register_beds(store.registry, 3, at=T0 + timedelta(hours=1))
        beds = {b.label: b.patient_id for b in store.registry.list_beds()}
        devices = {d.device_id: d.bed for d in store.registry.list_devices()}
    finally:
        store.close()
    assert len(first.created) == 3 * 5 and first.notes == []
    assert again.created == [] and again.notes == []
    assert beds == {"SIM-01": "P-SIM-01", "SIM-02": "P-SIM-02", "SIM-03": "P-SIM-03"}
    assert devices == {"SIM-BSM-01": "SIM-01", "SIM-BSM-02": "SIM-02", "SIM-BSM-03": "SIM-03"}


def test_register_leaves_the_hospital_s_own_patients_alone(tmp_path: Path) -> None:
    store = open_store(load_settings(tmp_path))
    try:
        registry = store.registry
        registry.add_patient("P123", "A real patient", actor="admin", at=T0)
        registry.add_bed("SIM-01", "SIM", actor="admin", at=T0)
        registry.admit("P123", "SIM-01", actor="admin", at=T0)
        result = register_beds(registry, 1, at=T0)
        beds = {b.label: b.patient_id for b in registry.list_beds()}
    finally:
        store.close()
    assert beds == {"SIM-01": "P123"}
    assert result.notes == ["bed SIM-01 is occupied by patient P123: not admitting"]


def test_cli_register_issues_rest_keys_the_station_verifies(tmp_path: Path) -> None:
    from vitalstation.app.keys import key_store

    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    args = ("--home", str(home), "--beds", "2", "--transport", "rest", "--register",
            "--url", f"http://127.0.0.1:{port}", *FAST)
    code, out, err = run_cli(*args)  # registered, keys issued; then the station is not there
    assert code == 1 and "cannot reach" in err
    assert "registered in sqlite" in out
    secrets = SecretStore.for_settings(load_settings(home))
    keys = {d: secrets.get(simulator_key_name(d)) for d in ("SIM-BSM-01", "SIM-BSM-02")}
    assert all(key and key.startswith("vs_") for key in keys.values())
    assert not (home / KEY_FILE_NAME).exists()  # no file on its own
    run_cli(*args)  # again: nothing new, the same keys
    assert {d: secrets.get(simulator_key_name(d)) for d in keys} == keys
    settings = load_settings(home)
    store = open_store(settings)
    try:
        for device, key in keys.items():
            grant = key_store(store, settings).verify(key, now=T0)  # the station's secret
            assert grant is not None and grant.device_id == device and grant.assigned
        assert {d.device_id: d.bed for d in store.registry.list_devices()} == {
            "SIM-BSM-01": "SIM-01", "SIM-BSM-02": "SIM-02"}
    finally:
        store.close()


def test_cli_keys_in_a_file_when_asked_or_said_plainly_without_a_keyring(tmp_path: Path
                                                                          ) -> None:
    import keyring
    from keyring.backends import fail

    home = tmp_path / "home"
    home.mkdir()
    key_file = tmp_path / "sim-keys.json"
    url = f"http://127.0.0.1:{free_port()}"
    base = ("--home", str(home), "--beds", "1", "--transport", "rest", "--url", url, *FAST)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        code, out, err = run_cli(*base, "--register", "--key-file", str(key_file))
        assert code == 1 and "cannot reach" in err  # keys issued; the station is not there
        assert "note:" not in err
        code, out, err = run_cli(*base, "--register")
        assert code == 1 and "cannot reach" in err
        assert "note: no OS keyring is available" in err
        assert f"the REST device keys are kept in {home / KEY_FILE_NAME}" in err
    finally:
        keyring.set_keyring(previous)
    keys = load_key_file(key_file)
    assert set(keys) == {"SIM-BSM-01"}
    for file in (key_file, home / KEY_FILE_NAME):
        if os.name == "posix":
            assert stat.S_IMODE(file.stat().st_mode) == 0o600
    home_keys = load_key_file(home / KEY_FILE_NAME)  # a key of its own (another file)
    assert set(home_keys) == {"SIM-BSM-01"} and home_keys != keys

    # Once a keyring works, the data home's key file moves into it.
    code, out, err = run_cli(*base)
    assert code == 1 and "cannot reach" in err
    assert f"moved 1 simulator key(s) from {home / KEY_FILE_NAME} into the keyring" in out
    assert not (home / KEY_FILE_NAME).exists()
    secrets = SecretStore.for_settings(load_settings(home))
    assert secrets.get(simulator_key_name("SIM-BSM-01")) == home_keys["SIM-BSM-01"]
