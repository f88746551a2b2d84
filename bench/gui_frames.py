"""The station window's GUI-thread CPU time per frame, with frames driven by hand (issue 7).

bench/gui.py measures the window as it runs; on a loaded machine its event loop is starved, so
frames come late, each drains more readings, and before/after runs are hard to compare. Here
the frame timer is stopped and every frame gets exactly ``rate / 25`` readings (stored by the
real pipeline and delivered to the window's buffer), then the frame tick and the paint it causes
run, then the loop's other work (timers, alarms, status, NEWS2); 40 ms apart, as the frame timer
would. CPU time of the GUI thread only, so other processes barely move the figures.

    QT_QPA_PLATFORM=offscreen python bench/gui_frames.py --beds 128 --frames 200

Prints the frame's CPU time (mean, p50, p95) and the other loop work per frame (mean).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QCoreApplication, QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import vitalstation.ui  # noqa: E402,F401 - PySide6 before pyqtgraph
from bench.gui import WINDOW_SIZE, percentile  # noqa: E402
from bench.ward import history, reading, start_station  # noqa: E402
from vitalstation.domain.vitals import VitalKind  # noqa: E402
from vitalstation.ui.main_window import MainWindow  # noqa: E402
from vitalstation.ui.sound import NoAudio  # noqa: E402

FRAME_S = 0.04
WARM_UP_FRAMES = 25


def measure(beds: int, rate: int, frames: int) -> dict[str, float]:
    """Drive ``frames`` frames of a ``beds``-bed window at ``rate`` readings/s."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    per_frame = max(1, round(rate * FRAME_S))
    with tempfile.TemporaryDirectory(prefix="vitalstation-bench-frames-") as tmp:
        runtime = start_station(Path(tmp) / "home", beds)
        try:
            runtime.pipeline.process(history(list(range(1, beds + 1)), datetime.now(UTC),
                                             minutes=5, step_s=5), timeout=300)
            window = MainWindow(runtime, settings_path=Path(tmp) / "window.ini",
                                audio=NoAudio("bench"))
            window.resize(*WINDOW_SIZE)
            window.show()
            grid, ward = window.grid, window.ward
            started = time.monotonic()
            while not (ward.is_loaded and not grid.is_building
                       and len(grid.tiles) == len(ward.tiles())):
                if time.monotonic() - started > 120:
                    raise RuntimeError("the grid was not built within 120 s")
                app.processEvents()
                time.sleep(0.005)
            if window.alarm_dock is not None:
                window.alarm_dock.hide()
            ward._frame_timer.stop()  # noqa: SLF001 - the frames are driven here
            frame_cpu: list[float] = []
            other_cpu: list[float] = []
            n = 0
            for index in range(frames + WARM_UP_FRAMES):
                now = datetime.now(UTC)
                batch = []
                for i in range(per_frame):
                    batch.append(reading(n % beds + 1, now + timedelta(microseconds=i),
                                         {VitalKind.HEART_RATE: 60.0 + (n * 7) % 50}))
                    n += 1
                runtime.pipeline.process(batch, timeout=30)
                cpu = time.thread_time()
                ward.tick()
                QCoreApplication.sendPostedEvents(None, QEvent.Type.UpdateRequest)
                ticked = time.thread_time()
                app.processEvents()
                done = time.thread_time()
                if index >= WARM_UP_FRAMES:
                    frame_cpu.append((ticked - cpu) * 1000)
                    other_cpu.append((done - ticked) * 1000)
                time.sleep(FRAME_S)
            window.close()
            window.shutdown()
            window.deleteLater()
            app.processEvents()
        finally:
            runtime.stop()
    return {"beds": beds, "rate": rate, "frames": frames,
            "frame_cpu_mean_ms": round(statistics.fmean(frame_cpu), 2),
            "frame_cpu_p50_ms": round(percentile(frame_cpu, 50), 2),
            "frame_cpu_p95_ms": round(percentile(frame_cpu, 95), 2),
            "other_cpu_mean_ms": round(statistics.fmean(other_cpu), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--rate", type=int, default=5000, help="readings per second")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args(argv)
    for beds in args.beds:
        r = measure(beds, args.rate, args.frames)
        print(f"{beds:>4} beds {args.rate}/s: frame CPU mean {r['frame_cpu_mean_ms']} ms, "
              f"p50 {r['frame_cpu_p50_ms']}, p95 {r['frame_cpu_p95_ms']}; other loop work "
              f"{r['other_cpu_mean_ms']} ms per frame ({r['frames']} frames)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
