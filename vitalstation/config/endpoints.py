"""Where a running station actually listens, published in its data home for its neighbours.

The configured ports are not always the live ones: the embedded broker moves to a free port
when another broker holds 1883, a demo's REST receiver does the same, and ``port = 0`` asks for
any free port. So the running station writes ``<home>/station-endpoints.json`` (its process id
and the URLs it really serves) once its inputs are up, and removes it when it stops; the
simulator and other tools aimed at that data home read it before falling back to the settings.
A file left by a station that was killed names a process that no longer runs and is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENDPOINTS_FILE = "station-endpoints.json"


def write_live_endpoints(home: Path, endpoints: dict[str, str]) -> None:
    """Publish ``endpoints`` (e.g. ``{"broker": "mqtt://127.0.0.1:36839"}``) for this process."""
    target = home / ENDPOINTS_FILE
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps({"pid": os.getpid(), **endpoints}, indent=1) + "\n")
    os.replace(partial, target)


def remove_live_endpoints(home: Path) -> None:
    """Withdraw this process's endpoints (another process's file is left alone)."""
    target = home / ENDPOINTS_FILE
    try:
        if json.loads(target.read_text()).get("pid") == os.getpid():
            target.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def read_live_endpoints(home: Path) -> dict[str, str]:
    """The endpoints of the station running on ``home``; empty when none runs (or it died)."""
    try:
        data = json.loads((home / ENDPOINTS_FILE).read_text())
        pid = int(data.pop("pid"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    if not _running(pid):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
