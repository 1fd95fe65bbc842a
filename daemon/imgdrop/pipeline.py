"""The pipeline: ready files -> queue -> workers running each file's steps along the host chain.

`scheduler` decides when a file is worked on, `steps` what happens to it, `hoststate` which
host may take it. This module wires them, and follows config reloads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from imgdrop import filing, hosts
from imgdrop.config import Settings
from imgdrop.hoststate import HostStates
from imgdrop.inboxfile import same_file, shown
from imgdrop.journal import Journal
from imgdrop.notify import Notifier
from imgdrop.scheduler import PACE, Workers, WorkQueue
from imgdrop.steps import Steps

log = logging.getLogger(__name__)

SWEEP_SECONDS = 600.0  # how often interrupted temp files in outbox/done/failed are swept


class Pipeline:
    """A pool of worker threads fed by `submit`; every file ends in done/, failed/ or the inbox."""

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self._settings = settings
        self._journal = journal
        self._queue = WorkQueue()
        self._states = HostStates(
            settings.hosts, journal, settings.blocked_retry_hours, _retry(settings),
            on_usable=self._wake,
        )  # fmt: skip
        self._steps = Steps(journal, self._states, _notifier(settings))
        self._workers = Workers(self._queue, self._work)
        self._said: dict[Path, str] = {}  # files named once as waiting, and for what
        self._swept = 0.0

    # -- control -----------------------------------------------------------

    def start(self) -> None:
        """Build the hosts, finish interrupted work, start the workers (ConfigError: bad host)."""
        self._steps.hosts = {host.name: host for host in hosts.build(self._settings)}
        self._finish_interrupted()
        self._sweep()
        self._workers.resize(self._settings.workers)

    def stop(self, grace: float) -> bool:
        """Stop taking files; wait up to `grace` s for in-flight ones. True when all finished."""
        self._queue.stop()
        finished = self._workers.join(time.monotonic() + grace)
        if finished:
            for host in self._steps.hosts.values():
                host.close()
        return finished

    def update(self, settings: Settings) -> None:
        """Take a reloaded configuration (hosts already validated), and try waiting files again."""
        old, self._settings = self._settings, settings
        self._steps.notifier = _notifier(settings)
        previous = self._steps.hosts
        self._steps.hosts = {host.name: host for host in hosts.build(settings)}
        for host in previous.values():
            host.close()
        self._states.configure(settings.hosts, settings.blocked_retry_hours, _retry(settings))
        self._workers.resize(settings.workers)
        if old.inbox != settings.inbox:
            self._queue.forget(old.inbox)  # before resume() makes its waiting files due
        self.resume()

    def resume(self) -> int:
        """Try waiting files now (config saved, SIGHUP); lifts auth pauses, not rate limits."""
        if self._states.lift_pauses():
            log.info("configuration reloaded: trying paused hosts again")
        count = self._queue.wake()
        self._workers.heal()
        return count

    def _wake(self, paced: bool) -> None:
        self._queue.wake(PACE if paced else 0.0)

    def submit(self, path: Path) -> None:
        """Queue a ready file (at most one queue entry per path)."""
        self._workers.heal()
        self._queue.submit(path)

    def settled(self) -> bool:
        """True when no file is being worked on or due; only backoffs and pauses remain."""
        self._workers.heal()
        return self._queue.settled()

    def waiting(self) -> int:
        """Files left in the inbox after a transient error, a rate limit or a pause."""
        return len(self._queue.waiting())

    # -- one worker's turn -------------------------------------------------

    def _work(self, path: Path) -> None:
        if time.monotonic() - self._swept > SWEEP_SECONDS:
            self._sweep()
        settings = self._settings
        later = self._steps.process(path, settings)
        if later is None:
            self._said.pop(path, None)
            return
        self._queue.later(path, later.due, later.reason)
        if not later.quiet:
            log.warning("%s: stays in the inbox: %s", shown(path.name), later.reason)
        elif later.moment:
            log.debug("%s: %s", shown(path.name), later.reason)
        elif self._said.get(path) != later.cause:
            self._said[path] = later.cause  # named once per cause
            log.info("%s: waits in the inbox: %s", shown(path.name), later.reason)

    def _sweep(self) -> None:
        """Remove temp files a crash left in outbox/done/failed."""
        self._swept = time.monotonic()
        for folder in (self._settings.outbox, self._settings.done, self._settings.failed):
            filing.remove_stale_temps(folder)

    def _finish_interrupted(self) -> None:
        """Mark done the uploads a crash left between filing the original and saying so."""
        for entry in self._journal.unfinished():
            if not entry.archived_to:
                continue  # not filed yet: still in the inbox, or taken away by the user
            try:
                filed = Path(entry.archived_to).lstat()
            except FileNotFoundError:
                continue
            if not same_file(self._settings.inbox / entry.name, filed, entry.sha256):
                self._journal.finish(entry.id)
            # else both names are still there: the startup scan finishes the unlink


def _notifier(settings: Settings) -> Notifier:
    return Notifier(settings.clipboard, settings.notify, settings.clipboard_format)


def _retry(settings: Settings) -> tuple[float, float]:
    return settings.retry_initial_seconds, settings.retry_max_seconds
