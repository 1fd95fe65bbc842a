"""The long-running process: one per config, stops cleanly, follows edits of its config file."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from imgdrop import __version__
from imgdrop.config import ConfigError, Settings, ensure_folders, load
from imgdrop.exitcodes import Exit
from imgdrop.journal import Journal
from imgdrop.pipeline import Pipeline
from imgdrop.watcher import Watcher

log = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds in-flight uploads get after SIGTERM
CONFIG_POLL = 1.0  # seconds between looks at the config file and the inbox folder (SPEC: 2 s)


class AlreadyRunning(Exception):
    """Another daemon holds this config's lock."""

    def __init__(self, pid: str) -> None:
        super().__init__(f"already running for this config (pid {pid or 'unknown'})")
        self.pid = pid


def lock_path(settings: Settings) -> Path:
    """The lock file beside the journal."""
    return settings.journal.with_name(settings.journal.name + ".lock")


def acquire_lock(path: Path) -> int:
    """Lock `path` for this process's lifetime; the fd. Raises AlreadyRunning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise AlreadyRunning(pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Daemon:
    """Watcher + pipeline for one configuration, driven from the main thread."""

    def __init__(self, settings: Settings, polling: bool = False) -> None:
        self._settings = settings
        self._force_polling = polling
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()
        self._pipeline: Pipeline | None = None
        self._watcher: Watcher | None = None
        self._watched: tuple[int, int] | None = None  # the inbox folder being watched
        self._watch_error: str | None = None

    def run(self, once: bool = False) -> Exit:
        """Run until SIGTERM/SIGINT (or, with `once`, until the inbox is drained)."""
        self._install_signals()
        journal = Journal(self._settings.journal)
        pipeline = self._pipeline = Pipeline(self._settings, journal)
        pipeline.start()
        self._rewatch()
        seen = _fingerprint(self._settings.path)
        log.info("imgdrop %s watching %s", __version__, self._settings.inbox)
        try:
            while not self._stop.is_set():
                self._wake.wait(0.05 if once else CONFIG_POLL)
                self._wake.clear()
                current = _fingerprint(self._settings.path)
                if self._reload.is_set() or current != seen:
                    self._reload.clear()
                    seen = current
                    self._apply_edit()
                if not self._watching():
                    if self._watcher is not None:  # watchdog stops reporting on such a folder
                        log.warning(
                            "the inbox %s was removed or replaced; watching it again",
                            self._settings.inbox,
                        )
                    self._rewatch()
                if once and self._pending() == 0 and pipeline.settled():
                    break
        finally:
            if self._watcher is not None:
                self._watcher.stop()
            if self._stop.is_set():
                log.info("stopping: letting uploads in flight finish (up to %.0f s)", STOP_GRACE)
            if pipeline.stop(STOP_GRACE):
                journal.close()
            else:
                log.warning(
                    "uploads still running after %.0f s were abandoned; their files "
                    "stay in the inbox",
                    STOP_GRACE,
                )
        if once and not self._stop.is_set() and pipeline.waiting():
            log.warning("%d file(s) stay in the inbox for a later try", pipeline.waiting())
            return Exit.FAILURE
        return Exit.OK

    def _watching(self) -> bool:
        """Is the configured inbox folder still the one watchdog reports on?"""
        return (
            self._watcher is not None
            and self._watcher.watching()
            and _identity(self._settings.inbox) == self._watched
        )

    def _pending(self) -> int:
        return self._watcher.pending() if self._watcher is not None else 0

    def _install_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._stop.set()
            self._wake.set()

        def reload(signum: int, frame: FrameType | None) -> None:
            self._reload.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _rewatch(self) -> None:
        """(Re)start watching the configured inbox, creating it if missing; scans it afresh."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        settings = self._settings
        assert self._pipeline is not None
        polling = self._force_polling or settings.observer == "polling"
        watcher = Watcher(settings.inbox, settings.settle_seconds, polling, self._pipeline.submit)
        try:
            watcher.start()
        except OSError as err:
            if str(err) != self._watch_error:  # say it once, not every second
                log.error("cannot watch the inbox %s: %s; will try again", settings.inbox, err)
            self._watch_error = str(err)
            return
        self._watch_error = None
        self._watcher = watcher
        self._watched = _identity(settings.inbox)

    def _apply_edit(self) -> None:
        """Reload the config file; keep the running config when the edit is invalid."""
        old = self._settings
        try:
            new = load(old.path)
            if not new.client_id:
                raise ConfigError(f"{old.path}: client_id is not set")
            ensure_folders(new)
        except (ConfigError, OSError) as err:
            log.error("config not reloaded, the previous one stays in force: %s", err)
            return
        assert self._pipeline is not None
        if new == old:
            self._pipeline.resume()  # saved unchanged or SIGHUP: "try again now"
            return
        logging.getLogger().setLevel(new.log_level)
        self._settings = new
        self._pipeline.update(new)
        if new.journal != old.journal:
            log.warning("a new journal location takes effect at the next start")
        if (new.inbox, new.settle_seconds, new.observer) != (
            old.inbox,
            old.settle_seconds,
            old.observer,
        ):
            self._rewatch()
            log.info("now watching %s", new.inbox)
            if new.inbox != old.inbox:
                _mention_left_behind(old.inbox)
        log.info("config reloaded from %s", new.path)


def _mention_left_behind(old: Path) -> None:
    """Files in a no longer watched inbox stay there: say so once."""
    with contextlib.suppress(OSError):
        left = [e.name for e in os.scandir(old) if not e.name.startswith(".") and e.is_file()]
        if left:
            log.warning(
                "%d file(s) stay in the previous inbox %s: %s", len(left), old, ", ".join(left[:5])
            )
