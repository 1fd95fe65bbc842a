"""The long-running process: one per config, stops cleanly, follows edits of its config file."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import logging.handlers
import os
import platform
import signal
import threading
import time
from dataclasses import fields
from pathlib import Path
from types import FrameType

import platformdirs

from imgdrop import __version__, hosts, macos, notify
from imgdrop.config import ConfigError, Settings, ensure_folders, load, mask, needs_client_id
from imgdrop.exitcodes import Exit
from imgdrop.journal import Journal, JournalError
from imgdrop.notify import Notifier
from imgdrop.pipeline import Pipeline
from imgdrop.watcher import Watcher

log = logging.getLogger(__name__)

# Seconds in-flight uploads get after SIGTERM; service.EXIT_TIMEOUT (launchd ExitTimeOut,
# systemd TimeoutStopSec) is 30, so the daemon is gone well before it would be killed.
STOP_GRACE = 10.0
ONCE_FACTOR = 10  # --once gives up on a file still being written after settle_seconds x this
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
        self._stuck_since: float | None = None  # --once: since when only unready files remain
        self._edit_error: str | None = None  # the last refused edit, said once

    def run(self, once: bool = False) -> Exit:
        """Run until SIGTERM/SIGINT (or, with `once`, until the inbox is drained)."""
        self._install_signals()
        journal = Journal(self._settings.journal)
        pipeline = self._pipeline = Pipeline(self._settings, journal)
        pipeline.start()
        self._rewatch()
        seen = _fingerprint(self._settings.path)
        log.info("imgdrop %s watching %s", __version__, self._settings.inbox)
        notify.report_missing_tools(self._settings.clipboard, self._settings.notify)
        self._stuck_since = None
        stuck = False
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
                if once and pipeline.settled() and self._once_finished():
                    stuck = self._pending() > 0
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
        if self._stop.is_set():
            log.info("stopped")
        return Exit.FAILURE if stuck else Exit.OK

    def _once_finished(self) -> bool:
        """--once with nothing in flight: done when nothing is pending, or only files that
        stay unready (held open for writing) for settle_seconds x ONCE_FACTOR (SPEC)."""
        pending = self._pending()
        if pending == 0:
            return True
        limit = self._settings.settle_seconds * ONCE_FACTOR
        self._stuck_since = self._stuck_since or time.time()
        if time.time() - self._stuck_since <= limit:
            return False
        log.warning("%d file(s) still being written after %.0f s stay in the inbox", pending, limit)
        return True

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
        watcher = Watcher(settings.inbox, settings.settle_seconds, polling, self._pipeline.submit,
                          rescan_seconds=settings.rescan_seconds)  # fmt: skip
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
            check_hosts(new)
            ensure_folders(new)
        except (ConfigError, OSError) as err:
            if str(err) != self._edit_error:  # a refused edit is said once, not every second
                log.error("config not reloaded, the previous one stays in force: %s", err)
            self._edit_error = str(err)
            return
        if self._edit_error is not None:
            log.info("config ok again")
            self._edit_error = None
        assert self._pipeline is not None
        if new == old:
            count = self._pipeline.resume()  # saved unchanged or SIGHUP: "try again now"
            log.info("config unchanged; retried %d waiting file(s) now", count)
            return
        logging.getLogger().setLevel(new.log_level)
        self._settings = new
        self._pipeline.update(new)
        if new.journal != old.journal:
            log.warning("a new journal location takes effect at the next start")
        if (new.inbox, new.settle_seconds, new.observer, new.rescan_seconds) != (
            old.inbox,
            old.settle_seconds,
            old.observer,
            old.rescan_seconds,
        ):
            self._rewatch()
            log.info("now watching %s", new.inbox)
            if new.inbox != old.inbox:
                _mention_left_behind(old.inbox)
        log.info("config reloaded from %s: %s", new.path, describe_changes(old, new))


def check_hosts(settings: Settings) -> None:
    """Raise ConfigError unless every host of `hosts` can be built (a bad .sxcu names its key)."""
    for host in hosts.build(settings):
        host.close()


def describe_changes(old: Settings, new: Settings) -> str:
    """`workers 2 → 3, notify true → false`; secrets masked."""
    changes = []
    for key in fields(Settings):
        before, after = getattr(old, key.name), getattr(new, key.name)
        if before != after and key.name != "path":
            if key.name == "client_id":
                before, after = mask(before), mask(after)
            changes.append(f"{key.name} {_shown(before)} → {_shown(after)}")
    return ", ".join(changes) or "nothing changed"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _mention_left_behind(old: Path) -> None:
    """Files in a no longer watched inbox stay there: say so once."""
    with contextlib.suppress(OSError):
        left = [e.name for e in os.scandir(old) if not e.name.startswith(".") and e.is_file()]
        if left:
            log.warning(
                "%d file(s) stay in the previous inbox %s: %s", len(left), old, ", ".join(left[:5])
            )


# --- under a service manager (`imgdrop run --service`) -------------------------------------
# Any non-zero exit under launchd's KeepAlive {SuccessfulExit: false} or systemd's
# Restart=on-failure restarts the job every 10 s forever, so here nothing exits but a signal:
# a bad config or a held lock is waited out instead.

LOG_BYTES = 2_000_000  # per file; with LOG_BACKUPS the log never passes ~10 MB in all
LOG_BACKUPS = 4
RETRY_SECONDS = 60.0  # a journal or folder that would not open is tried again this often


LOG_FILE_ENV = "IMGDROP_LOG_FILE"  # set by `imgdrop.maccheck` so its check job logs in its sandbox


def service_log_file() -> Path:
    """Return the log file the service writes (and rotates)."""
    chosen = os.environ.get(LOG_FILE_ENV)
    if chosen and Path(chosen).is_absolute():
        return Path(chosen)
    return Path(platformdirs.user_log_dir("imgdrop")) / "imgdrop.log"


def log_to_file(path: Path) -> logging.Handler:
    """Send all logging to the rotated `path` instead of stderr; return the handler."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    root = logging.getLogger()
    for old in list(root.handlers):  # stderr goes to launchd's file: only what escapes
        root.removeHandler(old)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


class _Waiter:
    """Waits for the config file to change, a signal, or a deadline (wall clock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.poke = threading.Event()  # SIGHUP: look again now

    def install_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stop.set()
            self.poke.set()

        def poke(signum: int, frame: FrameType | None) -> None:
            self.poke.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, poke)

    def until_changed(self, seen: object, seconds: float = float("inf")) -> bool:
        """Wait until the file differs from `seen`, SIGHUP, or `seconds`; False when stopped."""
        deadline = time.time() + seconds  # wall clock: a Mac that slept resumes on time
        while not self.stop.is_set() and time.time() < deadline:
            if self.poke.wait(CONFIG_POLL):
                self.poke.clear()
                break
            if _fingerprint(self.path) != seen:
                break
        return not self.stop.is_set()


def _load_for_service(path: Path) -> Settings:
    """Return the settings the service can run with; raise ConfigError or OSError."""
    settings = load(path)
    if needs_client_id(settings):
        raise ConfigError(f"{path}: client_id is not set")
    ensure_folders(settings)
    return settings


def run_service(config_path: Path) -> Exit:
    """Run as the login service: wait out config errors and a held lock; exit 0 on SIGTERM."""
    log_to_file(service_log_file())
    waiter = _Waiter(config_path)
    waiter.install_signals()
    said: str | None = None  # the last problem logged, so each is said once
    alerts = Notifier(clipboard=False, notify=True)
    while not waiter.stop.is_set():
        seen = _fingerprint(config_path)
        try:
            settings = _load_for_service(config_path)
        except (ConfigError, OSError) as err:
            problem = f"imgdrop is waiting for its config to be fixed: {_plain(err)}"
            if problem != said:
                log.error("%s", problem)
                alerts.alert("imgdrop cannot start", f"Fix the config file: {err}")
                said = problem
            waiter.until_changed(seen)
            continue
        if said is not None and said.startswith("imgdrop is waiting for its config"):
            log.info("config ok again")
        logging.getLogger().setLevel(settings.log_level)
        try:
            lock = acquire_lock(lock_path(settings))
        except AlreadyRunning as err:
            problem = f"another imgdrop is {err}; waiting for it to stop"
            if problem != said:
                log.warning("%s", problem)
                said = problem
            waiter.until_changed(seen, CONFIG_POLL)
            continue
        except OSError as err:
            said = _say_once(said, f"cannot take the lock {lock_path(settings)}: {err}")
            waiter.until_changed(seen, RETRY_SECONDS)
            continue
        try:
            if waiter.stop.is_set():
                break
            return Daemon(settings).run()
        except (JournalError, OSError) as err:  # e.g. a read-only journal: wait, never loop
            said = _say_once(said, f"cannot start: {err}; will try again")
            waiter.install_signals()  # Daemon.run replaced them
            waiter.until_changed(seen, RETRY_SECONDS)
        finally:
            os.close(lock)
    log.info("stopped")
    return Exit.OK


def _plain(err: Exception) -> str:
    """Return `err` in plain words; macOS privacy refusals name the grant to make."""
    if isinstance(err, PermissionError) and platform.system() == "Darwin":
        return macos.eperm_hint(err.filename or "a folder")
    return str(err)


def _say_once(said: str | None, problem: str) -> str:
    if problem != said:
        log.error("%s", problem)
    return problem
