"""Hostile clients of the REST receiver: a 100 MB body, slow-loris connections, a burst 10x
over the rate limit.

The receiver runs in process (the shared harness of ``tests/ingest``: real store, pipeline and
HTTP on loopback), with small limits where the default would only make the test slow: the
logic under test is the same. The fuzzing from the OpenAPI document is
``tests/ingest/test_rest_fuzz.py`` (in process, ``VITALSTATION_FUZZ_EXAMPLES`` cases) and
``test_rest_fuzz_serve.py`` here (against ``vitalstation serve``, with its memory watched).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from tests.ingest.test_rest_harness import Station, now_iso, open_station
from vitalstation.storage.schema import vital_signs

pytestmark = pytest.mark.timeout(60)
VITALS = "/api/iot/vitals/"


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> Iterator[Station]:
    opened = open_station(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'station.db'}")
    yield opened
    opened.close()


def _request_head(key: str, length: int) -> bytes:
    return (f"POST {VITALS} HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {length}\r\n\r\n").encode()


def test_a_100_mb_body_is_refused_before_it_is_read(station: Station) -> None:
    """413 comes back before a byte of the body is sent; pushing the body anyway gets at most
    what the kernel's socket buffers hold before the server's close stops it."""
    key = station.key(station.device()).key
    hundred_mb = 100 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", station.rest.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(_request_head(key, hundred_mb))
        answer = sock.recv(65536)
        answered_s = time.monotonic() - started
        pushed = 0
        chunk = b" " * 65536
        try:
            while pushed < hundred_mb:
                pushed += sock.send(chunk)
        except OSError:
            pass
    print(f"100 MB body: 413 after {answered_s * 1000:.1f} ms with 0 body bytes sent; "
          f"{pushed / 1e6:.1f} MB accepted by the sockets before the close")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"Connection: close" in answer
    assert answered_s < 1.0
    assert pushed < 32 * 1024 * 1024, "the server kept reading a body it had refused"
    # The receiver is unharmed.
    reply = station.client().post(VITALS, {"device_id": station.device(), "timestamp": now_iso(),
                                           "heart_rate": 70}, key=key)
    assert reply.status in (200, 403)  # 403: the key is another device's


def test_slow_loris_connections_time_out_and_do_not_starve_other_clients(
    station: Station,
) -> None:
    """As many slow-loris connections as the receiver's cap, each dribbling a header line
    every 0.3 s: a device that connects now is still served, and every slow connection is
    closed once its head has taken longer than the idle timeout."""
    cap, timeout_s = 32, 3.0
    rest = station.receiver(max_connections=cap, idle_timeout_s=timeout_s)
    device = station.device()
    key = station.key(device).key
    slow: list[socket.socket] = []
    closed_at: dict[int, float] = {}
    stop = threading.Event()
    started = time.monotonic()
    for _ in range(cap):
        sock = socket.create_connection(("127.0.0.1", rest.port), timeout=5)
        sock.sendall(b"POST /api/iot/vitals/ HTTP/1.1\r\n")
        slow.append(sock)

    def dribble() -> None:
        while not stop.is_set() and len(closed_at) < len(slow):
            for index, sock in enumerate(slow):
                if index in closed_at:
                    continue
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed_at[index] = time.monotonic() - started
            stop.wait(0.3)

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        time.sleep(0.5)  # every slow connection is open and mid-head
        assert not closed_at, "slow connections were refused before the test began"
        began = time.monotonic()
        reply = None
        try:
            reply = station.client(rest).post(
                VITALS, {"device_id": device, "timestamp": now_iso(), "heart_rate": 71}, key=key)
        except OSError as exc:
            pytest.fail(f"a device was locked out by {cap} slow-loris connections: {exc!r}")
        served_s = time.monotonic() - began
        assert reply.status == 200, reply.body
        assert served_s < 1.0, f"served only after {served_s:.2f} s"
        dribbler.join(timeout_s + 5)
    finally:
        stop.set()
        for sock in slow:
            sock.close()
    print(f"slow-loris x{cap}: device served in {served_s * 1000:.0f} ms; slow connections "
          f"closed after {min(closed_at.values()):.1f}-{max(closed_at.values()):.1f} s "
          f"(idle timeout {timeout_s:g} s)")
    # Each slow connection is closed by the server (a reset or an eviction), none outlives
    # the idle timeout by more than the sweep, the dribble period and a busy machine's lag.
    assert len(closed_at) == cap
    assert max(closed_at.values()) < timeout_s + 2.5


def test_a_burst_ten_times_over_the_rate_limit_is_held_at_the_limit(station: Station) -> None:
    """60 requests a minute allowed; 600 sent as fast as one connection goes: the bucket's 60
    plus one a second pass, every other one is a 429 with Retry-After, none is lost unsaid."""
    limit = 60
    rest = station.receiver(rate_limit=limit)
    device = station.device()
    key = station.key(device).key
    client = station.client(rest)
    statuses: dict[int, int] = {}
    retry_after: set[str] = set()
    started = time.monotonic()
    for n in range(10 * limit):
        reply = client.post(VITALS, {"device_id": device, "timestamp": now_iso(-600 + n * 0.5),
                                     "heart_rate": 72}, key=key)
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        if reply.status == 429:
            retry_after.add(reply.headers.get("retry-after", ""))
    elapsed = time.monotonic() - started
    accepted = statuses.get(200, 0)
    print(f"burst of {10 * limit} at {limit}/min in {elapsed:.1f} s: {statuses}, "
          f"Retry-After {sorted(retry_after)}")
    assert set(statuses) == {200, 429}, statuses
    assert limit <= accepted <= limit + elapsed * limit / 60 + 1, statuses
    assert "" not in retry_after and all(int(v) >= 1 for v in retry_after)
    with station.store.engine.connect() as db:
        stored = db.execute(select(func.count()).select_from(vital_signs).where(
            vital_signs.c.device_id == device)).scalar_one()
    assert stored == accepted  # every 200 is a stored reading, no 429 stored anything
