"""The admin command line, end to end on a real data home (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.factories import T0, make_reading
from vitalstation import __version__
from vitalstation.cli import main
from vitalstation.storage.store import Store


@pytest.fixture
def home(tmp_path, store_url, monkeypatch):
    """A data home whose store is the parametrised database."""
    monkeypatch.setenv("VITALSTATION_STORE__URL", store_url)
    return tmp_path / "home"


def run(home, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vitalstation {__version__}"


def test_register_round_trip(home, capsys) -> None:
    assert run(home, capsys, "patient", "add", "P123", "--name", "Ada Lovelace")[0] == 0
    assert run(home, capsys, "bed", "add", "4", "--ward", "5N")[0] == 0
    assert run(home, capsys, "admit", "P123", "4")[0] == 0
    code = run(home, capsys, "device", "add", "BSM_G101", "--name", "Monitor", "--type", "bsm")[0]
    assert code == 0
    assert run(home, capsys, "device", "assign", "BSM_G101", "--bed", "4")[0] == 0

    code, out, _ = run(home, capsys, "patient", "list", "--json")
    assert code == 0
    assert json_lines(out) == [
        {"patient_id": "P123", "name": "Ada Lovelace", "bed": "4",
         "admitted_at": json_lines(out)[0]["admitted_at"]}
    ]
    code, out, _ = run(home, capsys, "bed", "list", "--json")
    assert json_lines(out)[0] | {} == {
        "label": "4", "ward": "5N", "patient_id": "P123", "patient_name": "Ada Lovelace"
    }
    code, out, _ = run(home, capsys, "device", "list", "--json")
    (device,) = json_lines(out)
    assert (device["device_id"], device["bed"], device["registered"]) == ("BSM_G101", "4", True)

    code, out, _ = run(home, capsys, "patient", "list")
    assert "P123" in out and "Ada Lovelace" in out and "PATIENT" in out

    assert run(home, capsys, "discharge", "P123")[0] == 0
    code, out, _ = run(home, capsys, "bed", "list", "--json")
    assert json_lines(out)[0]["patient_id"] is None


def test_user_mistakes_are_one_line_errors_without_traceback(home, capsys) -> None:
    run(home, capsys, "patient", "add", "P1", "--name", "A")
    code, out, err = run(home, capsys, "patient", "add", "P1", "--name", "B")
    assert code == 1
    assert err.strip() == "vitalstation: error: patient P1 already exists"
    code, _, err = run(home, capsys, "admit", "P1", "99")
    assert code == 1 and "no bed 99" in err and "Traceback" not in err
    code, _, err = run(home, capsys, "readings", "--device", "X", "--since", "yesterday-ish")
    assert code == 1 and "is not a time" in err


def test_bad_configuration_names_the_key_and_line(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text("[rest]\nport = \"eighty\"\n")
    code, _, err = run(home, capsys, "patient", "list")
    assert code == 1
    assert "rest.port" in err and "line 2" in err


def test_readings_json_prints_what_was_stored(home, capsys, store_url) -> None:
    run(home, capsys, "patient", "list")  # creates and migrates the store
    store = Store.open(store_url)
    store.writer.write_readings(
        [make_reading("BSM_G101", i, heart_rate=70 + i) for i in range(3)]
        + [make_reading("OTHER", 0)],
        T0,
    )
    store.close()
    code, out, _ = run(home, capsys, "readings", "--device", "BSM_G101", "--json")
    lines = json_lines(out)
    assert code == 0 and len(lines) == 3
    assert {k: lines[0][k] for k in ("device_id", "vital", "value", "unit", "input")} == {
        "device_id": "BSM_G101", "vital": "heart_rate", "value": 70.0, "unit": "/min",
        "input": "mqtt",
    }
    assert lines[0]["measured_at"] == T0.isoformat()
    since = (T0 + timedelta(seconds=1)).isoformat()
    code, out, _ = run(home, capsys, "readings", "--device", "BSM_G101", "--since", since, "--json")
    assert [line["value"] for line in json_lines(out)] == [71.0, 72.0]
    code, out, _ = run(home, capsys, "device", "list", "--json")
    assert json_lines(out)[-1]["device_id"] == "OTHER"
    assert json_lines(out)[-1]["registered"] is False


def test_db_status_and_upgrade(home, capsys) -> None:
    code, out, _ = run(home, capsys, "db", "upgrade")
    assert code == 0 and "latest" in out
    code, out, _ = run(home, capsys, "db", "status")
    assert code == 0 and "schema:" in out


def test_no_command_opens_the_window_and_refuses_a_negative_wait(home, capsys) -> None:
    # With no command `vitalstation` opens the window (tests/ui/test_app.py runs it); its
    # options are checked before anything starts.
    with pytest.raises(SystemExit) as exit_info:
        run(home, capsys, "--screenshot", "x.png", "--after", "-1")
    assert exit_info.value.code == 2
    assert "--after must not be negative" in capsys.readouterr().err
