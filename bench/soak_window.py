"""Memory of the real station window over an hour of ``--demo`` with 32 beds (issue 7).

Target: the resident set size (RSS) after 60 minutes within 5 % of its value after the first
5 minutes — the window must not grow over a nurse's shift.

The station runs as ``vitalstation --demo`` does (``ui/app.py``'s ``run_window``): a fresh data
home with default settings (embedded MQTT broker, REST receiver, file drop), the runtime started
off the GUI thread, the window offscreen at 1920x1080, the demo's six beds over MQTT, REST and
file drop (bed 2 deteriorating). ``--demo`` chooses its beds from ``DEMO_PLAN`` in
``ui/simulator_menu.py`` (two per input); the rest of the ``--beds`` are started the way the
Simulator menu starts beds (``SimulatorController.start``), split over the same three inputs,
so every bed is fed by a real simulator through a real input.

    QT_QPA_PLATFORM=offscreen nice -n 10 .venv/bin/python bench/soak_window.py       # 60 min
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/soak_window.py --minutes 6 --json

Prints the RSS every minute, then the 5-minute value, the final value and the change in %.
With ``--minutes`` below 5 the first sample stands in for the 5-minute value.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import vitalstation.ui  # noqa: E402,F401 - PySide6 before pyqtgraph
from vitalstation.app.demo import demo_settings  # noqa: E402
from vitalstation.app.runtime import Runtime  # noqa: E402
from vitalstation.config.home import ensure_home  # noqa: E402
from vitalstation.config.settings import load_settings  # noqa: E402
from vitalstation.ui.alarm_feed import AlarmFeed  # noqa: E402
from vitalstation.ui.main_window import MainWindow  # noqa: E402
from vitalstation.ui.simulator_menu import DEMO_PLAN  # noqa: E402
from vitalstation.ui.sound import NoAudio  # noqa: E402
from vitalstation.ui.tasks import BackgroundTasks  # noqa: E402

WINDOW_SIZE = (1920, 1080)
SAMPLE_EVERY_S = 60.0
BASELINE_MIN = 5.0
TARGET_PCT = 5.0
TRANSPORTS = ("mqtt", "rest", "file")


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def extra_runs(total_beds: int) -> list[tuple[str, int, int]]:
    """(transport, first bed, beds) for the beds beyond the demo's own, split over its inputs."""
    first = max(first + beds for _, first, beds, _, _ in DEMO_PLAN)
    remaining = total_beds - (first - 1)
    runs = []
    for i, transport in enumerate(TRANSPORTS):
        share = remaining // len(TRANSPORTS) + (1 if i < remaining % len(TRANSPORTS) else 0)
        if share > 0:
            runs.append((transport, first, share))
            first += share
    return runs


def soak(beds: int, minutes: float, report) -> dict[str, object]:
    """Run the demo window for ``minutes``; the RSS samples and the verdict."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="vitalstation-soak-window-") as tmp:
        home = ensure_home(Path(tmp) / "home")
        runtime = Runtime(demo_settings(load_settings(home, {})))
        tasks = BackgroundTasks()
        feed = AlarmFeed(runtime)
        window = MainWindow(runtime, tasks=tasks, feed=feed, demo=True,
                            settings_path=Path(tmp) / "window.ini", audio=NoAudio("soak"))
        window.resize(*WINDOW_SIZE)
        window.show()

        # One start at a time: each registers its beds from bed 1 up, as the menu's would.
        pending = extra_runs(beds)
        launched = {"runs": len(DEMO_PLAN)}

        def start_next() -> None:
            if pending and len(window.simulator.runs) >= launched["runs"]:
                transport, first, count = pending.pop(0)
                launched["runs"] += 1
                window.simulator.start(count, transport, first_bed=first)

        window.simulator.changed.connect(start_next)
        tasks.submit(runtime.start, window.on_runtime_started, window.on_runtime_failed)

        began = time.monotonic()
        samples: list[tuple[float, float]] = []

        def sample() -> None:
            elapsed = (time.monotonic() - began) / 60
            samples.append((round(elapsed, 2), round(rss_mb(), 1)))
            live = sum(1 for key in window.grid.tiles if window.ward.tile(key) is not None)
            escalations = window.escalation_window
            pending = 0 if escalations is None else len(escalations.pending())
            report(f"{elapsed:5.1f} min  RSS {samples[-1][1]:7.1f} MiB  "
                   f"tiles {len(window.grid.tiles)} (with data {live})  "
                   f"escalations {pending}  "
                   f"widgets {len(QApplication.allWidgets())}  "
                   f"{window.simulator.status_text()}")
            if elapsed * 60 >= minutes * 60 - 1:
                window.close()

        sampler = QTimer()
        sampler.timeout.connect(sample)
        sampler.start(int(SAMPLE_EVERY_S * 1000) if minutes >= 1 else int(minutes * 60_000))
        QTimer.singleShot(0, sample)
        app.exec()
        sampler.stop()
        tiles = len(window.grid.tiles)
        window.shutdown()
        tasks.wait_idle(60_000)
        tasks.shutdown()
        feed.close()
        runtime.stop()
        window.deleteLater()
        app.processEvents()
    baseline = next(((t, r) for t, r in samples if t >= min(BASELINE_MIN, minutes) - 0.05),
                    samples[0])
    final = samples[-1]
    change = (final[1] - baseline[1]) / baseline[1] * 100
    return {"beds": beds, "tiles": tiles, "minutes": minutes, "rss_mb": samples,
            "baseline_at_min": baseline[0], "rss_baseline_mb": baseline[1],
            "final_at_min": final[0], "rss_final_mb": final[1],
            "change_pct": round(change, 2), "within_target": abs(change) <= TARGET_PCT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--beds", type=int, default=32, help="demo beds (default 32)")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args(argv)
    result = soak(args.beds, args.minutes, lambda line: print(line, flush=True))
    print(f"beds {result['beds']} (tiles {result['tiles']}), {args.minutes:g} min: "
          f"RSS at {result['baseline_at_min']:.1f} min {result['rss_baseline_mb']:.1f} MiB, "
          f"at {result['final_at_min']:.1f} min {result['rss_final_mb']:.1f} MiB, "
          f"change {result['change_pct']:+.2f} % (target within ±{TARGET_PCT:g} %: "
          f"{'met' if result['within_target'] else 'NOT met'})", flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
