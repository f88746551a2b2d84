"""``Simulation``: N beds sending through one transport on a thread of their own.

For the command line, the station's Simulator menu and ``--demo``::

    sim = Simulation(SimulationConfig(beds=4, duration=60), FileTransport(inbox))
    # or, aimed at the station of a data home as the command line does:
    sim = Simulation.for_station(SimulationConfig(beds=4), settings, "mqtt")
    sim.start()          # returns at once; connecting happens on the simulation's thread
    ...
    sim.stats()          # a snapshot, any time, from any thread
    sim.stop()           # ends early; held readings are flushed, acknowledgements awaited

Pacing: a sample measured at simulated second ``t`` leaves at real second
``t / rate_multiplier`` after the start. In load mode samples leave as fast as the transport
takes them, stamped with the real clock.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from simulator.config import SimulationConfig
from simulator.generate import LoadStamper, Packer, iter_samples, natural_format, sim_stamper
from simulator.keys import KeyFileError, load_keyring_keys
from simulator.models import Sample, device_id_for
from simulator.stats import SimulationStats, StatsRecorder
from simulator.targets import TargetOptions, build_transport
from simulator.transports.base import Transport, TransportError
from simulator.wire import Message
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import utc_now

__all__ = ["Simulation"]

_LOGGER = logging.getLogger(__name__)

# Samples sent together at most (one put_records call, one burst of publishes).
_GROUP_MAX = 500
# Samples due within this many real seconds of each other leave together.
_COALESCE = 0.005


class _Peekable:
    def __init__(self, items: Iterator[Sample]) -> None:
        self._items = items
        self._head: Sample | None = None

    def peek(self) -> Sample:
        if self._head is None:
            self._head = next(self._items)
        return self._head

    def pop(self) -> Sample:
        head = self.peek()
        self._head = None
        return head


class Simulation:
    """Runs one simulation on its own thread; see the module docstring.

    ``clock`` gives the real time (aware UTC) used to resolve the start time and, in load mode,
    to stamp readings; ``monotonic`` paces. ``drain_timeout`` bounds the wait for outstanding
    acknowledgements at the end.
    """

    def __init__(
        self,
        config: SimulationConfig,
        transport: Transport,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        drain_timeout: float = 10.0,
    ) -> None:
        self.config = config.resolved(clock())
        self.transport = transport
        self._clock = clock
        self._monotonic = monotonic
        self._drain_timeout = drain_timeout
        self._stats = StatsRecorder(transport)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: str | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._sim_seconds = 0.0
        fmt = transport.wire_format or natural_format(self.config.model)
        self._packer = Packer(fmt, self.config.batch)

    @classmethod
    def for_station(
        cls,
        config: SimulationConfig,
        settings: Settings,
        transport: str = "mqtt",
        *,
        options: TargetOptions | None = None,
        keys: dict[str, str] | None = None,
        **kwargs,
    ) -> Simulation:
        """A simulation aimed at the station of ``settings`` (its broker, REST port, inbox,
        stream), as the command line does; REST keys default to those kept in the station's
        keyring (none without a keyring: the transport then says which device has no key).
        Raises ``TransportError`` for a target that cannot be built (e.g. ``rest.port = 0``).
        """
        if transport == "rest" and keys is None:
            beds = range(config.first_bed, config.first_bed + config.beds)
            try:
                keys, _moved = load_keyring_keys(settings, [device_id_for(b) for b in beds])
            except KeyFileError:
                keys = {}
        built = build_transport(transport, settings, options or TargetOptions(), keys)
        return cls(config, built, **kwargs)

    # -- control --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (once). Connection problems show up in ``stats().fatal``."""
        if self._thread is not None:
            raise RuntimeError("a simulation starts once; make a new one")
        self._thread = threading.Thread(target=self._main, name="vitalstation-sim", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the run to end and return at once (safe in a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> SimulationStats:
        """Ask the run to end, wait up to ``timeout`` s for it, and return the final stats."""
        self._stop.set()
        self.wait(timeout)
        return self.stats()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (its duration, ``stop``, or a fatal error); True if it did."""
        return self._done.wait(timeout)

    def run(self) -> SimulationStats:
        """Start and wait for the end (blocking; the command line's way)."""
        self.start()
        self.wait()
        return self.stats()

    @property
    def running(self) -> bool:
        """True between ``start`` and the end of the run."""
        return self._thread is not None and not self._done.is_set()

    def stats(self) -> SimulationStats:
        """A snapshot of the counts so far."""
        started = self._started_at
        end = self._ended_at if self._ended_at is not None else self._monotonic()
        return self._stats.snapshot(
            running=self.running,
            simulated_seconds=self._sim_seconds,
            elapsed_seconds=0.0 if started is None else end - started,
            fatal=self._fatal,
            seed=self.config.seed,
        )

    # -- the thread -----------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            try:
                self.transport.open(self._stats.settle)
            except TransportError as exc:
                self._fatal = str(exc)
                return
            self._started_at = self._monotonic()
            try:
                if self.config.load:
                    self._run_load()
                else:
                    self._run_paced()
                self._send(self._packer.flush())
            except TransportError as exc:
                self._fatal = str(exc)
            except Exception as exc:  # noqa: BLE001 - reported, not lost with the thread
                _LOGGER.exception("simulation failed")
                self._fatal = f"{type(exc).__name__}: {exc}"
            finally:
                self.transport.close(self._drain_timeout)
        finally:
            self._ended_at = self._monotonic()
            self._done.set()

    def _send(self, messages: list[Message]) -> None:
        if messages:
            self._stats.sent(messages)
            self.transport.send(messages)

    def _run_paced(self) -> None:
        config = self.config
        rate = config.rate_multiplier
        span = config.span
        stamp = sim_stamper(config.start_time)
        samples = _Peekable(iter_samples(config))
        t0 = self._started_at
        while not self._stop.is_set():
            head = samples.peek()
            if span is not None and head.send_offset > span:
                break
            delay = head.send_offset / rate - (self._monotonic() - t0)
            if delay > 0 and self._stop.wait(delay):
                break
            now_sim = (self._monotonic() - t0 + _COALESCE) * rate
            group: list[Sample] = []
            while len(group) < _GROUP_MAX:
                head = samples.peek()
                if head.send_offset > now_sim or (span is not None and head.send_offset > span):
                    break
                group.append(samples.pop())
            self._sim_seconds = group[-1].send_offset
            self._send(self._packer.pack(group, stamp))
        if config.duration is not None and not self._stop.is_set():
            # Run for the whole duration even when the last sample left earlier.
            self._stop.wait(max(0.0, config.duration - (self._monotonic() - t0)))
        covered = (self._monotonic() - t0) * rate
        self._sim_seconds = covered if span is None else min(span, covered)

    def _run_load(self) -> None:
        config = self.config
        stamp = LoadStamper(self._clock)
        samples = iter_samples(config)
        t0 = self._started_at
        deadline = None if config.duration is None else t0 + config.duration
        while not self._stop.is_set():
            if deadline is not None and self._monotonic() >= deadline:
                break
            group = list(itertools.islice(samples, _GROUP_MAX))
            self._sim_seconds = group[-1].offset
            self._send(self._packer.pack(group, stamp))
