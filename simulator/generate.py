"""From a configuration to the ordered stream of payloads: beds, merge, timestamps, batching.

``iter_samples`` merges every bed's samples in send order (simulated time, then bed, then
sequence), ``Packer`` turns them into ``Message``s in a wire format (batching per device when
asked, and the offline backlog as batches), and ``generate_messages`` does both on the simulated
clock without any pacing: the pure core that the threaded ``Simulation`` paces and sends, and
that tests read directly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from simulator.config import SimulationConfig
from simulator.models import Sample, device_samples, make_bed
from simulator.scenarios import BedScenarios, scenarios_for_bed
from simulator.wire import Message, WireFormat, encode_batch, encode_single

__all__ = [
    "BACKLOG_BATCH",
    "LoadStamper",
    "Packer",
    "generate_messages",
    "iter_samples",
    "natural_format",
    "sim_stamper",
]

# Readings per batch when a device sends its offline backlog (InHealth: "batch when offline").
BACKLOG_BATCH = 100

Stamper = Callable[[Sample], datetime]


def natural_format(model: str) -> WireFormat:
    """The payload format a model's device speaks."""
    return WireFormat.BEDSIDE if model == "bedside-monitor" else WireFormat.INHEALTH


def _require_resolved(config: SimulationConfig) -> tuple[int, datetime]:
    if config.seed is None or config.start_time is None:
        raise ValueError("resolve the configuration first (config.resolved(now))")
    return config.seed, config.start_time


def iter_samples(config: SimulationConfig) -> Iterator[Sample]:
    """Every bed's samples merged in send order (infinite; the caller stops at the span)."""
    seed, _ = _require_resolved(config)
    streams = []
    for bed in range(config.first_bed, config.first_bed + config.beds):
        scenarios = BedScenarios(scenarios_for_bed(config.scenarios, bed), config.span)
        model = make_bed(config.model, bed, seed, scenarios, config.span)
        streams.append(device_samples(model.samples(), scenarios, seed, bed))
    return heapq.merge(*streams, key=lambda s: (s.send_offset, s.bed, s.seq))


def sim_stamper(start: datetime) -> Stamper:
    """Timestamps on the simulated clock: start + measurement offset (+ a skewed clock)."""
    def stamp(sample: Sample) -> datetime:
        return start + timedelta(seconds=sample.offset + sample.clock_skew)
    return stamp


class LoadStamper:
    """Timestamps for load mode: the real clock at send time, strictly increasing per device."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._last: dict[str, datetime] = {}

    def __call__(self, sample: Sample) -> datetime:
        at = self._clock()
        last = self._last.get(sample.device_id)
        if last is not None and at <= last:
            at = last + timedelta(microseconds=1)
        self._last[sample.device_id] = at
        return at + timedelta(seconds=sample.clock_skew)


class Packer:
    """Turns samples into messages in one wire format.

    With ``batch`` > 1 each device's readings are held until ``batch`` of them make an InHealth
    batch (``flush`` sends the rest). An offline backlog leaves as InHealth batches of up to
    ``max(batch, BACKLOG_BATCH)`` when the format is InHealth, and message by message in the
    one-vital format (as the seed's MQTT client replays its offline queue). A payload the
    station must refuse (malformed, skewed clock) always travels alone.
    """

    def __init__(self, fmt: WireFormat, batch: int = 1) -> None:
        self.fmt = fmt
        self.batch = batch
        self._held: dict[str, list[tuple[Sample, datetime]]] = {}
        self._backlog: list[tuple[Sample, datetime]] = []

    def pack(self, samples: Sequence[Sample], stamp: Stamper) -> list[Message]:
        """Messages for ``samples`` (due now), in order; held readings stay for later."""
        out: list[Message] = []
        for sample in samples:
            at = stamp(sample)
            if sample.expect_refusal is not None:
                self._end_backlog(out)
                out.append(encode_single(sample, at, self.fmt))
            elif sample.backlog and (self.fmt is WireFormat.INHEALTH or self.batch > 1):
                if self._backlog and self._backlog[0][0].device_id != sample.device_id:
                    self._end_backlog(out)
                self._backlog.append((sample, at))
            else:
                self._end_backlog(out)
                if self.batch > 1:
                    held = self._held.setdefault(sample.device_id, [])
                    held.append((sample, at))
                    if len(held) >= self.batch:
                        out.append(_batch(held))
                        held.clear()
                else:
                    out.append(encode_single(sample, at, self.fmt))
        self._end_backlog(out)
        return out

    def _end_backlog(self, out: list[Message]) -> None:
        size = max(self.batch, BACKLOG_BATCH)
        for i in range(0, len(self._backlog), size):
            out.append(_batch(self._backlog[i:i + size]))
        self._backlog.clear()

    def flush(self) -> list[Message]:
        """Everything still held, as batches (at the end of a run)."""
        out: list[Message] = []
        self._end_backlog(out)
        for held in self._held.values():
            if held:
                out.append(_batch(held))
                held.clear()
        return out


def _batch(items: Sequence[tuple[Sample, datetime]]) -> Message:
    return encode_batch([s for s, _ in items], [at for _, at in items])


def generate_messages(
    config: SimulationConfig,
    fmt: WireFormat | None = None,
    *,
    span: float | None = None,
) -> Iterator[Message]:
    """Every payload of a run on the simulated clock, without pacing (deterministic).

    ``config`` must be resolved (seed and start time set). ``span`` (simulated seconds)
    defaults to the configuration's; one of them must be set. ``fmt`` defaults to the model's.
    """
    _, start = _require_resolved(config)
    limit = config.span if span is None else span
    if limit is None:
        raise ValueError("an unbounded run has no end: give a duration or a span")
    packer = Packer(fmt or natural_format(config.model), config.batch)
    stamp = sim_stamper(start)
    group: list[Sample] = []
    group_time = None
    for sample in iter_samples(config):
        if sample.send_offset > limit:
            break
        if group and sample.send_offset != group_time:
            yield from packer.pack(group, stamp)
            group = []
        group.append(sample)
        group_time = sample.send_offset
    if group:
        yield from packer.pack(group, stamp)
    yield from packer.flush()
