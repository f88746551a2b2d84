"""A real ``vitalstation serve`` to break, and senders that remember what was acknowledged.

Shared by the fault tests and the hostile-input tests (no tests of its own). The station is a
subprocess on a temporary data home (its stderr drained by a thread: a station whose log pipe
is full blocks); the senders are plain clients of each input, each reading unique by
``(device, measured_at)``, so that "published", "acknowledged" and "stored" are sets that can be
compared reading by reading, not only counted.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy

from simulator.keys import issue_keys
from simulator.models import device_id_for
from simulator.register import register_beds
from vitalstation.storage.schema import dead_letters, vital_signs
from vitalstation.storage.store import Store

READY_LINE = "started in"
# ``python -c`` launcher of ``vitalstation`` whose clock (``domain.clock.utc_now``, the one every
# layer reads) runs ``argv[1]`` seconds off the machine's: the rest of argv is the CLI's.
SHIFTED_CLOCK_LAUNCHER = (
    "import sys\n"
    "from datetime import datetime, timedelta\n"
    "import vitalstation.domain.clock as clock\n"
    "offset = timedelta(seconds=float(sys.argv[1]))\n"
    "class Shifted(datetime):\n"
    "    @classmethod\n"
    "    def now(cls, tz=None):\n"
    "        return datetime.now(tz) + offset\n"
    "clock.datetime = Shifted\n"
    "from vitalstation.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
FULL = os.environ.get("VITALSTATION_FULL_PROOF", "") not in ("", "0")
ReadingId = tuple[str, datetime]


def station_env() -> dict[str, str]:
    """The environment of a station or simulator: no VITALSTATION_*, dummy AWS credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTATION_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(name, None)
    return env


@dataclass
class Home:
    """A data home with its settings, ``beds`` registered beds and their devices' REST keys."""

    path: Path
    store_url: str
    rest_port: int
    devices: list[str]
    keys: dict[str, str]

    @property
    def inbox(self) -> Path:
        return self.path / "inbox"


def make_home(folder: Path, toml: str, *, rest_port: int, beds: int = 3,
              store_url: str | None = None) -> Home:
    """Write ``vitalstation.toml`` (``toml`` plus the store and REST port) and register beds."""
    folder.mkdir(parents=True, exist_ok=True)
    url = store_url or f"sqlite:///{folder / 'vitalstation.db'}"
    rest_rate = "" if "rate_limit" in toml else "rate_limit = 0\n"
    (folder / "vitalstation.toml").write_text(
        f'[store]\nurl = "{url}"\n[rest]\nport = {rest_port}\n{rest_rate}{toml}'
    )
    at = datetime.now(UTC) - timedelta(days=1)
    store = Store.open(url)
    try:
        register_beds(store.registry, beds, at=at)
        devices = [device_id_for(n) for n in range(1, beds + 1)]
        keys, _ = issue_keys(store, devices, {}, actor="test:faults", at=at)
    finally:
        store.close()
    return Home(folder, url, rest_port, devices, keys)


@dataclass
class StationProcess:
    """``vitalstation serve`` on a data home: start, SIGKILL, SIGTERM, read its store."""

    home: Home
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)
    starts: int = 0
    env: dict[str, str] = field(default_factory=station_env)
    # Seconds the station's clock runs off the machine's from the next start on (0: the plain
    # ``vitalstation serve``).
    clock_offset_s: float = 0.0

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait for the ready line; the seconds it took."""
        began = time.monotonic()
        launcher = (["-c", SHIFTED_CLOCK_LAUNCHER, str(self.clock_offset_s)]
                    if self.clock_offset_s else ["-m", "vitalstation"])
        process = subprocess.Popen(
            [sys.executable, *launcher, "--home", str(self.home.path), "serve"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=self.env,
        )
        assert process.stderr is not None
        stderr = process.stderr
        ready = threading.Event()
        self.starts += 1
        mark = f"--- start {self.starts} ---\n"
        self.lines.append(mark)

        def drain() -> None:
            with stderr:
                for line in stderr:
                    self.lines.append(line)
                    if READY_LINE in line:
                        ready.set()
            ready.set()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        self.readers.append(reader)
        ready.wait(timeout)
        since = self.log[self.log.rindex(mark):]
        if process.poll() is None and READY_LINE in since:
            self.process = process
            return time.monotonic() - began
        process.kill()
        process.wait()
        reader.join(10)
        pytest.fail("serve did not start:\n" + self.log[-5000:])

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        assert self.process is not None and self.process.poll() is None, self.log[-3000:]
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> str:
        """SIGTERM and wait; it must stop cleanly. Its whole log."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            code = self.process.returncode
            self.process = None
            for reader in self.readers:
                reader.join(10)
            assert code == 0, self.log[-5000:]
        return self.log

    def close(self) -> None:
        """Kill it if still running; keep its log beside the data home for a post-mortem."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        for reader in self.readers:
            reader.join(10)
        (self.home.path.parent / "station-stderr.log").write_text(self.log)

    # --- the store, read directly ---------------------------------------------------------

    def _engine(self) -> sqlalchemy.Engine:
        return sqlalchemy.create_engine(self.home.store_url, poolclass=sqlalchemy.NullPool)

    def stored_rows(self) -> list[ReadingId]:
        """Every stored vital row's (device, measured_at), duplicates kept."""
        engine = self._engine()
        try:
            with engine.connect() as db:
                rows = db.execute(
                    sqlalchemy.select(vital_signs.c.device_id, vital_signs.c.measured_at)
                ).all()
        finally:
            engine.dispose()
        return [(device, at.astimezone(UTC)) for device, at in rows]

    def dead_letters(self, input_name: str | None = None) -> list[tuple[str, str | None, str]]:
        """(input, source_ref, reason) of every dead letter."""
        query = sqlalchemy.select(dead_letters.c.input, dead_letters.c.source_ref,
                                  dead_letters.c.reason).order_by(dead_letters.c.id)
        if input_name is not None:
            query = query.where(dead_letters.c.input == input_name)
        engine = self._engine()
        try:
            with engine.connect() as db:
                return [tuple(row) for row in db.execute(query).all()]
        finally:
            engine.dispose()

    def wait_stored(self, expected: set[ReadingId], timeout: float = 60.0) -> set[ReadingId]:
        """Poll the store until every reading of ``expected`` is in it (or the time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            stored = set(self.stored_rows())
            if expected <= stored or time.monotonic() > deadline:
                return stored
            time.sleep(0.25)


# --- readings --------------------------------------------------------------------------------

_epoch_counter = itertools.count()


class Readings:
    """Unique readings of a few devices: device ``i % n``, one millisecond step each."""

    def __init__(self, devices: list[str], base: datetime | None = None) -> None:
        self.devices = devices
        # Distinct senders of one test use distinct hours, so their readings never collide.
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.base = base or start - timedelta(hours=2 + next(_epoch_counter))
        self._n = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> ReadingId:
        with self._lock:
            n = next(self._n)
        device = self.devices[n % len(self.devices)]
        return device, self.base + timedelta(milliseconds=10 * n)


def iso_z(at: datetime) -> str:
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def bedside_payload(reading: ReadingId, value: float = 80.0) -> bytes:
    """The bedside monitors' one-vital message (MQTT and Kinesis)."""
    device, at = reading
    return json.dumps({"deviceid": device, "timestamp": iso_z(at), "datatype": "HeartRate",
                       "value": value}).encode()


def inhealth_payload(reading: ReadingId, value: float = 80.0) -> bytes:
    """The InHealth reading (REST and file drop)."""
    device, at = reading
    return json.dumps({"device_id": device, "timestamp": iso_z(at), "heart_rate": value}).encode()


# --- senders ---------------------------------------------------------------------------------


class Sender(threading.Thread):
    """Sends unique readings at ``rate`` per second until stopped; remembers what was sent and
    what the input acknowledged. A failed send is retried (as a device does) until acknowledged
    or the sender stops."""

    name_of_input = "?"

    def __init__(self, readings: Readings, rate: float) -> None:
        super().__init__(daemon=True, name=f"sender-{self.name_of_input}")
        self.readings = readings
        self.interval = 1.0 / rate
        self.sent: set[ReadingId] = set()  # handed to the input at least once
        self.acked: set[ReadingId] = set()
        self.failures = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            self.open()
            next_at = time.monotonic()
            while not self._stopping.is_set():
                self.send_one(self.readings.next())
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stopping.wait(delay)
                else:
                    next_at = time.monotonic()
            self.finish()
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not stop"
        if self.error is not None:
            raise AssertionError(f"{self.name} failed") from self.error

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def open(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def send_one(self, reading: ReadingId) -> None:
        raise NotImplementedError


class MqttSender(Sender):
    """QoS 1 publisher: an acknowledgement is the broker's PUBACK (the broker then owes the
    station's persistent session the message)."""

    name_of_input = "mqtt"

    def __init__(self, readings: Readings, rate: float, port: int,
                 topic_prefix: str = "healthcare/monitors") -> None:
        super().__init__(readings, rate)
        self.port = port
        self.topic_prefix = topic_prefix
        self._published: list[tuple[object, ReadingId]] = []

    def open(self) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"faults-{id(self)}",
                                  clean_session=True)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert connected.wait(10), "the sender did not connect to the broker"

    def send_one(self, reading: ReadingId) -> None:
        device, _ = reading
        deadline = time.monotonic() + 30
        while not self.client.is_connected():  # a device keeps its readings while offline
            assert time.monotonic() < deadline, "the sender did not reconnect to the broker"
            time.sleep(0.05)
        info = self.client.publish(f"{self.topic_prefix}/{device}", bedside_payload(reading),
                                   qos=1)
        self._published.append((info, reading))
        self.sent.add(reading)
        assert len(self._published) < 60_000, "message ids would wrap: send fewer"

    def finish(self) -> None:
        """Wait for the broker's PUBACKs; a reading is acknowledged when its PUBACK came."""
        deadline = time.monotonic() + 30
        while (not all(_published(info) for info, _ in self._published)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.acked.update(r for info, r in self._published if _published(info))
        self.client.loop_stop()
        self.client.disconnect()


def _published(info) -> bool:
    """Whether the broker PUBACKed it (paho raises for a publish it never sent)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


STOP_RETRY_S = 20.0  # how long the REST sender retries its last reading once told to stop


class RestSender(Sender):
    """One keep-alive connection; a reading is acknowledged by a 200. Refused connections,
    resets and 503s are retried with the same reading (the station must not store it twice)."""

    name_of_input = "rest"

    def __init__(self, readings: Readings, rate: float, port: int, keys: dict[str, str]) -> None:
        super().__init__(readings, rate)
        self.port = port
        self.keys = keys
        self.statuses: dict[int, int] = {}
        self._conn: http.client.HTTPConnection | None = None
        self._give_up_at = 0.0

    def _post(self, reading: ReadingId) -> int:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self._conn.request("POST", "/api/iot/vitals/", body=inhealth_payload(reading), headers={
            "Authorization": f"Bearer {self.keys[reading[0]]}",
            "Content-Type": "application/json"})
        response = self._conn.getresponse()
        response.read()
        if response.getheader("Connection", "").lower() == "close":
            self._conn.close()
            self._conn = None
        return response.status

    def finish(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send_one(self, reading: ReadingId) -> None:
        while not self.stopping or reading in self.sent:
            self.sent.add(reading)
            try:
                status = self._post(reading)
            except (OSError, http.client.HTTPException):
                status = 0
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                self.acked.add(reading)
                return
            assert status in (0, 503), f"REST answered {status} to a valid reading"
            self.failures += 1
            if self.stopping:
                # Told to stop with this reading unanswered: a device retries a while, then
                # keeps it for later. Unacknowledged, it may be stored or not (both allowed).
                self._give_up_at = self._give_up_at or time.monotonic() + STOP_RETRY_S
                if time.monotonic() > self._give_up_at:
                    return
            time.sleep(0.05)


class FileSender(Sender):
    """Files of ``per_file`` readings, written beside the inbox then renamed into it (the
    documented way to drop a file): "acknowledged" is the rename, nothing more."""

    name_of_input = "file"

    def __init__(self, readings: Readings, rate: float, inbox: Path, per_file: int = 5) -> None:
        super().__init__(readings, rate / per_file)
        self.inbox = inbox
        self.per_file = per_file
        self.staging = inbox.parent / "staging"
        self._files = itertools.count()

    def send_one(self, reading: ReadingId) -> None:
        batch = [reading, *(self.readings.next() for _ in range(self.per_file - 1))]
        for device in sorted({r[0] for r in batch}):  # an InHealth batch is one device's
            mine = [r for r in batch if r[0] == device]
            self.drop(f"drop-{next(self._files):06d}.json", json.dumps(
                {"device_id": device,
                 "readings": [json.loads(inhealth_payload(r)) for r in mine]}).encode())
            self.sent.update(mine)
            self.acked.update(mine)

    def drop(self, name: str, body: bytes) -> None:
        """Write ``body`` beside the inbox, then rename it in (never seen half-written)."""
        self.staging.mkdir(exist_ok=True)
        temp = self.staging / name
        temp.write_bytes(body)
        os.replace(temp, self.inbox / name)


class KinesisSender(Sender):
    """``put_records`` to moto's server; acknowledged = no ErrorCode for the record."""

    name_of_input = "kinesis"

    def __init__(self, readings: Readings, rate: float, endpoint: str, stream: str,
                 per_call: int = 10) -> None:
        super().__init__(readings, rate / per_call)
        self.endpoint = endpoint
        self.stream = stream
        self.per_call = per_call

    def open(self) -> None:
        import boto3

        self.client = boto3.client("kinesis", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    def send_one(self, reading: ReadingId) -> None:
        batch = [reading, *(self.readings.next() for _ in range(self.per_call - 1))]
        while batch:
            answer = self.client.put_records(StreamName=self.stream, Records=[
                {"Data": bedside_payload(r), "PartitionKey": r[0]} for r in batch])
            self.sent.update(batch)
            left = []
            for r, result in zip(batch, answer["Records"], strict=True):
                if "ErrorCode" in result:
                    left.append(r)
                else:
                    self.acked.add(r)
            batch = left

    def finish(self) -> None:
        self.client.close()


def wait_mqtt_subscribed(station: StationProcess, port: int, timeout: float = 20.0) -> None:
    """Publish probe readings until one is stored: the station's first subscription is in.

    A station's very first connection has no session at the broker yet, so what is published
    before its SUBACK is routed to nobody (MQTT's rule, not a loss by the station; the ready
    line comes before the SUBACK). From then on its persistent session holds everything.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    probes = Readings(["PROBE-SUBSCRIBED"])
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{id(station)}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            probe = probes.next()
            client.publish(f"healthcare/monitors/{probe[0]}", bedside_payload(probe), qos=1)
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                if probe in set(station.stored_rows()):
                    return
                time.sleep(0.05)
            assert time.monotonic() < deadline, "the station never subscribed:\n" + station.log
    finally:
        client.loop_stop()
        client.disconnect()


def create_stream(endpoint: str, name: str, shards: int = 2) -> None:
    import boto3

    kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name,
                                             WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})


# --- verdicts --------------------------------------------------------------------------------


@dataclass
class Verdict:
    """Published vs acknowledged vs stored for one sender; printed into the test's output."""

    input: str
    sent: int
    acked: int
    stored: int
    lost_acked: int
    lost_sent: int
    duplicates: int
    strangers: int

    def line(self) -> str:
        return (f"{self.input}: sent {self.sent}, acknowledged {self.acked}, stored "
                f"{self.stored}, acknowledged-not-stored {self.lost_acked}, sent-not-stored "
                f"{self.lost_sent}, stored twice {self.duplicates}, stored-not-sent "
                f"{self.strangers}")


def verdict(sender: Sender, rows: Iterable[ReadingId],
            mine: Callable[[ReadingId], bool] | None = None) -> Verdict:
    """Compare ``sender``'s readings with the stored rows that belong to it."""
    base = sender.readings.base
    owned = mine or (lambda r: base <= r[1] < base + timedelta(hours=1))
    stored_list = [r for r in rows if owned(r)]
    stored = set(stored_list)
    return Verdict(
        input=sender.name_of_input,
        sent=len(sender.sent),
        acked=len(sender.acked),
        stored=len(stored),
        lost_acked=len(sender.acked - stored),
        lost_sent=len(sender.sent - stored),
        duplicates=len(stored_list) - len(stored),
        strangers=len(stored - sender.sent),
    )


def seeded(seed: int) -> random.Random:
    return random.Random(seed)
