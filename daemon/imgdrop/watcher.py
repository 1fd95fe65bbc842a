"""Watch the inbox: ignore rules, the watchdog observer, and deciding when a file is complete.

Two threads matter here. watchdog's observer thread only filters events by name and queues
them; our readiness thread owns every candidate, stats files, and calls `on_ready`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

PARTIAL_SUFFIXES = (".part", ".crdownload", ".download")
IGNORED_SUFFIXES = (*PARTIAL_SUFFIXES, ".tmp", "~")
# Long enough for ImageMagick's close-empty-then-reopen (~1 ms), short enough to feel instant.
CONFIRM_SECONDS = 0.015
POLL_SECONDS = 0.25
# Only what readiness uses: closed_no_write and attrib never reach the handler. Our own opens
# (the lease probe, the pipeline's reads) do arrive as "opened": see Watcher._apply.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
    FileOpenedEvent,
]


def is_ignored(name: str) -> bool:
    """Return True for names imgdrop leaves alone: hidden files and partial downloads."""
    return not name or name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


class Sig(NamedTuple):
    """What 'unchanged' means for a file: size, mtime and inode."""

    size: int
    mtime_ns: int
    ino: int


def regular_sig(path: Path) -> Sig | None:
    """Return the lstat signature of a regular file, or None (missing, symlink, dir, fifo...)."""
    try:
        st = path.lstat()  # never follow a symlink: a link to ~/.ssh must stay unread
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Sig(st.st_size, st.st_mtime_ns, st.st_ino)


def has_partial_sibling(path: Path) -> bool:
    """Return True while a download of `path` is still in progress beside it."""
    # Firefox creates the final name empty and renames `<name>.part` over it when done:
    # the empty placeholder must not be handed over (and failed) meanwhile.
    return any(os.path.lexists(f"{path}{suffix}") for suffix in PARTIAL_SUFFIXES)


# Linux only; getattr keeps macOS (no leases) and type checkers on other platforms happy.
_F_SETLEASE: int | None = getattr(fcntl, "F_SETLEASE", None)
_F_SETSIG: int | None = getattr(fcntl, "F_SETSIG", None)


def open_for_writing(path: Path) -> bool | None:
    """Return True if some process has `path` open for writing, False if none, None if unknown."""
    # Size and mtime cannot tell a finished file from a writer pausing with it open (curl
    # stalled mid-body, wget waiting for the first byte over an empty file). Linux refuses a
    # read lease while anyone has the file open for writing, so take one and drop it at once.
    # Unknown (macOS, EINVAL on file systems without leases, EACCES when not the owner) means
    # plain settling decides, as before.
    if _F_SETLEASE is None or _F_SETSIG is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except BlockingIOError:
        return True  # someone holds a write lease on it: it has the file open
    except OSError:
        return None
    try:
        # A writer opening the file while we hold the lease makes the kernel signal us, SIGIO
        # by default, whose default action kills the whole daemon. SIGURG is ignored by default.
        fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        with contextlib.suppress(OSError):  # closing releases it anyway
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


@dataclass
class _Candidate:
    """A file being watched until it is complete."""

    mode: str  # "now" (renamed within inbox), "confirm" (closed after write) or "settle"
    due: float  # monotonic time of the next check
    sig: Sig | None = None
    since: float = 0.0  # monotonic time `sig` was first seen
    # Held back only for a `.part` sibling: waiting on someone else, so not pending.
    awaits_sibling: bool = False


class _Handler(FileSystemEventHandler):
    """Forward every event to the watcher; runs on watchdog's observer thread."""

    def __init__(self, push: Callable[[FileSystemEvent], None]) -> None:
        self._push = push

    def dispatch(self, event: FileSystemEvent) -> None:
        """Hand the event over without doing any work here."""
        self._push(event)


class Watcher:
    """Watches `inbox` and calls `on_ready(path)` once per complete file, from its own thread."""

    def __init__(
        self,
        inbox: Path,
        settle_seconds: float,
        polling: bool,
        on_ready: Callable[[Path], None],
    ) -> None:
        self._inbox = Path(inbox).absolute()
        self._settle_seconds = settle_seconds
        self._polling = polling
        self._on_ready = on_ready
        # FSEvents reports real paths (/private/var/... for /var/...): accept both spellings.
        self._inbox_strs = {str(self._inbox), os.path.realpath(self._inbox)}
        self._cond = threading.Condition()
        self._events: list[tuple[str, Path]] = []  # guarded by _cond
        self._held = 0  # candidates + batch in hand on the readiness thread; guarded by _cond
        self._stop = threading.Event()  # one per run: a thread stuck in on_ready keeps its own
        self._candidates: dict[Path, _Candidate] = {}  # readiness thread only
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None

    # -- public -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the observer and the readiness thread, then queue the files already present."""
        if self._thread is not None:
            return
        self._inbox.mkdir(parents=True, exist_ok=True)
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stop,), name="imgdrop-readiness", daemon=True
        )
        self._thread.start()
        # Created here, not in __init__: the inotify observer starts a thread when constructed.
        observer = PollingObserver(timeout=POLL_SECONDS) if self._polling else Observer()
        self._observer = observer
        try:
            observer.schedule(
                _Handler(self._on_event),
                str(self._inbox),
                recursive=False,
                event_filter=EVENT_FILTER,
            )
            observer.start()
        except Exception:
            self.stop()
            raise
        # Scan after the watch exists so nothing dropped during start-up falls in between.
        self._push([("scan", self._inbox / name) for name in self._scan()])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads, waiting at most about `timeout` seconds in all."""
        deadline = time.monotonic() + timeout
        observer, thread = self._observer, self._thread
        self._observer = self._thread = None
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        if observer is not None:
            observer.stop()
            if observer.is_alive():  # never started when schedule() failed
                observer.join(timeout)
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("readiness thread did not stop within %.1fs", timeout)
                return
        with self._cond:
            self._events.clear()
            self._held = 0
        self._candidates.clear()

    def watching(self) -> bool:
        """Return False once watchdog gave up on the inbox (it stops when the folder is deleted)."""
        observer = self._observer
        return (
            observer is not None
            and observer.is_alive()
            and all(emitter.is_alive() for emitter in observer.emitters)
        )

    def pending(self) -> int:
        """Return how many files are known but not yet handed to on_ready.

        An empty placeholder held back only by its `.part` sibling is not counted: like a file
        in backoff it waits on someone else (an abandoned download would never finish).
        """
        with self._cond:
            return len(self._events) + self._held

    # -- observer thread ----------------------------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        """Filter by name and queue; no I/O here, this is watchdog's thread."""
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            # A rename within the inbox (rsync, screencapture) means the writer is done.
            raw = [("deleted", event.src_path), ("moved", event.dest_path)]
        else:
            raw = [(event.event_type, event.src_path)]
        items = [(kind, p) for kind, src in raw if (p := self._inbox_child(src)) is not None]
        if items:
            self._push(items)

    def _inbox_child(self, raw: bytes | str) -> Path | None:
        """Return inbox/<name> for a direct, non-ignored child of the inbox, else None."""
        if not raw:
            return None
        parent, name = os.path.split(os.fsdecode(raw))
        if parent not in self._inbox_strs or is_ignored(name):
            return None
        return self._inbox / name

    def _push(self, items: Iterable[tuple[str, Path]]) -> None:
        """Append (kind, path) items for the readiness thread and wake it."""
        with self._cond:
            self._events.extend(items)
            self._cond.notify()

    def _scan(self) -> list[str]:
        """Return the names of regular, non-ignored files in the inbox (symlinks not followed)."""
        try:
            with os.scandir(self._inbox) as entries:
                return [
                    e.name
                    for e in entries
                    if not is_ignored(e.name) and e.is_file(follow_symlinks=False)
                ]
        except OSError as exc:
            log.error("cannot list %s: %s", self._inbox, exc)
            return []

    # -- readiness thread ---------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        """Apply queued events and check due candidates until `stop` is set."""
        while True:
            with self._cond:
                batch = self._wait_for_work(stop)
                if batch is None:
                    return
                self._held = self._unfinished() + len(batch)
            self._apply_batch(batch)
            self._check_due(stop)
            with self._cond:
                if stop.is_set():
                    return
                self._held = self._unfinished()

    def _unfinished(self) -> int:
        """Return how many candidates count as pending (see `pending`)."""
        return sum(not c.awaits_sibling for c in self._candidates.values())

    def _wait_for_work(self, stop: threading.Event) -> list[tuple[str, Path]] | None:
        """Sleep until events arrive or a candidate is due; None once stopping. Holds _cond."""
        while not stop.is_set():
            if self._events:
                batch, self._events = self._events, []
                return batch
            if not self._candidates:
                self._cond.wait()  # quiet when idle: no timer at all
                continue
            delay = min(c.due for c in self._candidates.values()) - time.monotonic()
            if delay <= 0:
                return []
            self._cond.wait(delay)
        return None

    def _apply_batch(self, batch: list[tuple[str, Path]]) -> None:
        """Apply events in order, skipping exact repeats (a write burst is many 'modified')."""
        previous = None
        for item in batch:
            if item != previous:
                self._apply(*item)
            previous = item

    def _apply(self, kind: str, path: Path) -> None:
        """Update the candidate for `path` after one event."""
        now = time.monotonic()
        cand = self._candidates.get(path)
        if kind == "deleted":
            self._candidates.pop(path, None)
        elif kind == "opened":
            # Only a writer reopening within the confirmation window matters (ImageMagick).
            # Our own opens land here too and must change nothing: the pipeline's reads find no
            # candidate, and the lease probe opens only settle candidates, which ignore this
            # (a writer's close after the probe is queued after the probe's open).
            if cand is not None and cand.mode == "confirm":
                self._settle(path, now)
        elif kind == "moved" and not self._polling:
            self._candidates[path] = _Candidate("now", due=now)
        elif kind in {"closed", "moved"}:
            # Polling pairs moves by inode only, so a deleted file's recycled inode can pose
            # as a rename of a file still being written: confirm those like a close.
            self._closed(path, now)
        else:  # created, modified, scan
            self._settle(path, now)

    def _closed(self, path: Path, now: float) -> None:
        """After close-after-write: confirm shortly unless the file is empty."""
        sig = regular_sig(path)
        if sig is None:
            self._candidates.pop(path, None)
        elif sig.size == 0:
            self._settle(path, now, sig)  # ImageMagick closes the final name empty first
        else:
            self._candidates[path] = _Candidate("confirm", now + CONFIRM_SECONDS, sig, now)

    def _settle(self, path: Path, now: float, sig: Sig | None = None) -> None:
        """(Re)start the quiet period for `path` from its current signature."""
        # Stat here, not only at due times: otherwise the first check after the last write
        # would see a change and wait a second full settle period.
        sig = sig or regular_sig(path)
        if sig is None:
            self._candidates.pop(path, None)
            return
        self._candidates[path] = _Candidate("settle", now + self._quiet_needed(sig), sig, now)

    def _quiet_needed(self, sig: Sig) -> float:
        """Return how long `sig` must stay unchanged before the file counts as complete."""
        # A non-empty file last written long ago (renamed in, found at start) is finished
        # already; one quick re-stat guards against a writer that is just starting.
        age = (time.time_ns() - sig.mtime_ns) / 1e9
        return (
            CONFIRM_SECONDS if sig.size > 0 and age > self._settle_seconds else self._settle_seconds
        )

    def _check_due(self, stop: threading.Event) -> None:
        """Re-stat due candidates and hand the complete ones to on_ready."""
        now = time.monotonic()
        due = sorted((c.due, p) for p, c in self._candidates.items() if c.due <= now)
        for _, path in due:
            if stop.is_set():
                return
            if self._is_ready(path, self._candidates[path], now):
                del self._candidates[path]
                self._hand_over(path)

    def _is_ready(self, path: Path, cand: _Candidate, now: float) -> bool:
        """Return True when `path` is complete; otherwise update or drop its candidate."""
        sig = regular_sig(path)
        if sig is None:
            del self._candidates[path]
            return False
        if cand.mode == "now" and sig.size > 0:
            return True
        if sig != cand.sig or cand.mode == "now":
            self._settle(path, now, sig)  # changed, or renamed in while still empty
            return False
        return cand.mode == "confirm" or self._quiet_long_enough(path, cand, sig, now)

    def _quiet_long_enough(self, path: Path, cand: _Candidate, sig: Sig, now: float) -> bool:
        """Return True when an unchanged settle candidate has been quiet long enough."""
        needed = self._quiet_needed(sig)
        if now - cand.since < needed:
            cand.due = cand.since + needed
            return False
        if sig.size == 0 and has_partial_sibling(path):
            cand.due = now + self._settle_seconds  # the rename over it will wake us sooner
            cand.awaits_sibling = True
            return False
        cand.awaits_sibling = False
        if open_for_writing(path):
            cand.due = now + self._settle_seconds  # its close event will wake us sooner
            return False
        return True

    def _hand_over(self, path: Path) -> None:
        """Call on_ready, logging instead of dying when it raises."""
        log.debug("ready: %s", path)
        try:
            self._on_ready(path)
        except Exception:
            log.exception("on_ready failed for %s", path)
