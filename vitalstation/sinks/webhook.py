"""Webhook notifications: an HTTP(S) POST of the notification JSON (see ``sinks.delivery``).

A 2xx answer is delivery. 408, 429 and 5xx answers, timeouts and connection errors are retried
by the outbox; any other 4xx is permanent (the receiver refuses this message as it is).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from vitalstation.sinks.delivery import NOTIFICATION_SCHEMA, DeliveryError

RETRIED_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "VitalStation-notifications/1"


def check_webhook_url(url: str) -> str | None:
    """Why ``url`` cannot be a webhook (not http(s), no host), or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL"
    return None


class WebhookSender:
    """POSTs one notification as JSON to the recipient URL."""

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    def send(self, recipient: str, payload: Mapping[str, Any]) -> None:
        """Deliver, or raise ``DeliveryError``."""
        problem = check_webhook_url(recipient)
        if problem:
            raise DeliveryError(problem, permanent=True)
        body = json.dumps({"schema": NOTIFICATION_SCHEMA, **dict(payload)}, default=str)
        request = urllib.request.Request(
            recipient, data=body.encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace")
            exc.close()
            status = exc.code
            raise DeliveryError(
                f"webhook {_safe(recipient)} answered {status}: {detail}".strip(),
                permanent=400 <= status < 500 and status not in RETRIED_STATUSES,
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook {_safe(recipient)}: {reason}") from None


def _safe(url: str) -> str:
    """The URL without credentials or query (which may hold a token), for errors and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
