"""What the benches add to a bare pipeline so that it is the station as it runs.

The runtime subscribes the alarm engine to the pipeline (``app.runtime``): every committed
batch is evaluated against the ward's limits before the inputs are answered. A bench that
leaves it out measures a station nobody runs.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from vitalstation.app.alarms import AlarmService
from vitalstation.config.settings import Settings
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.store import Store


def with_alarms(pipeline: Pipeline, store: Store) -> AlarmService:
    """Subscribe the default profile's alarm engine to ``pipeline`` and start its tick, as the
    runtime does (call before ``pipeline.start``; stop the service after the pipeline)."""
    service = AlarmService.from_settings(Settings(home=Path(tempfile.gettempdir())), store)
    pipeline.subscribe(service)
    service.start()
    return service


class GcPauses:
    """The garbage collector's pauses by generation while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def summary(self) -> dict[str, list[float]]:
        """[collections, total ms, longest ms] by generation."""
        return {
            f"gen{gen}": [len(ms), round(sum(ms), 1), round(max(ms, default=0.0), 1)]
            for gen, ms in self.pauses.items()
        }
