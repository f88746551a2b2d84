"""What the benches add to a bare pipeline so that it is the station as it runs.

The runtime subscribes the alarm engine to the pipeline (``app.runtime``): every committed
batch is evaluated against the ward's limits before the inputs are answered. A bench that
leaves it out measures a station nobody runs.
"""

from __future__ import annotations

import tempfile
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
