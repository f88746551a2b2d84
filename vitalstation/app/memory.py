"""Telling the garbage collector which objects live as long as the station."""

from __future__ import annotations

import gc
import logging
import time

_LOGGER = logging.getLogger(__name__)


def freeze_long_lived_objects() -> None:
    """Collect once, then keep every object alive now out of all later collections.

    Start-up builds tens of thousands of objects that live as long as the process (modules,
    SQLAlchemy metadata, caches, Qt wrappers). Each full collection walked them all: 60-70 ms
    of CPU with the GIL held (bench/mqtt.py's GC-pause lines), a latency spike for every
    input at once and a stutter in the window. Frozen objects are still freed by reference
    counting when they go; only a cycle among them would stay, and at start-up those are the
    long-lived ones anyway. Called once by the entry points (``serve``, the window), never
    by library code, so tests and embedders keep the default collector.
    """
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    _LOGGER.debug(
        "garbage collector: %d start-up objects frozen in %.0f ms",
        gc.get_freeze_count(), (time.monotonic() - started) * 1000,
    )
