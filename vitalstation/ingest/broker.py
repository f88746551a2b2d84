"""The embedded MQTT broker: a loopback broker inside the station, so MQTT works out of the box.

With ``[mqtt] url = "embedded"`` (the default) the station starts this broker on
``127.0.0.1:<[embedded_broker] port>`` (default 1883) before the MQTT input, which then
subscribes to it; devices and the simulator publish to it. With a real broker configured it is
not started at all.

Why amqtt
    It is pure Python (it bundles into the installer with no binary to ship, on every OS),
    embeds in an asyncio loop, which runs here on the broker's own thread, never the GUI's, and
    starts in milliseconds. A Mosquitto child process would be faster, but the installer would
    have to ship and update a broker binary for every OS, and a second process to supervise.
    Measured here the station stores about a third as much through amqtt as through Mosquitto
    (``bench/mqtt.py``): ample for a ward's few hundred messages a second, not for a hospital. A
    ward that outgrows it, or must not lose what devices published in a station crash, points
    ``mqtt.url`` at Mosquitto, EMQX or AWS IoT Core.

The port
    When the configured port is taken (a Mosquitto already installed as a service listens on
    1883 on many machines) the broker does not fail: it listens on a free port chosen by the OS
    and says so in the log and in its health, which the status bar shows: "port 1883 is in use
    (another MQTT broker?); embedded broker listening on 127.0.0.1:NNNNN instead — point devices
    there or set [embedded_broker] port". The fallback port changes at every start, so the lasting
    fix is a free port in the settings. Port 0 picks a free port without a warning (tests).

amqtt 0.12.1's limits, and what this module does about them
    * **MQTT 3.1.1 only**: CONNECT with protocol 5 (or 3.1) is refused. The MQTT input connects
      to this broker with 3.1.1 whatever ``mqtt.protocol`` says, with a warning in its health;
      devices must use 3.1.1 too.
    * **Persistent sessions of anonymous clients are dropped.** amqtt marks every client of its
      anonymous-auth plugin "anonymous" and then neither queues messages for it while it is
      away nor keeps its session. The station's own session must persist (QoS 1, clean session
      off), so this broker uses :class:`LoopbackAuthPlugin`, which accepts every client (it
      listens on loopback only) without that mark. Sessions of clients that stay away longer
      than ``SESSION_EXPIRY_S`` are dropped.
    * **Unacknowledged QoS 1 messages are not redelivered.** amqtt waits 5 s for a PUBACK, then
      forgets the message, and it does not resend unacknowledged messages after a reconnect.
      The MQTT input therefore never relies on redelivery for a message it has received: it
      keeps such a message and retries storing it itself (see ``ingest/mqtt.py``). A message
      still inside the broker when the station stops or crashes is lost with the broker's
      memory: there is no persistence.
    * **A race on fast PUBACKs**: amqtt registers its wait for a PUBACK after sending the
      PUBLISH, so a client that acknowledges within the same loop turn gets "Received PUBACK for
      unknown pending message" in the log and amqtt gives up on that message 5 s later. The
      message was delivered and acknowledged; only the log says otherwise. The station
      acknowledges after a commit, milliseconds later, so it rarely meets this.
    * **Shutdown with clients connected can hang** inside amqtt (a session's reader task whose
      cancellation is lost). :meth:`EmbeddedBroker.stop` cuts the connections first and bounds
      every step by ``SHUTDOWN_STEP_S``.
    * **Delivery QoS is the subscription's**: a QoS 0 publish reaches a QoS 1 subscriber as QoS 1,
      and messages queued for an absent session are delivered with the retain flag set. Neither
      matters to the station, which acknowledges everything it stores and ignores the flag.
    * Its INFO logging (a line per connection, and one per session state change from the
      ``transitions`` library under it) is turned down to WARNING, unless the application set
      those loggers' levels itself.

Threading: one thread (``vitalstation-mqtt-broker``) runs the asyncio loop with the broker and
its listening socket; :meth:`EmbeddedBroker.start` and :meth:`~EmbeddedBroker.stop` block until
it is ready or gone. This module must not import paho (the layer rule: paho lives only in
``ingest.mqtt*``): it uses amqtt's own API.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.accept import Acceptor, listen
from vitalstation.ingest.base import InputHealth, InputState

__all__ = ["BROKER_INPUT_NAME", "EmbeddedBroker", "LoopbackAuthPlugin", "port_in_use_message"]

_LOGGER = logging.getLogger(__name__)

BROKER_INPUT_NAME = "mqtt-broker"
LOOPBACK = "127.0.0.1"
# A persistent session whose client stays away this long is dropped with its queued messages.
# The station's own session is away only while its input reconnects; a day also covers
# devices that subscribe with persistent sessions and come back after a night switched off.
SESSION_EXPIRY_S = 24 * 3600
# Start and stop of the broker thread; both take milliseconds when nothing is wrong.
START_TIMEOUT_S = 10.0
# Each step of a shutdown (clients gone, amqtt's own shutdown, leftover tasks) at most.
SHUTDOWN_STEP_S = 1.0
_LISTENER = "default"


def port_in_use_message(port: int, actual: int) -> str:
    """What the station says when the configured port is taken and it listens elsewhere."""
    return (
        f"port {port} is in use (another MQTT broker?); embedded broker listening on "
        f"{LOOPBACK}:{actual} instead — point devices there or set [embedded_broker] port"
    )


class LoopbackAuthPlugin(BaseAuthPlugin):
    """Accepts every client, without marking it anonymous (so its persistent session is kept).

    The broker listens on loopback only: whoever can reach it runs on the station's machine.
    """

    async def authenticate(self, *, session: Session) -> bool | None:
        """Every client is let in."""
        return True


class EmbeddedBroker:
    """The loopback broker, as an input of the runtime (start, stop, health).

    ``port`` is the configured port; after :meth:`start`, :attr:`actual_port` is the one it
    listens on (they differ when the configured one was taken, or was 0).
    """

    name = BROKER_INPUT_NAME

    def __init__(self, port: int = 1883, *, clock: Clock = utc_now) -> None:
        self._port = port
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Broker | None = None
        self._acceptor: Acceptor | None = None
        self._actual_port: int | None = None
        self._connections = 0
        self._no_clients: asyncio.Event | None = None  # set while nobody is connected
        self._state = InputState.STOPPED
        self._detail = "not started"
        self._since: datetime | None = None
        self._warning = ""

    # -- the runtime's side ----------------------------------------------------------------

    @property
    def actual_port(self) -> int | None:
        """The port clients connect to, once started; None before or after."""
        return self._actual_port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` for the status bar and the MQTT input's health."""
        return f"mqtt://{LOOPBACK}:{self._actual_port if self._actual_port else self._port}"

    @property
    def warning(self) -> str:
        """Why the broker is not where it was configured to be, or ``""``."""
        return self._warning

    def start(self) -> None:
        """Start the broker thread and listen; returns once clients can connect.

        Raises ``OSError`` (with the reason) when no port at all can be opened.
        """
        if self._thread is not None:
            raise RuntimeError("the embedded broker is already started")
        # amqtt, and the state-machine library under its sessions, log every connection and
        # state change at INFO: a line per device per reconnect in the station's log.
        for chatty in ("amqtt", "transitions"):
            logger = logging.getLogger(chatty)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
        self._set_state(InputState.STARTING, f"starting on {LOOPBACK}:{self._port}")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="vitalstation-mqtt-broker", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._start_serving(), START_TIMEOUT_S)
        except BaseException as exc:
            self._set_state(InputState.DOWN, f"could not start: {exc}")
            self._stop_loop(START_TIMEOUT_S)
            raise
        if self._warning:
            _LOGGER.warning("%s", self._warning)
            self._set_state(InputState.DEGRADED, self._warning)
        else:
            self._set_state(InputState.UP, f"listening on {LOOPBACK}:{self._actual_port}")
            _LOGGER.info("embedded MQTT broker listening on %s:%d", LOOPBACK, self._actual_port)

    def stop(self, timeout: float = START_TIMEOUT_S) -> None:
        """Close every client connection and the listening socket, and end the thread."""
        if self._loop is None:
            return
        try:
            self._call(self._shutdown(), timeout)
        except Exception:  # noqa: BLE001 - the thread is stopped below regardless
            _LOGGER.exception("the embedded broker did not shut down cleanly")
        self._stop_loop(timeout)
        self._actual_port = None
        self._set_state(InputState.STOPPED, "stopped")

    def health(self) -> InputHealth:
        """UP while listening where configured; DEGRADED when it had to take another port."""
        detail = self._detail
        if self._state in (InputState.UP, InputState.DEGRADED):
            count = self._connections
            detail = f"{detail} ({count} client{'s' if count != 1 else ''} connected)"
        return InputHealth(self.name, self._state, detail, self._since)

    # -- the broker thread -----------------------------------------------------------------

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _call(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = None
        self._thread = None

    async def _start_serving(self) -> None:
        broker = Broker(
            {
                # Our own listening socket (below) hands connections to the broker: we choose
                # the address, see the port it got, and can fall back when it is taken.
                "listeners": {_LISTENER: {"type": "external"}},
                "session_expiry_interval": SESSION_EXPIRY_S,
                "plugins": {f"{__name__}.{LoopbackAuthPlugin.__name__}": {}},
            }
        )
        await broker.start()
        self._broker = broker
        self._no_clients = asyncio.Event()
        self._no_clients.set()
        try:
            listener = listen(LOOPBACK, self._port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or self._port == 0:
                await broker.shutdown()
                raise
            listener = listen(LOOPBACK, 0)
            self._warning = port_in_use_message(self._port, listener.getsockname()[1])
        self._actual_port = listener.getsockname()[1]
        # Not asyncio.start_server, which leaks a socket accepted just as it closes (accept.py).
        self._acceptor = Acceptor(listener, self._protocol, name="embedded broker")
        self._acceptor.start()

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._serve_client)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        broker = self._broker
        if broker is None:  # shutting down
            writer.close()
            return
        self._connections += 1
        if self._no_clients is not None:
            self._no_clients.clear()
        try:
            await broker.external_connected(
                StreamReaderAdapter(reader), StreamWriterAdapter(writer), _LISTENER
            )
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one client's failure must not reach the loop
            _LOGGER.exception("embedded broker: a client connection failed")
        finally:
            self._connections -= 1
            writer.close()
            if not self._connections and self._no_clients is not None:
                self._no_clients.set()

    async def _shutdown(self) -> None:
        """Drop the clients, then let amqtt tidy up, each step bounded.

        amqtt's own ``shutdown`` stops each session's reader task and waits for it; with a
        client still connected that wait can hang (a cancellation lost inside ``wait_for`` on
        Python 3.11), so the connections are cut first: every reader then ends on EOF.
        """
        acceptor, broker = self._acceptor, self._broker
        self._acceptor = None
        self._broker = None
        if acceptor is not None:
            await acceptor.close()  # every connection cut: each session's reader sees EOF
        if self._no_clients is not None:
            try:
                await asyncio.wait_for(self._no_clients.wait(), SHUTDOWN_STEP_S)
            except TimeoutError:
                _LOGGER.debug("embedded broker: clients still connected at shutdown")
        if broker is not None:
            try:
                await asyncio.wait_for(broker.shutdown(), SHUTDOWN_STEP_S)
            except TimeoutError:
                _LOGGER.debug("amqtt's shutdown did not finish in %.1f s", SHUTDOWN_STEP_S)
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_STEP_S)

    def _set_state(self, state: InputState, detail: str) -> None:
        if state is not self._state:
            self._since = self._clock()
        self._state = state
        self._detail = detail
