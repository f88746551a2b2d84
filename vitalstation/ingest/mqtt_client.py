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
  would not know the bytes are there: ``loop_read`` drains them before it returns);
* **batches PUBACKs**: :meth:`queue_puback` (any thread) adds a message id to a list and wakes
  the network thread only when the list was empty; the network thread writes the whole list
  as one buffer, in the order the ids were queued (MQTT wants PUBACKs in the order of the
  PUBLISHes), whenever it writes.

A new connection (``reconnect``) drops both: bytes read ahead belong to the old socket, and
message ids mean nothing on a new connection (the broker sends unacknowledged messages again).
Both rely on paho 2.x internals (``_sock_recv``, ``_out_packet``, ``_sockpairW``), pinned by
``paho-mqtt<3`` and covered by ``tests/ingest/test_mqtt_client.py``.
"""

from __future__ import annotations

import struct
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

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
