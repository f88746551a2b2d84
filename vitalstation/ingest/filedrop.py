"""The file-drop input: ``*.json`` files put in the inbox are stored, then archived or failed.

What the seed (``process_iot_data``) got wrong and what this does instead:

* **Only complete files.** Temporary names are never read (dot-files, ``*.tmp``, ``*.part``,
  a ``~`` suffix, anything not ``*.json``; see ``filedrop_files.is_candidate``), and a file is
  read only once its size and modification time have been seen unchanged across two looks at
  least ``SETTLE_S`` apart. A file that is not valid JSON yet is failed only after it has been
  quiet for ``INCOMPLETE_GRACE_S``, so a writer that pauses mid-file is not punished.
* **Archived only when durable.** A file moves to ``archive/YYYY-MM-DD/<stem>_<YYYYMMDD_HHMMSS>
  .json`` (UTC processing time, ``_1``, ``_2``… on a clash, never overwriting) only after the
  pipeline answered every valid reading in it ``durable``.
* **Failed files are quarantined with the reasons**, never retried for ever, never deleted:
  moved to ``failed/`` with ``<name>.error.json`` beside it (reason per reading: index → field
  → reason, the time, the original name). Partial success: the valid readings of a batch file
  are stored and the *file* goes to ``failed/``, its sidecar listing which readings are stored
  and why the others were refused; dropping the corrected file again stores only what is new.
* **A database outage is not the file's fault.** When the pipeline answers FAILED, is busy or
  stopping, the file stays in the inbox and is retried with back-off (``RETRY_DELAYS_S``).
* **Crash-safe and single-instance.** A kill at any point leaves the file in the inbox or in
  its destination: re-processing a file whose move did not happen yields DUPLICATE results
  (the store dedupes by device, vital and time), then the move. An exclusive lock on
  ``<inbox>/.vitalstation.lock`` makes the station's watcher (one round at a time) and a cron
  ``process-inbox`` (its whole pass) take turns, so no file is ingested twice concurrently.
* **Bounded.** Files over ``MAX_FILE_BYTES`` (10 MiB), symbolic links, special files and names
  with control characters or over 200 bytes are failed unread.

Files are processed in name order (the seed's ``DEV001_YYYYMMDD_HHMMSS.json`` names sort by
device, then by time).

**Watching.** A periodic scan every ``SCAN_INTERVAL_S`` (0.2 s), plus a look exactly
``SETTLE_S`` after a new file was first seen, instead of OS notifications: a file is complete
only once it is quiet, so even with inotify a second look after a pause is needed; a scan works
the same on every OS and on network shares (SMB, NFS), where inotify and FSEvents miss files
written by other machines; and the cost is one directory listing per 0.2 s (about 10 µs for an
empty inbox). Drop → stored stays under 0.5 s (bench/filedrop.py).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.errors import PayloadError, summarize
from vitalstation.domain.payloads import decode_json, parse_payload
from vitalstation.domain.readings import InputKind, Reading
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.ingest.filedrop_files import (
    InboxLock,
    Signature,
    archive_folder,
    archive_names,
    cleanup_archive,
    failed_names,
    fsync_dir,
    is_candidate,
    is_regular,
    link_into,
    name_problem,
    printable_name,
    sidecar_name,
    write_bytes_new,
    write_json_new,
)
from vitalstation.pipeline.core import Pipeline, PipelineBusy, PipelineStopped, Ticket
from vitalstation.pipeline.types import Outcome, ReadingResult

__all__ = [
    "INCOMPLETE_GRACE_S",
    "MAX_FILE_BYTES",
    "MAX_FILE_READINGS",
    "SCAN_INTERVAL_S",
    "SETTLE_S",
    "FileDropInput",
    "FileReport",
    "FileStatus",
    "InboxFolders",
    "InboxProcessor",
    "PassReport",
]

_LOGGER = logging.getLogger(__name__)

# How often the watcher lists the inbox. With SETTLE_S this bounds drop → read at about
# SCAN_INTERVAL_S + SETTLE_S (0.35 s); a listing of an empty inbox costs ~10 µs.
SCAN_INTERVAL_S = 0.2
# A file is read once its size and mtime were the same in two looks at least this far apart.
# Long enough for a writer's next write() to land (local disks, SMB), short enough for 1 s.
SETTLE_S = 0.15
# A file that is not (yet) valid JSON is failed only after this long without a change: an
# empty or truncated file is what a writer that paused mid-file leaves for a moment.
INCOMPLETE_GRACE_S = 5.0
# Larger files are failed unread: 10 MiB is ~40,000 readings, far beyond any device's batch.
MAX_FILE_BYTES = 10 * 1024 * 1024
# Readings in one batch file (a REST batch takes 1,000); stays below the pipeline's queue.
MAX_FILE_READINGS = 10_000
# One round reads at most this many files / bytes before handing them to the pipeline, so a
# backlog is committed in large batches while memory stays bounded.
ROUND_MAX_FILES = 250
ROUND_MAX_BYTES = 32 * 1024 * 1024
# How long a round waits for room in the pipeline's queue, and for the commit.
SUBMIT_WAIT_S = 10.0
STORE_WAIT_S = 60.0
# A file the database did not take (outage, busy, timeout) is retried after these pauses
# (the pipeline has already retried each commit for ~4 s); the last one repeats.
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# A file that cannot be read (a Windows writer's lock, permissions) is retried after these
# pauses, and failed with the reason once it has been unchanged for UNREADABLE_GRACE_S.
READ_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)
UNREADABLE_GRACE_S = 60.0
# A file that could not be moved after processing is left alone this long, so it is not
# re-ingested in a loop (it would only dedupe); the move is tried again after it.
MOVE_RETRY_S = 300.0
# process-inbox waits this long for the station's watcher to finish its round.
LOCK_WAIT_S = 30.0
# Characters of a failed file kept in the database's dead-letter note.
_EXCERPT_CHARS = 1000


@dataclass(frozen=True, slots=True)
class InboxFolders:
    """Where files come in, go when stored, and go when refused."""

    inbox: Path
    archive: Path
    failed: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> InboxFolders:
        """The ``[filedrop]`` folders (relative ones in the data home)."""
        filedrop = settings.filedrop
        return cls(
            settings.path(filedrop.inbox),
            settings.path(filedrop.archive),
            settings.path(filedrop.failed),
        )

    def create(self) -> None:
        """Create the three folders if they are missing."""
        for folder in (self.inbox, self.archive, self.failed):
            folder.mkdir(parents=True, exist_ok=True)


class FileStatus(enum.StrEnum):
    """What became of one inbox file in a pass."""

    ARCHIVED = "archived"  # every reading durable; moved to archive/
    FAILED = "failed"  # nothing stored; moved to failed/ with the reasons
    PARTIAL = "partial"  # valid readings stored; the file moved to failed/ with the reasons
    RETRY = "retry"  # left in the inbox: the database did not store it (retried with back-off)
    STUCK = "stuck"  # handled, but could not be moved (logged; left alone, retried later)
    WAITING = "waiting"  # still being written, or not yet readable


@dataclass(frozen=True, slots=True)
class FileReport:
    """One file's fate; ``name`` is printable even for odd names."""

    name: str
    status: FileStatus
    destination: Path | None = None
    readings: int = 0  # readings in the file (valid or not)
    stored: int = 0  # readings with at least one new record
    records: int = 0  # new vital-sign records
    duplicates: int = 0  # readings that were already stored
    rejected: int = 0  # readings refused
    reason: str = ""  # one line: why it failed or was left


@dataclass(slots=True)
class PassReport:
    """The files one pass handled (and, for ``process-inbox``, the archive cleanup)."""

    found: int = 0  # candidate files in the inbox when the pass looked
    files: list[FileReport] = field(default_factory=list)
    waiting: int = 0  # files still being written, left for later
    locked: bool = False  # another processor held the inbox lock for the whole wait
    removed: list[Path] = field(default_factory=list)  # archive day folders removed

    def count(self, *statuses: FileStatus) -> int:
        """Files with one of ``statuses``."""
        return sum(1 for f in self.files if f.status in statuses)

    @property
    def archived(self) -> int:
        """Files stored and archived."""
        return self.count(FileStatus.ARCHIVED)

    @property
    def failed(self) -> list[FileReport]:
        """Files moved to ``failed/`` (wholly or partly refused)."""
        return [f for f in self.files if f.status in (FileStatus.FAILED, FileStatus.PARTIAL)]

    @property
    def records(self) -> int:
        """New vital-sign records."""
        return sum(f.records for f in self.files)

    @property
    def duplicates(self) -> int:
        """Readings that were already stored."""
        return sum(f.duplicates for f in self.files)


@dataclass(slots=True)
class _Seen:
    """A candidate file as the last look saw it."""

    signature: Signature
    first_seen: float  # monotonic time this signature was first seen
    mode: int


@dataclass(slots=True)
class _Hold:
    """A file left alone until ``until`` unless it changes (retry, unreadable, stuck)."""

    signature: Signature
    until: float
    attempts: int
    kind: str  # "retry" | "read" | "incomplete" | "stuck"
    reason: str = ""


@dataclass(slots=True)
class _Work:
    """One ready file through a round."""

    name: str
    path: Path
    seen: _Seen
    text: str = ""
    sha256: str = ""
    readings: list[tuple[int, Reading]] = field(default_factory=list)
    total: int = 0
    reading_errors: dict[int, dict[str, str]] = field(default_factory=dict)
    whole_errors: dict[str, str] | None = None
    ticket: Ticket | None = None
    results: list[ReadingResult] | None = None
    retry: str | None = None
    # The file actually read: (device, inode) and its bytes. A writer may replace the inbox
    # name (write elsewhere, rename over it) while the readings are being stored: what is
    # archived and what is removed must be this file, never its successor.
    identity: tuple[int, int] | None = None
    data: bytes = b""


class _Changed(Exception):
    """The file changed (or went) between the look and the read: look again later."""


@dataclass(slots=True)
class _Look:
    candidates: int
    ready: list[str]
    pending: int
    wake_at: float | None


@dataclass(slots=True)
class _Counters:
    received: int = 0  # readings durable
    rejected: int = 0  # readings refused + files refused as a whole
    archived: int = 0
    failed: int = 0
    waiting: int = 0
    retrying: int = 0
    stuck: int = 0
    locked_elsewhere: bool = False
    inbox_error: str = ""


class InboxProcessor:
    """Finds complete files in the inbox and takes each through parse → store → move.

    Used by the station's watcher (:meth:`tick`, repeatedly, on its thread) and by
    ``process-inbox`` (:meth:`run_once`). Not thread-safe itself: one thread drives it; the
    inbox lock keeps separate processors (threads or processes) from overlapping.
    """

    def __init__(
        self,
        folders: InboxFolders,
        pipeline: Pipeline,
        *,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        settle_s: float = SETTLE_S,
        incomplete_grace_s: float = INCOMPLETE_GRACE_S,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_file_readings: int = MAX_FILE_READINGS,
        round_max_files: int = ROUND_MAX_FILES,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self.folders = folders
        self._pipeline = pipeline
        self._clock = clock
        self._monotonic = monotonic
        self._settle_s = settle_s
        self._incomplete_grace_s = incomplete_grace_s
        self._max_file_bytes = max_file_bytes
        self._max_file_readings = max_file_readings
        self._round_max_files = round_max_files
        self._retry_delays_s = tuple(retry_delays_s) or (1.0,)
        self._seen: dict[str, _Seen] = {}
        self._holds: dict[str, _Hold] = {}
        self._lock = InboxLock(folders.inbox)
        self._counters = _Counters()
        self._counters_lock = threading.Lock()

    # -- the two drivers --------------------------------------------------------------------

    def tick(self) -> float:
        """One watcher step: look, process a round if files are ready; seconds until the next.

        The lock is taken only when a file is ready, and for one round at a time, so that a
        ``process-inbox`` run gets its turn within a round.
        """
        now = self._monotonic()
        look = self._look(now)
        if not look.ready:
            self._set(locked_elsewhere=False)
            return self._delay(look, now)
        if not self._lock.acquire():
            self._set(locked_elsewhere=True)
            return SCAN_INTERVAL_S
        try:
            self._set(locked_elsewhere=False)
            report = PassReport()
            done = self._round(look.ready, report)
        finally:
            self._lock.release()
        self._log_round(report)
        if done < len(look.ready):
            return 0.0
        return self._delay(self._look(self._monotonic()), self._monotonic())

    def run_once(
        self,
        *,
        lock_wait_s: float = LOCK_WAIT_S,
        cleanup_days: int | None = None,
        today: date | None = None,
    ) -> PassReport:
        """One complete pass (``process-inbox``): every complete file, then the cleanup.

        Looks twice ``settle_s`` apart so that files still being written are left for the next
        run, holds the inbox lock for the whole pass, and with ``cleanup_days`` removes archive
        day folders older than that.
        """
        report = PassReport()
        look = self._look(self._monotonic())
        if look.pending:
            time.sleep(self._settle_s)
            look = self._look(self._monotonic())
        if not self._lock.acquire(lock_wait_s):
            report.found = look.candidates
            report.locked = True
            return report
        try:
            # Look again under the lock: another processor may have just taken some files.
            look = self._look(self._monotonic())
            report.found = look.candidates
            ready = look.ready
            while ready:
                done = self._round(ready, report)
                ready = ready[done:]
            if cleanup_days is not None:
                day = today or self._clock().astimezone(UTC).date()
                report.removed = cleanup_archive(self.folders.archive, cleanup_days, day)
                for folder in report.removed:
                    _LOGGER.info("removed archive folder %s (retention %d days)", folder,
                                 cleanup_days)
        finally:
            self._lock.release()
        report.waiting = look.pending + report.count(FileStatus.WAITING)
        self._log_round(report)
        return report

    # -- looking ----------------------------------------------------------------------------

    def _look(self, now: float) -> _Look:
        """List the inbox, track each candidate's signature, and say which files are ready."""
        try:
            entries = self._list()
        except FileNotFoundError:
            _LOGGER.warning("the inbox %s is missing: created again", self.folders.inbox)
            try:
                self.folders.inbox.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._set(inbox_error=f"cannot create the inbox: {exc.strerror or exc}")
            return _Look(0, [], 0, None)
        except OSError as exc:
            self._set(inbox_error=f"cannot list the inbox: {exc.strerror or exc}")
            return _Look(0, [], 0, None)
        self._set(inbox_error="")
        for name in [n for n in self._seen if n not in entries]:
            del self._seen[name]
            self._holds.pop(name, None)
        ready: list[str] = []
        pending = 0
        wake: list[float] = []
        held = {"retry": 0, "stuck": 0}
        for name, (signature, mode) in entries.items():
            seen = self._seen.get(name)
            if seen is None or seen.signature != signature:
                self._seen[name] = _Seen(signature, now, mode)
                pending += 1
                wake.append(now + self._settle_s)
                continue
            if now - seen.first_seen < self._settle_s:
                pending += 1
                wake.append(seen.first_seen + self._settle_s)
                continue
            hold = self._holds.get(name)
            if hold is not None:
                if hold.signature != signature:
                    del self._holds[name]  # new content: a fresh start
                elif now < hold.until:
                    if hold.kind in held:
                        held[hold.kind] += 1
                    else:
                        pending += 1
                    wake.append(hold.until)
                    continue
            ready.append(name)
        ready.sort()
        self._set(waiting=len(entries), retrying=held["retry"], stuck=held["stuck"])
        return _Look(len(entries), ready, pending, min(wake, default=None))

    def _list(self) -> dict[str, tuple[Signature, int]]:
        entries: dict[str, tuple[Signature, int]] = {}
        with os.scandir(self.folders.inbox) as listing:
            for entry in listing:
                if not is_candidate(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    continue
                entries[entry.name] = (Signature(st.st_size, st.st_mtime_ns), st.st_mode)
        return entries

    def _delay(self, look: _Look, now: float) -> float:
        if look.wake_at is None:
            return SCAN_INTERVAL_S
        return max(0.0, min(SCAN_INTERVAL_S, look.wake_at - now))

    # -- one round: read, store, move -------------------------------------------------------

    def _round(self, names: list[str], report: PassReport) -> int:
        """Process the first ready files (by count and bytes); return how many were taken."""
        files: list[FileReport] = []
        works: list[_Work] = []
        budget = ROUND_MAX_BYTES
        taken = 0
        for name in names:
            if taken >= self._round_max_files or (works and budget <= 0):
                break
            taken += 1
            seen = self._seen.get(name)
            if seen is None:
                continue
            budget -= seen.signature.size
            work = self._prepare(name, seen, files)
            if work is not None:
                works.append(work)
        self._store(works)
        moved: list[tuple[_Work, FileReport]] = []
        synced: set[Path] = set()
        for work in works:
            file_report, unlink = self._settle(work, synced)
            if unlink:
                moved.append((work, file_report))
            else:
                files.append(file_report)
        # The new names are made durable before the inbox names go: a crash in between leaves
        # a file in both places (re-processed as duplicates), never in neither.
        for folder in synced:
            fsync_dir(folder)
        files.extend(self._unlink(work, file_report) for work, file_report in moved)
        self._count(files)
        report.files.extend(files)
        return taken

    def _prepare(self, name: str, seen: _Seen, files: list[FileReport]) -> _Work | None:
        """Read and parse one file; None when it changed, went, or must wait."""
        work = _Work(name, self.folders.inbox / name, seen)
        if stat.S_ISLNK(seen.mode):
            work.whole_errors = {"file": "is a symbolic link; put the file itself in the inbox"}
            return work
        if not is_regular(seen.mode):
            work.whole_errors = {"file": "is not a regular file"}
            return work
        problem = name_problem(name)
        if problem is not None:
            work.whole_errors = {"file_name": problem}
            return work
        if seen.signature.size > self._max_file_bytes:
            work.whole_errors = {
                "file": f"is {seen.signature.size} bytes; at most {self._max_file_bytes} "
                        f"({self._max_file_bytes / 1024 / 1024:g} MiB) are accepted"
            }
            return work
        try:
            data, work.identity = self._read(work.path, seen.signature)
            work.data = data
        except _Changed:
            # Usually a writer still at work (the next look sees a new size or time and starts
            # over); a file whose reads never match its size is failed after a while.
            return self._unreadable(work, "it changed while it was being read", files)
        except OSError as exc:
            return self._unreadable(work, f"could not be read: {exc.strerror or exc}", files)
        work.sha256 = hashlib.sha256(data).hexdigest()
        try:
            work.text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            work.text = data.decode("utf-8", "replace")
            obj = None
            decode_error: PayloadError | None = _decode_error(data)
        else:
            try:
                obj = decode_json(work.text)
                decode_error = None
            except PayloadError as exc:
                decode_error = exc
        if decode_error is not None:
            if not self._quiet_long_enough(work):
                files.append(FileReport(
                    printable_name(name), FileStatus.WAITING,
                    reason="not valid JSON yet; waiting for the writer to finish",
                ))
                return None
            work.whole_errors = decode_error.errors
            return work
        try:
            parsed = parse_payload(
                obj,
                input=InputKind.FILE,
                received_at=self._clock(),
                max_readings=self._max_file_readings,
                raw=work.text,
                source_ref=name,
            )
        except PayloadError as exc:
            work.whole_errors = exc.errors
            return work
        work.readings = parsed.readings
        work.reading_errors = parsed.errors
        work.total = parsed.total
        return work

    def _read(self, path: Path, expected: Signature) -> tuple[bytes, tuple[int, int]]:
        flags = (
            os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            | getattr(os, "O_BINARY", 0)
        )
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise _Changed from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a symbolic link since the look
                raise _Changed from None
            raise
        with open(fd, "rb", closefd=True) as handle:
            st = os.fstat(handle.fileno())
            if not is_regular(st.st_mode) or Signature(st.st_size, st.st_mtime_ns) != expected:
                raise _Changed
            data = handle.read(self._max_file_bytes + 1)
        if len(data) != expected.size:
            raise _Changed
        return data, (st.st_dev, st.st_ino)

    def _unreadable(self, work: _Work, reason: str, files: list[FileReport]) -> _Work | None:
        """A file that cannot be read is retried with back-off while it may still be in use,
        and failed with the reason once it has been left unchanged for ``UNREADABLE_GRACE_S``
        (by our looks or its mtime, so that one-pass cron runs give up too)."""
        if self._quiet_for(work) >= UNREADABLE_GRACE_S:
            work.whole_errors = {"file": reason}
            return work
        hold = self._holds.get(work.name)
        attempts = hold.attempts if hold is not None and hold.kind == "read" else 0
        delay = READ_RETRY_DELAYS_S[min(attempts, len(READ_RETRY_DELAYS_S) - 1)]
        self._holds[work.name] = _Hold(
            work.seen.signature, self._monotonic() + delay, attempts + 1, "read", reason
        )
        files.append(FileReport(printable_name(work.name), FileStatus.WAITING, reason=reason))
        return None

    def _quiet_for(self, work: _Work) -> float:
        """Seconds the file has gone unchanged: by our own looks, or by its mtime if longer."""
        observed = self._monotonic() - work.seen.first_seen
        by_mtime = time.time() - work.seen.signature.mtime_ns / 1e9
        return max(observed, by_mtime)

    def _quiet_long_enough(self, work: _Work) -> bool:
        """True once the file has not changed for ``incomplete_grace_s``; else hold it."""
        quiet = self._quiet_for(work)
        if quiet >= self._incomplete_grace_s:
            return True
        self._holds[work.name] = _Hold(
            work.seen.signature, self._monotonic() + self._incomplete_grace_s - quiet, 0,
            "incomplete",
        )
        return False

    def _store(self, works: list[_Work]) -> None:
        """Submit every file's valid readings at once (one commit for many files), then wait."""
        refused: str | None = None  # once busy or stopping, the rest of the round waits too
        for work in works:
            if work.whole_errors is not None or not work.readings:
                continue
            if refused is not None:
                work.retry = refused
                continue
            try:
                work.ticket = self._pipeline.submit(
                    [reading for _, reading in work.readings], timeout=SUBMIT_WAIT_S
                )
            except PipelineBusy as exc:
                refused = work.retry = f"the station is busy: {exc}"
            except PipelineStopped as exc:
                refused = work.retry = f"the station is stopping: {exc}"
        for work in works:
            if work.ticket is None:
                continue
            try:
                work.results = work.ticket.wait(STORE_WAIT_S)
            except TimeoutError:
                work.retry = f"the database did not commit within {STORE_WAIT_S:g} s"

    def _settle(self, work: _Work, synced: set[Path]) -> tuple[FileReport, bool]:
        """Decide a file's fate and give it its new name; (report, source still to remove)."""
        name = printable_name(work.name)
        if work.retry is None and work.results is not None:
            failed = [r for r in work.results if r.outcome is Outcome.FAILED]
            if failed:
                work.retry = next(iter(failed[0].errors.values()), "the database did not commit")
        if work.retry is not None:
            return self._left_for_retry(work, name), False

        errors: dict[int, dict[str, str]] = dict(work.reading_errors)
        stored_indexes: list[int] = []
        counts = {outcome: 0 for outcome in Outcome}
        records = 0
        for (index, _), result in zip(work.readings, work.results or [], strict=True):
            counts[result.outcome] += 1
            records += len(result.new_kinds)
            if result.durable:
                stored_indexes.append(index)
            else:
                errors[index] = result.errors or {"reading": "refused by the store"}
        rejected = len(errors)
        at = self._clock().astimezone(UTC)
        common = {
            "readings": work.total, "stored": counts[Outcome.STORED], "records": records,
            "duplicates": counts[Outcome.DUPLICATE], "rejected": rejected,
        }
        try:
            if work.whole_errors is None and not errors:
                folder = archive_folder(self.folders.archive, at)
                destination, unlink = self._link_what_was_read(
                    work, folder, archive_names(work.name, at)
                )
                synced.add(folder)
                return FileReport(name, FileStatus.ARCHIVED, destination, **common), unlink
            status = FileStatus.PARTIAL if stored_indexes else FileStatus.FAILED
            reason = self._reason(work, errors)
            destination, unlink = self._quarantine(work, status, reason, errors, stored_indexes,
                                                   at)
            synced.add(self.folders.failed)
        except OSError as exc:
            return self._stuck(work, name, f"could not be moved: {exc}", common), False
        self._dead_letter(work, destination, reason)
        return FileReport(name, status, destination, reason=reason, **common), unlink

    def _reason(self, work: _Work, errors: dict[int, dict[str, str]]) -> str:
        if work.whole_errors is not None:
            return summarize(work.whole_errors, "file")
        if work.total == 1 and 0 in errors:
            return summarize(errors[0], "reading")
        shown = "; ".join(
            f"reading {index}: " + ", ".join(f"{k}: {v}" for k, v in fields.items())
            for index, fields in sorted(errors.items())[:3]
        )
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return f"{len(errors)} of {work.total} readings invalid: {shown}{more}"

    def _quarantine(
        self,
        work: _Work,
        status: FileStatus,
        reason: str,
        errors: dict[int, dict[str, str]],
        stored_indexes: list[int],
        at: datetime,
    ) -> tuple[Path, bool]:
        """Write ``<name>.error.json`` in ``failed/``, then give the file its name beside it."""
        failed = self.folders.failed
        failed.mkdir(parents=True, exist_ok=True)
        for candidate in failed_names(work.name):
            if os.path.lexists(failed / candidate) or os.path.lexists(
                failed / sidecar_name(candidate)
            ):
                continue
            sidecar: dict[str, object] = {
                "file": candidate,
                "original_name": printable_name(work.name),
                "inbox": str(self.folders.inbox),
                "failed_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "status": status.value,
                "reason": reason,
            }
            if work.whole_errors is not None:
                sidecar["errors"] = work.whole_errors
            else:
                sidecar["readings"] = {str(i): errors[i] for i in sorted(errors)}
                sidecar["readings_total"] = work.total
                sidecar["readings_stored"] = stored_indexes
            sidecar["size_bytes"] = work.seen.signature.size
            if work.sha256:
                sidecar["sha256"] = work.sha256
            sidecar["help"] = (
                "Nothing of this file was stored. Fix it and drop it in the inbox again."
                if work.whole_errors is not None else
                "Only the readings listed in readings_stored were stored. Fix the others and "
                "drop the file in the inbox again: readings already stored are recognised and "
                "not stored twice."
            )
            try:
                write_json_new(failed / sidecar_name(candidate), sidecar)
            except FileExistsError:
                continue
            return self._link_what_was_read(work, failed, (candidate,))
        raise AssertionError("name generators are endless")  # pragma: no cover

    def _link_what_was_read(
        self, work: _Work, folder: Path, names: Iterable[str]
    ) -> tuple[Path, bool]:
        """Give the file that was read a name in ``folder``: (new path, inbox name to remove).

        ``link_into`` links whatever the inbox name points at now; if a writer replaced the
        file since it was read, that link is taken back and the bytes that were read and
        stored are written under the new name instead, leaving the newer file in the inbox
        for the next round.
        """
        symlink = stat.S_ISLNK(work.seen.mode)
        destination, unlink = link_into(work.path, folder, names, symlink=symlink)
        if work.identity is None or symlink:
            return destination, unlink
        st = os.stat(destination, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == work.identity:
            return destination, unlink
        _LOGGER.warning(
            "%s was replaced in the inbox while it was being stored; the version stored is "
            "kept as %s and the new one stays in the inbox", work.name, destination,
        )
        if unlink:
            os.unlink(destination)  # a second name of the newer file, which stays in the inbox
        else:
            # No hard links here: the newer file was moved; put it back for the next round.
            os.replace(destination, _free_name(work.path))
        write_bytes_new(destination, work.data)
        return destination, False

    def _unlink(self, work: _Work, file_report: FileReport) -> FileReport:
        """Remove the inbox name once the new one is durable (only if it is still ours)."""
        try:
            _remove_if_same(work.path, work.identity)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return self._stuck(
                work, file_report.name,
                f"was copied to {file_report.destination} but could not be removed from the "
                f"inbox: {exc}",
                {}, file_report,
            )
        self._holds.pop(work.name, None)
        self._seen.pop(work.name, None)
        return file_report

    def _left_for_retry(self, work: _Work, name: str) -> FileReport:
        hold = self._holds.get(work.name)
        attempts = hold.attempts if hold is not None and hold.kind == "retry" else 0
        delay = self._retry_delays_s[min(attempts, len(self._retry_delays_s) - 1)]
        self._holds[work.name] = _Hold(
            work.seen.signature, self._monotonic() + delay, attempts + 1, "retry",
            work.retry or "",
        )
        _LOGGER.warning(
            "inbox file %s left in the inbox, retry in %.0f s: %s", name, delay, work.retry
        )
        return FileReport(name, FileStatus.RETRY, readings=work.total, reason=work.retry or "")

    def _stuck(
        self,
        work: _Work,
        name: str,
        reason: str,
        common: dict[str, int],
        done: FileReport | None = None,
    ) -> FileReport:
        """Log loudly and leave the file alone for ``MOVE_RETRY_S`` (it would only dedupe)."""
        hold = self._holds.get(work.name)
        attempts = hold.attempts if hold is not None and hold.kind == "stuck" else 0
        self._holds[work.name] = _Hold(
            work.seen.signature, self._monotonic() + MOVE_RETRY_S * (2 ** min(attempts, 4)),
            attempts + 1, "stuck", reason,
        )
        _LOGGER.error(
            "inbox file %s %s; its readings are stored (or refused) and it is left in the inbox: "
            "fix the folder permissions or disk space", name, reason,
        )
        if done is not None:
            return FileReport(
                name, FileStatus.STUCK, done.destination, done.readings, done.stored,
                done.records, done.duplicates, done.rejected, reason,
            )
        return FileReport(name, FileStatus.STUCK, reason=reason, **common)

    def _dead_letter(self, work: _Work, destination: Path, reason: str) -> None:
        """A note in the database, so that the station shows the quarantined file too."""
        # The file and its .error.json are already in failed/: the row is a convenience.
        with contextlib.suppress(PipelineStopped, PipelineBusy):
            self._pipeline.dead_letter(
                InputKind.FILE.value, f"{self.folders.failed.name}/{destination.name}", reason,
                work.text[:_EXCERPT_CHARS],
            )

    # -- counters and logs ------------------------------------------------------------------

    def _count(self, files: list[FileReport]) -> None:
        with self._counters_lock:
            c = self._counters
            for f in files:
                c.received += f.stored + f.duplicates
                c.rejected += f.rejected or (1 if f.status is FileStatus.FAILED else 0)
                if f.status is FileStatus.ARCHIVED:
                    c.archived += 1
                elif f.status in (FileStatus.FAILED, FileStatus.PARTIAL):
                    c.failed += 1
                else:
                    continue
                # The file has left the inbox: health says so now, not at the next scan.
                c.waiting = max(0, c.waiting - 1)

    def _set(self, **values: object) -> None:
        with self._counters_lock:
            for key, value in values.items():
                setattr(self._counters, key, value)

    def counters(self) -> _Counters:
        """A copy of the counters (for the input's health)."""
        with self._counters_lock:
            c = self._counters
            return _Counters(c.received, c.rejected, c.archived, c.failed, c.waiting,
                             c.retrying, c.stuck, c.locked_elsewhere, c.inbox_error)

    def _log_round(self, report: PassReport) -> None:
        for f in report.files:
            if f.status is FileStatus.ARCHIVED:
                _LOGGER.debug("inbox file %s stored (%d new records, %d duplicates) → %s",
                              f.name, f.records, f.duplicates, f.destination)
            elif f.status in (FileStatus.FAILED, FileStatus.PARTIAL):
                _LOGGER.warning("inbox file %s %s → %s: %s", f.name,
                                "partly stored, moved" if f.status is FileStatus.PARTIAL
                                else "failed, moved", f.destination, f.reason)


def _decode_error(data: bytes) -> PayloadError:
    """decode_json's own error for bytes that are not UTF-8."""
    try:
        decode_json(data)
    except PayloadError as exc:
        return exc
    return PayloadError({"body": "not valid UTF-8"})  # pragma: no cover - decode_json refused


def _free_name(path: Path) -> Path:
    """``path`` or, when taken, ``<stem>_1<suffix>``, ``_2``… beside it."""
    candidate, n = path, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def _remove_if_same(path: Path, identity: tuple[int, int] | None) -> None:
    """Remove ``path`` if it is still the file ``identity`` names, else leave what is there.

    The name is first renamed away (atomic), then checked: a file a writer renamed over the
    name in the meantime is never the one removed; it is put back under a free name.
    """
    if identity is None:
        os.unlink(path)
        return
    aside = path.with_name(f".vitalstation-removing-{uuid.uuid4().hex}")
    os.rename(path, aside)
    st = os.stat(aside, follow_symlinks=False)
    if (st.st_dev, st.st_ino) == identity:
        os.unlink(aside)
        return
    _LOGGER.warning("%s was replaced while it was being stored; the new file stays", path.name)
    os.rename(aside, _free_name(path))


class FileDropInput:
    """The station's watcher on the inbox: its own thread runs :meth:`InboxProcessor.tick`.

    ``start`` only creates the folders and the thread (well under 100 ms); the first look
    happens on the thread.
    """

    name = "filedrop"

    def __init__(
        self,
        folders: InboxFolders,
        pipeline: Pipeline,
        *,
        clock: Clock = utc_now,
        retention_days: int | None = None,
        **options: Any,
    ) -> None:
        """``options`` go to :class:`InboxProcessor` (tests shorten the waits).

        With ``retention_days``, archive day folders older than that are removed at start and
        then once per UTC day, so a station without a cron job does not fill its disk.
        """
        self.folders = folders
        self._processor = InboxProcessor(folders, pipeline, clock=clock, **options)
        self._clock = clock
        self._retention_days = retention_days
        self._retention_done_for: date | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = InputState.STOPPED
        self._since: datetime | None = None
        self._error = ""

    @classmethod
    def from_settings(cls, settings: Settings, pipeline: Pipeline) -> FileDropInput:
        """The input for ``[filedrop]``."""
        return cls(
            InboxFolders.from_settings(settings),
            pipeline,
            retention_days=settings.filedrop.retention_days,
        )

    def start(self) -> None:
        """Create the folders (an unusable inbox fails the start) and start watching."""
        if self._thread is not None:
            raise RuntimeError("file-drop input already started")
        self.folders.create()
        self._stop.clear()
        self._state = InputState.STARTING
        self._since = self._clock()
        self._thread = threading.Thread(
            target=self._run, name="vitalstation-filedrop", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the current round (files already stored are moved), then stop."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                _LOGGER.warning("the file-drop watcher did not stop within %.1f s", timeout)
        self._state = InputState.STOPPED
        self._since = self._clock()

    def health(self) -> InputHealth:
        """Counts and what the inbox holds, e.g. ``inbox /x: 3 files waiting, 0 failed``."""
        c = self._processor.counters()
        detail = f"inbox {self.folders.inbox}: {c.waiting} files waiting, {c.failed} failed"
        extras = []
        if c.retrying:
            extras.append(f"{c.retrying} waiting for the database")
        if c.stuck:
            extras.append(f"{c.stuck} could not be moved (see the log)")
        if c.locked_elsewhere:
            extras.append("locked by another processor")
        if c.inbox_error or self._error:
            extras.append(c.inbox_error or self._error)
        state = self._state
        if state is InputState.UP and (c.stuck or c.retrying or c.inbox_error or self._error):
            state = InputState.DEGRADED
        if extras:
            detail += "; " + "; ".join(extras)
        return InputHealth(self.name, state, detail, self._since, c.received, c.rejected)

    def _apply_retention(self) -> None:
        """Remove expired archive day folders, at most once per UTC day."""
        if self._retention_days is None:
            return
        today = self._clock().astimezone(UTC).date()
        if self._retention_done_for == today:
            return
        self._retention_done_for = today
        try:
            removed = cleanup_archive(self.folders.archive, self._retention_days, today)
        except OSError as exc:
            _LOGGER.error("archive retention in %s failed: %s", self.folders.archive, exc)
            return
        for folder in removed:
            _LOGGER.info("removed archive folder %s (retention %d days)", folder,
                         self._retention_days)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                self._apply_retention()
                delay = self._processor.tick()
                self._error = ""
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one file
                _LOGGER.exception("file-drop round failed")
                self._error = f"last round failed: {exc}"
                delay = 1.0
            if self._state is InputState.STARTING:
                self._state = InputState.UP
