"""`vitalstation --self-test`: every step passes on a working station, and a broken one fails
with the step named, the exit code non-zero and the data home kept for diagnosis."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from vitalstation.app.selftest import run_self_test
from vitalstation.cli import main

STEPS = ("data home", "start", "register", "MQTT", "REST", "file drop", "alarm", "window", "stop")
_STEP_LINE = re.compile(r"^  (ok|skip|FAIL)\s+(.+?)\s+(\d+\.\d\d) s  (.*)$")


def _steps(output: str) -> dict[str, tuple[str, str]]:
    """``{step: (status, detail)}`` from the self-test's printed lines."""
    found = {}
    for line in output.splitlines():
        match = _STEP_LINE.match(line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(4))
    return found


def test_the_self_test_passes_every_step_from_the_command_line(tmp_path) -> None:
    home = tmp_path / "selftest"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTATION_")}
    # A store URL in the environment must not be used: the self-test writes test patients.
    env["VITALSTATION_STORE__URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/not-this-one"
    env["QT_QPA_PLATFORM"] = "xcb"  # the window step renders offscreen whatever the display
    result = subprocess.run(
        [sys.executable, "-m", "vitalstation", "--home", str(home), "--self-test"],
        capture_output=True, text=True, env=env, timeout=100, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = _steps(result.stdout)
    assert tuple(steps) == STEPS, result.stdout
    assert {name: status for name, (status, _) in steps.items()} == dict.fromkeys(STEPS, "ok")
    assert "MainWindow shows bed SELFTEST and HR 165" in steps["window"][1]
    assert "raised alarm" in steps["alarm"][1] and "high priority" in steps["alarm"][1]
    assert result.stdout.splitlines()[-1].startswith("self-test passed: 9 steps")
    # --home DIR keeps the data home: the stored readings and the window's image are there.
    assert (home / "vitalstation.db").is_file()
    assert (home / "station-window.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert list((home / "archive").rglob("*.json"))


def test_a_broken_inbox_fails_the_start_step_with_the_reason(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the inbox's parent should be")
    home = tmp_path / "home"
    out = io.StringIO()
    code = run_self_test(
        out, home=home, overrides={"VITALSTATION_FILEDROP__INBOX": str(blocker / "inbox")},
        timeout_s=5.0,
    )
    output = out.getvalue()
    assert code == 1, output
    steps = _steps(output)
    assert steps["start"][0] == "FAIL"
    assert "filedrop" in steps["start"][1] and "could not start" in steps["start"][1]
    # Nothing after the failing step ran, but the station was stopped.
    assert "MQTT" not in steps and steps["stop"][0] == "ok"
    last = output.splitlines()[-1]
    assert last.startswith("self-test FAILED at step 'start': input filedrop is down")
    assert str(home) in last and (home / "vitalstation.db").is_file()


def test_a_reading_acknowledged_but_not_stored_fails_its_step(tmp_path) -> None:
    # The station subscribes elsewhere: the broker still acknowledges the publish, so only
    # the check in the store can tell that the reading never arrived.
    out = io.StringIO()
    code = run_self_test(out, home=tmp_path / "home",
                         overrides={"VITALSTATION_MQTT__TOPICS": "elsewhere/#"}, timeout_s=2.0)
    output = out.getvalue()
    assert code == 1, output
    status, detail = _steps(output)["MQTT"]
    assert status == "FAIL", output
    assert detail == "after 2 s: SELFTEST-MQTT's reading is not stored (found nothing)"


def test_the_self_test_refuses_a_folder_that_is_not_empty(tmp_path, capsys) -> None:
    (tmp_path / "vitalstation.db").write_bytes(b"a real station's database")
    assert main(["--home", str(tmp_path), "--self-test"]) == 1
    out = capsys.readouterr().out
    assert "is not an empty folder" in out
    assert (tmp_path / "vitalstation.db").read_bytes() == b"a real station's database"


def test_the_self_test_runs_alone(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--self-test", "serve"])
    assert exit_info.value.code == 2
    assert "--self-test runs alone" in capsys.readouterr().err


def test_a_window_step_that_writes_no_image_fails(tmp_path) -> None:
    shown: list[str] = []

    def render_nothing(runtime, png) -> str:
        shown.append(runtime.settings.station.name)
        return "rendered"

    out = io.StringIO()
    code = run_self_test(out, home=tmp_path / "home", render=render_nothing, timeout_s=5.0)
    output = out.getvalue()
    assert code == 1, output
    assert shown == ["VitalStation self-test"]
    status, detail = _steps(output)["window"]
    assert (status, detail) == ("FAIL", f"the renderer wrote no image at "
                                        f"{tmp_path / 'home' / 'station-window.png'}")
    assert _steps(output)["stop"][0] == "ok"
