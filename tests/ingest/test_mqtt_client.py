"""BatchingClient against a private Mosquitto: read-ahead and batched PUBACKs lose nothing.

What the broker was acknowledged is shown by what it redelivers to the same persistent session
on a new connection; what was read, by the messages received, intact and in order.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.ingest.mosquitto import Mosquitto, wait_until
from vitalstation.ingest import mqtt_client
from vitalstation.ingest.mqtt_client import BatchingClient

TOPIC = "healthcare/monitors/client-test"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto").start()
    yield mosquitto
    mosquitto.stop()


class Receiver:
    """A BatchingClient subscriber (manual acknowledgement, persistent session)."""

    def __init__(self, port: int, client_id: str = "batching-test", *,
                 auto_ack: bool = False) -> None:
        self.port = port
        self.auto_ack = auto_ack  # PUBACK each message as it arrives (on paho's thread)
        self.client_id = client_id
        self.messages: list[tuple[int, bytes]] = []  # (mid, payload)
        self.subscribed = threading.Event()
        self.client: BatchingClient | None = None

    def connect(self) -> BatchingClient:
        self.subscribed.clear()
        client = BatchingClient(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                clean_session=False, manual_ack=True)
        client.on_connect = lambda c, *args: c.subscribe(TOPIC, 1)
        client.on_subscribe = lambda *args: self.subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK"
        self.client = client
        return client

    def _on_message(self, client: BatchingClient, userdata: object,
                    message: paho.MQTTMessage) -> None:
        self.messages.append((message.mid, message.payload))
        if self.auto_ack:
            client.queue_puback(message.mid)

    def disconnect(self) -> None:
        assert self.client is not None
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None


def publish(port: int, payloads: list[bytes]) -> None:
    """QoS 1, every message acknowledged by the broker before returning."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="batching-test-pub")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(TOPIC, payload, qos=1) for payload in payloads]:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def payloads(count: int, size: int = 40) -> list[bytes]:
    return [f"{i:06d}".encode() + b"x" * (size + i % 7) for i in range(count)]


@pytest.mark.parametrize("chunk", [7, 200])
def test_packets_cut_across_reads_arrive_whole_and_in_order(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Reads of 7 bytes cut packets (header, length, topic, payload) at every place; reads of
    # 200 leave whole packets behind a cut one, which must not wait for the next select.
    monkeypatch.setattr(mqtt_client, "READ_CHUNK", chunk)
    receiver = Receiver(broker.port, auto_ack=True)
    client = receiver.connect()
    sent = payloads(300)
    publish(broker.port, sent)
    wait_until(lambda: len(receiver.messages) >= len(sent), message="300 messages")
    assert [payload for _, payload in receiver.messages] == sent
    wait_until(lambda: client.acks_sent == len(sent), message="the PUBACKs written")
    receiver.disconnect()


def test_a_backlog_is_read_in_few_socket_reads(broker: Mosquitto) -> None:
    receiver = Receiver(broker.port, auto_ack=True)
    receiver.connect()
    receiver.disconnect()
    sent = payloads(500)
    publish(broker.port, sent)  # waits in the persistent session
    reads = 0
    original = paho.Client._sock_recv

    def counting(self: paho.Client, bufsize: int) -> bytes:
        nonlocal reads
        reads += 1
        return original(self, bufsize)

    paho.Client._sock_recv = counting  # type: ignore[method-assign]
    try:
        receiver.connect()
        wait_until(lambda: len(receiver.messages) >= len(sent), message="500 messages")
    finally:
        paho.Client._sock_recv = original  # type: ignore[method-assign]
    assert [payload for _, payload in receiver.messages] == sent
    # paho alone makes three reads per packet (command, length, body) and one per select.
    assert reads < len(sent), f"{reads} socket reads for {len(sent)} messages"
    receiver.disconnect()


def test_batched_pubacks_acknowledge_exactly_what_was_queued(broker: Mosquitto) -> None:
    receiver = Receiver(broker.port)
    receiver.connect()
    receiver.disconnect()
    publish(broker.port, payloads(10))
    client = receiver.connect()
    wait_until(lambda: len(receiver.messages) == 10, message="10 messages")
    first_six = receiver.messages[:6]
    acker = threading.Thread(target=lambda: [client.queue_puback(mid) for mid, _ in first_six])
    acker.start()  # from another thread, as the pipeline does
    acker.join()
    wait_until(lambda: client.acks_sent == 6, message="6 PUBACKs written")
    assert client.ack_writes <= 6
    receiver.disconnect()  # paho writes the PUBACKs before its DISCONNECT

    receiver.messages.clear()
    receiver.connect()  # the persistent session sends again what was not acknowledged
    wait_until(lambda: len(receiver.messages) == 4, message="the 4 unacknowledged again")
    time.sleep(0.3)  # and nothing more
    assert [payload for _, payload in receiver.messages] == payloads(10)[6:]
    receiver.disconnect()


def test_pubacks_are_one_buffer_in_queue_order_and_dropped_with_their_connection() -> None:
    client = BatchingClient(CallbackAPIVersion.VERSION2, client_id="unit", manual_ack=True)
    wake_r, wake_w = socket.socketpair()
    client._sockpairW = wake_w  # the byte that wakes paho's select
    try:
        for mid in (1, 2, 65535):
            client.queue_puback(mid)
        assert wake_r.recv(10) == b"\0"  # one wake-up for the three
        assert client.want_write()
        client.flush_pubacks()
        assert client._out_packet[-1]["packet"] == bytes.fromhex("40020001" "40020002" "4002ffff")
        assert (client.acks_sent, client.ack_writes) == (3, 1)

        client.queue_puback(7)
        client.drop_pubacks()  # the connection was lost: id 7 means nothing on the next one
        queued = len(client._out_packet)
        client.flush_pubacks()
        assert len(client._out_packet) == queued
        assert client.acks_sent == 3
    finally:
        client._sockpairW = None
        wake_r.close()
        wake_w.close()


def _collect(port: int, protocol: MQTTProtocolVersion, topics: list[str],
             filtered: str | None = None) -> tuple[BatchingClient, list, list]:
    """A connected BatchingClient subscribed to ``topics`` at QoS 1: (client, on_message's
    messages, the filtered callback's messages)."""
    got: list[paho.MQTTMessage] = []
    routed: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    client = BatchingClient(CallbackAPIVersion.VERSION2, client_id="lean-test",
                            protocol=protocol)
    client.on_connect = lambda c, *args: c.subscribe([(topic, 1) for topic in topics])
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, u, message: got.append(message)
    if filtered is not None:
        client.message_callback_add(filtered, lambda c, u, message: routed.append(message))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    return client, got, routed


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv5])
def test_messages_handed_over_keep_every_field(
    broker: Mosquitto, protocol: MQTTProtocolVersion
) -> None:
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="lean-pub", protocol=protocol)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    properties = None
    if protocol is MQTTProtocolVersion.MQTTv5:
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = ("bed", "12")
    publisher.publish("lean/retained", b"kept", qos=1, retain=True).wait_for_publish(10)
    client, got, _ = _collect(broker.port, protocol, ["lean/#"])
    try:
        publisher.publish("lean/q0", b"zero", qos=0).wait_for_publish(10)
        publisher.publish("lean/q1", b"\x00one", qos=1, properties=properties).wait_for_publish(10)
        wait_until(lambda: len(got) == 3, message="3 messages")
        by_topic = {message.topic: message for message in got}
        retained, zero, one = by_topic["lean/retained"], by_topic["lean/q0"], by_topic["lean/q1"]
        assert (retained.payload, retained.qos, retained.retain) == (b"kept", 1, True)
        assert (zero.payload, zero.qos, zero.retain, zero.mid) == (b"zero", 0, False, 0)
        assert (one.payload, one.qos, one.retain, one.dup) == (b"\x00one", 1, False, False)
        assert one.mid > 0 and one.timestamp > 0
        assert one.info is None  # the lean hand-over, not paho's (which makes an info)
        if protocol is MQTTProtocolVersion.MQTTv5:
            assert one.properties.UserProperty == [("bed", "12")]
        else:
            assert one.properties is None
    finally:
        publisher.publish("lean/retained", b"", qos=1, retain=True).wait_for_publish(10)
        for each in (client, publisher):
            each.disconnect()
            each.loop_stop()


def test_filtered_callbacks_still_get_their_topics(broker: Mosquitto) -> None:
    client, got, routed = _collect(broker.port, MQTTProtocolVersion.MQTTv311,
                                   ["lean/#", "other/#"], filtered="lean/+")
    try:
        sender = paho.Client(CallbackAPIVersion.VERSION2, client_id="lean-pub")
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        sender.publish("lean/a", b"1", qos=1).wait_for_publish(10)
        sender.publish("other/b", b"2", qos=1).wait_for_publish(10)
        sender.disconnect()
        sender.loop_stop()
        wait_until(lambda: len(got) + len(routed) == 2, message="2 messages")
        assert [m.topic for m in routed] == ["lean/a"]
        assert [m.topic for m in got] == ["other/b"]
    finally:
        client.disconnect()
        client.loop_stop()


def _publish_packet(topic: bytes, payload: bytes, mid: int, qos: int = 1) -> bytes:
    """An MQTT 3.1.1 PUBLISH as a broker sends it."""
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (128 if length else 0))
        if not length:
            break
    return bytes([0x30 | qos << 1]) + bytes(encoded) + body


class _FedClient(BatchingClient):
    """A BatchingClient whose socket reads come from a list of byte strings (then EAGAIN)."""

    def __init__(self, reads: list[bytes]) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id="fed", manual_ack=True)
        self.reads = reads
        self.got: list[tuple[int, int, str, bytes]] = []
        self.on_message = lambda c, u, m: self.got.append((m.mid, m.qos, m.topic, m.payload))

    def _sock_recv_raw(self, bufsize: int) -> bytes:
        if not self.reads:
            raise BlockingIOError
        data = self.reads.pop(0)
        assert len(data) <= bufsize
        return data


def _fed(reads: list[bytes], monkeypatch: pytest.MonkeyPatch) -> _FedClient:
    monkeypatch.setattr(paho.Client, "_sock_recv",
                        lambda self, bufsize: self._sock_recv_raw(bufsize))
    client = _FedClient(reads)
    sock, peer = socket.socketpair()  # only for paho's checks and close; never read
    peer.close()
    client._sock = sock
    return client


def test_whole_and_cut_packets_from_the_read_ahead_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = b"p" * 300  # a two-byte remaining length
    packets = [
        _publish_packet(b"a/b", b"one", 1),
        _publish_packet(b"a/c", big, 2),
        _publish_packet(b"a/d", b"zero", 0, qos=0),
        _publish_packet(b"a/e", b"", 65535),
    ]
    stream = b"".join(packets)
    # Cut inside the second packet's length, then inside the last one's body.
    cut1, cut2 = len(packets[0]) + 2, len(stream) - 2
    client = _fed([stream[:cut1], stream[cut1:cut2], stream[cut2:]], monkeypatch)
    for _ in range(3):
        assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert client.got == [
        (1, 1, "a/b", b"one"), (2, 1, "a/c", big), (0, 0, "a/d", b"zero"), (65535, 1, "a/e", b""),
    ]
    assert all(type(payload) is bytes for *_, payload in client.got)
    assert client._in_packet["command"] == 0 and client._read_pos == len(client._read_buffer)


@pytest.mark.parametrize("packet", [
    bytes([0x32, 5, 0, 0, 0, 1, 97]),  # empty topic (MQTT 3.1.1 forbids it)
    bytes([0x32, 4, 0, 9, 97, 98]),  # topic longer than the packet
    bytes([0x32, 3, 0, 1, 97]),  # QoS 1 without its message id
])
def test_a_malformed_publish_is_a_protocol_error(
    packet: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _fed([packet + _publish_packet(b"a/b", b"after", 1)], monkeypatch)
    client._loop_rc_handle = lambda rc: rc  # type: ignore[method-assign] - no reconnect here
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert client.got == []
