"""Hostile files in the inbox of ``vitalstation serve``: the bad-payload corpus as files, plus
symbolic links (to a file and to a folder outside the inbox), names with ``..``, a FIFO, a
zero-byte and a huge file. Each is quarantined in ``failed/`` with an ``.error.json`` giving the
reason; nothing outside the station's folders is read, moved or changed; a good file dropped
after all of them is stored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.faults.harness import (
    FileSender,
    Readings,
    StationProcess,
    inhealth_payload,
    make_home,
)
from tests.hostile.corpus import bad_payloads
from tests.ingest.mosquitto import wait_until
from tests.simulator.conftest import free_port

pytestmark = pytest.mark.timeout(90)


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under ``folder``: (size, mtime in ns, content) - to prove it untouched."""
    found = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, content)
    return found


def test_hostile_files_are_quarantined_with_a_reason_and_nothing_outside_is_touched(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path / "home", "[mqtt]\nenabled = false\n", rest_port=free_port(),
                     beds=1)
    device = home.devices[0]
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    readings = Readings(home.devices)
    secret = readings.next()  # a valid reading, reachable only through a symbolic link
    (outside / "secret.json").write_bytes(inhealth_payload(secret))
    (outside / "folder" / "inner.json").write_bytes(inhealth_payload(readings.next()))
    before = _snapshot(outside)

    station = StationProcess(home)
    station.start()  # creates the inbox
    try:
        inbox = home.inbox
        hostile = {f"corpus-{name}.json": body for name, body in bad_payloads(device).items()}
        for name, body in hostile.items():
            (inbox / name).write_bytes(body)
        specials = {
            "link-to-file.json": lambda p: p.symlink_to(outside / "secret.json"),
            "link-to-folder.json": lambda p: p.symlink_to(outside / "folder"),
            "link-dangling.json": lambda p: p.symlink_to(outside / "nothing.json"),
            "x..json": lambda p: p.write_bytes(b"[" * 50),  # (dot-files are temporary: unread)
            "a..b.json": lambda p: p.write_bytes(b"\x00" * 64),
            "fifo.json": lambda p: os.mkfifo(p),
            "zero-bytes.json": lambda p: p.write_bytes(b""),
        }
        for name, make in specials.items():
            make(inbox / name)
        good = readings.next()
        FileSender(readings, 1.0, inbox).drop("zz-good.json", inhealth_payload(good))
        expected = set(hostile) | set(specials)

        def failed() -> set[str]:
            return {p.name for p in (home.path / "failed").glob("*.json")
                    if not p.name.endswith(".error.json")}

        wait_until(lambda: expected <= failed() and good in set(station.stored_rows()), 45,
                   lambda: f"quarantine of {sorted(expected - failed())}; inbox "
                   f"{sorted(os.listdir(inbox))}\n{station.log[-3000:]}")
        stored = station.stored_rows()
        station.stop()
    finally:
        station.close()

    failed_dir = home.path / "failed"
    reasons = {}
    for name in expected:
        sidecar = json.loads((failed_dir / f"{name}.error.json").read_text())
        assert sidecar["reason"].strip(), sidecar
        reasons[name] = sidecar["reason"]
    for name, reason in sorted(reasons.items()):
        print(f"  {name}: {reason[:150]}")
    assert stored == [good]  # the link's valid target was not read, nothing hostile stored
    assert _snapshot(outside) == before  # nothing outside the station's folders touched
    assert [p.name for p in inbox.iterdir() if not p.name.startswith(".")] == []
    archived = [p.name for p in (home.path / "archive").rglob("*.json")]
    assert len(archived) == 1 and archived[0].startswith("zz-good"), archived
    assert "link" in reasons["link-to-file.json"].lower()
    assert "10" in reasons["corpus-ten-megabytes.json"]  # names the 10 MiB limit
