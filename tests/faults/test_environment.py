"""The station's surroundings go wrong: a full file system under the inbox, a clock step.

* **Full file system.** As root, the inbox (with its archive and failed folders) is put on a
  2 MiB tmpfs which the test fills until a write really fails with ENOSPC. Files dropped
  before the disk filled must all be accounted for: good ones stored and archived (a rename
  needs no space), bad ones left in the inbox while their ``.error.json`` cannot be written
  and quarantined with their reason once the space is back (the move is retried after 5
  minutes, or at the next start), none lost, none stored twice. Without root (no ``mount``)
  the test is skipped, saying so.
* **Clock steps.** Stepping this machine's clock is impossible here (and would disturb every
  other process), so the step is injected through the station's own clock (``Runtime(clock=)``,
  the one callable every layer reads the time from): an in-process station takes REST and MQTT
  readings while its clock jumps an hour back, a day forward and back to true time.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.faults.harness import (
    FileSender,
    MqttSender,
    Readings,
    RestSender,
    StationProcess,
    inhealth_payload,
    make_home,
    verdict,
    wait_mqtt_subscribed,
)
from tests.ingest.mosquitto import Mosquitto, wait_until
from tests.simulator.conftest import free_port

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted in tmp_path (root only), unmounted afterwards."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("needs root to mount a small tmpfs (the only way to a real ENOSPC here)")
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(disk: Path) -> Path:
    """Write a filler file until the file system refuses with ENOSPC; the filler's path."""
    filler = disk / "filler.bin"
    block = b"\0" * 4096
    with open(filler, "wb", buffering=0) as handle:
        written = 0
        while written < 64 * 1024 * 1024:  # a 2 MiB disk is full long before
            try:
                written += handle.write(block)
            except OSError as exc:
                error = exc.errno
                break
        else:
            error = None
    assert error == errno.ENOSPC, f"no ENOSPC after {written} bytes: {error}"
    with pytest.raises(OSError) as refused:
        (disk / "probe").write_bytes(b"x" * 8192)
    assert refused.value.errno == errno.ENOSPC
    return filler


def test_the_inbox_on_a_full_file_system_loses_no_file(tmp_path: Path, small_disk: Path) -> None:
    home = make_home(
        tmp_path / "home",
        "[mqtt]\nenabled = false\n"
        f'[filedrop]\ninbox = "{small_disk}/inbox"\narchive = "{small_disk}/archive"\n'
        f'failed = "{small_disk}/failed"\n',
        rest_port=free_port(), beds=2,
    )
    inbox = small_disk / "inbox"
    inbox.mkdir()
    readings = Readings(home.devices)
    sender = FileSender(readings, 1.0, inbox)
    good = {}
    for n in range(12):
        reading = readings.next()
        good[f"good-{n:02d}.json"] = reading
        sender.drop(f"good-{n:02d}.json", inhealth_payload(reading))
    bad = {"bad-nan.json": b'{"device_id": "SIM-BSM-01", "heart_rate": NaN}',
           "bad-text.json": b"not json at all",
           "bad-type.json": json.dumps({"device_id": "SIM-BSM-01", "heart_rate": "80",
                                        "timestamp": "2025-11-17T10:30:00Z"}).encode()}
    for name, body in bad.items():
        (inbox / name).write_bytes(body)
    shutil.rmtree(inbox.parent / "staging")
    filler = _fill(small_disk)

    station = StationProcess(home)
    try:
        station.start()
        # Full disk: the good files are stored (archiving is a rename); the bad ones cannot
        # get their .error.json written, and must wait in the inbox, not vanish.
        wait_until(lambda: set(good.values()) <= set(station.stored_rows()), 30,
                   lambda: "the good files to be stored:\n" + station.log[-3000:])
        time.sleep(1.0)
        left = sorted(p.name for p in inbox.iterdir() if not p.name.startswith("."))
        quarantined_while_full = sorted(
            p.name for p in (small_disk / "failed").glob("*.json")
            if not p.name.endswith(".error.json")) if (small_disk / "failed").exists() else []
        assert station.process is not None and station.process.poll() is None, station.log
        assert "No space left on device" in station.log  # said, with the file named
        filler.unlink()  # space again
        # A file whose move failed is tried again after MOVE_RETRY_S (5 min), or at once by
        # the next start: restart rather than wait in CI.
        station.stop()
        station.start()

        def quarantined() -> set[str]:
            return {p.name for p in (small_disk / "failed").glob("*.json")
                    if not p.name.endswith(".error.json")}

        wait_until(lambda: (small_disk / "failed").exists() and set(bad) <= quarantined(), 60,
                   lambda: f"the bad files quarantined once there is space; inbox "
                   f"{sorted(os.listdir(inbox))}\n{station.log[-3000:]}")
        stored = station.stored_rows()
        station.stop()
    finally:
        station.close()
    print(f"full disk: {len(good)} good files stored; left in the inbox while full: {left}; "
          f"quarantined while full: {quarantined_while_full}")
    for name in bad:
        sidecar = json.loads((small_disk / "failed" / f"{name}.error.json").read_text())
        assert sidecar["reason"].strip()
    archived = sorted(p.name for p in (small_disk / "archive").rglob("*.json"))
    assert len(archived) == len(good), archived
    assert sorted(stored) == sorted(good.values())  # each once, nothing from the bad files
    assert [p.name for p in inbox.iterdir() if not p.name.startswith(".")] == []


class SteppedClock:
    """True time plus an offset the test changes: a clock stepped back and forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_clock_steps_back_and_forward_lose_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    from vitalstation.app.runtime import Runtime
    from vitalstation.config.settings import load_settings

    home = make_home(tmp_path / "home", f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n',
                     rest_port=free_port())
    clock = SteppedClock()
    runtime = Runtime(load_settings(home.path, {}), clock=clock)
    # Readings are stamped 2 hours ago (Readings' default): valid whether the station's clock
    # is an hour behind or a day ahead.
    mqtt = MqttSender(Readings(home.devices), 50.0, broker.port)
    rest = RestSender(Readings(home.devices), 50.0, home.rest_port, home.keys)
    probe = StationProcess(home)  # only to read the store
    runtime.start()
    try:
        wait_mqtt_subscribed(probe, broker.port)
        mqtt.start()
        rest.start()
        for step in (timedelta(hours=-1), timedelta(days=1), timedelta(0)):
            time.sleep(0.7)
            clock.offset = step
        time.sleep(0.7)
        mqtt.stop()
        rest.stop()
        probe.wait_stored(mqtt.sent | rest.acked, timeout=30)
    finally:
        for sender in (mqtt, rest):
            if sender.is_alive():
                sender.stop()
        assert runtime.stop()
    rows = probe.stored_rows()
    verdicts = [verdict(mqtt, rows), verdict(rest, rows)]
    print("clock steps -1 h, +1 day, back: " + "; ".join(v.line() for v in verdicts))
    for v in verdicts:
        assert v.acked > 0 and v.lost_acked == 0 and v.duplicates == 0 and v.strangers == 0
    assert verdicts[0].lost_sent == 0
