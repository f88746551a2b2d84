"""Start-up time: process start → window shown / → ``serve`` accepting, against bare programs.

Each figure is wall time from ``Popen`` to the moment, the median of ``--runs`` starts on one
data home (the first start also creates and migrates its SQLite database, and is given apart):

* ``serve``: to the REST port accepting a connection (polled every 5 ms), and to the log's
  "started in" line (every input up);
* the window (``vitalstation --home H``, offscreen): to ``MainWindow.show`` returning (the
  window on screen, saying "starting") and to ``on_runtime_started`` (the station running behind
  it). The two moments are printed by a launcher that wraps those two methods and then runs
  ``vitalstation``'s own ``main``; nothing else is changed.

Same-run baselines: the interpreter alone (``python -c pass``, to exit), a bare aiohttp server
to accepting, and a bare ``QMainWindow`` to shown (PySide6 imported, no station).

    python bench/startup.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kinesis import free_port  # noqa: E402

MARK = "BENCH-MARK"
WINDOW_LAUNCHER = f"""
import sys, time
from vitalstation.ui.main_window import MainWindow
def mark(name):
    print("{MARK}", name, time.time(), file=sys.stderr, flush=True)
show, started = MainWindow.show, MainWindow.on_runtime_started
def shown(self):
    show(self)
    mark("shown")
def running(self, *args):
    started(self, *args)
    mark("running")
MainWindow.show, MainWindow.on_runtime_started = shown, running
from vitalstation.cli import main
sys.exit(main(sys.argv[1:]))
"""
BARE_QT = f"""
import sys, time
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.resize(1280, 800)
window.show()
app.processEvents()
print("{MARK}", "shown", time.time(), file=sys.stderr, flush=True)
"""
BARE_AIOHTTP = """
import sys
from aiohttp import web
async def vitals(request):
    return web.json_response({"success": True})
app = web.Application()
app.router.add_post("/api/iot/vitals/", vitals)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTATION_")}
    out.update(QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return out


class Started:
    """A child process whose stderr is watched for marks and a ready line."""

    def __init__(self, command: list[str], watch: tuple[str, ...]) -> None:
        self.began = time.time()
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, text=True, env=env(),
                                        cwd=ROOT)
        self.seen: dict[str, float] = {}
        self.lines: list[str] = []
        self._watch = watch
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if line.startswith(MARK):
                _, name, at = line.split()
                self.seen[name] = float(at)
            for text in self._watch:
                if text in line:
                    self.seen.setdefault(text, time.time())

    def wait_for(self, *names: str, timeout: float = 60.0) -> dict[str, float]:
        """Seconds from the start to each of ``names``."""
        deadline = time.monotonic() + timeout
        while not all(n in self.seen for n in names):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{names} not seen:\n" + "".join(self.lines[-30:]))
            time.sleep(0.005)
        return {n: self.seen[n] - self.began for n in names}

    def accepting(self, port: int, timeout: float = 60.0) -> float:
        """Seconds from the start to ``port`` accepting a connection."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return time.time() - self.began
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("never accepted:\n" + "".join(self.lines[-30:])) from None
                time.sleep(0.005)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)


def home_for(folder: Path) -> tuple[Path, int]:
    """A data home with a free REST port and the embedded broker on a free port."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / "vitalstation.toml").write_text(
        f"[rest]\nport = {port}\n[embedded_broker]\nport = {free_port()}\n")
    return folder, port


def serve_once(home: Path, port: int) -> dict[str, float]:
    started = Started([sys.executable, "-m", "vitalstation", "--home", str(home), "serve"],
                      ("started in",))
    try:
        accepting = started.accepting(port)
        ready = started.wait_for("started in")["started in"]
    finally:
        started.stop()
    return {"accepting_s": accepting, "ready_line_s": ready}


def window_once(home: Path) -> dict[str, float]:
    started = Started([sys.executable, "-c", WINDOW_LAUNCHER, "--home", str(home)], ())
    try:
        marks = started.wait_for("shown", "running")
    finally:
        started.stop()
    return {"shown_s": marks["shown"], "running_s": marks["running"]}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def run(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": runs}
    with tempfile.TemporaryDirectory(prefix="vs-bench-startup-") as tmp:
        folder = Path(tmp)
        home, port = home_for(folder / "serve")
        results["serve_first"] = serve_once(home, port)
        results["serve"] = median_of([serve_once(home, port) for _ in range(runs)])
        home, _ = home_for(folder / "window")
        results["window_first"] = window_once(home)
        results["window"] = median_of([window_once(home) for _ in range(runs)])

    def interpreter() -> float:
        began = time.time()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return time.time() - began

    def bare_qt() -> float:
        started = Started([sys.executable, "-c", BARE_QT], ())
        try:
            return started.wait_for("shown")["shown"]
        finally:
            started.stop()

    def bare_aiohttp() -> float:
        port = free_port()
        started = Started([sys.executable, "-c", BARE_AIOHTTP, str(port)], ())
        try:
            return started.accepting(port)
        finally:
            started.stop()

    results["baseline_interpreter_s"] = round(statistics.median(
        interpreter() for _ in range(runs)), 3)
    results["baseline_bare_aiohttp_accepting_s"] = round(statistics.median(
        bare_aiohttp() for _ in range(runs)), 3)
    results["baseline_bare_qt_shown_s"] = round(statistics.median(
        bare_qt() for _ in range(runs)), 3)
    return results


def report(r: dict[str, Any]) -> list[str]:
    return [
        f"serve → REST accepting: {r['serve']['accepting_s']:.2f} s, → ready line "
        f"{r['serve']['ready_line_s']:.2f} s (first start, new database: "
        f"{r['serve_first']['accepting_s']:.2f} s); bare aiohttp accepting "
        f"{r['baseline_bare_aiohttp_accepting_s']:.2f} s",
        f"window → shown: {r['window']['shown_s']:.2f} s, → station running "
        f"{r['window']['running_s']:.2f} s (first start: {r['window_first']['shown_s']:.2f} / "
        f"{r['window_first']['running_s']:.2f} s); bare QMainWindow shown "
        f"{r['baseline_bare_qt_shown_s']:.2f} s",
        f"python -c pass: {r['baseline_interpreter_s']:.2f} s",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per figure (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = run(args.runs)
    print(json.dumps(results) if args.json else "\n".join(report(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
