"""``vitalstation serve``: the station without a window, until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from vitalstation.alarms import AlarmTransition, TransitionKind
from vitalstation.app.alarms import transition_line
from vitalstation.app.demo import Demo, demo_settings
from vitalstation.app.memory import freeze_long_lived_objects
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import Settings

_LOGGER = logging.getLogger(__name__)

# How often serve logs the pipeline's counters (a heartbeat an admin can grep for).
STATUS_INTERVAL_S = 60.0
_LOUD = frozenset(
    {TransitionKind.RAISED, TransitionKind.PRIORITY_RAISED, TransitionKind.ESCALATED}
)


def log_transition(transition: AlarmTransition) -> None:
    """One parseable line per alarm transition: ``ALARM {"kind": "raised", ...}``; a new alarm,
    a worse priority or an escalation at WARNING, the rest at INFO."""
    level = logging.WARNING if transition.kind in _LOUD else logging.INFO
    _LOGGER.log(level, "%s", transition_line(transition))


def serve(
    settings: Settings, *, stop: threading.Event | None = None, demo: bool = False
) -> int:
    """Run the station until ``stop`` is set or SIGINT/SIGTERM arrives; return the exit code.

    On a signal the runtime stops in order (inputs, then the pipeline drains, then the store
    closes) and the exit code is 0 when everything queued was stored. ``demo`` starts the
    built-in simulator on a few beds (``vitalstation serve --demo``).
    """
    stop = stop or threading.Event()
    previous: dict[int, object] = {}
    received: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only note it and set the event: a handler that logs can land while the main thread
        # is itself writing a log line, and the re-entrant write fails inside logging, which
        # swallows the error, and with it the stop (seen: serve ignoring a SIGINT).
        received.append(signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _on_signal)
    runtime = Runtime(demo_settings(settings) if demo else settings)
    runtime.add_alarm_listener(log_transition)
    simulated: Demo | None = None
    try:
        runtime.start()
        if demo:
            simulated = Demo(runtime)
            simulated.start()
        freeze_long_lived_objects()
        _LOGGER.info("serving; stop with Ctrl+C or SIGTERM")
        while not stop.wait(STATUS_INTERVAL_S):
            stats = runtime.health().pipeline
            _LOGGER.info(
                "status: stored %d readings (%d records), %d duplicates, %d rejected, "
                "%d failed, %d queued, lag %.0f ms",
                stats.stored, stats.records, stats.duplicates, stats.rejected,
                stats.failed, stats.queued, stats.lag_ms,
            )
    finally:
        if received:
            _LOGGER.info("received %s: stopping", signal.Signals(received[0]).name)
        if simulated is not None:
            simulated.stop()
        drained = runtime.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
    if drained:
        _LOGGER.info("stopped cleanly")
        return 0
    _LOGGER.error("stopped, but some queued readings were not stored")
    return 1
