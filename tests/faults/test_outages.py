"""What the station's inputs and store lean on fails mid-stream; nothing acknowledged is lost.

Each test runs a real ``vitalstation serve`` with senders loading its inputs (see
``harness.py``), breaks one thing for a few seconds, mends it, lets the station catch up and
compares the store with what was sent and acknowledged, reading by reading:

* the MQTT broker stopped and started again (its persistence keeps the station's session);
* PostgreSQL unreachable (a per-test database reached through a TCP relay that the test cuts:
  the machine's PostgreSQL is never stopped);
* PostgreSQL restarted (a server of the test's own, ``pg_ctl stop -m fast`` then ``start``;
  full form only);
* the SQLite database locked by another process (``BEGIN EXCLUSIVE`` held for seconds);
* Kinesis throttling and an expired shard iterator, injected by a relay in front of moto.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy

from tests.faults.harness import (
    FULL,
    FileSender,
    Home,
    KinesisSender,
    MqttSender,
    Readings,
    RestSender,
    Sender,
    StationProcess,
    Verdict,
    create_stream,
    make_home,
    verdict,
    wait_mqtt_subscribed,
)
from tests.faults.proxies import KinesisFaultProxy, PrivatePostgres, TcpProxy
from tests.ingest.mosquitto import Mosquitto, wait_until
from tests.simulator.conftest import free_port

pytestmark = pytest.mark.timeout(120)
RATE = 50.0


def mqtt_toml(broker: Mosquitto) -> str:
    return f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'


def run_through(station: StationProcess, senders: list[Sender],
                fault: Callable[[], None], *, settle: float = 1.0) -> list[Verdict]:
    """Start the station and the senders, run ``fault`` mid-stream, stop the senders, let the
    station catch up, stop it cleanly; the verdict of each sender."""
    try:
        station.start()
        if any(isinstance(sender, MqttSender) for sender in senders):
            wait_mqtt_subscribed(station, next(
                s.port for s in senders if isinstance(s, MqttSender)))
        for sender in senders:
            sender.start()
        time.sleep(settle)
        fault()
        time.sleep(settle)
        for sender in senders:
            sender.stop()
        station.wait_stored(set().union(*(s.sent for s in senders)), timeout=30)
        time.sleep(0.3)
        station.stop()
        rows = station.stored_rows()
    finally:
        for sender in senders:
            if sender.is_alive():
                sender.stop()
        station.close()
    verdicts = [verdict(sender, rows) for sender in senders]
    print("; ".join(v.line() for v in verdicts))
    stored = set(rows)
    for sender in senders:
        missing = sorted(sender.acked - stored)[:5]
        if missing:  # what a reviewer needs to chase a loss
            print(f"{sender.name_of_input} acknowledged, not stored: {missing}")
            print(station.log[-8000:])
    return verdicts


def assert_nothing_lost(senders: list[Sender], verdicts: list[Verdict]) -> None:
    report = "; ".join(v.line() for v in verdicts)
    for sender, v in zip(senders, verdicts, strict=True):
        assert v.acked > 0, report
        assert v.lost_acked == 0, report
        if sender.name_of_input != "rest":  # a REST reading never answered 200 may be absent
            assert v.lost_sent == 0, report
        assert v.duplicates == 0 and v.strangers == 0, report


def test_the_broker_stopped_and_started_again_loses_nothing(tmp_path: Path,
                                                             broker: Mosquitto) -> None:
    home = make_home(tmp_path / "home", mqtt_toml(broker), rest_port=free_port())
    station = StationProcess(home)
    senders: list[Sender] = [MqttSender(Readings(home.devices), RATE, broker.port)]

    def broker_outage() -> None:
        broker.stop()  # SIGTERM: Mosquitto saves the station's session and queued messages
        time.sleep(1.0)
        broker.start()

    verdicts = run_through(station, senders, broker_outage, settle=0.7)
    assert_nothing_lost(senders, verdicts)
    assert verdicts[0].acked == verdicts[0].sent  # the sender's queued publishes went out too
    assert station.log.count("connected to") >= 2 or "reconnect" in station.log.lower(), (
        station.log[-3000:])


def _watch_acks(sender: Sender, cut: Callable[[], None], restore: Callable[[], None],
                outage_s: float) -> tuple[int, int]:
    """Cut, wait ``outage_s``, restore; REST acknowledgements seen in the outage's second half
    (none may come: nothing can be stored) and after it."""
    cut()
    time.sleep(outage_s / 2)
    during_start = len(sender.acked)
    time.sleep(outage_s / 2)
    during = len(sender.acked) - during_start
    restore()
    return during, len(sender.acked)


def database_outage(tmp_path: Path, broker: Mosquitto, store_url: str,
                    cut: Callable[[], None], restore: Callable[[], None]) -> None:
    """``serve`` on ``store_url`` with MQTT, REST and file drop loaded; the database taken away
    by ``cut`` for 2.5 s and given back by ``restore``: nothing lost, nothing twice, no REST
    200 while it was away."""
    home = make_home(tmp_path / "home", mqtt_toml(broker), rest_port=free_port(),
                     store_url=store_url)
    station = StationProcess(home)
    rest = RestSender(Readings(home.devices), RATE, home.rest_port, home.keys)
    senders: list[Sender] = [MqttSender(Readings(home.devices), RATE, broker.port), rest,
                             FileSender(Readings(home.devices), RATE, home.inbox)]
    seen: dict[str, float] = {}

    def outage() -> None:
        began = time.monotonic()
        seen["during"], _ = _watch_acks(rest, cut, restore, 2.5)
        seen["away_s"] = time.monotonic() - began

    verdicts = run_through(station, senders, outage, settle=0.7)
    assert_nothing_lost(senders, verdicts)
    assert seen["during"] == 0, f"REST acknowledged {seen['during']} readings with no database"
    print(f"REST answers: {rest.statuses}; database away {seen['away_s']:.1f} s")


@pytest.mark.postgres
def test_postgresql_unreachable_stops_acknowledgements_then_catches_up(
    tmp_path: Path, broker: Mosquitto, pg_url: str
) -> None:
    url = sqlalchemy.make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    relayed = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        # Requests in the outage are held until the pipeline gives up (~4 s), then answered
        # 503 with Retry-After (the sender retries them), or held until the database is back.
        database_outage(tmp_path, broker, relayed, proxy.cut, proxy.restore)
    finally:
        proxy.close()


@pytest.mark.postgres
@pytest.mark.skipif(not FULL, reason="full form only (~30 s: its own server's initdb and "
                    "start); in CI the relay cut above takes the database away instead")
def test_postgresql_restarted_stops_acknowledgements_then_catches_up(
    tmp_path: Path, broker: Mosquitto
) -> None:
    server = PrivatePostgres()
    try:
        server.start()
        # The stop ends every session (the station's pooled connections with them); the
        # server is down 2.5 s, then started on the same port.
        database_outage(tmp_path, broker, server.url, server.stop, server.start)
    finally:
        server.close()


def test_sqlite_locked_by_another_process_then_catches_up(tmp_path: Path,
                                                          broker: Mosquitto) -> None:
    home = make_home(tmp_path / "home", mqtt_toml(broker), rest_port=free_port())
    station = StationProcess(home)
    rest = RestSender(Readings(home.devices), RATE, home.rest_port, home.keys)
    senders: list[Sender] = [MqttSender(Readings(home.devices), RATE, broker.port), rest,
                             FileSender(Readings(home.devices), RATE, home.inbox)]
    database = home.path / "vitalstation.db"
    held_s = 15.0 if FULL else 3.0  # full form: past the 10 s busy timeout and retries
    seen: dict[str, int] = {}

    def lock() -> None:
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys, time\n"
             "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "db.execute('BEGIN EXCLUSIVE')\n"
             "print('locked', time.monotonic(), flush=True)\n"
             "time.sleep(float(sys.argv[2]))\n"
             "db.execute('COMMIT')\n",
             str(database), str(held_s)],
            stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout is not None
        word, locked_at = holder.stdout.readline().split()
        assert word == "locked"
        # From the holder's own clock (monotonic is system-wide here), not from when this
        # process read the line: a late read must not stretch the window past the commit.
        window_start = float(locked_at) + held_s / 2
        window_end = float(locked_at) + held_s - 0.5
        time.sleep(max(0.0, window_start - time.monotonic()))
        before = len(rest.acked)
        time.sleep(max(0.0, window_end - time.monotonic()))
        seen["during"] = len(rest.acked) - before
        assert holder.wait(10) == 0
        holder.stdout.close()

    verdicts = run_through(station, senders, lock, settle=0.7)
    assert_nothing_lost(senders, verdicts)
    assert seen["during"] == 0, "REST acknowledged readings while the database was locked"


def test_kinesis_throttling_and_an_expired_iterator_lose_nothing(
    tmp_path: Path, moto_kinesis: str
) -> None:
    stream = f"faults-throttle-{time.monotonic_ns()}"
    create_stream(moto_kinesis, stream, shards=1)
    proxy = KinesisFaultProxy(moto_kinesis).start()
    home: Home = make_home(
        tmp_path / "home",
        f'[mqtt]\nenabled = false\n[kinesis]\nenabled = true\nstream = "{stream}"\n'
        f'endpoint_url = "{proxy.url}"\npoll_interval_ms = 100\n',
        rest_port=free_port(),
    )
    station = StationProcess(home)
    senders: list[Sender] = [KinesisSender(Readings(home.devices), RATE, moto_kinesis, stream)]

    def faults() -> None:
        proxy.inject("GetRecords", "ProvisionedThroughputExceededException", 3)
        wait_until(lambda: proxy.pending() == 0, 30, "the throttling to be served")
        time.sleep(0.5)
        proxy.inject("GetRecords", "ExpiredIteratorException", 2)
        wait_until(lambda: proxy.pending() == 0, 30, "the expired iterators to be served")

    try:
        verdicts = run_through(station, senders, faults, settle=0.7)
    finally:
        proxy.close()
    assert_nothing_lost(senders, verdicts)
    assert proxy.injected == {"ProvisionedThroughputExceededException": 3,
                              "ExpiredIteratorException": 2}
    # After an expired iterator the reader asked for a new one (from its checkpoint).
    assert proxy.calls["GetShardIterator"] >= 2, proxy.calls
