"""The REST receiver's HTTP/1.1 framing over raw sockets: pipelined requests, heads and bodies
split across TCP segments (down to a byte each), 100-continue, unwanted bodies, a half-closed
client, and flow control (a client cannot make the server buffer without bound).

The receiver runs in process on SQLite (the shared harness of ``test_rest.py``); the framing
does not depend on the database.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.ingest.test_rest_harness import Station, now_iso, open_station
from vitalstation.ingest.rest import DRAIN_LIMIT_BYTES, RestConfig, RestInput
from vitalstation.pipeline.core import Pipeline

pytestmark = pytest.mark.timeout(60)
VITALS = "/api/iot/vitals/"


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> Iterator[Station]:
    opened = open_station(f"sqlite:///{tmp_path_factory.mktemp('http') / 'station.db'}")
    yield opened
    opened.close()


def post(key: str, body: bytes, *, path: str = VITALS, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n"
    ).encode() + extra + b"\r\n" + body


def reading(device: str, heart_rate: int, offset_s: float = 0.0) -> bytes:
    return json.dumps({"device_id": device, "timestamp": now_iso(offset_s),
                       "heart_rate": heart_rate}).encode()


def connect(rest: RestInput) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", rest.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send its own segment
    return sock


class Answers:
    """Answers read off a raw socket, one at a time, framed by their Content-Length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.data += chunk
        return bool(chunk)

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.data:
            if not self._more():
                raise EOFError(f"closed before an answer (got {self.data[:80]!r})")
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            return status, headers, b""
        length = int(headers["content-length"])
        while len(self.data) < length:
            if not self._more():
                raise EOFError("closed mid-answer")
        body, self.data = self.data[:length], self.data[length:]
        return status, headers, body

    def closed(self) -> bool:
        """True if the server closes the connection with nothing more sent."""
        try:
            return not self.data and not self._more()
        except ConnectionResetError:
            return True


def stored(station: Station, device: str) -> list[float]:
    return sorted(r.value for r in station.store.queries.readings(device_id=device))


def test_pipelined_requests_are_answered_in_order(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    requests = (
        post(key, reading(device, 61, -3))
        + b"GET /api/openapi.json HTTP/1.1\r\nHost: station\r\n\r\n"
        + post("vs_AAAAAAAA_" + "A" * 43, reading(device, 99, -2))  # 401, its body skipped
        + post(key, reading(device, 62, -1))
        + b"GET /api/iot/status/ HTTP/1.1\r\nHost: station\r\nAuthorization: Bearer "
        + key.encode() + b"\r\nConnection: close\r\n\r\n"
    )
    with connect(station.rest) as sock:
        sock.sendall(requests)  # all at once: several requests in one segment
        answers = Answers(sock)
        replies = [answers.next() for _ in range(5)]
        assert answers.closed()
    assert [status for status, _, _ in replies] == [200, 200, 401, 200, 200]
    assert json.loads(replies[0][2])["success"] is True
    assert json.loads(replies[1][2])["openapi"].startswith("3.")
    assert json.loads(replies[3][2])["vital_sign_id"] > json.loads(replies[0][2])["vital_sign_id"]
    assert json.loads(replies[4][2])["device_id"] == device
    assert replies[4][1]["connection"] == "close"
    assert stored(station, device) == [61.0, 62.0]


def test_a_request_sent_a_byte_at_a_time_is_served(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    first = post(key, reading(device, 63, -1))
    with connect(station.rest) as sock:
        for index in range(len(first)):
            sock.send(first[index:index + 1])
            if index % 16 == 0:
                time.sleep(0.002)  # let the server read what came so far
        answers = Answers(sock)
        status, headers, body = answers.next()
        assert status == 200, body
        assert "connection" not in headers  # kept alive
        sock.sendall(post(key, reading(device, 64)))  # the next request on the same connection
        assert answers.next()[0] == 200
    assert stored(station, device) == [63.0, 64.0]


def test_a_body_split_across_segments_is_served(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    request = post(key, reading(device, 65))
    head_end = request.index(b"\r\n\r\n") + 4
    pieces = (request[:head_end - 3], request[head_end - 3:head_end + 5],
              request[head_end + 5:head_end + 20], request[head_end + 20:])
    with connect(station.rest) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        status, _, body = Answers(sock).next()
    assert status == 200, body
    assert stored(station, device) == [65.0]


def test_an_unwanted_body_is_skipped_and_the_connection_kept(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    wrong = "vs_AAAAAAAA_" + "A" * 43
    with connect(station.rest) as sock:
        answers = Answers(sock)
        # Refused on its key before its body was read: the body, in pieces, is skipped and
        # the next request is served on the same connection.
        body = reading(device, 98)
        request = post(wrong, body)
        sock.sendall(request[:-len(body)])
        time.sleep(0.05)
        sock.sendall(body[:7])
        time.sleep(0.05)
        sock.sendall(body[7:] + post(key, reading(device, 66)))
        status, headers, _ = answers.next()
        assert status == 401 and "connection" not in headers
        assert answers.next()[0] == 200
    with connect(station.rest) as sock:
        # A body over DRAIN_LIMIT_BYTES is not worth reading: the connection is closed.
        big = b"{" + b" " * DRAIN_LIMIT_BYTES + b"}"
        sock.sendall(post(wrong, big)[:-len(big)])
        answers = Answers(sock)
        status, headers, _ = answers.next()
        assert status == 401 and headers["connection"] == "close"
        assert answers.closed()
    assert stored(station, device) == [66.0]


def test_100_continue_is_sent_only_for_a_wanted_body(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    expect = b"Expect: 100-continue\r\n"
    with connect(station.rest) as sock:
        body = reading(device, 67, -1)
        sock.sendall(post(key, body, extra=expect)[:-len(body)])
        answers = Answers(sock)
        assert answers.next()[0] == 100
        sock.sendall(body)
        assert answers.next()[0] == 200
        body = reading(device, 68)  # the connection is kept: again on it
        sock.sendall(post(key, body, extra=expect)[:-len(body)])
        assert answers.next()[0] == 100
        sock.sendall(body)
        assert answers.next()[0] == 200
    with connect(station.rest) as sock:
        body = reading(device, 97)
        sock.sendall(post("vs_AAAAAAAA_" + "A" * 43, body, extra=expect)[:-len(body)])
        answers = Answers(sock)
        status, headers, _ = answers.next()  # no 100 first: the body is not wanted
        # The client may or may not send the body now: the connection starts afresh.
        assert status == 401 and headers["connection"] == "close"
        assert answers.closed()
    assert stored(station, device) == [67.0, 68.0]


def test_a_half_closed_client_still_gets_its_answers(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    with connect(station.rest) as sock:
        sock.sendall(post(key, reading(device, 69, -1)) + post(key, reading(device, 70)))
        sock.shutdown(socket.SHUT_WR)  # nothing more will come
        answers = Answers(sock)
        assert [answers.next()[0] for _ in range(2)] == [200, 200]
        assert answers.closed()
    with connect(station.rest) as sock:
        body = reading(device, 96)
        sock.sendall(post(key, body)[:-5])  # the body is cut short, then the client stops
        sock.shutdown(socket.SHUT_WR)
        answers = Answers(sock)
        status, headers, answer = answers.next()
        assert status == 400 and b"Incomplete request body" in answer
        assert headers["connection"] == "close"
    assert stored(station, device) == [69.0, 70.0]


def test_a_huge_content_length_on_an_unwanted_body_is_answered(station: Station) -> None:
    # A GET's Content-Length is never checked by an endpoint; one of 5,000 digits once made
    # the skipping of the body fail (int() refuses such strings) and the answer was lost.
    with connect(station.rest) as sock:
        sock.sendall(b"GET /api/openapi.json HTTP/1.1\r\nHost: station\r\nContent-Length: "
                     + b"9" * 5000 + b"\r\n\r\n")
        answers = Answers(sock)
        status, headers, _ = answers.next()
        assert status == 200 and headers["connection"] == "close"
        assert answers.closed()
    assert station.client().get("/api/openapi.json").status == 200


class _HeldStore:
    """A store that holds every commit until released, then fails it (a stalled database)."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def write_readings(self, readings, now):
        self.release.wait(30)
        raise RuntimeError("database is locked")

    def write_dead_letter(self, *args) -> None: ...
    def write_activity(self, entries, purge) -> None: ...


def test_a_client_cannot_make_the_server_buffer_without_bound(station: Station) -> None:
    """Behind a request waiting for its commit, a client pipelines requests without end: the
    server stops reading (the client's sends block once the sockets' buffers are full) and
    serves them all, in order, once the commit comes."""
    device = station.device()
    key = station.key(device).key
    release = threading.Event()
    held = Pipeline(_HeldStore(release), retry_delays_s=())
    held.start()
    rest = RestInput(RestConfig(port=0, rate_limit=0), held, station.keys)
    rest.start()
    pad = b"X-Pad: " + b"p" * 4000 + b"\r\n"
    filler = b"GET /api/nothing/ HTTP/1.1\r\nHost: station\r\n" + pad * 2 + b"\r\n"
    try:
        with connect(rest) as sock:
            sock.sendall(post(key, reading(device, 71)))
            time.sleep(0.2)  # the reading is in flight: its commit is held
            sock.setblocking(False)
            pushed = offset = 0  # bytes of an endless stream of fillers; offset in a filler
            blocked_since = None
            while pushed < 64 * 1024 * 1024:
                try:
                    sent = sock.send(filler[offset:])
                except BlockingIOError:
                    blocked_since = blocked_since or time.monotonic()
                    if time.monotonic() - blocked_since > 1.0:
                        break  # the server has stopped reading
                    time.sleep(0.01)
                    continue
                blocked_since = None
                pushed += sent
                offset = (offset + sent) % len(filler)
            fillers = -(-pushed // len(filler))  # requests begun
            print(f"pushed {pushed / 1e6:.1f} MB ({fillers} requests) before the server "
                  "stopped reading")
            assert pushed < 32 * 1024 * 1024, "the server kept reading behind a held request"
            release.set()
            sock.setblocking(True)
            sock.settimeout(20)
            if offset:
                sock.sendall(filler[offset:])  # the filler cut short
            sock.sendall(b"GET /api/openapi.json HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n")
            answers = Answers(sock)
            first = answers.next()
            assert first[0] == 503, first  # the held commit failed: nothing acknowledged
            statuses = [answers.next()[0] for _ in range(fillers + 1)]
            assert statuses == [404] * fillers + [200]
            assert answers.closed()
    finally:
        release.set()
        rest.stop(5)
        held.stop(5)


def answer_now(station: Station, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """The answer to ``head``, which must come at once (well within the 30 s idle timeout),
    after which the server closes the connection."""
    with connect(station.rest) as sock:
        sock.settimeout(3)
        sock.sendall(head)
        answers = Answers(sock)
        started = time.monotonic()
        try:
            reply = answers.next()
        except TimeoutError:
            pytest.fail(f"no answer to {head[:60]!r} within 3 s")
        assert time.monotonic() - started < 3
        assert answers.closed()
    return reply


def test_an_http11_request_without_host_is_refused_at_once(station: Station) -> None:
    # A request with no header line at all once waited for a blank line after its headers
    # (a CRLF CRLF after the request line's own CRLF) until the idle timeout.
    for head in (
        b"GET /api/openapi.json HTTP/1.1\r\n\r\n",
        b"GET /api/openapi.json HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"GET /api/openapi.json HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ):
        status, headers, body = answer_now(station, head)
        assert status == 400, (head, body)
        assert headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        answer = json.loads(body)
        assert answer["success"] is False and "Host header" in answer["error"], answer
    # HTTP/1.0 has no Host requirement; a Host header of any case counts.
    assert answer_now(station, b"GET /api/openapi.json HTTP/1.0\r\n\r\n")[0] == 200
    status, _, _ = answer_now(
        station, b"GET /api/openapi.json HTTP/1.1\r\nhOsT: s\r\nConnection: close\r\n\r\n")
    assert status == 200


def test_a_head_with_bare_lf_line_ends_is_refused_at_once(station: Station) -> None:
    # Lines must end with CRLF: a bare LF anywhere in the head is a 400 that says so, sent as
    # soon as the head is complete, whichever way its blank line ends.
    for head in (
        b"GET /api/iot/status/ HTTP/1.1\nHost: x\n\n",
        b"GET /api/iot/status/ HTTP/1.1\r\nHost: x\n\n",
        b"GET /api/iot/status/ HTTP/1.1\r\nHost: x\r\n\n",
        b"GET /api/iot/status/ HTTP/1.1\r\nHost: x\r\nAccept: */*\n\n",
        b"GET /api/iot/status/ HTTP/1.1\r\nHost: x\nAccept: */*\r\n\r\n",
        b"GET /api/iot/status/ HTTP/1.0\r\nHost: x\n\n",
        b"\r\nGET /api/iot/status/ HTTP/1.1\r\nHost: x\n\n",
    ):
        status, headers, body = answer_now(station, head)
        assert status == 400, (head, body)
        assert headers["connection"] == "close"
        answer = json.loads(body)
        assert answer["success"] is False and "CRLF" in answer["error"], answer


def test_a_bare_lf_head_in_pieces_is_refused_when_complete(station: Station) -> None:
    # The blank line split across segments (LF, then LF) still ends the head.
    with connect(station.rest) as sock:
        sock.settimeout(3)
        sock.sendall(b"POST /api/iot/vitals/ HTTP/1.1\r\nHost: x\r\nX-A: 1\n")
        time.sleep(0.1)
        sock.sendall(b"\n")
        status, _, body = Answers(sock).next()
    assert status == 400 and b"CRLF" in body
