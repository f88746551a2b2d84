"""The file drop from the app's side: ``process-inbox``'s one pass, and the station's watcher.

``process-inbox`` runs without a :class:`~vitalstation.app.runtime.Runtime` (no other input
starts): it opens the store, runs a pipeline on its writer, makes one pass over the inbox with
the same :class:`~vitalstation.ingest.filedrop.InboxProcessor` the station's watcher uses, and
stops. The inbox lock lets it run from cron while the station watches the same inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vitalstation.app.admin import open_store
from vitalstation.app.alarms import AlarmService
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.base import Input
from vitalstation.ingest.filedrop import (
    FileDropInput,
    FileStatus,
    InboxFolders,
    InboxProcessor,
    PassReport,
)
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.store import Store

__all__ = ["InboxReport", "format_report", "make_filedrop_input", "run_inbox_pass"]

_RULE = "=" * 60
_THIN = "-" * 60
# Files that stay in the inbox after a pass although they were ready: not failed, not done.
_LEFT = (FileStatus.RETRY, FileStatus.STUCK)


@dataclass(frozen=True, slots=True)
class InboxReport:
    """One ``process-inbox`` run: when, where, what happened to each file, what was cleaned."""

    started_at: datetime
    folders: InboxFolders
    result: PassReport
    cleanup_days: int | None
    alerts_triggered: int = 0  # alarms the pass's readings raised

    @property
    def exit_code(self) -> int:
        """1 if a file failed, or was left because the database did not take it (or the inbox
        stayed locked, or a file could not be moved); 0 otherwise."""
        r = self.result
        trouble = r.failed or r.count(*_LEFT) or r.locked
        return 1 if trouble else 0


def run_inbox_pass(
    settings: Settings, *, cleanup_days: int | None, clock: Clock = utc_now
) -> InboxReport:
    """One file-drop pass over ``[filedrop]``'s inbox; with ``cleanup_days``, archive retention."""
    started = clock()
    folders = InboxFolders.from_settings(settings)
    folders.create()
    store = open_store(settings)
    try:
        # The alarm engine evaluates the pass's readings like the station's (resumed from the
        # alarms open in the database, so that a condition already alarmed is an update).
        alarms = AlarmService.from_settings(settings, store, clock=clock)
        pipeline = Pipeline(store.writer, clock=clock)
        pipeline.subscribe(alarms)
        pipeline.start()
        try:
            result = InboxProcessor(folders, pipeline, clock=clock).run_once(
                cleanup_days=cleanup_days
            )
        finally:
            pipeline.stop()
            alarms.stop()
    finally:
        store.close()
    return InboxReport(started, folders, result, cleanup_days, alarms.raised_total)


def format_report(report: InboxReport) -> list[str]:
    """The seed's statistics block (with its "Started at" bug fixed), then each failed file."""
    r = report.result
    lines = [
        _RULE,
        "VitalStation file drop: one pass",
        _RULE,
        f"Started at: {report.started_at.isoformat(timespec='seconds').replace('+00:00', 'Z')}",
        f"Inbox:   {report.folders.inbox}",
        f"Archive: {report.folders.archive}",
        f"Failed:  {report.folders.failed}",
        _THIN,
    ]
    if r.locked:
        lines.append("The inbox is locked by another processor (the station, or another run); "
                     "nothing was processed.")
    lines += [
        f"Total files found: {r.found}",
        f"Successfully processed: {r.archived}",
        f"Failed: {len(r.failed)}",
        f"Vital signs created: {r.records}",
        f"Duplicates: {r.duplicates}",
        f"Alerts triggered: {report.alerts_triggered}",
    ]
    left = [f for f in r.files if f.status in _LEFT]
    if left:
        lines.append(f"Left in the inbox to retry: {len(left)}")
    if r.waiting:
        lines.append(f"Still being written (left for the next run): {r.waiting}")
    if r.failed or left:
        lines.append(_THIN)
        for f in r.failed:
            lines.append(f"File: {f.name}")
            lines.append(f"Error: {f.reason}")
            if f.destination is not None:
                lines.append(f"Moved to: {f.destination} (reasons in {f.destination.name}"
                             ".error.json)")
        for f in left:
            lines.append(f"File: {f.name}")
            lines.append(f"Error: {f.reason} (left in the inbox)")
    if report.cleanup_days is not None:
        lines.append(_THIN)
        lines.append(f"Cleanup: archive folders older than {report.cleanup_days} days")
        if r.removed:
            lines += [f"Removed: {folder}" for folder in r.removed]
        else:
            lines.append("Removed: nothing")
    lines.append(_RULE)
    return lines


def make_filedrop_input(settings: Settings, pipeline: Pipeline, store: Store) -> Input | None:
    """The runtime's factory: the inbox watcher when ``filedrop.enabled``."""
    if not settings.filedrop.enabled:
        return None
    return FileDropInput.from_settings(settings, pipeline)
