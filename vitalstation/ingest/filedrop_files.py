"""The file-drop input's file handling: which names count, the inbox lock, moves that never
overwrite, the ``.error.json`` sidecar and archive retention.

Kept apart from the processing logic in ``filedrop`` so each can be read on its own; nothing
here knows about readings or the pipeline. Standard library only (``fcntl`` on POSIX,
``msvcrt`` on Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "LOCK_FILE_NAME",
    "MAX_NAME_BYTES",
    "InboxLock",
    "Signature",
    "archive_folder",
    "archive_names",
    "cleanup_archive",
    "failed_names",
    "fsync_dir",
    "is_candidate",
    "is_regular",
    "link_into",
    "name_problem",
    "printable_name",
    "sidecar_name",
    "write_json_new",
]

# Held (flock / msvcrt.locking) by whoever processes the inbox: the station's watcher for one
# round at a time, ``process-inbox`` for its whole pass. A dot-file, so never picked up.
LOCK_FILE_NAME = ".vitalstation.lock"
# A longer name (UTF-8 bytes) is refused: the archive adds "_YYYYMMDD_HHMMSS_NN" and the failed
# folder ".error.json", and most file systems stop at 255 bytes.
MAX_NAME_BYTES = 200
# Suffixes writers use while a file is incomplete (besides leading dots and a trailing "~");
# such names never end in ".json", but they are named here so that the rule reads as a rule.
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
SIDECAR_SUFFIX = ".error.json"
_LOCK_POLL_S = 0.02
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Signature(NamedTuple):
    """What tells a file changed between two looks (size and modification time)."""

    size: int
    mtime_ns: int


def is_candidate(name: str) -> bool:
    """True for a name the inbox picks up: ``*.json`` (any case), not hidden, not temporary.

    Writers that follow the convention write ``.name.json``, ``name.json.tmp`` or
    ``name.json.part`` and rename when done; those names are never read.
    """
    if name.startswith(".") or name == LOCK_FILE_NAME:
        return False
    lowered = name.lower()
    if lowered.endswith(TEMPORARY_SUFFIXES):
        return False
    return lowered.endswith(".json")


def name_problem(name: str) -> str | None:
    """Why a candidate's name is refused (the file goes to ``failed/``), or None."""
    if not name.isprintable():
        # Control characters, line breaks, and bytes that are not UTF-8 (surrogate-escaped).
        return "the file name contains control characters or bytes that are not UTF-8"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"the file name is longer than {MAX_NAME_BYTES} bytes"
    return None


def printable_name(name: str) -> str:
    """``name`` as text that is always valid UTF-8 and shows what was there (for sidecars, logs)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def _safe_stem_and_suffix(name: str) -> tuple[str, str]:
    """A stem and suffix safe to create anywhere: odd characters become ``_``, length bounded."""
    path = Path(name)
    suffix = path.suffix if path.suffix.lower() == ".json" else ".json"
    stem = name[: -len(path.suffix)] if path.suffix else name
    stem = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in stem)
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES - len(suffix):
        stem = stem[:-1]
    return stem or "_", suffix


def archive_folder(archive: Path, at: datetime) -> Path:
    """The day folder a file processed at ``at`` (UTC) is archived in."""
    return archive / at.strftime("%Y-%m-%d")


def archive_names(name: str, at: datetime) -> Iterator[str]:
    """``<stem>_<YYYYMMDD_HHMMSS>.json``, then ``..._1.json``, ``..._2.json`` … (never reused)."""
    stem, suffix = _safe_stem_and_suffix(name)
    base = f"{stem}_{at.strftime('%Y%m%d_%H%M%S')}"
    yield base + suffix
    n = 1
    while True:
        yield f"{base}_{n}{suffix}"
        n += 1


def failed_names(name: str) -> Iterator[str]:
    """The original name if it is safe, else a cleaned one; then ``<stem>_1.json`` …"""
    stem, suffix = _safe_stem_and_suffix(name)
    if name_problem(name) is None and name == stem + suffix:
        yield name
    else:
        yield stem + suffix
    n = 1
    while True:
        yield f"{stem}_{n}{suffix}"
        n += 1


def sidecar_name(name: str) -> str:
    """The reasons file beside a failed file: ``<name>.error.json``."""
    return name + SIDECAR_SUFFIX


def link_into(
    src: Path, folder: Path, names: Iterable[str], *, symlink: bool = False
) -> tuple[Path, bool]:
    """Give ``src`` the first free name of ``names`` in ``folder``; never overwrites.

    A hard link is atomic and refuses an existing name, so the source is still in place
    afterwards: the caller removes it once the new name is durable (``fsync_dir``). Returns the
    new path and whether the source still has to be removed (``FileExistsError`` when every
    name is taken). Where links are impossible (another
    file system, FAT, some network shares) the file is moved instead; that needs the inbox lock
    held, which every caller holds, to be free of races.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        destination = folder / name
        try:
            if symlink:
                os.link(src, destination, follow_symlinks=False)
            else:
                os.link(src, destination)
        except FileExistsError:
            continue
        except (OSError, NotImplementedError):
            if os.path.lexists(destination):
                continue
            shutil.move(os.fspath(src), os.fspath(destination))
            return destination, False
        return destination, True
    raise FileExistsError(f"no free name for {src.name} in {folder}")


def fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` durable (POSIX; Windows has no directory handle to sync)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_new(path: Path, content: dict[str, Any]) -> None:
    """Write ``content`` as ``path``, complete or not at all; ``FileExistsError`` if it exists."""
    write_bytes_new(path, json.dumps(content, ensure_ascii=False, indent=2).encode("utf-8") + b"\n")


def write_bytes_new(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path``, complete or not at all; ``FileExistsError`` if it exists."""
    fd, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except (OSError, NotImplementedError):
            if os.path.lexists(path):
                raise FileExistsError(path) from None
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class InboxLock:
    """An exclusive lock on ``<inbox>/.vitalstation.lock``, between processes and threads.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: both are released by the OS when
    the holder dies, so a killed processor never leaves the inbox locked. Each acquisition
    opens the file anew (locks belong to the open file), so two ``InboxLock`` objects exclude
    each other even in one process.
    """

    def __init__(self, inbox: Path) -> None:
        self.path = inbox / LOCK_FILE_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release`."""
        return self._fd is not None

    def acquire(self, wait_s: float = 0.0) -> bool:
        """Take the lock, waiting up to ``wait_s`` seconds; False if another holder kept it."""
        if self._fd is not None:
            raise RuntimeError("inbox lock already held")
        deadline = time.monotonic() + wait_s
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if _try_lock(fd) and self._still_the_file(fd):
                self._fd = fd
                return True
            os.close(fd)
            if time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL_S)

    def release(self) -> None:
        """Let the next processor in."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlock(fd)
            os.close(fd)

    def _still_the_file(self, fd: int) -> bool:
        """Someone deleting the lock file while we waited must not give two holders."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            _unlock(fd)
            return False
        mine = os.fstat(fd)
        if (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino):
            _unlock(fd)
            return False
        return True

    def __enter__(self) -> InboxLock:
        if not self.acquire():
            raise BlockingIOError(f"{self.path} is held by another processor")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def is_regular(mode: int) -> bool:
    """A regular file (not a FIFO, device or socket, which could block a reader for ever)."""
    return stat.S_ISREG(mode)


def cleanup_archive(archive: Path, retention_days: int, today: date) -> list[Path]:
    """Remove the archive's day folders more than ``retention_days`` days before ``today``.

    Retention is by the folder's name (the UTC day the files were archived), not by file
    times, which survive moves and copies. Only ``YYYY-MM-DD`` folders directly in the archive
    are considered; anything else (and symbolic links) is left alone. Returns what was removed.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    removed: list[Path] = []
    try:
        entries = sorted(os.scandir(archive), key=lambda e: e.name)
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not _DATE_FOLDER.match(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            day = date.fromisoformat(entry.name)
        except ValueError:
            continue
        if (today - day).days > retention_days:
            shutil.rmtree(entry.path)
            removed.append(Path(entry.path))
    return removed
