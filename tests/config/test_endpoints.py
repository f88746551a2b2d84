"""The running station's live ports in its data home: written, read, withdrawn; a dead
station's file is ignored."""

from __future__ import annotations

import json
import subprocess
import sys

from vitalstation.config.endpoints import (
    ENDPOINTS_FILE,
    read_live_endpoints,
    remove_live_endpoints,
    write_live_endpoints,
)


def test_written_read_and_withdrawn(tmp_path) -> None:
    assert read_live_endpoints(tmp_path) == {}
    write_live_endpoints(tmp_path, {"broker_port": "36839", "rest_port": "8081"})
    assert read_live_endpoints(tmp_path) == {"broker_port": "36839", "rest_port": "8081"}
    remove_live_endpoints(tmp_path)
    assert not (tmp_path / ENDPOINTS_FILE).exists()


def test_a_killed_station_s_file_is_ignored_and_not_removed_by_another(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / ENDPOINTS_FILE).write_text(
        json.dumps({"pid": int(dead.stdout), "broker_port": "1"}))
    assert read_live_endpoints(tmp_path) == {}
    remove_live_endpoints(tmp_path)  # not ours: left for whoever wrote it
    assert (tmp_path / ENDPOINTS_FILE).exists()
    (tmp_path / ENDPOINTS_FILE).write_text("not json")
    assert read_live_endpoints(tmp_path) == {}
