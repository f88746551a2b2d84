"""The alarm engine's latency and cost, against the pipeline without it, in the same run.

Latency: readings paced at 5,000/s (64 beds, one-vital heart-rate readings, each bed going
out of its limits and back all along, so alarms are raised, escalated and resolved; see the
mixes below) through the pipeline into SQLite with the alarm service subscribed, as the runtime
runs it (notification routing included). "Stored → alarm event": from the moment the writer's
commit hands the batch to the alarm service to the moment a listener receives the RAISED or
RESOLVED transition (evaluation, the alarm rows' transaction, publication). Also given:
submit → alarm event, which adds the pipeline's batching.

Cost: the same readings, unpaced, through the pipeline with and without the alarm service;
overhead = time per reading with / without - 1, over all blocks. The two pipelines run side by
side, each in a process of its own (its own garbage collector, threads and fresh database), fed
in alternating blocks of 2,000 readings (bare, alarms; alarms, bare; ...; 100 pairs, 200,000
readings a side; then again with two fresh processes, three rounds in all), each block timed on
its own after ``os.sync()`` and its write-ahead log checkpointed untimed after it, so nothing
of one side's block is left for the other's. A pair of neighbouring blocks ran within a
fraction of a second of each other, so a change in the machine's speed falls on both of its
sides; the pairs' median is printed beside the overall figure, in wall-clock time and in the
process's CPU time (all its threads), and a 95 % interval of the overall figure (the pairs
resampled with replacement, 2,000 times). The alarm service's once-a-second thread (tick,
discharges, requests) also runs between its side's blocks, where no block counts it: its CPU
per second is printed (~2 ms). Also given: the time spent in the alarm service per reading,
measured inside it.

Why blocks (session 10): ``--method pairs`` (sessions 8-9) times whole runs of 100,000
readings one after the other, ``--repeat`` pairs of them. Each such run queues tens of
thousands of readings at once, and every full collection of the garbage collector walks
them: 2.8-4.6 µs per reading of full collections on both sides, against 0.12-0.26 µs with
blocks of 2,000, and the slower side (with alarms) has one more of them; and with 5 pairs,
a machine whose speed moves by a fifth within a second cannot show a 3-point margin.

Why three rounds of 100 pairs (session 11): with one, runs of the same code gave 16.0-25.8 %.
That spread is the blocks' own: the four quarters of one run (25 pairs each) differed as much
as four runs of fresh processes did (12.9-24.8 % against 14.0-23.8 %), and a fixed hash seed
did not narrow it, so it is the machine's speed from second to second, which only more pairs
average out (the mean of n pairs narrows as the square root of n). More pairs in one process
would not do: 600,000 readings reach back further than the engine's live window (15 min of
measured time at 64 beds × 5 a second), and readings older than that raise no alarm, so the
rounds start afresh instead, each side's readings measured within the last 10.5 minutes. The
interval says how far a run's figure may be from what more pairs would give.

The garbage collector's pauses during the paced run are printed: a full pass stops every
thread, and a batch it lands in (and the larger batch that queues up behind it) makes the tail
of the latency. As ``serve`` and the window do once started, each run freezes the objects alive
after its set-up out of later collections (``freeze_long_lived_objects``); ``--no-gc-freeze``
measures without it.

Two mixes of readings (``--mix``). ``alarm-heavy`` (the default, the issue's figure): each
bed's cycle is 30 readings, 24 normal and 6 above its MEDIUM limit, so one reading in 30 raises
an alarm (escalated: the patient asked, a message routed) and one resolves it, a transition
every ~8 readings. No ward comes near it: an ICU bed sending 4 vitals a second raises a few
hundred alarms a day (~350 per patient per day is the upper end reported, Cvach 2012), about
one reading in 1,000. ``ward`` is that: a cycle of 1,000 readings, 970 normal and 30 abnormal
(an alarm lasting 30 readings), so one reading in 1,000 raises and one resolves. The
alarm-heavy figure is the engine's cost when it does the most work per reading; the ward
figure is what a station pays.

    python bench/alarms.py                   # 10 s paced at 5,000/s; 3 × 100 block pairs of 2,000
    python bench/alarms.py --quick           # 3 s paced; 15 block pairs, one round
    python bench/alarms.py --quick --mix ward
    python bench/alarms.py --method pairs --repeat 9   # nine pairs of whole runs

On this shared machine, whole runs a minute apart differed by up to a half (28 % and 84 % for
the same code; the pairs of one run from -1 % to 61 %), and blocks of 2,000 readings vary by
a sixth to a fifth from one to the next (standard deviation over mean), so one figure takes
many pairs. bench/alarms_instructions.py counts instructions instead, which load does not
move.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from vitalstation.alarms import AlarmEngine, AlarmPolicy, AlarmTransition, TransitionKind
from vitalstation.app.alarms import AlarmService
from vitalstation.app.memory import freeze_long_lived_objects
from vitalstation.app.notifications import Notifications
from vitalstation.config.settings import Settings
from vitalstation.domain.readings import InputKind, Measurement, Reading
from vitalstation.domain.vitals import Unit, VitalKind
from vitalstation.pipeline.core import Pipeline
from vitalstation.pipeline.types import StoredReading
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import DEVICES, register_ward  # noqa: E402 - a sibling script, not a package
from station_parts import GcPauses  # noqa: E402

# Readings per bed per cycle and the step from which they are above the MEDIUM limit (HR > 110).
MIXES = {"alarm-heavy": (30, 24), "ward": (1_000, 970)}
CYCLE, ABNORMAL_FROM = MIXES["alarm-heavy"]
PACE_STEP_S = 0.01


def value_of(n: int) -> float:
    """Each bed's cycle is shifted by its number (7/30 of a cycle from bed to bed), so that
    alarms come spread out, as on a ward, not all 64 beds at once."""
    step = (n // DEVICES + (n % DEVICES) * CYCLE * 7 // 30) % CYCLE
    return 118.0 if step >= ABNORMAL_FROM else 72.0 + (n % 7)


def reading(n: int, start: datetime, received: datetime, interval: timedelta) -> Reading:
    """Reading ``n``: bed ``n % 64``, measured ``interval`` after that bed's previous one."""
    value = value_of(n)
    return Reading(
        device_id=f"BSM_{n % DEVICES:03d}",
        measured_at=start + interval * (n // DEVICES),
        measurements=(Measurement(VitalKind.HEART_RATE, value, value, Unit.PER_MINUTE),),
        input=InputKind.MQTT,
        received_at=received,
    )


class TimedService:
    """The alarm service as the pipeline's subscriber, timed: when each batch reached it, and
    how long the service spent on it."""

    def __init__(self, service: AlarmService) -> None:
        self.service = service
        self.batch_started = 0.0
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self.readings = 0
        self.sizes: list[int] = []

    def __call__(self, stored: Sequence[StoredReading]) -> dict[int, int]:
        self.batch_started = time.perf_counter()
        cpu = time.thread_time()
        try:
            return self.service(stored)
        finally:
            self.busy_s += time.perf_counter() - self.batch_started
            self.cpu_s += time.thread_time() - cpu
            self.readings += len(stored)
            self.sizes.append(len(stored))


def fresh(folder: Path, name: str) -> Store:
    store = Store.open(f"sqlite:///{folder / name}", background_checkpoints=True)  # as the station
    register_ward(store)
    return store


def alarm_service(store: Store, home: Path) -> AlarmService:
    settings = Settings(home=home)
    service = AlarmService(AlarmEngine(settings.alarms.profile, clock=lambda: datetime.now(UTC)),
                           AlarmStore(store.engine))
    Notifications.from_settings(settings, store, service)  # routing into the outbox, as run
    return service


def paced(
    folder: Path, rate: int, seconds: float, *, gc_freeze: bool = True
) -> dict[str, object]:
    """Readings at ``rate``/s for ``seconds`` with the alarm service: latencies in ms."""
    store = fresh(folder, "paced.db")
    service = alarm_service(store, folder)
    timed = TimedService(service)
    pipeline = Pipeline(store.writer)
    pipeline.subscribe(timed)
    stored_to_event: list[float] = []
    submit_to_event: list[float] = []
    submitted: dict[tuple[str, datetime], float] = {}
    kinds: dict[str, int] = {}

    def listen(transition: AlarmTransition) -> None:
        now = time.perf_counter()
        kinds[transition.kind.value] = kinds.get(transition.kind.value, 0) + 1
        if transition.kind not in (TransitionKind.RAISED, TransitionKind.RESOLVED):
            return
        stored_to_event.append((now - timed.batch_started) * 1000)
        alarm = transition.alarm
        if transition.kind is TransitionKind.RAISED and alarm.device_id and alarm.measured_at:
            sent = submitted.get((alarm.device_id, alarm.measured_at))
            if sent is not None:
                submit_to_event.append((now - sent) * 1000)

    service.add_listener(listen)
    service.start()
    pipeline.start()
    if gc_freeze:
        freeze_long_lived_objects()  # as serve does once the station is up
    pauses = GcPauses().__enter__()
    count = int(rate * seconds)
    start = datetime.now(UTC)
    interval = timedelta(seconds=DEVICES / rate)  # measured times keep pace with the clock
    per_step = max(1, int(rate * PACE_STEP_S))
    began = time.perf_counter()
    n = 0
    while n < count:
        due = began + (n / rate)
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        received = datetime.now(UTC)
        for _ in range(min(per_step, count - n)):
            item = reading(n, start, received, interval)
            if value_of(n) > 110:
                submitted[(item.device_id, item.measured_at)] = time.perf_counter()
            pipeline.submit([item], timeout=None)
            n += 1
    achieved = count / (time.perf_counter() - began)
    pipeline.stop()
    pauses.__exit__()
    service.stop()
    store.close()
    if gc_freeze:
        gc.unfreeze()
    return {
        "rate": rate, "achieved_rate": achieved, "readings": count,
        "events": kinds, "measured": len(stored_to_event),
        "stored_to_event_ms": _percentiles(stored_to_event),
        "submit_to_event_ms": _percentiles(submit_to_event),
        "service_us_per_reading": timed.busy_s / max(1, timed.readings) * 1e6,
        "service_cpu_us_per_reading": timed.cpu_s / max(1, timed.readings) * 1e6,
        "batch_size": _percentiles([float(n) for n in timed.sizes]),
        "gc_pauses": pauses.summary(),
    }


def unpaced(
    folder: Path, count: int, *, alarms: bool, gc_freeze: bool = True
) -> dict[str, float]:
    """``count`` readings as fast as the pipeline takes them; readings/s."""
    store = fresh(folder, f"unpaced-{'alarms' if alarms else 'bare'}.db")
    pipeline = Pipeline(store.writer)
    service: AlarmService | None = None
    timed: TimedService | None = None
    if alarms:
        service = alarm_service(store, folder)
        timed = TimedService(service)
        pipeline.subscribe(timed)
        service.start()
    done = threading.Event()
    finished = [0]
    lock = threading.Lock()

    def on_done(results) -> None:
        with lock:
            finished[0] += len(results)
            if finished[0] >= count:
                done.set()

    pipeline.start()
    if gc_freeze:
        freeze_long_lived_objects()
    # Faster than real time: the readings are dated in the recent past (within the engine's
    # live window, never ahead of the station's clock), one per bed every 200 ms.
    interval = timedelta(milliseconds=200)
    start = datetime.now(UTC) - interval * (count // DEVICES + 1)
    began = time.perf_counter()
    cpu_began = time.process_time()
    received = datetime.now(UTC)
    for n in range(count):
        pipeline.submit([reading(n, start, received, interval)], on_done=on_done, timeout=None)
    done.wait()
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    pipeline.stop()
    if service is not None:
        service.stop()
    store.close()
    if gc_freeze:
        gc.unfreeze()
    figures = {"readings_per_s": count / elapsed, "us_per_reading": elapsed / count * 1e6,
               "cpu_us_per_reading": cpu / count * 1e6}
    if timed is not None:
        figures["service_us_per_reading"] = timed.busy_s / max(1, timed.readings) * 1e6
        figures["service_cpu_us_per_reading"] = timed.cpu_s / max(1, timed.readings) * 1e6
        figures["batch_p50"] = _percentiles([float(n) for n in timed.sizes])["p50"]
    return figures


class _Side:
    """One pipeline on a fresh database of its own, bare or with the alarm service, fed in
    blocks (``interleaved``): each block's readings continue the side's sequence, and the
    block ends when the pipeline has answered every one of them."""

    def __init__(self, folder: Path, *, alarms: bool) -> None:
        folder.mkdir(parents=True)
        self.store = fresh(folder, "station.db")
        self.pipeline = Pipeline(self.store.writer)
        self.service: AlarmService | None = None
        self.timed: TimedService | None = None
        if alarms:
            self.service = alarm_service(self.store, folder)
            self.timed = TimedService(self.service)
            self.pipeline.subscribe(self.timed)
            self.service.start()
        self.pipeline.start()
        self._born = time.perf_counter()
        # The alarm service's once-a-second thread (tick, discharges, requests) runs between
        # this side's blocks too, where no block counts it: its CPU is reported on its own.
        self._tick_clock = next((time.pthread_getcpuclockid(thread.ident)
                                 for thread in threading.enumerate()
                                 if thread.name == "vitalstation-alarm-tick" and thread.ident),
                                None)
        self.next = 0
        self.tick_ms_per_s = 0.0
        self.elapsed: list[float] = []
        self.cpu: list[float] = []
        self._left = 0
        self._lock = threading.Lock()
        self._done = threading.Event()

    def _on_done(self, results: Sequence[object]) -> None:
        with self._lock:
            self._left -= len(results)
            if self._left <= 0:
                self._done.set()

    def block(self, count: int, start: datetime, received: datetime,
              interval: timedelta) -> None:
        """``count`` readings as fast as the pipeline takes them, timed (wall and process CPU);
        then the block's write-ahead log checkpointed, untimed, so that none of this side's
        work is left for the other side's next block."""
        self._left = count
        self._done.clear()
        began, cpu_began = time.perf_counter(), time.process_time()
        submit, on_done = self.pipeline.submit, self._on_done
        for n in range(self.next, self.next + count):
            submit([reading(n, start, received, interval)], on_done=on_done, timeout=None)
        self._done.wait()
        self.elapsed.append(time.perf_counter() - began)
        self.cpu.append(time.process_time() - cpu_began)
        self.next += count
        with self.store.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if self._tick_clock is not None:
            self.tick_ms_per_s = (time.clock_gettime(self._tick_clock) * 1000
                                  / (time.perf_counter() - self._born))
        self.pipeline.stop()
        if self.service is not None:
            self.service.stop()
        self.store.close()

    def figures(self) -> dict[str, float]:
        count = self.next
        elapsed, cpu = sum(self.elapsed), sum(self.cpu)
        figures = {"readings_per_s": count / elapsed, "us_per_reading": elapsed / count * 1e6,
                   "cpu_us_per_reading": cpu / count * 1e6}
        if self.timed is not None:
            timed = self.timed
            figures["service_us_per_reading"] = timed.busy_s / max(1, timed.readings) * 1e6
            figures["service_cpu_us_per_reading"] = timed.cpu_s / max(1, timed.readings) * 1e6
            figures["batch_p50"] = _percentiles([float(n) for n in timed.sizes])["p50"]
            figures["tick_cpu_ms_per_s"] = self.tick_ms_per_s
        return figures


def _side_process(connection: Connection, folder: Path, alarms: bool, gc_freeze: bool,
                  count: int) -> None:
    """A side of ``interleaved``, in a process of its own: runs a block each time it is told
    to, answers each with (wall seconds, CPU seconds), and at the end with its figures."""
    side = _Side(folder, alarms=alarms)
    if gc_freeze:
        freeze_long_lived_objects()
    interval = timedelta(milliseconds=200)
    start = datetime.now(UTC) - interval * (count // DEVICES + 1)
    received = datetime.now(UTC)
    try:
        connection.send("ready")
        while (size := connection.recv()) is not None:
            side.block(size, start, received, interval)
            connection.send((side.elapsed[-1], side.cpu[-1]))
    finally:
        side.close()
    connection.send(side.figures())


def interleaved(
    folder: Path, count: int, block: int, *, gc_freeze: bool = True
) -> tuple[dict[str, object], dict[str, object]]:
    """``count`` readings through a bare pipeline and as many through one with the alarm
    service, each in a process of its own (its own garbage collector, threads and database),
    both alive side by side and fed in alternating blocks of ``block``: bare then alarms,
    alarms then bare, and so on, each block after ``settle_disk``. Neighbouring blocks ran
    within a second of each other, so a change in the machine's speed (on this shared machine
    it moves by a fifth from one minute to the next) falls on both sides of a pair alike.
    Returns each side's figures (bare, with alarms) with its blocks' times."""
    context = multiprocessing.get_context("fork")  # the mix chosen in main() comes along
    sides = []
    for alarms in (False, True):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_side_process, args=(theirs, folder / ("alarms" if alarms else "bare"),
                                        alarms, gc_freeze, count), daemon=True)
        process.start()
        sides.append((ours, process, {"elapsed": [], "cpu": []}))
    try:
        for ours, _, _ in sides:
            if ours.recv() != "ready":
                raise RuntimeError("a side did not start")
        for pair in range(max(1, count // block)):
            for ours, _, times in sides if pair % 2 == 0 else reversed(sides):
                settle_disk()
                ours.send(block)
                elapsed, cpu = ours.recv()
                times["elapsed"].append(elapsed)
                times["cpu"].append(cpu)
        results = []
        for ours, process, times in sides:
            ours.send(None)
            results.append({**ours.recv(), **times})
            process.join(30)
    finally:
        for _, process, _ in sides:
            if process.is_alive():
                process.kill()
    return results[0], results[1]


def _joined_rounds(
    rounds: list[tuple[dict[str, Any], dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rounds of ``interleaved`` as one run: each side's blocks in the order they ran,
    its per-reading figures averaged over the rounds (each round had as many readings), its
    alarm batches' sizes together."""
    joined = []
    for side in (0, 1):
        parts = [round_[side] for round_ in rounds]
        figures: dict[str, Any] = {"elapsed": [], "cpu": []}
        for part in parts:
            figures["elapsed"] += part["elapsed"]
            figures["cpu"] += part["cpu"]
        for name in parts[0]:
            if name not in figures:
                figures[name] = statistics.fmean(part[name] for part in parts)
        joined.append(figures)
    return joined[0], joined[1]


def check_live(count: int, interval: timedelta) -> None:
    """Refuse a run whose first readings would be older than the engine's live window when
    the last are measured: those would raise no alarm, and the cost measured would be of a
    ward that stays calm."""
    span = interval * (count // DEVICES + 1)
    window = AlarmPolicy().live_window
    if span > window * 0.7:
        raise SystemExit(
            f"{count:,} readings per side span {span} of measured time, too near the alarm "
            f"engine's live window ({window}); use fewer readings per round (--readings)"
        )


def settle_disk() -> None:
    """Write the earlier runs' dirty pages out now, so that the kernel's writeback of one run's
    database (tens of MB, flushed 30 s after it was written) does not land in a later timed
    run and slow that side of a pair alone."""
    os.sync()


def unpaced_pair(
    folder: Path, count: int, *, alarms_first: bool, gc_freeze: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """One unpaced run without and one with the alarm service, fresh databases, each after a
    ``settle_disk``; (bare, with alarms). ``alarms_first`` swaps the order they run in: the
    pairs of a ``--repeat`` alternate it, so a cost that falls on whichever run comes second
    (or first) does not always land on the same side. Each run's database is deleted after it."""
    figures: dict[bool, dict[str, float]] = {}
    for alarms in ((True, False) if alarms_first else (False, True)):
        run = folder / ("alarms" if alarms else "bare")
        run.mkdir(parents=True)
        settle_disk()
        figures[alarms] = unpaced(run, count, alarms=alarms, gc_freeze=gc_freeze)
        shutil.rmtree(run, ignore_errors=True)
    return figures[False], figures[True]


def _interleaved_figures(
    bare: dict[str, Any], with_alarms: dict[str, Any]
) -> dict[str, object]:
    """The overhead over all blocks (time per reading with alarms / without - 1), on wall-clock
    time and on the process's CPU time; and each pair of neighbouring blocks' (same readings,
    both sides), with their median."""
    ratios = [a / b - 1 for a, b in zip(with_alarms["elapsed"], bare["elapsed"], strict=True)]
    cpu_ratios = [a / b - 1 for a, b in zip(with_alarms["cpu"], bare["cpu"], strict=True)]
    return {
        "bare": bare, "with_alarms": with_alarms,
        "overhead": sum(with_alarms["elapsed"]) / sum(bare["elapsed"]) - 1,
        "overhead_interval": resampled_interval(bare["elapsed"], with_alarms["elapsed"]),
        "overhead_median_pair": statistics.median(ratios),
        "cpu_overhead": sum(with_alarms["cpu"]) / sum(bare["cpu"]) - 1,
        "cpu_overhead_median_pair": statistics.median(cpu_ratios),
        "pair_overheads": ratios, "pair_cpu_overheads": cpu_ratios,
    }


def resampled_interval(
    bare: Sequence[float], with_alarms: Sequence[float], *, rounds: int = 2_000,
    level: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """The ``level`` interval of the overall overhead (``sum(with_alarms) / sum(bare) - 1``):
    the pairs drawn with replacement ``rounds`` times, the figure of each draw, its central
    ``level`` share (a percentile bootstrap; the pairs are the unit, so whatever moves both
    blocks of a pair stays paired). Seeded: the same blocks give the same interval."""
    pairs = list(zip(bare, with_alarms, strict=True))
    if len(pairs) < 2:
        figure = sum(with_alarms) / sum(bare) - 1
        return figure, figure
    draw = random.Random(seed).choices
    figures = []
    for _ in range(rounds):
        drawn = draw(pairs, k=len(pairs))
        figures.append(sum(a for _, a in drawn) / sum(b for b, _ in drawn) - 1)
    figures.sort()
    tail = (1 - level) / 2
    return figures[int(tail * rounds)], figures[min(rounds - 1, int((1 - tail) * rounds))]


def _pairs_figures(pairs: list[tuple[dict[str, float], dict[str, float]]]) -> dict[str, object]:
    """The median pair of whole runs (``--method pairs``)."""
    ratios = [b["readings_per_s"] / a["readings_per_s"] - 1 for b, a in pairs]
    bare, with_alarms = pairs[sorted(range(len(pairs)), key=ratios.__getitem__)[len(pairs) // 2]]
    # The same ratio on the process's CPU time (every thread: the submitting one, the pipeline,
    # SQLite's checkpointer).
    return {
        "bare": bare, "with_alarms": with_alarms,
        "overhead": bare["readings_per_s"] / with_alarms["readings_per_s"] - 1,
        "cpu_overhead": with_alarms["cpu_us_per_reading"] / bare["cpu_us_per_reading"] - 1,
        "pair_overheads": ratios,
        "pair_cpu_overheads": [a["cpu_us_per_reading"] / b["cpu_us_per_reading"] - 1
                               for b, a in pairs],
    }


def _load_average() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--readings", type=int, default=None,
                        help="unpaced readings per side per round (default 200,000 interleaved, "
                             "100,000 per run with --method pairs)")
    parser.add_argument("--quick", action="store_true", help="3 s paced, 30,000 unpaced")
    parser.add_argument("--mix", choices=sorted(MIXES), default="alarm-heavy",
                        help="alarm-heavy: one reading in 30 raises an alarm (default); "
                             "ward: one in 1,000")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                        help="leave the start-up objects in the collector's passes")
    parser.add_argument("--method", choices=("interleaved", "pairs"), default="interleaved",
                        help="interleaved (default): both pipelines side by side, alternating "
                             "blocks of --block readings; pairs: whole runs one after the "
                             "other, --repeat pairs (sessions 8-9)")
    parser.add_argument("--block", type=int, default=2_000,
                        help="readings per block (interleaved)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved: rounds of block pairs, each with two fresh "
                             "processes and databases (default 3)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="pairs of whole runs (--method pairs; without, with alarms; every "
                             "other pair in the other order); the overhead is the median "
                             "pair's (each pair is printed)")
    args = parser.parse_args(argv)
    if args.readings is None:
        args.readings = 200_000 if args.method == "interleaved" else 100_000
    if args.quick:
        args.seconds, args.readings, args.rounds = 3.0, 30_000, 1
    check_live(args.readings, timedelta(milliseconds=200))  # as unpaced() and _Side date them
    global CYCLE, ABNORMAL_FROM  # noqa: PLW0603 - value_of reads the mix chosen here
    CYCLE, ABNORMAL_FROM = MIXES[args.mix]
    with tempfile.TemporaryDirectory(prefix="vs-bench-alarms-") as tmp:
        folder = Path(tmp)
        if args.method == "interleaved":
            rounds = []
            for number in range(max(1, args.rounds)):
                rounds.append(interleaved(folder / f"round-{number}", args.readings,
                                          args.block, gc_freeze=args.gc_freeze))
                shutil.rmtree(folder / f"round-{number}", ignore_errors=True)
            sides = _joined_rounds(rounds)
        else:
            pairs = [unpaced_pair(folder / f"pair-{n}", args.readings, alarms_first=n % 2 == 1,
                                  gc_freeze=args.gc_freeze)
                     for n in range(max(1, args.repeat))]
        settle_disk()
        latency = paced(folder, args.rate, args.seconds, gc_freeze=args.gc_freeze)
    if args.method == "interleaved":
        figures = _interleaved_figures(*sides)
    else:
        figures = _pairs_figures(pairs)
    figures.update(mix=args.mix, method=args.method, paced=latency)
    bare, with_alarms = figures["bare"], figures["with_alarms"]
    overhead, cpu_overhead = figures["overhead"], figures["cpu_overhead"]
    ratios = figures["pair_overheads"]
    p99 = latency["stored_to_event_ms"].get("p99", float("inf"))
    if args.json:
        print(json.dumps(figures))
    else:
        e2e = latency["submit_to_event_ms"]
        print(f"mix:                       {args.mix} (one reading in {CYCLE} raises an alarm)")
        print(f"pipeline without alarms:   {bare['readings_per_s']:,.0f} readings/s "
              f"({bare['us_per_reading']:.1f} µs each)")
        print(f"pipeline with alarms:      {with_alarms['readings_per_s']:,.0f} readings/s "
              f"({with_alarms['us_per_reading']:.1f} µs each; in the alarm service "
              f"{with_alarms['service_us_per_reading']:.1f} µs wall, "
              f"{with_alarms['service_cpu_us_per_reading']:.1f} µs CPU; batches of "
              f"{with_alarms['batch_p50']:.0f} readings, p50)")
        if args.method == "interleaved":
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            print(f"blocks:                    {len(ratios)} pairs of {args.block:,} readings "
                  "each side, alternating; the pairs' overhead: quartiles "
                  + " / ".join(f"{q * 100:.0f} %" for q in quartiles))
            low, high = figures["overhead_interval"]
            print(f"overhead:                  {overhead * 100:.1f} % over all blocks "
                  f"(95 % interval {low * 100:.1f}-{high * 100:.1f} %, the pairs resampled; "
                  f"target ≤ 25 %); median pair {figures['overhead_median_pair'] * 100:.1f} %; "
                  f"in process CPU time {cpu_overhead * 100:.1f} % "
                  f"({bare['cpu_us_per_reading']:.1f} -> {with_alarms['cpu_us_per_reading']:.1f}"
                  f" µs per reading), median pair "
                  f"{figures['cpu_overhead_median_pair'] * 100:.1f} %")
            print(f"alarm tick thread:         {with_alarms['tick_cpu_ms_per_s']:.2f} ms CPU "
                  "per second (between blocks too; not in the blocks' figures)")
        else:
            if len(ratios) > 1:
                print("pairs (overhead, CPU):     " + ", ".join(
                    f"{r * 100:.0f} % / {c * 100:.0f} %"
                    for r, c in zip(ratios, figures["pair_cpu_overheads"], strict=True))
                    + "; the median pair below")
            print(f"overhead:                  {overhead * 100:.1f} %  (target ≤ 25 %); in "
                  f"process CPU time {cpu_overhead * 100:.1f} % "
                  f"({bare['cpu_us_per_reading']:.1f} -> "
                  f"{with_alarms['cpu_us_per_reading']:.1f} µs per reading)")
        print(f"paced:                     {latency['achieved_rate']:,.0f} readings/s for "
              f"{args.seconds:g} s; events {latency['events']}")
        s2e = latency["stored_to_event_ms"]
        print(f"stored → alarm event:      p50 {s2e['p50']:.2f} ms, p95 {s2e['p95']:.2f} ms, "
              f"p99 {s2e['p99']:.2f} ms, max {s2e['max']:.1f} ms over {latency['measured']} "
              "events  (target p99 ≤ 10 ms)")
        if e2e:
            print(f"submit → alarm event:      p50 {e2e['p50']:.1f} ms, p99 {e2e['p99']:.1f} ms")
        sizes = latency["batch_size"]
        print(f"alarm service per reading: {latency['service_us_per_reading']:.1f} µs wall, "
              f"{latency['service_cpu_us_per_reading']:.1f} µs CPU (paced); batches of "
              f"{sizes['p50']:.0f} readings (p50), {sizes['p99']:.0f} (p99)")
        print(f"GC pauses while paced:     {latency['gc_pauses']} [collections, total ms, "
              f"longest ms]{'' if args.gc_freeze else '; start-up objects not frozen'}")
        print(f"load average:              {_load_average()}")
    return 0 if p99 <= 10.0 and overhead <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
