"""Logging for the station: stderr plus a rotating file in the data home, secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

from vitalstation.config.secrets import redact as redact_known_secrets

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_COUNT = 5

# Credentials that might reach a log line through an exception text or a URL.
_SECRET_PATTERNS = (
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<redacted>"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+(@)"), r"\1<redacted>\2"),
    (re.compile(r"((?:password|passwd|secret|api_key)\s*[=:]\s*)\S+", re.IGNORECASE),
     r"\1<redacted>"),
)


def redact(text: str) -> str:
    """``text`` with every secret the station read from its keyring (or environment source),
    bearer tokens, URL passwords and ``password=`` values masked."""
    text = redact_known_secrets(text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in every record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def remove_station_logging() -> None:
    """Close and remove the handlers :func:`configure_logging` added (its log file is flushed
    and released; its stderr handler no longer holds a stream that may since have closed)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_vitalstation", False):
            root.removeHandler(handler)
            handler.close()


def configure_logging(home: Path | None, *, verbose: bool = False) -> None:
    """Log to stderr and, with a data home, to ``<home>/logs/vitalstation.log``."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    remove_station_logging()
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if home is not None:
        log_dir = home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / "vitalstation.log",
                maxBytes=LOG_FILE_BYTES,
                backupCount=LOG_FILE_COUNT,
                encoding="utf-8",
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        handler._vitalstation = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Library chatter at INFO (alembic's per-migration lines) is not a nurse's business.
    logging.getLogger("alembic").setLevel(logging.WARNING)
