"""Watch the inbox: ignore rules, the watchdog observer, and deciding when a file is complete.

Two threads matter here. watchdog's observer thread only filters events by name and queues
them; our readiness thread owns every candidate, stats files, lists the inbox again every
`rescan_seconds` (and at once when inotify reports lost events), and calls `on_ready`.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
import weakref
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

from imgdrop.writers import finder_copying, open_for_writing

__all__ = ["Watcher", "is_ignored", "on_disk_path", "open_for_writing"]

log = logging.getLogger(__name__)

# Suffixes a download in progress has; an empty final name beside one is a placeholder.
PARTIAL_SUFFIXES = (".part", ".crdownload", ".download", ".aria2")
IGNORED_SUFFIXES = (*PARTIAL_SUFFIXES, ".aria2__temp", ".tmp", "~")
# OS litter: the custom-folder-icon file of macOS, Windows' folder settings and thumbnails.
IGNORED_NAMES = frozenset({"icon\r", "desktop.ini", "thumbs.db"})
# Long enough for ImageMagick's close-empty-then-reopen (~1 ms), short enough to feel instant.
CONFIRM_SECONDS = 0.015
POLL_SECONDS = 0.25
OVERFLOW_RESCAN_DELAY = 0.1
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
    lower = name.lower()
    return (
        not name
        or name.startswith(".")
        or lower.endswith(IGNORED_SUFFIXES)
        or lower in IGNORED_NAMES
    )


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


F_GETPATH = 50  # macOS fcntl: the path of an open file as the volume spells it


def disk_spelling(path: str) -> str:
    """Return `path` as the volume spells it (case, Unicode form) on macOS; else `path`."""
    if sys.platform != "darwin":
        return path
    import fcntl  # noqa: PLC0415 - only used here

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return path
    try:
        raw = fcntl.fcntl(fd, F_GETPATH, bytes(1024))  # MAXPATHLEN
    except OSError:
        return path
    finally:
        os.close(fd)
    return os.fsdecode(raw.split(b"\0", 1)[0]) or path


def on_disk_path(path: Path, spelling: Callable[[str], str] | None = None) -> Path:
    """Return the folder's real path as the disk spells it: symlinks, /./, case resolved."""
    # FSEvents reports this spelling; a watch made under another one gets no live events.
    real = os.path.realpath(path)
    return Path((spelling or disk_spelling)(real))


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        st = Path(path).stat()
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


# inotify's IN_Q_OVERFLOW reaches us only as watchdog's warning; FSEvents drops not at all
# (the periodic rescan covers those). Watchers listening for the warning, by identity.
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
_overflow_listeners: weakref.WeakSet[Watcher] = weakref.WeakSet()


class _OverflowFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in str(record.msg).lower():
            for watcher in list(_overflow_listeners):
                watcher.rescan_now()
        return True  # keep the warning itself


def _listen_for_overflow(watcher: Watcher) -> None:
    logger = logging.getLogger(_OVERFLOW_LOGGER)
    if not any(isinstance(f, _OverflowFilter) for f in logger.filters):
        logger.addFilter(_OverflowFilter())
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)  # a filter runs only for records the level lets by
    _overflow_listeners.add(watcher)


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
        rescan_seconds: float = 60.0,
    ) -> None:
        self._inbox = Path(inbox).absolute()
        self._settle_seconds = settle_seconds
        self._polling = polling
        self._on_ready = on_ready
        self._rescan_seconds = rescan_seconds
        # Event paths are matched to the inbox by the folder's (st_dev, st_ino), not spelling;
        # spellings already judged are remembered (bounded) to keep stats off the hot path.
        self._inbox_id: tuple[int, int] | None = None
        self._spellings: dict[str, bool] = {}
        self._next_rescan = 0.0  # monotonic; guarded by _cond
        self._handed: dict[Path, Sig] = {}  # readiness thread only: what on_ready last got
        self._scan_failed = False
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
        watch_path = on_disk_path(self._inbox)
        self._inbox_id = _identity(watch_path)
        self._spellings = {str(self._inbox): True, str(watch_path): True}
        self._next_rescan = time.monotonic() + self._rescan_seconds
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
                str(watch_path),
                recursive=False,
                event_filter=EVENT_FILTER,
            )
            observer.start()
        except Exception:
            self.stop()
            raise
        _listen_for_overflow(self)
        # Scan after the watch exists so nothing dropped during start-up falls in between.
        self._push([("scan", self._inbox / name) for name in self._scan() or ()])

    def rescan_now(self) -> None:
        """List the inbox again soon (any thread): events were lost."""
        # A flood overflows the queue again and again: one listing per short window is enough.
        soon = time.monotonic() + OVERFLOW_RESCAN_DELAY
        with self._cond:
            self._next_rescan = min(self._next_rescan, soon)
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads, waiting at most about `timeout` seconds in all."""
        deadline = time.monotonic() + timeout
        observer, thread = self._observer, self._thread
        self._observer = self._thread = None
        _overflow_listeners.discard(self)
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
        self._handed.clear()

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

        An empty placeholder held back only by its `.part`/`.aria2` sibling is not counted: like
        a file in backoff it waits on someone else (an abandoned download would never finish).
        """
        with self._cond:
            return len(self._events) + self._held

    # -- observer thread ----------------------------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        """Filter by name and queue; watchdog's thread, so no I/O beyond `_is_inbox`'s one stat."""
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
        if is_ignored(name) or not self._is_inbox(parent):
            return None
        return self._inbox / name

    def _is_inbox(self, parent: str) -> bool:
        """Return True when the folder spelled `parent` is the inbox (same device and inode)."""
        known = self._spellings.get(parent)
        if known is None:
            known = self._inbox_id is not None and _identity(parent) == self._inbox_id
            if len(self._spellings) < 64:  # moves from elsewhere bring other folders
                self._spellings[parent] = known
        return known

    def _push(self, items: Iterable[tuple[str, Path]]) -> None:
        """Append (kind, path) items for the readiness thread and wake it."""
        with self._cond:
            self._events.extend(items)
            self._cond.notify()

    def _scan(self) -> list[str] | None:
        """Return the names of regular, non-ignored files in the inbox (symlinks not followed).

        None when the inbox cannot be listed (logged once per failure streak).
        """
        try:
            with os.scandir(self._inbox) as entries:
                names = [
                    e.name
                    for e in entries
                    if not is_ignored(e.name) and e.is_file(follow_symlinks=False)
                ]
        except OSError as exc:
            if not self._scan_failed:
                log.error("cannot list %s: %s", self._inbox, exc)
            self._scan_failed = True
            return None
        self._scan_failed = False
        return names

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
            self._rescan_if_due()
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
            due = min((c.due for c in self._candidates.values()), default=self._next_rescan)
            delay = min(due, self._next_rescan) - time.monotonic()
            if delay <= 0:
                return []
            self._cond.wait(delay)
        return None

    def _rescan_if_due(self) -> None:
        """List the inbox when due, making a candidate of what the events missed."""
        now = time.monotonic()
        with self._cond:
            if now < self._next_rescan:
                return
            self._next_rescan = now + self._rescan_seconds
        names = self._scan()
        if names is None:
            return  # keep what was handed over: an unreadable moment must not re-queue it all
        present: dict[Path, Sig] = {}
        for name in names:
            path = self._inbox / name
            sig = regular_sig(path)
            if sig is not None:
                present[path] = sig
        # Handed-over files still here (uploading, in backoff) stay the pipeline's: only a
        # change since hand-over makes one a candidate again. A file is queued at most once.
        self._handed = {p: s for p, s in self._handed.items() if present.get(p) == s}
        missed = [
            (path, sig)
            for path, sig in present.items()
            if path not in self._candidates and path not in self._handed
        ]
        if missed:
            log.info("rescan of %s found %d file(s) the events missed", self._inbox, len(missed))
        for path, sig in missed:
            self._settle(path, now, sig)

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
        handed = self._handed.get(path)
        if handed is not None and kind not in {"deleted", "opened"}:
            if regular_sig(path) == handed:
                return  # nothing changed since on_ready had it (a late poll, a rescan)
            del self._handed[path]
        if kind == "deleted":
            self._candidates.pop(path, None)
            self._handed.pop(path, None)  # archived: keep the set to what is still here
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
        # A non-empty file gets an early look: no writer holding it open means complete.
        first = CONFIRM_SECONDS if sig.size > 0 else self._settle_seconds
        self._candidates[path] = _Candidate("settle", now + first, sig, now)

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
        if finder_copying(path):  # Finder may create the copy empty, then fill it
            cand.due = now + self._settle_seconds
            return False
        if cand.mode == "now" and sig.size > 0:
            return True
        if sig != cand.sig or cand.mode == "now":
            self._settle(path, now, sig)  # changed, or renamed in while still empty
            return False
        return cand.mode == "confirm" or self._quiet_long_enough(path, cand, sig, now)

    def _quiet_long_enough(self, path: Path, cand: _Candidate, sig: Sig, now: float) -> bool:
        """Return True when an unchanged settle candidate has been quiet long enough."""
        # Quiet time runs on this machine's clock from when the change was seen: a file's
        # mtime may come from a skewed remote clock or be set by the writer (cp -p, tar).
        quiet = now - cand.since >= self._settle_seconds
        if sig.size == 0 and quiet and has_partial_sibling(path):
            cand.due = now + self._settle_seconds  # the rename over it will wake us sooner
            cand.awaits_sibling = True
            return False
        cand.awaits_sibling = False
        # An empty file is never ready before settle_seconds, whatever the probe says.
        writing = open_for_writing(path) if sig.size > 0 or quiet else None
        if writing is False:
            return True  # the OS says nobody has it open for writing: complete now
        if writing or not quiet:
            # A writer's close event (Linux) will wake us sooner than this.
            cand.due = now + self._settle_seconds if writing else cand.since + self._settle_seconds
            return False
        return True

    def _hand_over(self, path: Path) -> None:
        """Call on_ready, logging instead of dying when it raises."""
        log.debug("ready: %s", path)
        sig = regular_sig(path)  # before on_ready: the pipeline may move it at once
        try:
            self._on_ready(path)
        except Exception:
            log.exception("on_ready failed for %s", path)
            return  # not handed over: the next rescan offers it again
        if sig is not None:
            self._handed[path] = sig
