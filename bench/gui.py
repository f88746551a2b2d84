"""Frame time of the station window while the pipeline ingests, against a naive window, same run.

For each ward size (16, 32, 64, 128 beds) and ingest rate (1,000 and 5,000 readings/s), a real
station (SQLite, the pipeline, the alarm engine; no network input) gets readings from a producer
thread while the window runs offscreen at 1920x1080 with the alarm dock hidden (64 beds on one
screen). Two windows are measured one after the other in the same run:

- ``window``: the station's :class:`~vitalstation.ui.bed_grid.BedGrid` (trend curves redrawn at
  most once a second per tile, a few per frame, only on screen);
- ``naive``: the same window whose grid calls ``setData`` on every curve every frame.

Frame time = the frame tick (drain, numerics, curves) plus the paint it causes (the posted
update requests flushed at once), per frame. Lateness = how late a zero-delay timer fires,
posted every 10 ms while the window runs (the event loop's responsiveness); both are measured
once the grid has built every tile, and the build's own lateness is reported apart. ``cpu p95``
is the GUI thread's CPU time per frame and ``cpu/s`` its CPU time per second of the run (frames,
paints, timers, alarms): the figures to compare while other work loads the machine.
Targets (issue 7): p95 ≤ 33 ms at 64 beds and 5,000/s, ≤ 66 ms at 128; lateness p99 ≤ 50 ms
throughout.

    QT_QPA_PLATFORM=offscreen python bench/gui.py                 # every combination, 6 s each
    QT_QPA_PLATFORM=offscreen python bench/gui.py --beds 64 --rates 5000 --seconds 10 --json
    QT_QPA_PLATFORM=offscreen python bench/gui.py --soak-minutes 60 --beds 32 --rates 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QCoreApplication, QEvent, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.ward import history, reading, start_station, vitals_at  # noqa: E402
from vitalstation.app.runtime import Runtime  # noqa: E402
from vitalstation.domain.vitals import VitalKind  # noqa: E402
from vitalstation.ui.bed_grid import BedGrid  # noqa: E402
from vitalstation.ui.main_window import MainWindow  # noqa: E402
from vitalstation.ui.sound import NoAudio  # noqa: E402

WINDOW_SIZE = (1920, 1080)
PRODUCER_TICK_S = 0.01
PROBE_INTERVAL_MS = 10
WARM_UP_S = 1.5


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def rss_mb() -> float:
    """Resident set size in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Producer(threading.Thread):
    """Submits ``rate`` one-vital readings per second, round robin over the beds."""

    def __init__(self, runtime: Runtime, beds: int, rate: int) -> None:
        super().__init__(name="bench-producer", daemon=True)
        self._runtime = runtime
        self._beds = beds
        self._rate = rate
        self._stopping = threading.Event()
        self.submitted = 0
        self.refused = 0

    def run(self) -> None:
        per_tick = max(1, round(self._rate * PRODUCER_TICK_S))
        step = timedelta(microseconds=1)
        n = 0
        next_at = time.monotonic()
        while not self._stopping.is_set():
            now = datetime.now(UTC)
            batch = []
            for i in range(per_tick):
                bed = n % self._beds + 1
                value = 60.0 + (n * 7) % 50
                batch.append(reading(bed, now + step * i, {VitalKind.HEART_RATE: value}))
                n += 1
            try:
                self._runtime.pipeline.submit(batch, timeout=0)
                self.submitted += len(batch)
            except Exception:  # noqa: BLE001 - a full queue is counted, the run goes on
                self.refused += len(batch)
            next_at += PRODUCER_TICK_S
            self._stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)


class NaiveGrid(BedGrid):
    """The baseline: ``setData`` on every tile's curve, every frame."""

    def _update_trends(self) -> None:
        now = self._ward.now()
        for key, tile in self.tiles.items():
            state = self._ward.tile(key)
            if state is not None:
                tile.show_trend(state, now)
                self.trend_updates += 1


def run_window(app: QApplication, runtime: Runtime, seconds: float, naive: bool,
               home: Path) -> dict[str, float]:
    """One window for ``seconds``: frame times and event-loop lateness."""
    if naive:
        import vitalstation.ui.main_window as main_window

        original = main_window.BedGrid
        main_window.BedGrid = NaiveGrid  # type: ignore[misc]
    try:
        window = MainWindow(runtime, settings_path=home / f"window-{naive}.ini",
                            audio=NoAudio("bench"))
    finally:
        if naive:
            main_window.BedGrid = original  # type: ignore[misc]
    window.resize(*WINDOW_SIZE)
    window.show()
    shown = time.monotonic()
    while not window.ward.is_loaded:
        if time.monotonic() - shown > 60:
            raise RuntimeError("the window did not load its ward within 60 s")
        app.processEvents()
        time.sleep(0.005)
    loaded = time.monotonic() - shown
    if window.alarm_dock is not None:
        window.alarm_dock.hide()
    frames: list[float] = []
    frame_cpu: list[float] = []  # the GUI thread's own CPU time per frame (load-independent)
    lateness: list[float] = []
    build_lateness: list[float] = []  # while the grid builds its tiles (before the warm-up)
    measuring = {"on": False, "building": True}
    ward = window.ward
    tick = ward.tick

    def timed_tick() -> set[str]:
        started, cpu = time.perf_counter(), time.thread_time()
        changed = tick()
        # The paint this frame caused, now rather than on a later turn of the loop.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.UpdateRequest)
        if measuring["on"]:
            frames.append((time.perf_counter() - started) * 1000)
            frame_cpu.append((time.thread_time() - cpu) * 1000)
        return changed

    ward._frame_timer.timeout.disconnect()
    ward._frame_timer.timeout.connect(timed_tick)
    posted = {"at": 0.0}

    def probe_fired() -> None:
        late = (time.perf_counter() - posted["at"]) * 1000
        if measuring["on"]:
            lateness.append(late)
        elif measuring["building"]:
            build_lateness.append(late)

    def post_probe() -> None:
        posted["at"] = time.perf_counter()
        QTimer.singleShot(0, probe_fired)

    probe = QTimer()
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(post_probe)
    probe.start()
    # Measured once every tile exists: building a 128-bed grid is time-sliced but takes a while;
    # its lateness is reported on its own.
    built_at = time.monotonic()
    while len(window.grid.tiles) < len(window.ward.tiles()) or window.grid.is_building:
        if time.monotonic() - built_at > 120:
            raise RuntimeError("the grid did not build its tiles within 120 s")
        app.processEvents()
        time.sleep(0.001)
    measuring["building"] = False
    print(f"  {'naive' if naive else 'window'} loaded in {loaded:.1f} s, "
          f"{len(window.grid.tiles)} tiles built in {time.monotonic() - built_at:.1f} s "
          f"(lateness max {max(build_lateness, default=0):.0f} ms)", file=sys.stderr, flush=True)
    trends_before = window.grid.trend_updates
    end_warm = time.monotonic() + WARM_UP_S
    end = end_warm + seconds
    cpu_started = wall_started = 0.0
    while time.monotonic() < end:
        if not measuring["on"] and time.monotonic() >= end_warm:
            measuring["on"] = True
            trends_before = window.grid.trend_updates
            cpu_started, wall_started = time.thread_time(), time.monotonic()
        app.processEvents()
        time.sleep(0.001)
    # The GUI thread's CPU time per second of the run: everything it did (frames, paints,
    # timers, alarms), whatever else loads the machine.
    gui_cpu = (time.thread_time() - cpu_started) / (time.monotonic() - wall_started) * 1000
    probe.stop()
    trend_updates = window.grid.trend_updates - trends_before
    window.close()
    window.deleteLater()
    app.processEvents()
    return {
        "frames": len(frames),
        "frame_p50_ms": round(statistics.median(frames), 2) if frames else float("nan"),
        "frame_p95_ms": round(percentile(frames, 95), 2),
        "frame_cpu_p50_ms": round(percentile(frame_cpu, 50), 2),
        "frame_cpu_p95_ms": round(percentile(frame_cpu, 95), 2),
        "frame_cpu_mean_ms": round(statistics.fmean(frame_cpu), 2) if frame_cpu else float("nan"),
        "gui_cpu_ms_per_s": round(gui_cpu, 1),
        "lateness_p99_ms": round(percentile(lateness, 99), 2),
        "build_lateness_max_ms": round(max(build_lateness, default=0.0), 2),
        "curves_redrawn_per_s": round(trend_updates / seconds, 1),
    }


def run_case(app: QApplication, beds: int, rate: int, seconds: float,
             naive: bool = True) -> dict[str, object]:
    """Both windows (or ours only) for one ward size and ingest rate, on one fresh station."""
    with tempfile.TemporaryDirectory(prefix="vitalstation-bench-gui-") as tmp:
        home = Path(tmp)
        started = time.monotonic()
        runtime = start_station(home / "home", beds)
        print(f"  ward of {beds} registered in {time.monotonic() - started:.1f} s",
              file=sys.stderr, flush=True)
        try:
            runtime.pipeline.process(history(list(range(1, beds + 1)), datetime.now(UTC),
                                             minutes=5, step_s=5), timeout=300)
            producer = Producer(runtime, beds, rate)
            producer.start()
            try:
                ours = run_window(app, runtime, seconds, naive=False, home=home)
                baseline = (run_window(app, runtime, seconds, naive=True, home=home) if naive
                            else dict.fromkeys(("frame_p50_ms", "frame_p95_ms",
                                                "frame_cpu_p95_ms", "lateness_p99_ms"), "-"))
            finally:
                producer.stop()
            stats = runtime.pipeline.stats()
        finally:
            runtime.stop()
    return {"beds": beds, "rate": rate, "window": ours, "naive": baseline,
            "submitted": producer.submitted, "refused": producer.refused,
            "stored": stats.stored}


def soak(app: QApplication, beds: int, rate: int, minutes: float,
         report: Callable[[str], None]) -> dict[str, object]:
    """RSS of the window with ``beds`` beds at ``rate`` readings/s, at 5 min and at the end."""
    with tempfile.TemporaryDirectory(prefix="vitalstation-bench-soak-") as tmp:
        home = Path(tmp)
        runtime = start_station(home / "home", beds)
        window = MainWindow(runtime, settings_path=home / "w.ini", audio=NoAudio("bench"))
        window.resize(*WINDOW_SIZE)
        window.show()
        rng = __import__("random").Random(1)
        feeder = QTimer()

        def feed() -> None:
            at = datetime.now(UTC)
            per_bed = max(1, rate // beds)
            runtime.pipeline.submit([
                reading(bed, at + timedelta(microseconds=i), vitals_at(bed, at.timestamp(), rng))
                for bed in range(1, beds + 1) for i in range(per_bed)
            ])

        feeder.timeout.connect(feed)
        feeder.start(1000)
        started = time.monotonic()
        samples: list[tuple[float, float]] = []
        next_sample = started
        try:
            while time.monotonic() - started < minutes * 60:
                app.processEvents()
                time.sleep(0.005)
                if time.monotonic() >= next_sample:
                    samples.append((round((time.monotonic() - started) / 60, 2), rss_mb()))
                    report(f"soak {samples[-1][0]:.1f} min: RSS {samples[-1][1]:.1f} MiB")
                    next_sample += 60
        finally:
            feeder.stop()
            window.close()
            window.deleteLater()
            app.processEvents()
            runtime.stop()
    at_five = next((rss for t, rss in samples if t >= 5), samples[0][1])
    final = rss_mb()
    return {"beds": beds, "rate": rate, "minutes": minutes, "rss_mb": samples,
            "rss_at_5_min_mb": at_five, "rss_end_mb": final,
            "growth_after_5_min_pct": round((final - at_five) / at_five * 100, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured per window")
    parser.add_argument("--soak-minutes", type=float, default=0.0,
                        help="instead: the memory of one window over this many minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object per case")
    parser.add_argument("--no-naive", action="store_true",
                        help="only the station's window (quicker before/after comparisons)")
    args = parser.parse_args(argv)
    import vitalstation.ui  # noqa: F401 - PySide6 first

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if args.soak_minutes:
        result = soak(app, args.beds[0], args.rates[0], args.soak_minutes,
                      lambda line: print(line, file=sys.stderr, flush=True))
        print(json.dumps(result) if args.json else result)
        return 0
    if not args.json:
        print(f"{'beds':>5} {'rate/s':>7} | {'window p50':>10} {'p95':>7} {'cpu p95':>7} "
              f"{'cpu/s':>6} {'late p99':>9} {'curves/s':>8} | {'naive p50':>9} {'p95':>7} "
              f"{'cpu p95':>7} "
              f"{'late p99':>9} | stored")
    for beds in args.beds:
        for rate in args.rates:
            case = run_case(app, beds, rate, args.seconds, naive=not args.no_naive)
            if args.json:
                print(json.dumps(case), flush=True)
                continue
            w, n = case["window"], case["naive"]
            print(f"{beds:>5} {rate:>7} | {w['frame_p50_ms']:>10} {w['frame_p95_ms']:>7} "
                  f"{w['frame_cpu_p95_ms']:>7} {w['gui_cpu_ms_per_s']:>6} "
                  f"{w['lateness_p99_ms']:>9} "
                  f"{w['curves_redrawn_per_s']:>8} | {n['frame_p50_ms']:>9} "
                  f"{n['frame_p95_ms']:>7} {n['frame_cpu_p95_ms']:>7} {n['lateness_p99_ms']:>9} | "
                  f"{case['stored']:,} of {case['submitted']:,} (refused {case['refused']:,})",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
