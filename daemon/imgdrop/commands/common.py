"""What several commands share: the daemon's lock, the journal, how names and times are shown."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from imgdrop.config import Settings
from imgdrop.daemon import lock_path
from imgdrop.journal import Entry, Journal


def running_pid(settings: Settings) -> int | None:
    """Return the pid of the daemon that really holds this config's lock, else None.

    The pid in the lock file is believed only while the lock is held: a stale file (crash,
    reboot) names a pid that may belong to any process by now. Never creates the lock file.
    """
    path = lock_path(settings)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            # a shared lock is refused only while the daemon holds its exclusive one
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def journal_if_any(settings: Settings) -> Iterator[Journal | None]:
    """Yield the journal when its file exists (None otherwise: nothing uploaded yet)."""
    if not settings.journal.exists():
        yield None
        return
    with Journal(settings.journal) as journal:
        yield journal


def shown(name: str) -> str:
    """Return a file name printable on any terminal (non-UTF-8 bytes as escapes)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iso(epoch: float | None) -> str | None:
    """Return `epoch` as local ISO 8601 with offset, seconds precision."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def when(epoch: float | None) -> str:
    """Return `epoch` as a short local time for people."""
    if epoch is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def midnight(now: float | None = None) -> float:
    """Return the epoch of today's local midnight."""
    moment = datetime.fromtimestamp(time.time() if now is None else now)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def masked(handle: str | None) -> str:
    """Return a delete handle safe to print: its first 3 characters."""
    if not handle:
        return "-"
    return handle[:3] + "…"


def uploads(entries: list[Entry]) -> list[Entry]:
    """Return the entries that went to a host (have a link)."""
    return [entry for entry in entries if entry.link]


def visible_files(folder: Path) -> list[Path]:
    """Return the regular, non-hidden files in `folder`, sorted by name ([] if it is missing)."""
    try:
        paths = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in paths if not p.name.startswith(".") and p.is_file()]
