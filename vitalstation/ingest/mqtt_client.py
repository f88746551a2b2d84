"""paho's client, with reads and acknowledgements batched: the MQTT input's network side.

paho 2.x reads every packet with three ``recv`` calls (command byte, length, body), one
``select`` each, and ``Client.ack`` queues each PUBACK as its own packet and wakes the network
thread through a socket pair, once per message. Every one of those system calls lets go of
the GIL; with the pipeline thread busy, each one may cost the network thread a wait for it
(the interpreter's switch interval, 5 ms): measured, the station's paho thread spent ~1.9x a
bare subscriber's CPU per message, and a paced message could wait tens of milliseconds to be
read. This client:

* **reads ahead**: one ``recv`` of up to ``READ_CHUNK`` bytes, then packets are taken from
  that buffer until it is empty, without going back to ``select`` in between (paho's loop
  would not know the bytes are there: ``loop_read`` drains them before it returns). A packet
  wholly in the buffer is cut out in one step (paho asks for the command byte, each length
  byte and the body separately, and keeps its progress in a dict); one cut at the buffer's
  end is left to paho's read, which completes it;
* **batches PUBACKs**: :meth:`queue_puback` (any thread) adds a message id to a list and wakes
  the network thread only when the list was empty; the network thread writes the whole list
  as one buffer, in the order the ids were queued (MQTT wants PUBACKs in the order of the
  PUBLISHes), whenever it writes;
* **hands a QoS 0/1 message over leanly**: paho builds each incoming message with a
  ``MQTTMessageInfo`` and its ``threading.Condition`` (meant for outgoing messages; ~8 us and
  a dozen objects for the garbage collector), formats a debug log line, and matches the topic
  against the filtered callbacks even when there are none (~7 us). Here the message gets no
  ``info`` (``None``), the debug line is formatted only when debug logging is on (paho's own
  path is taken then), and the topic is matched only once ``message_callback_add`` was used.
  An MQTT 3.1.1 PUBLISH is decoded by slicing (paho builds two ``struct`` formats per
  message); MQTT 5 (properties) uses paho's decoder, and QoS 2 takes paho's path.

A new connection (``reconnect``) drops both: bytes read ahead belong to the old socket, and
message ids mean nothing on a new connection (the broker sends unacknowledged messages again).
All of it relies on paho 2.x internals (``_sock_recv``, ``_out_packet``, ``_sockpairW``,
``_handle_publish``, ``_packet.decode_publish``), pinned by ``paho-mqtt<3`` and covered by
``tests/ingest/test_mqtt_client.py``; without ``decode_publish`` paho's own path is used.
"""

from __future__ import annotations

import logging
import struct
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

try:
    from paho.mqtt._packet import decode_publish as _decode_publish
except ImportError:  # another paho 2.x layout: its own _handle_publish is used
    _decode_publish = None

__all__ = ["READ_CHUNK", "BatchingClient"]

# Bytes asked of the socket per read: ~600 one-vital messages, far more than a broker sends
# unacknowledged at once (Mosquitto: 20 for MQTT 3.1.1; our MQTT 5 receive maximum: 1,000).
READ_CHUNK = 65_536
# A PUBACK of MQTT 3.1.1 and 5 (reason "success", no properties, which v5 lets us omit):
# 0x40, remaining length 2, the message id; four bytes, packed as one big-endian integer.
_PUBACK_HEAD = 0x4002_0000


class BatchingClient(paho.Client):
    """paho's client with read-ahead and batched PUBACKs (see the module docstring).

    It also remembers why the last connection attempt failed (paho drops it), for the input's
    health detail.
    """

    last_connect_error: OSError | None = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._read_buffer = b""
        self._read_pos = 0
        self._acks_lock = threading.Lock()
        self._acks: list[int] = []
        self.acks_sent = 0  # PUBACKs written by queue_puback's path, for tests and benches
        self.ack_writes = 0  # buffers they were written in
        self._filtered_callbacks = False  # message_callback_add used: paho's topic matching

    # -- connection ----------------------------------------------------------------------

    def reconnect(self) -> MQTTErrorCode:
        """paho's reconnect, on a clean slate; the reason of a failure is kept for health."""
        self._read_buffer, self._read_pos = b"", 0
        self.drop_pubacks()
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_error = exc
            raise

    # -- reading ahead -------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes: from the read-ahead buffer, else one large read."""
        buffer, pos = self._read_buffer, self._read_pos
        if pos < len(buffer):
            end = pos + bufsize
            self._read_pos = end
            return buffer[pos:end]
        data = super()._sock_recv(max(bufsize, READ_CHUNK))
        if len(data) <= bufsize:  # everything asked for, or b"" (closed): nothing kept
            if buffer:
                self._read_buffer, self._read_pos = b"", 0
            return data
        self._read_buffer, self._read_pos = data, bufsize
        return data[:bufsize]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's read, repeated until the bytes read ahead are used up.

        ``select`` only sees the socket: what sits in our buffer must be handled now. A packet
        cut at the buffer's end is completed by paho's next read of the socket, which then
        finds it empty (``EAGAIN``) and returns: the rest arrives with the next ``select``.
        """
        rc = super().loop_read(max_packets)
        while (rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._read_pos < len(self._read_buffer)
               and self._sock is not None):
            rc = super().loop_read(max_packets)
        return rc

    def _packet_read(self) -> MQTTErrorCode:
        """One packet: cut from the read-ahead buffer when it is all there, else paho's read.

        Leaves paho's state (``_in_packet``, the time of the last bytes received for the
        keepalive) as paho's own read would.
        """
        buffer, pos = self._read_buffer, self._read_pos
        end = len(buffer)
        if pos >= end or self._in_packet["command"] != 0:
            return super()._packet_read()
        length, mult, index = 0, 1, pos + 1
        while True:  # the remaining length: 1 to 4 bytes of 7 bits, least significant first
            if index >= end or index - pos > 4:
                return super()._packet_read()  # cut, or too long (paho reports the error)
            byte = buffer[index]
            index += 1
            length += (byte & 127) * mult
            mult *= 128
            if not byte & 128:
                break
        if index + length > end:
            return super()._packet_read()  # the body is cut: paho's read completes it
        self._read_pos = index + length
        self._in_packet = {
            "command": buffer[pos], "have_remaining": 1,
            "remaining_count": list(buffer[pos + 1:index]), "remaining_mult": mult,
            "remaining_length": length, "packet": buffer[index:index + length],
            "to_process": 0, "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = time.monotonic()  # paho's time_func
        return rc

    # -- handing messages over -----------------------------------------------------------

    def message_callback_add(self, sub: str, callback: paho.CallbackOnMessage) -> None:
        """paho's; from now on every message's topic is matched against the filters."""
        self._filtered_callbacks = True
        super().message_callback_add(sub, callback)

    def _handle_publish(self) -> MQTTErrorCode:
        """A QoS 0/1 PUBLISH to ``on_message`` without paho's per-message extras."""
        command = self._in_packet["command"]
        if (_decode_publish is None or (command & 0x06) > 0x02 or self.on_log is not None
                or (self._logger is not None and self._logger.isEnabledFor(logging.DEBUG))):
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        qos = (command & 0x06) >> 1
        message = paho.MQTTMessage.__new__(paho.MQTTMessage)
        if type(packet) is bytes and self._protocol != MQTTProtocolVersion.MQTTv5:
            # Topic length, topic, message id (QoS 1), payload: what decode_publish reads.
            size = len(packet)
            topic_end = 2 + ((packet[0] << 8) | packet[1]) if size >= 2 else size + 1
            body = topic_end + 2 if qos else topic_end
            if body > size or topic_end == 2:
                raise MalformedPacket("PUBLISH too short for its topic and id, or empty topic")
            message.mid = (packet[topic_end] << 8) | packet[topic_end + 1] if qos else 0
            message._topic = packet[2:topic_end]
            message.payload = packet[body:]
            message.properties = None
        else:
            result = _decode_publish(command, packet, self._protocol)
            message.mid = result.mid
            message._topic = result.topic
            message.payload = result.payload
            message.properties = result.properties
        message.timestamp = time.monotonic()  # as paho's: its time_func
        message.state = paho.mqtt_ms_invalid
        message.dup = bool(command & 0x08)
        message.qos = qos
        message.retain = bool(command & 0x01)
        message.info = None  # type: ignore[assignment] - incoming: nothing to wait for
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        """``on_message``, as paho calls it, unless filtered callbacks need paho's matching."""
        if self._filtered_callbacks:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    # -- batched acknowledgements --------------------------------------------------------

    def queue_puback(self, mid: int) -> None:
        """Acknowledge QoS 1 message ``mid`` with the next write (any thread).

        The caller makes sure that ``mid`` belongs to the current connection (the input's
        generation check, under its own lock, which also calls :meth:`drop_pubacks`).
        """
        with self._acks_lock:
            self._acks.append(mid)
            wake = len(self._acks) == 1
        if wake:  # the network thread may be asleep in select: one byte wakes it
            wakeup = self._sockpairW
            if wakeup is not None:
                try:
                    wakeup.send(b"\0")
                except OSError:  # full (it is awake anyway) or closed (stopping)
                    pass

    def drop_pubacks(self) -> None:
        """Forget queued PUBACKs: their connection is gone."""
        with self._acks_lock:
            self._acks.clear()

    def flush_pubacks(self) -> None:
        """Queue every waiting PUBACK as one write, behind what paho already queued."""
        with self._acks_lock:
            acks = self._acks
            if not acks:
                return
            self._acks = []
            count = len(acks)
            packet = struct.pack(f"!{count}I", *[_PUBACK_HEAD | mid for mid in acks])
            self._out_packet.append({
                "command": paho.PUBACK, "mid": 0, "qos": 0, "pos": 0,
                "to_process": len(packet), "packet": packet, "info": None,
            })
            self.acks_sent += count
            self.ack_writes += 1

    def want_write(self) -> bool:
        """paho's answer, or PUBACKs waiting (so that ``select`` watches for writing)."""
        return bool(self._acks) or super().want_write()

    def loop_write(self) -> MQTTErrorCode:
        """paho's write, with the waiting PUBACKs added first as one buffer."""
        self.flush_pubacks()
        return super().loop_write()
