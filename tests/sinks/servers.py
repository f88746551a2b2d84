"""Real servers on loopback for the notification tests: SMTP (aiosmtpd), a scripted HTTP
webhook receiver, moto's DynamoDB server, and a throwaway TLS certificate."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd logs every connection (INFO) from its own thread, also after a test has ended and
# its captured output is closed; its warnings and errors still show.
logging.getLogger("mail.log").setLevel(logging.WARNING)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(folder: Path) -> Certificate:
    """openssl: a 2-day self-signed certificate with subjectAltName IP:127.0.0.1."""
    cert, key = folder / "smtp.crt", folder / "smtp.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return Certificate(cert, key)


@dataclass
class Mailbox:
    """What the SMTP server received: (envelope recipients, parsed message) per mail."""

    mails: list[tuple[list[str], Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        self.arrived.set()
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(
    *,
    certificate: Certificate | None = None,
    implicit_tls: bool = False,
    user: tuple[str, str] | None = None,
) -> Iterator[tuple[int, Mailbox]]:
    """aiosmtpd on a free port: plain, STARTTLS (``certificate``), or SSL (``implicit_tls``);
    with ``user``, AUTH LOGIN/PLAIN is required (over TLS)."""
    mailbox = Mailbox()
    port = free_port()
    options: dict[str, Any] = {}
    if certificate is not None and implicit_tls:
        options["ssl_context"] = certificate.server_context()
    elif certificate is not None:
        options.update(tls_context=certificate.server_context(), require_starttls=True)
    if user is not None:
        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(), auth_data.password.decode()
            ) == user
            if ok:
                mailbox.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        options.update(authenticator=authenticate, auth_required=True)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


@dataclass
class WebhookLog:
    """The POSTs received and the statuses still to answer (then 200)."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_server(statuses: list[int] | None = None) -> Iterator[tuple[str, WebhookLog]]:
    """An HTTP server on loopback answering each POST with the next of ``statuses``, then 200."""
    log = WebhookLog(statuses=list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            with log.lock:
                status = log.statuses.pop(0) if log.statuses else 200
                log.bodies.append(body)
                log.answered.append(status)
            reply = b'{"ok": true}' if status == 200 else b'{"error": "try later"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/ward5", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
