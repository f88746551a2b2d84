"""The Acceptor serves plain and TLS clients, and closing it leaves no socket open: neither a
connection being served nor one accepted an instant before the close (a leaked socket's
ResourceWarning fails the test that collects it: pytest runs with warnings as errors)."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from tests.sinks.servers import make_certificate
from vitalstation.ingest.accept import Acceptor, listen


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[_LoopThread]:
    running = _LoopThread()
    yield running
    running.stop()


def _start(loop_thread: _LoopThread, context: ssl.SSLContext | None = None
           ) -> tuple[Acceptor, int]:
    listener = listen("127.0.0.1", 0)
    acceptor = Acceptor(listener, _Echo, ssl_context=context, ssl_handshake_timeout=5,
                        name="test")

    async def start() -> None:
        acceptor.start()

    loop_thread.run(start())
    return acceptor, listener.getsockname()[1]


def test_plain_clients_are_served_and_closed_at_close(loop_thread) -> None:
    acceptor, port = _start(loop_thread)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(b"ping")
    assert client.recv(4) == b"ping"
    loop_thread.run(acceptor.close())
    assert client.recv(4) == b""  # the station closed its end
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_close_just_after_clients_connect_leaks_no_socket(loop_thread) -> None:
    for _ in range(20):
        acceptor, port = _start(loop_thread)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        loop_thread.run(acceptor.close())
        for client in clients:
            client.close()
        gc.collect()


def test_tls_clients_are_served_and_plain_ones_refused(loop_thread, tmp_path) -> None:
    certificate = make_certificate(tmp_path)
    acceptor, port = _start(loop_thread, certificate.server_context())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            certificate.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"ping")
        assert tls.recv(4) == b"ping"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert plain.recv(64) == b""  # the handshake failed: closed, nothing answered
    loop_thread.run(acceptor.close())
    gc.collect()
