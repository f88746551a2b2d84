"""MQTT QoS 1 into the station, against a bare paho subscriber, through the same brokers.

Every figure comes from one run on one machine, so the ratios are what to read:

1. **Throughput, Mosquitto.** One publisher process (paho, QoS 1, at most ``--window``
   unacknowledged: far below paho's 65,535 limit) publishes 100k one-vital messages into a
   receiver's persistent session on a private Mosquitto while the receiver is away; then the
   receiver connects and drains them: (a) a bare paho subscriber that only counts, (b) the
   station's MQTT input with the real pipeline and SQLite store (PUBACK after commit). Rate =
   messages / (last received or committed - reconnect). Draining a backlog measures what the
   receiver can take: a live Python publisher tops out near 5-6k msg/s here, below the bare
   subscriber, and would hide the difference (and ``mosquitto_pub -l`` is dropped by Mosquitto
   2.0.11 past ~35k lines: "disconnected due to out of memory"). It is also the morning after a
   station restart. Targets: station >= 5,000 readings/s and >= 60 % of bare.
2. **Latency.** The publisher paces 1,000 msg/s; latency = commit time (a pipeline subscriber,
   called right after the commit) - publish time, per message. Target p99 <= 20 ms.
3. **Embedded broker.** The station's rate through the embedded broker (amqtt, in the station's
   own process, as in production) against the same through Mosquitto, both with the live
   publisher: the figure that says when a ward must move to a real broker.

Mosquitto runs with its default window of unacknowledged messages per client
(``max_inflight_messages 20``; ``--broker-window`` to change it) and ``max_queued_messages``
raised to hold the backlog (its default, 1,000, would drop the rest). The CPU lines say where
each message's time goes, by thread (Linux).

    python bench/mqtt.py            # ~2 min: 100k messages, 10 s of latency, 20k live
    python bench/mqtt.py --quick    # ~30 s

The station is measured as ``serve`` runs it: its start-up objects frozen out of the garbage
collector once it is up (``app.memory.freeze_long_lived_objects``; ``--no-gc-freeze`` to
measure without) and its store checkpointing SQLite's WAL on its own thread. One process-wide
setting the station does not make can be tried: ``--switch-interval MS``
(``sys.setswitchinterval``: how long a thread may keep the GIL while another wants it;
CPython's default is 5 ms; no gain measured). The collector's pauses are printed either way.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from vitalstation.app.memory import freeze_long_lived_objects
from vitalstation.ingest.base import InputState
from vitalstation.ingest.broker import EmbeddedBroker
from vitalstation.ingest.mqtt import MqttInput, MqttOptions
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from station_parts import GcPauses, with_alarms  # noqa: E402 - a sibling script, not a package

DEVICES = 64
BARE_TIMEOUT_S = 600
START = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC = "healthcare/monitors/bench"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def payload(n: int) -> bytes:
    """Message ``n``: a distinct reading (device n % 64, one second apart per device)."""
    stamp = (START + timedelta(seconds=n // DEVICES)).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (
        f'{{"deviceid": "BSM_{n % DEVICES:03d}", "timestamp": "{stamp}", '
        f'"datatype": "HeartRate", "value": {60 + n % 50}}}'
    ).encode()


def message_number(device_id: str, measured_at: datetime) -> int:
    """The ``n`` of :func:`payload` back from a stored reading."""
    seconds = int((measured_at - START).total_seconds())
    return seconds * DEVICES + int(device_id[4:])


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each thread of this process, by thread name (Linux)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except FileNotFoundError:
        return used
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        name = names.get(int(tid), tid)
        if name.startswith("paho-mqtt-client-"):
            name = "paho"
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def cpu_per_message(before: dict[str, float], after: dict[str, float],
                    count: int) -> dict[str, float]:
    """Microseconds of CPU per message, by thread, for the threads that did work."""
    return {
        name: round((seconds - before.get(name, 0.0)) / count * 1e6)
        for name, seconds in after.items()
        if seconds - before.get(name, 0.0) > 0.02 and name != "MainThread"
    }


def load_average() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


# --- brokers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    """A private Mosquitto on a free port (never 1883), stopped at the end."""

    def __init__(self, folder: Path, inflight: int) -> None:
        self.port = free_port()
        conf = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
            "set_tcp_nodelay true", f"max_inflight_messages {inflight}",
            "max_queued_messages 1000000", "log_dest none",
        ]
        if os.geteuid() == 0:
            import getpass

            lines.append(f"user {getpass.getuser()}")
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


# --- the publisher (its own process, so it does not share the GIL with what is measured) --


def publish(port: int, count: int, window: int, rate: float, offset: int,
            times_out: multiprocessing.Queue | None) -> None:
    """Publish ``count`` messages at QoS 1, at most ``window`` unacknowledged; paced if rate.

    The window stays small: paho's QoS 1 publisher slows down as its in-flight table grows
    (measured: 20 → ~6k msg/s, 1,000 → ~2k, 5,000 → ~1k).
    """
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(window)
    slots = threading.Semaphore(window)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.on_publish = lambda *args: slots.release()
    client.connect("127.0.0.1", port)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    connected.wait(10)
    sent: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        if rate:
            due = started + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        slots.acquire()
        if times_out is not None:
            sent.append(time.time())
        client.publish(TOPIC, payload(offset + i), qos=1)
    for _ in range(window):  # every message acknowledged by the broker
        slots.acquire()
    client.disconnect()
    client.loop_stop()
    if times_out is not None:
        times_out.put(sent)


def start_publisher(port: int, count: int, window: int, rate: float = 0.0, offset: int = 0,
                    times: multiprocessing.Queue | None = None) -> multiprocessing.Process:
    child = multiprocessing.get_context("spawn").Process(
        target=publish, args=(port, count, window, rate, offset, times), daemon=True
    )
    child.start()
    return child


def publish_backlog(port: int, count: int, window: int, offset: int) -> None:
    """Publish ``count`` messages while the receiver is away; they wait in its session."""
    publisher = start_publisher(port, count, window, offset=offset)
    publisher.join(600)
    if publisher.exitcode != 0:
        raise RuntimeError(f"the publisher failed (exit code {publisher.exitcode})")


# --- the two receivers -------------------------------------------------------------------


def bare_subscriber(port: int, count: int, window: int) -> tuple[float, dict[str, float]]:
    """A paho subscriber that only counts (QoS 1, paho's own PUBACK), draining a backlog of
    ``count`` messages from its persistent session; messages/s, CPU by thread."""
    done = threading.Event()
    received = [0]
    subscribed = threading.Event()

    def on_message(client, userdata, message) -> None:
        received[0] += 1
        if received[0] == count:
            done.set()

    def on_connect(client, userdata, flags, reason, properties) -> None:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe(TOPIC, 1)

    def connect() -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare",
                             clean_session=False)
        client.on_connect = on_connect
        client.on_subscribe = lambda *args: subscribed.set()
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        return client

    client = connect()  # the session and its subscription
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    publish_backlog(port, count, window, offset=0)
    cpu_before = thread_cpu()
    started = time.perf_counter()
    client = connect()
    if not done.wait(BARE_TIMEOUT_S):
        raise RuntimeError(f"bare subscriber got {received[0]} of {count}")
    rate = count / (time.perf_counter() - started)
    cpu = cpu_per_message(cpu_before, thread_cpu(), count)
    client.disconnect()
    client.loop_stop()
    return rate, cpu


class Station:
    """The station's MQTT path: MqttInput → Pipeline → SQLite, commit times recorded."""

    def __init__(self, folder: Path, name: str, url: str, embedded: EmbeddedBroker | None = None,
                 protocol: str = "3.1.1") -> None:
        self.store = Store.open(f"sqlite:///{folder / name}", background_checkpoints=True)
        register_ward(self.store)
        self.pipeline = Pipeline(self.store.writer)
        # Per message only for the latency run; the throughput runs take the last commit's time
        # (the bare subscriber only counts too, and this callback runs on the pipeline thread).
        self.per_message = False
        self.committed: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.last_commit = 0.0
        self.gc_pauses: dict[str, dict[str, object]] = {}
        self._count = 0
        self._target = 0
        self._done = threading.Event()
        self.alarms = with_alarms(self.pipeline, self.store)  # as the runtime runs it
        self.pipeline.subscribe(self._on_commit)
        self.pipeline.start()
        self._options = MqttOptions(url=url, topics=(TOPIC,), client_id=f"bench-station-{name}",
                                    station_name="Bench", protocol=protocol)
        self._embedded = embedded
        self.input = self.start_input()

    def start_input(self) -> MqttInput:
        """A new input with the same client id (so the same session), connected."""
        self.input = MqttInput(self._options, self.pipeline, embedded=self._embedded)
        self.input.start()
        deadline = time.monotonic() + 10
        while self.input.health().state is not InputState.UP:
            if time.monotonic() > deadline:
                raise RuntimeError(f"station input did not connect: {self.input.health()}")
            time.sleep(0.005)
        return self.input

    def _on_commit(self, stored) -> None:
        now = time.time()
        if self.per_message:
            for item in stored:
                reading = item.reading
                n = message_number(reading.device_id, reading.measured_at)
                self.committed[n] = now
                self.received[n] = reading.received_at.timestamp()  # paho's thread read it
        self.last_commit = now
        self._count += len(stored)
        if self._count >= self._target:
            self._done.set()

    def expect(self, count: int, per_message: bool = False) -> None:
        self._count, self._target = 0, count
        self.per_message = per_message
        self.committed.clear()
        self.received.clear()
        self._done.clear()

    def wait(self, timeout: float = 600) -> None:
        if not self._done.wait(timeout):
            raise RuntimeError(f"station stored {self._count} of {self._target}")

    def close(self) -> dict[str, int]:
        self.input.stop(5)
        self.pipeline.stop()
        self.alarms.stop()
        stats = self.pipeline.stats()
        self.store.close()
        return {"stored": stats.stored, "failed": stats.failed, "rejected": stats.rejected,
                "duplicates": stats.duplicates}


def register_ward(store: Store) -> None:
    for i in range(DEVICES):
        store.registry.add_bed(f"{i}", "BENCH", actor="bench", at=START)
        store.registry.add_device(f"BSM_{i:03d}", actor="bench", at=START)
        store.registry.assign_device(f"BSM_{i:03d}", bed_label=f"{i}", actor="bench", at=START)


def station_backlog(station: Station, port: int, count: int, window: int,
                    offset: int) -> tuple[float, dict[str, float], float]:
    """Readings/s stored draining a backlog of ``count`` messages (as the bare subscriber),
    CPU by thread, and readings per commit (with the broker's window of unacknowledged
    messages, how many of them each commit gathered)."""
    station.input.stop(5)  # away: what is published now waits in the station's session
    publish_backlog(port, count, window, offset)
    station.expect(count)
    batches_before = station.pipeline.stats().batches
    cpu_before = thread_cpu()
    started = time.time()
    with GcPauses() as pauses:
        station.start_input()
        station.wait()
    cpu = cpu_per_message(cpu_before, thread_cpu(), count)
    batches = station.pipeline.stats().batches - batches_before
    station.gc_pauses["backlog"] = pauses.summary()
    return count / (station.last_commit - started), cpu, count / max(batches, 1)


def station_live(station: Station, port: int, count: int, window: int,
                 offset: int) -> tuple[float, dict[str, float]]:
    """Readings/s stored while one publisher sends ``count`` messages as fast as it can."""
    station.expect(count)
    cpu_before = thread_cpu()
    started = time.time()
    publisher = start_publisher(port, count, window, offset=offset)
    station.wait()
    cpu = cpu_per_message(cpu_before, thread_cpu(), count)
    publisher.join(30)
    return count / (station.last_commit - started), cpu


def latency(station: Station, port: int, seconds: float, rate: float, offset: int) -> dict:
    """Publish → stored, per message, at a paced rate."""
    count = int(seconds * rate)
    station.expect(count, per_message=True)
    times: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    publisher = start_publisher(port, count, 1000, rate=rate, offset=offset, times=times)
    with GcPauses() as pauses:
        sent = times.get(timeout=seconds * 3 + 60)
        station.wait()
    station.gc_pauses["latency"] = pauses.summary()
    publisher.join(30)
    lat = sorted(
        (station.committed[offset + i] - sent[i]) * 1000 for i in range(count)
    )
    # Where it goes: publish → read on paho's thread (broker, network, waiting for the GIL),
    # then read → committed (queue, batch, store, alarm engine, the GC pauses among them).
    read = sorted((station.received[offset + i] - sent[i]) * 1000 for i in range(count))
    stored = sorted(
        (station.committed[offset + i] - station.received[offset + i]) * 1000
        for i in range(count)
    )

    def p99(values: list[float]) -> float:
        return values[int(len(values) * 0.99) - 1]

    return {
        "messages": count,
        "rate": rate,
        "p50_ms": statistics.median(lat),
        "p99_ms": p99(lat),
        "max_ms": lat[-1],
        "to_read_p50_ms": statistics.median(read),
        "to_read_p99_ms": p99(read),
        "read_to_stored_p50_ms": statistics.median(stored),
        "read_to_stored_p99_ms": p99(stored),
    }


# --- main --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    figures: dict = {"messages": args.messages, "window": args.window,
                     "broker_window": args.broker_window,
                     "embedded_messages": args.embedded_messages,
                     "switch_interval_ms": sys.getswitchinterval() * 1000,
                     "gc_freeze": args.gc_freeze, "load_before": load_average()}
    live = args.embedded_messages
    with tempfile.TemporaryDirectory(prefix="vs-bench-mqtt-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder, args.broker_window)
        try:
            say(f"bare paho subscriber: {args.messages:,} messages queued in Mosquitto ...")
            figures["bare_per_s"], figures["bare_cpu_us"] = bare_subscriber(
                broker.port, args.messages, args.window
            )
            say("station (MqttInput → pipeline → SQLite): the same backlog ...")
            station = Station(folder, "mosquitto.db", f"mqtt://127.0.0.1:{broker.port}",
                              protocol=args.protocol)
            if args.gc_freeze:  # as serve does once the station is up
                freeze_long_lived_objects()
            (figures["station_per_s"], figures["station_cpu_us"],
             figures["station_readings_per_commit"]) = station_backlog(
                station, broker.port, args.messages, args.window, offset=0
            )
            say(f"latency at {args.rate:,.0f} msg/s for {args.latency_seconds:.0f} s ...")
            figures["latency"] = latency(
                station, broker.port, args.latency_seconds, args.rate, offset=args.messages
            )
            say(f"station, live publisher, {live:,} messages through Mosquitto ...")
            figures["mosquitto_live_per_s"], _ = station_live(
                station, broker.port, live, args.window, offset=2 * args.messages
            )
            figures["station_counts"] = station.close()
            figures["gc_pauses"] = station.gc_pauses
        finally:
            broker.stop()
        say(f"station, live publisher, {live:,} messages through the embedded broker ...")
        embedded = EmbeddedBroker(port=0)
        embedded.start()
        try:
            port = embedded.actual_port
            assert port is not None
            station = Station(folder, "embedded.db", "embedded", embedded=embedded)
            figures["embedded_per_s"], figures["embedded_cpu_us"] = station_live(
                station, port, live, args.window, offset=0
            )
            figures["embedded_counts"] = station.close()
        finally:
            embedded.stop()
    figures["load_after"] = load_average()
    figures["station_over_bare"] = figures["station_per_s"] / figures["bare_per_s"]
    figures["embedded_over_mosquitto"] = (
        figures["embedded_per_s"] / figures["mosquitto_live_per_s"]
    )
    return figures


def say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def report(f: dict, emit: Callable[[str], None] = print) -> None:
    lat = f["latency"]
    freeze = "on" if f["gc_freeze"] else "off"
    emit(f"load average (1/5/15 min):   {f['load_before']} before, {f['load_after']} after; "
         f"switch interval {f['switch_interval_ms']:g} ms, gc.freeze {freeze}")
    emit(f"backlog drained (QoS 1):     {f['messages']:,} messages; Mosquitto "
         f"max_inflight_messages {f['broker_window']:,}")
    emit(f"bare paho subscriber:        {f['bare_per_s']:,.0f} msg/s")
    emit(f"  CPU µs per message:        {f['bare_cpu_us']}")
    emit(f"station → SQLite:            {f['station_per_s']:,.0f} readings/s (target ≥ 5,000)")
    emit(f"  CPU µs per message:        {f['station_cpu_us']}")
    emit(f"  readings per commit:       {f['station_readings_per_commit']:.1f}")
    emit(f"station / bare:              {f['station_over_bare']:.2f} (target ≥ 0.60)")
    emit(f"latency at {lat['rate']:,.0f} msg/s:       p50 {lat['p50_ms']:.1f} ms, "
         f"p99 {lat['p99_ms']:.1f} ms (target ≤ 20), max {lat['max_ms']:.1f} ms "
         f"({lat['messages']:,} messages)")
    emit(f"  publish → read by paho:    p50 {lat['to_read_p50_ms']:.1f} ms, "
         f"p99 {lat['to_read_p99_ms']:.1f} ms")
    emit(f"  read → stored:             p50 {lat['read_to_stored_p50_ms']:.1f} ms, "
         f"p99 {lat['read_to_stored_p99_ms']:.1f} ms")
    emit(f"live publisher, {f['embedded_messages']:,} messages:")
    emit(f"  station via Mosquitto:     {f['mosquitto_live_per_s']:,.0f} readings/s "
         "(the Python publisher's pace may be the limit)")
    emit(f"  station via embedded:      {f['embedded_per_s']:,.0f} readings/s")
    emit(f"    CPU µs per message:      {f['embedded_cpu_us']} (broker thread included)")
    emit(f"  embedded / Mosquitto:      {f['embedded_over_mosquitto']:.2f}")
    emit("GC pauses [collections, total ms, longest ms] by generation:")
    for phase, summary in f["gc_pauses"].items():
        emit(f"  {phase + ':':<26} {summary}")
    emit(f"store counts (Mosquitto):    {f['station_counts']}")
    emit(f"store counts (embedded):     {f['embedded_counts']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~30 s)")
    parser.add_argument("--messages", type=int, help="throughput run (default 100,000)")
    parser.add_argument("--embedded-messages", type=int,
                        help="live runs, Mosquitto and embedded (default 20,000)")
    parser.add_argument("--latency-seconds", type=float, help="paced run length (default 10)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate, msg/s")
    parser.add_argument("--window", type=int, default=20,
                        help="publisher's unacknowledged messages at most (< 65,535)")
    parser.add_argument("--broker-window", type=int, default=20,
                        help="Mosquitto max_inflight_messages (20, its default)")
    parser.add_argument("--protocol", default="3.1.1", choices=("3.1.1", "5"))
    parser.add_argument("--switch-interval", type=float, metavar="MS",
                        help="sys.setswitchinterval for this process (CPython's default: 5 ms)")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                        help="leave the start-up objects in the collector's sight (serve "
                        "freezes them)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval / 1000)
    quick = args.quick
    args.messages = args.messages or (20_000 if quick else 100_000)
    args.embedded_messages = args.embedded_messages or (5_000 if quick else 20_000)
    args.latency_seconds = args.latency_seconds or (3.0 if quick else 10.0)
    if not os.access(MOSQUITTO, os.X_OK):
        print(f"mosquitto not found at {MOSQUITTO}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    figures = run(args)
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures)
    counts = figures["station_counts"]
    return 0 if counts["failed"] == 0 and counts["rejected"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
