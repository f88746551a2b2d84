"""End-to-end latency per input: sent → stored → alarm event → window updated, in one process.

One real station (``Runtime`` with its four inputs, SQLite, the alarm engine) and the real
station window offscreen at 1920x1080, both in this process, as ``bench/gui.py`` runs it. One
bed per input (its own monitor). For each input in turn, probe readings are sent one at a time
(the next once the last has shown in the window, or after 10 s), heart rate alternating 120 and
75, so that every probe raises or resolves the bed's MEDIUM heart-rate alarm. Per probe:

* **stored**: a pipeline subscriber, called right after the commit that stored it;
* **alarm event**: an alarm listener receiving the RAISED / RESOLVED transition of that bed
  (after the alarm rows' transaction);
* **window**: the frame whose tick put the probe's value in the bed's tile, the paint included
  (the window's frame timer runs every 40 ms).

Times are from the send: MQTT ``publish`` (QoS 1, private Mosquitto), REST ``POST`` (the
answer, a 200 after the commit, is also timed), file drop (the rename into the inbox), Kinesis
``put_record`` (moto's server in its own process; the station's default 500 ms polls when caught
up). Same-run baselines, same probes: a bare paho subscriber on the same broker (publish →
``on_message``), a bare aiohttp handler (``bench/rest.py``'s; POST → answer), the bedside
seed's reference consumer (``bench/kinesis.py``'s: 200 ms polling, one record per batch; put →
processed) and the InHealth seed's one-minute cron for files (not run: a file waits for the next
minute, 30 s on average, 60 s at worst).

    QT_QPA_PLATFORM=offscreen python bench/e2e.py [--probes 40] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QCoreApplication, QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import vitalstation.ui  # noqa: E402, F401 - PySide6 before pyqtgraph
from bench.gui import WINDOW_SIZE, percentile  # noqa: E402
from bench.kinesis import REGION, SeedConsumer, free_port, run_moto  # noqa: E402
from bench.mqtt import Mosquitto  # noqa: E402
from bench.rest import start_bare  # noqa: E402
from simulator.keys import issue_keys  # noqa: E402
from simulator.models import device_id_for  # noqa: E402
from simulator.register import register_beds  # noqa: E402
from vitalstation.alarms.model import AlarmTransition, TransitionKind  # noqa: E402
from vitalstation.app.runtime import Runtime  # noqa: E402
from vitalstation.config.settings import load_settings  # noqa: E402
from vitalstation.domain.vitals import VitalKind  # noqa: E402
from vitalstation.pipeline.types import StoredReading  # noqa: E402
from vitalstation.storage.store import Store  # noqa: E402
from vitalstation.ui.main_window import MainWindow  # noqa: E402
from vitalstation.ui.sound import NoAudio  # noqa: E402

INPUTS = ("mqtt", "rest", "file", "kinesis")
TOPIC = "healthcare/monitors"
WAIT_S = 10.0
GAP_S = 0.1


@dataclass
class Probe:
    device: str
    at: datetime
    value: float
    sent: float = 0.0
    times: dict[str, float] = field(default_factory=dict)  # leg -> perf_counter
    done: threading.Event = field(default_factory=threading.Event)

    def note(self, leg: str) -> None:
        self.times.setdefault(leg, time.perf_counter())
        if {"stored", "alarm", "window"} <= self.times.keys():
            self.done.set()

    def ms(self, leg: str) -> float | None:
        return (self.times[leg] - self.sent) * 1000 if leg in self.times else None


def iso_z(at: datetime) -> str:
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def bedside(probe: Probe) -> bytes:
    return json.dumps({"deviceid": probe.device, "timestamp": iso_z(probe.at),
                       "datatype": "HeartRate", "value": probe.value}).encode()


def inhealth(probe: Probe) -> bytes:
    return json.dumps({"device_id": probe.device, "timestamp": iso_z(probe.at),
                       "heart_rate": probe.value}).encode()


class Tracker:
    """Which probe is in flight per device, and the station's hooks that time its legs."""

    def __init__(self) -> None:
        self.current: dict[str, Probe] = {}
        self.lock = threading.Lock()

    def _probe(self, device: str | None) -> Probe | None:
        with self.lock:
            return self.current.get(device or "")

    def on_stored(self, batch: list[StoredReading]) -> None:
        for item in batch:
            probe = self._probe(item.reading.device_id)
            if probe is not None and item.reading.measured_at == probe.at:
                probe.note("stored")

    def on_alarm(self, transition: AlarmTransition) -> None:
        if (transition.kind in (TransitionKind.RAISED, TransitionKind.RESOLVED)
                and transition.alarm.condition.startswith("heart_rate")):
            probe = self._probe(transition.alarm.device_id)
            if probe is not None:
                probe.note("alarm")

    def on_frame(self, window: MainWindow) -> None:
        with self.lock:
            probes = [p for p in self.current.values() if "window" not in p.times]
        for probe in probes:
            for tile in window.ward.tiles():
                shown = tile.values.get(VitalKind.HEART_RATE)
                if (probe.device in tile.devices and shown is not None
                        and shown.measured_at >= probe.at):
                    probe.note("window")


def start_station(home: Path, mqtt_port: int, kinesis_url: str,
                  stream: str) -> tuple[Runtime, list[str], dict[str, str]]:
    """A station on ``home`` with all four inputs, one registered bed per input."""
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'vitalstation.db'}"
    (home / "vitalstation.toml").write_text(
        f'[store]\nurl = "{url}"\n[rest]\nport = {free_port()}\nrate_limit = 0\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\n'
        f'[kinesis]\nenabled = true\nstream = "{stream}"\nendpoint_url = "{kinesis_url}"\n'
        f'region = "{REGION}"\n'
    )
    at = datetime.now(UTC) - timedelta(days=1)
    store = Store.open(url)
    try:
        register_beds(store.registry, len(INPUTS), at=at)
        devices = [device_id_for(n) for n in range(1, len(INPUTS) + 1)]
        keys, _ = issue_keys(store, devices, {}, actor="bench", at=at)
    finally:
        store.close()
    runtime = Runtime(load_settings(home))
    runtime.start()
    return runtime, devices, keys


class Senders:
    """One client per input, and the same-run baselines' receivers."""

    def __init__(self, home: Path, runtime: Runtime, keys: dict[str, str], mqtt_port: int,
                 kinesis_url: str, stream: str) -> None:
        import boto3
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.rest_port = runtime.settings.rest.port
        self.keys = keys
        self.inbox = home / "inbox"
        self.staging = home / "staging"
        self.staging.mkdir(exist_ok=True)
        self.kinesis = boto3.client("kinesis", region_name=REGION, endpoint_url=kinesis_url)
        self.stream = stream
        self.mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-e2e-pub")
        self.mqtt.connect("127.0.0.1", mqtt_port)
        self.mqtt.loop_start()
        self.bare_mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-e2e-bare")
        self.bare_seen: dict[str, float] = {}
        self.bare_mqtt.on_message = lambda c, u, m: self.bare_seen.setdefault(
            json.loads(m.payload)["timestamp"], time.perf_counter())
        subscribed = threading.Event()
        self.bare_mqtt.on_subscribe = lambda *a: subscribed.set()
        self.bare_mqtt.connect("127.0.0.1", mqtt_port)
        self.bare_mqtt.subscribe("bare/#", qos=1)
        self.bare_mqtt.loop_start()
        subscribed.wait(10)
        self.bare_rest = start_bare()
        self.seed_seen: dict[str, float] = {}
        self.seed = SeedConsumer(kinesis_url, stream, on_processed=lambda r: (
            self.seed_seen.setdefault(r["timestamp"], time.perf_counter())))
        self.seed.start()

    def send(self, input_name: str, probe: Probe) -> float | None:
        """Send ``probe``; for REST the answer's time (it must be 200)."""
        probe.sent = time.perf_counter()
        if input_name == "mqtt":
            self.mqtt.publish(f"{TOPIC}/{probe.device}", bedside(probe), qos=1)
        elif input_name == "rest":
            status = self._post(self.rest_port, probe, self.keys[probe.device])
            assert status == 200, f"REST answered {status}"
            return time.perf_counter()
        elif input_name == "file":
            temp = self.staging / f"{probe.device}-{probe.at.timestamp()}.json"
            temp.write_bytes(inhealth(probe))
            os.replace(temp, self.inbox / temp.name)
        else:
            self.kinesis.put_record(StreamName=self.stream, Data=bedside(probe),
                                    PartitionKey=probe.device)
        return None

    @staticmethod
    def _post(port: int, probe: Probe, key: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/api/iot/vitals/", body=inhealth(probe), headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def baseline(self, input_name: str, probe: Probe) -> float | None:
        """The same probe through the input's baseline: ms from send to received."""
        stamp = iso_z(probe.at)
        started = time.perf_counter()
        if input_name == "mqtt":
            self.mqtt.publish(f"bare/{probe.device}", bedside(probe), qos=1)
            seen = self.bare_seen
        elif input_name == "rest":
            self._post(self.bare_rest.server_address[1], probe, "")
            return (time.perf_counter() - started) * 1000
        elif input_name == "kinesis":
            seen = self.seed_seen  # the station's probe, as the seed consumer saw it
            started = probe.sent
        else:
            return None
        deadline = time.monotonic() + WAIT_S
        while stamp not in seen and time.monotonic() < deadline:
            time.sleep(0.001)
        return (seen[stamp] - started) * 1000 if stamp in seen else None

    def close(self) -> None:
        self.seed.stop()
        self.bare_rest.shutdown()
        for client in (self.mqtt, self.bare_mqtt):
            client.loop_stop()
            client.disconnect()


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"n": len(values), "p50": round(statistics.median(values), 2),
            "p95": round(percentile(values, 95), 2), "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2)}


def run(probes: int, inputs: tuple[str, ...] = INPUTS) -> dict[str, Any]:
    """The figures per input (ms from the send): stored, alarm, window, and the baseline."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        os.environ.setdefault(name, value)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    results: dict[str, Any] = {"probes_per_input": probes, "window": "in process, offscreen"}
    with tempfile.TemporaryDirectory(prefix="vs-bench-e2e-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder, 20)
        moto_port = free_port()
        ready = multiprocessing.Event()
        moto = multiprocessing.Process(target=run_moto, args=(moto_port, ready), daemon=True)
        moto.start()
        ready.wait(30)
        kinesis_url = f"http://127.0.0.1:{moto_port}"
        stream = "bench-e2e"
        import boto3

        admin = boto3.client("kinesis", region_name=REGION, endpoint_url=kinesis_url)
        admin.create_stream(StreamName=stream, ShardCount=1)  # one shard: the seed sees all
        admin.get_waiter("stream_exists").wait(StreamName=stream)
        runtime, devices, keys = start_station(folder / "home", broker.port, kinesis_url, stream)
        tracker = Tracker()
        # First among the subscribers: the commit's time, before the alarm service evaluates.
        runtime.pipeline._subscribers.insert(0, tracker.on_stored)
        runtime.alarms.add_listener(tracker.on_alarm)
        window = MainWindow(runtime, settings_path=folder / "w.ini", audio=NoAudio("bench"))
        window.resize(*WINDOW_SIZE)
        window.show()
        while not window.ward.is_loaded:
            app.processEvents()
            time.sleep(0.005)
        tick = window.ward.tick

        def timed_tick() -> set[str]:
            changed = tick()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.UpdateRequest)
            tracker.on_frame(window)
            return changed

        window.ward._frame_timer.timeout.disconnect()
        window.ward._frame_timer.timeout.connect(timed_tick)
        senders = Senders(folder / "home", runtime, keys, broker.port, kinesis_url, stream)
        error: list[BaseException] = []

        def drive() -> None:
            try:
                for index, name in enumerate(inputs):
                    results[name] = probe_input(name, devices[index], probes, tracker, senders)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                error.append(exc)

        driver = threading.Thread(target=drive, name="bench-e2e-driver", daemon=True)
        driver.start()
        while driver.is_alive():
            app.processEvents()
            time.sleep(0.001)
        senders.close()
        window.close()
        window.deleteLater()
        app.processEvents()
        runtime.stop()
        broker.stop()
        moto.terminate()
        if error:
            raise error[0]
    return results


def probe_input(name: str, device: str, probes: int, tracker: Tracker,
                senders: Senders) -> dict[str, Any]:
    legs: dict[str, list[float]] = {"stored": [], "alarm": [], "window": [], "answered": [],
                                    "baseline": []}
    missing = 0
    for n in range(probes + 1):  # the first is a warm-up (subscription, shard iterator)
        probe = Probe(device, datetime.now(UTC), 120.0 if n % 2 == 0 else 75.0)
        with tracker.lock:
            tracker.current[device] = probe
        answered = senders.send(name, probe)
        complete = probe.done.wait(WAIT_S * (3 if n == 0 else 1))
        base = senders.baseline(name, probe)
        if n == 0:
            continue
        if not complete:
            missing += 1
            print(f"  {name}: probe {n} ({probe.value:g}) incomplete, legs seen "
                  f"{sorted(probe.times)}", file=sys.stderr, flush=True)
        for leg in ("stored", "alarm", "window"):
            if (ms := probe.ms(leg)) is not None:
                legs[leg].append(ms)
        if answered is not None:
            legs["answered"].append((answered - probe.sent) * 1000)
        if base is not None:
            legs["baseline"].append(base)
        time.sleep(GAP_S)
    with tracker.lock:
        tracker.current.pop(device, None)
    out = {leg: summary(values) for leg, values in legs.items()}
    out["incomplete"] = missing
    print(f"  {name}: stored p50 {out['stored'] and out['stored']['p50']} ms, window p50 "
          f"{out['window'] and out['window']['p50']} ms", file=sys.stderr, flush=True)
    return out


BASELINE_NAMES = {"mqtt": "bare paho subscriber, publish → on_message",
                  "rest": "bare aiohttp handler, POST → answer",
                  "file": "InHealth seed: one-minute cron (30 s mean, 60 s worst; not run)",
                  "kinesis": "bedside seed consumer, 200 ms polls, put → processed"}


def report(results: dict[str, Any]) -> list[str]:
    """Lines for a person: one per input and leg."""
    def fmt(s: dict[str, float] | None) -> str:
        return "-" if s is None else f"p50 {s['p50']:.1f} / p99 {s['p99']:.1f} ms"

    lines = []
    for name in INPUTS:
        if name not in results:
            continue
        r = results[name]
        lines.append(f"{name:8} sent → stored {fmt(r['stored'])}; → alarm event "
                     f"{fmt(r['alarm'])}; → window {fmt(r['window'])}"
                     + (f"; 200 answered {fmt(r['answered'])}" if r["answered"] else "")
                     + f"; baseline ({BASELINE_NAMES[name]}) {fmt(r['baseline'])}"
                     + (f"; {r['incomplete']} incomplete" if r["incomplete"] else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=40, help="per input (default 40)")
    parser.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=INPUTS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = run(args.probes, tuple(args.inputs))
    if args.json:
        print(json.dumps(results))
    else:
        print("\n".join(report(results)))
    return 0 if all(results[n]["incomplete"] == 0 for n in args.inputs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
