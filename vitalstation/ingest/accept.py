"""Accepting TCP clients in an asyncio loop without leaking a socket at stop.

The embedded broker and the REST receiver each run an asyncio loop on their own thread and stop
it when the station stops or an input restarts. ``asyncio.start_server`` cannot be stopped
cleanly on Python 3.11: a connection accepted in the loop turn of ``Server.close()`` fails an
assertion in ``Server._attach`` and its socket is never closed, and a client whose handler task
is cancelled before it first runs keeps its transport open past the loop's end. Each such
socket is a file descriptor lost for the life of the process (and a ``ResourceWarning``).

:class:`Acceptor` accepts synchronously from the listening socket's reader callback, hands each
socket to ``loop.connect_accepted_socket`` in a task it holds, keeps every transport it made,
and on :meth:`Acceptor.close` stops accepting, waits for the hand-overs under way and aborts
whatever is still open, letting the loop turn so that the sockets are really closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import weakref
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)

HANDOVER_TIMEOUT_S = 2.0  # a TLS handshake under way at stop gets this long, then is cut


class Acceptor:
    """Accepts clients on ``listener`` (non-blocking, listening) for ``protocol_factory``."""

    def __init__(
        self,
        listener: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        name: str = "server",
    ) -> None:
        self._listener = listener
        self._factory = protocol_factory
        self._ssl = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout if ssl_context else None
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._handovers: set[asyncio.Task[None]] = set()
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def start(self) -> None:
        """Start accepting (call on the loop's thread, inside the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._listener, self._accept)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already made carry on (a socket accepted
        but not yet handed over is closed)."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.remove_reader(self._listener)
        self._listener.close()

    async def close(self) -> None:
        """Stop accepting, then close every connection still open."""
        self.stop_accepting()
        if self._handovers:
            await asyncio.wait(set(self._handovers), timeout=HANDOVER_TIMEOUT_S)
            for task in list(self._handovers):
                task.cancel()
        for transport in list(self._transports):
            transport.abort()
        for _ in range(3):  # an abort closes the socket on the loop's next turn
            await asyncio.sleep(0)

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: the next readiness retries
                _LOGGER.warning("%s: cannot accept a client: %s", self._name, exc)
                return
            connection.setblocking(False)
            assert self._loop is not None
            task = self._loop.create_task(self._hand_over(connection))
            self._handovers.add(task)  # a task nobody holds can be collected mid-way
            task.add_done_callback(self._handovers.discard)

    async def _hand_over(self, connection: socket.socket) -> None:
        if self._closed:
            connection.close()
            return
        assert self._loop is not None
        try:
            transport, _ = await self._loop.connect_accepted_socket(
                self._factory, connection, ssl=self._ssl,
                ssl_handshake_timeout=self._ssl_handshake_timeout,
            )
        except BaseException as exc:
            connection.close()
            if not isinstance(exc, Exception):
                raise
            _LOGGER.debug("%s: a client left while connecting: %s", self._name, exc)
            return
        if self._closed:
            transport.abort()
        else:
            self._transports.add(transport)


def listen(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A non-blocking listening TCP socket (``OSError`` when the address is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(backlog)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener
