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
from imgdrop.notify import Notifier
from imgdrop.pipeline import Pipeline
from imgdrop.watcher import Watcher

log = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds in-flight uploads get after SIGTERM
CONFIG_POLL = 0.5  # a config edit is picked up within this, plus the load


class AlreadyRunning(Exception):
    """Another daemon holds this config's lock."""

    def __init__(self, pid: str) -> None:
        super().__init__(f"imgdrop is already running for this config (pid {pid or 'unknown'})")
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


class Daemon:
    """Watcher + pipeline for one configuration, driven from the main thread."""

    def __init__(self, settings: Settings, polling: bool = False) -> None:
        self._settings = settings
        self._force_polling = polling
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()

    def run(self, once: bool = False) -> Exit:
        """Run until SIGTERM/SIGINT (or, with `once`, until the inbox is drained)."""
        self._install_signals()
        settings = self._settings
        journal = Journal(settings.journal)
        pipeline = Pipeline(settings, journal, Notifier(settings.clipboard, settings.notify))
        pipeline.start()
        watcher = self._watch(settings, pipeline)
        seen = _fingerprint(settings.path)
        log.info("imgdrop %s watching %s", __version__, settings.inbox)
        try:
            while not self._stop.is_set():
                self._wake.wait(0.05 if once else CONFIG_POLL)
                self._wake.clear()
                current = _fingerprint(self._settings.path)
                if self._reload.is_set() or current != seen:
                    self._reload.clear()
                    seen = current
                    watcher = self._apply_edit(pipeline, watcher)
                if once and watcher.pending() == 0 and pipeline.settled():
                    break
        finally:
            watcher.stop()
            if self._stop.is_set():
                log.info("stopping: letting uploads in flight finish (up to %.0f s)", STOP_GRACE)
            if pipeline.stop(STOP_GRACE):
                journal.close()
        if once and pipeline.waiting():
            log.warning("%d file(s) stay in the inbox for a later try", pipeline.waiting())
            return Exit.FAILURE
        return Exit.OK

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

    def _watch(self, settings: Settings, pipeline: Pipeline) -> Watcher:
        polling = self._force_polling or settings.observer == "polling"
        watcher = Watcher(settings.inbox, settings.settle_seconds, polling, pipeline.submit)
        watcher.start()
        return watcher

    def _apply_edit(self, pipeline: Pipeline, watcher: Watcher) -> Watcher:
        """Reload the config file; keep the running config when the edit is invalid."""
        old = self._settings
        try:
            new = load(old.path)
        except ConfigError as err:
            log.error("config not reloaded, the previous one stays in force: %s", err)
            return watcher
        if not new.client_id:
            log.error("config not reloaded: %s has no client_id", old.path)
            return watcher
        if new == old:
            return watcher
        ensure_folders(new)
        logging.getLogger().setLevel(new.log_level)
        self._settings = new
        pipeline.update(new)
        if new.journal != old.journal:
            log.warning("a new journal location takes effect at the next start")
        if (new.inbox, new.settle_seconds, new.observer) != (
            old.inbox,
            old.settle_seconds,
            old.observer,
        ):
            with contextlib.suppress(Exception):
                watcher.stop()
            watcher = self._watch(new, pipeline)
            log.info("now watching %s", new.inbox)
        log.info("config reloaded from %s", new.path)
        return watcher
