"""Workers: take ready files, upload each at most once, leave a link file, file the original.

Order of steps, chosen so that a crash anywhere is finished by the next start:
type check -> hash -> journal row -> upload -> journal records the link ->
journal records the link file's name -> link file -> journal records the archive
name -> hard link into done/ -> unlink from inbox -> journal says done.
Only a crash between Imgur's answer and the journal write can cause a second upload.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imgdrop import filetype, filing, links
from imgdrop.config import Settings
from imgdrop.imgur import (
    AuthFailed,
    Deleted,
    ImgurClient,
    Outcome,
    Permanent,
    RateLimited,
    RateLimits,
    Transient,
    Uploaded,
)
from imgdrop.journal import Entry, Journal
from imgdrop.notify import Notifier

log = logging.getLogger(__name__)

GATE_KEY = "gate_until"
LIMITS_KEY = "rate_limits"
FALLBACK_RATE_WAIT = 60.0  # a 429 that names no reset time


@dataclass(frozen=True)
class _Job:
    """One file on its way through a worker: the open file and what it was when opened."""

    path: Path
    stream: BinaryIO
    st: os.stat_result
    settings: Settings
    started: float

    @property
    def name(self) -> str:
        return self.path.name

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class _Retry(Exception):
    """The file stays in the inbox and is tried again after `delay` seconds (else backoff)."""

    def __init__(self, reason: str, delay: float | None = None, quiet: bool = False) -> None:
        super().__init__(reason)
        self.delay = delay
        self.quiet = quiet  # waiting out a known pause: said once already


class Pipeline:
    """A pool of worker threads fed by `submit`; every file ends in done/, failed/ or the inbox."""

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self._settings = settings
        self._journal = journal
        self._notifier = Notifier(settings.clipboard, settings.notify)
        self._client: ImgurClient | None = None
        self._cond = threading.Condition()
        self._queued: dict[Path, float] = {}  # path -> monotonic time it is due
        self._waiting: set[Path] = set()  # queued after a transient error
        self._failures: dict[Path, int] = {}  # consecutive transient errors, for backoff
        self._active: set[Path] = set()
        self._again: set[Path] = set()  # ready again while a worker had it
        self._hashing: set[str] = set()  # sha256 of files between journal lookup and upload
        self._gate_until = 0.0  # epoch seconds before which nothing is sent (rate limit)
        self._auth_until = 0.0  # epoch seconds before which nothing is sent (client ID refused)
        self._auth_refused = False
        self._offline = False
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- control -----------------------------------------------------------

    def start(self) -> None:
        """Restore the persisted rate-limit gate, finish interrupted work, start the workers."""
        saved = self._journal.get_meta(GATE_KEY)
        self._gate_until = float(saved) if saved else 0.0
        if self._gate_until > time.time():
            until = time.strftime("%H:%M:%S", time.localtime(self._gate_until))
            log.warning("Imgur's rate limit is still used up: no uploads until %s", until)
        self._finish_interrupted()
        for folder in (self._settings.outbox, self._settings.done, self._settings.failed):
            filing.remove_stale_temps(folder)
        self._client = self._new_client(self._settings)
        self._resize(self._settings.workers)

    def stop(self, grace: float) -> bool:
        """Stop taking files; wait up to `grace` s for in-flight ones. True when all finished."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = not any(t.is_alive() for t in threads)
        if finished and self._client is not None:
            self._client.close()
        return finished

    def update(self, settings: Settings) -> None:
        """Take a reloaded configuration, and try the waiting files again."""
        old, self._settings = self._settings, settings
        self._notifier = Notifier(settings.clipboard, settings.notify)
        if (old.api_url, old.client_id) != (settings.api_url, settings.client_id):
            previous, self._client = self._client, self._new_client(settings)
            if previous is not None:
                previous.close()
        self._resize(settings.workers)
        if old.inbox != settings.inbox:
            self.forget(old.inbox)  # before resume() makes its waiting files due
        self.resume()

    def resume(self) -> None:
        """Try waiting files now (config saved, SIGHUP); lifts an auth pause, not a rate limit."""
        with self._cond:
            if self._auth_refused:
                log.info("configuration reloaded: trying the Client ID again")
            self._auth_until = 0.0  # _auth_refused stays until Imgur accepts an upload
            now = time.monotonic()
            for path in self._waiting:
                self._queued[path] = now
            self._cond.notify_all()

    def forget(self, folder: Path) -> None:
        """Drop the queued files of a folder that is no longer the inbox."""
        with self._cond:
            for path in [p for p in self._queued if p.parent == folder and p not in self._active]:
                del self._queued[path]
                self._waiting.discard(path)
                self._failures.pop(path, None)

    def submit(self, path: Path) -> None:
        """Queue a ready file (at most one queue entry per path)."""
        with self._cond:
            if path in self._active:
                self._again.add(path)
                return
            if path in self._queued and path not in self._waiting:
                return
            self._waiting.discard(path)
            self._queued[path] = time.monotonic()
            self._cond.notify_all()

    def settled(self) -> bool:
        """True when no file is being worked on or due; only backoffs/pauses remain."""
        with self._cond:
            now = time.monotonic()
            due = any(p not in self._waiting or t <= now for p, t in self._queued.items())
            return not self._active and not due and not self._again

    def waiting(self) -> int:
        """Files left in the inbox after a transient error, a rate limit or an auth pause."""
        with self._cond:
            return len(self._waiting)

    # -- workers -----------------------------------------------------------

    def _resize(self, count: int) -> None:
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
            for _ in range(count - len(self._threads)):
                thread = threading.Thread(target=self._work, name="imgdrop-worker", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()

    def _surplus(self) -> bool:
        """A worker beyond the configured count leaves (called with the lock held)."""
        alive = [t for t in self._threads if t.is_alive()]
        if len(alive) > self._settings.workers and threading.current_thread() in alive:
            self._threads.remove(threading.current_thread())
            return True
        return False

    def _work(self) -> None:
        while (path := self._take()) is not None:
            try:
                self._process(path)
            except Exception:
                log.exception("%s: unexpected error; it stays in the inbox", path.name)
                self._schedule_retry(path, None)
            finally:
                self._release(path)

    def _take(self) -> Path | None:
        with self._cond:
            while not self._stopping and not self._surplus():
                now = time.monotonic()
                if self._queued:
                    path = min(self._queued, key=self._queued.__getitem__)
                    due = self._queued[path]
                    if due <= now:
                        del self._queued[path]
                        self._waiting.discard(path)
                        self._active.add(path)
                        return path
                    self._cond.wait(due - now)
                else:
                    self._cond.wait()
            return None

    def _release(self, path: Path) -> None:
        with self._cond:
            self._active.discard(path)
            if path in self._again:
                self._again.discard(path)
                if path.exists() and path not in self._queued:
                    self._queued[path] = time.monotonic()
                    self._cond.notify_all()

    # -- one file ----------------------------------------------------------

    def _process(self, path: Path) -> None:
        try:
            stream = _open_regular(path)
            if stream is None:
                return  # gone, or not a plain file: never read through a symlink
            with stream:
                st = os.fstat(stream.fileno())
                self._handle(_Job(path, stream, st, self._settings, time.monotonic()))
        except _Retry as retry:
            self._schedule_retry(path, retry.delay)
            level = logging.DEBUG if retry.quiet else logging.WARNING
            log.log(level, "%s: stays in the inbox: %s", path.name, retry)
        except OSError as err:
            self._schedule_retry(path, None)
            log.warning("%s: stays in the inbox: %s; will retry", path.name, filing.explain(err))

    def _handle(self, job: _Job) -> None:
        settings = job.settings
        head = job.stream.read(filetype.HEAD_BYTES)
        try:
            kind = filetype.check(head, job.st.st_size, settings.videos, settings.max_image_mb)
        except filetype.Rejected as rejected:
            self._fail(job, None, str(rejected), {})
            return
        sha256 = _sha256(job.stream)
        with self._only_one(sha256):  # two copies dropped at once: one upload
            entry = self._entry_for(job, sha256)
            fresh = entry.state == "uploading"  # this job sends it (else resumed or reused)
            if fresh:
                uploaded = self._upload(job, entry, kind)
                if uploaded is None:
                    return
                entry = uploaded
            if not _unchanged(job, sha256):
                if fresh:
                    self._withdraw(job, entry)  # before another drop of these bytes reuses it
                else:  # its link may be out already: never delete it
                    log.info("%s: changed before it was filed; waiting for it", job.name)
                return
        assert entry.link is not None
        link_file = self._write_link(entry, settings)
        self._archive(job, entry)
        self._journal.finish(entry.id)
        self._failures.pop(job.path, None)
        self._notifier.uploaded(job.name, entry.link)
        how = "link reused" if entry.reused else "uploaded"
        log.info(
            "%s: %s %s -> %s (%.2f s)", job.name, how, entry.link, link_file.name, job.elapsed()
        )

    @contextmanager
    def _only_one(self, sha256: str) -> Iterator[None]:
        """Serialise workers holding the same bytes."""
        with self._cond:
            while sha256 in self._hashing:
                self._cond.wait()
            self._hashing.add(sha256)
        try:
            yield
        finally:
            with self._cond:
                self._hashing.discard(sha256)
                self._cond.notify_all()

    def _entry_for(self, job: _Job, sha256: str) -> Entry:
        """The journal row for this drop: resumed after a crash, reusing a live upload, or new."""
        entry = self._journal.find_open(sha256, job.name, job.st.st_ino) or self._journal.start(
            sha256, job.name, job.st.st_size, job.st.st_ino
        )
        if entry.state != "uploading":
            return entry
        live = self._journal.find_live(sha256)
        if live is None or not (live.imgur_id and live.link and live.deletehash):
            return entry
        log.debug("%s: same bytes as %s, reusing %s", job.name, live.name, live.link)
        return self._journal.record_upload(
            entry.id, live.imgur_id, live.link, live.deletehash, reused=True
        )

    def _upload(self, job: _Job, entry: Entry, kind: filetype.FileType) -> Entry | None:
        """Send the file; the recorded upload, or None when the file went to failed/."""
        self._check_gate()
        client = self._client
        assert client is not None
        job.stream.seek(0)
        field = "video" if kind.video else "image"
        outcome, limits = client.upload(job.stream, job.name, field, kind.mime)
        recorded = None
        if isinstance(outcome, Uploaded):  # first thing: this write closes the duplicate window
            recorded = self._journal.record_upload(
                entry.id, outcome.id, outcome.link, outcome.deletehash
            )
            self._back_to_normal()
        if limits is not None:
            self._note_limits(limits)
        if isinstance(outcome, AuthFailed) and client is not self._client:
            raise _Retry(outcome.reason, delay=0.0, quiet=True)  # answer to a replaced client ID
        if recorded is None:
            self._react(job, entry, outcome)
        return recorded

    def _react(self, job: _Job, entry: Entry, outcome: Outcome) -> None:
        """Turn a failed upload into failed/, a retry, a rate-limit pause or an auth pause."""
        if isinstance(outcome, Permanent):
            details = {"status": str(outcome.status or ""), "server message": outcome.message}
            self._fail(job, entry, outcome.reason, details)
        elif isinstance(outcome, Transient):
            attempts = self._journal.record_attempt(entry.id, outcome.reason, outcome.counts)
            if outcome.counts and attempts >= job.settings.max_attempts:
                reason = f"{outcome.reason.rstrip('.')} — gave up after {attempts} attempts."
                details = {"status": str(outcome.status or ""), "server message": outcome.message}
                self._fail(job, entry, reason, details)
                return
            # offline: one line for all files, not one per file and attempt
            raise _Retry(outcome.reason, quiet=not outcome.counts and self._went_offline())
        elif isinstance(outcome, RateLimited):
            self._journal.record_attempt(entry.id, outcome.reason, counts=False)
            fallback = max(FALLBACK_RATE_WAIT, _backoff(1, job.settings))
            until = outcome.until or time.time() + fallback
            self._close_gate(until, outcome.reason)
            raise _Retry(outcome.reason, delay=max(0.0, until - time.time()), quiet=True)
        elif isinstance(outcome, AuthFailed):
            self._journal.record_attempt(entry.id, outcome.reason, counts=False)
            until = self._pause_for_auth(outcome, job.settings)
            raise _Retry(outcome.reason, delay=until - time.time(), quiet=True)

    def _withdraw(self, job: _Job, entry: Entry) -> None:
        """The file was removed or replaced while it was uploading: take the upload back."""
        what = "was replaced" if job.path.exists() else "was removed from the inbox"
        if entry.reused or not entry.deletehash:
            reason = f"{what} before it was filed"
            self._journal.fail(entry.id, job.name, job.st.st_size, entry.sha256, reason)
            log.info("%s: %s", job.name, reason)
            return
        assert self._client is not None
        outcome = self._client.delete(entry.deletehash)
        if isinstance(outcome, Deleted):
            self._journal.mark_deleted(entry.id)
            log.info("%s: %s during its upload, so the upload was deleted again", job.name, what)
        else:
            log.warning(
                "%s: %s during its upload and deleting it failed (%s); delete it at "
                "https://imgur.com/delete/%s",
                job.name,
                what,
                outcome.reason,
                entry.deletehash,
            )

    def _fail(self, job: _Job, entry: Entry | None, reason: str, details: dict[str, str]) -> None:
        dest = filing.file_failed(job.path, job.settings.failed, reason, details)
        sha256 = entry.sha256 if entry else None
        self._journal.fail(entry.id if entry else None, job.name, job.st.st_size, sha256, reason)
        self._failures.pop(job.path, None)
        self._notifier.failed(job.name, reason)
        log.warning("%s: failed: %s -> %s (%.2f s)", job.name, reason, dest, job.elapsed())

    def _write_link(self, entry: Entry, settings: Settings) -> Path:
        """Write the link file once per drop: its name is journalled before it is written."""
        link = entry.link
        assert link is not None
        if entry.link_file and _holds(Path(entry.link_file), link):
            return Path(entry.link_file)

        def write(dest: Path) -> None:
            if dest.exists():
                raise FileExistsError(dest)  # taken: journal nothing, try the next name
            self._journal.set_link_file(entry.id, dest)
            links.write_link_at(dest, link, settings.link_format)

        settings.outbox.mkdir(parents=True, exist_ok=True)
        return filing.claim(
            settings.outbox, links.link_name(entry.name, settings.link_format), write
        )

    def _archive(self, job: _Job, entry: Entry) -> None:
        """Hard-link into done/ under a journalled name, then unlink the inbox name."""
        if entry.archived_to and _same_file(Path(entry.archived_to), job.st, entry.sha256):
            _unlink_if_same(job)  # a crash fell between the link and the unlink
            return

        def link(dest: Path) -> None:
            if dest.exists():
                raise FileExistsError(dest)
            self._journal.set_archived_to(entry.id, dest)
            filing.link_at(job.path, dest)

        job.settings.done.mkdir(parents=True, exist_ok=True)
        filing.claim(job.settings.done, job.name, link)
        _unlink_if_same(job)

    def _finish_interrupted(self) -> None:
        """Mark done the uploads a crash left between filing the original and saying so."""
        for entry in self._journal.unfinished():
            if not entry.archived_to:
                continue  # not filed yet: still in the inbox, or taken away by the user
            try:
                filed = Path(entry.archived_to).lstat()
            except FileNotFoundError:
                continue
            if not _same_file(self._settings.inbox / entry.name, filed, entry.sha256):
                self._journal.finish(entry.id)
            # else both names are still there: the startup scan finishes the unlink

    # -- retries, rate limits, auth ----------------------------------------

    def _schedule_retry(self, path: Path, delay: float | None) -> None:
        failures = self._failures.get(path, 0) + 1
        self._failures[path] = failures
        wait = _backoff(failures, self._settings) if delay is None else delay
        with self._cond:
            self._queued[path] = time.monotonic() + wait
            self._waiting.add(path)
            self._cond.notify_all()

    def _check_gate(self) -> None:
        """Raise _Retry when nothing may be sent now (rate limit used up, client ID refused)."""
        with self._cond:
            until = max(self._gate_until, self._auth_until)
        if until > time.time():
            raise _Retry("uploads are paused", delay=until - time.time(), quiet=True)

    def _went_offline(self) -> bool:
        """Note that Imgur cannot be reached, saying so once; True (per-file lines are noise)."""
        with self._cond:
            was, self._offline = self._offline, True
        if not was:
            log.warning("Imgur cannot be reached; files wait in the inbox and are retried")
        return True

    def _back_to_normal(self) -> None:
        """After a successful upload: say once that an outage or a pause is over."""
        with self._cond:
            was_offline, self._offline = self._offline, False
            was_refused, self._auth_refused = self._auth_refused, False
            limited = 0 < self._gate_until <= time.time()  # an upload begun before a 429
            if limited:  # must not lift a gate that is still closed
                self._gate_until = 0.0
                self._journal.set_meta(GATE_KEY, "0")
        if was_offline:
            log.info("Imgur is reachable again")
        if was_refused:
            log.info("Imgur accepts the Client ID again; uploads continue")
        if limited:
            log.info("Imgur's rate limit has reset; uploads continue")

    def _note_limits(self, limits: RateLimits) -> None:
        self._journal.set_meta(LIMITS_KEY, json.dumps(limits.to_json()))
        until = limits.blocked_until()
        if until is not None and until > time.time():
            self._close_gate(until, "Imgur's rate limit is used up")

    def _close_gate(self, until: float, reason: str) -> None:
        with self._cond:
            if until <= self._gate_until:
                return
            self._gate_until = until
            # saved under the lock, so a concurrent reset cannot overwrite it with an older value
            self._journal.set_meta(GATE_KEY, repr(until))
        log.warning(
            "%s: no uploads until %s",
            reason.rstrip("."),
            time.strftime("%H:%M:%S", time.localtime(until)),
        )

    def _pause_for_auth(self, outcome: AuthFailed, settings: Settings) -> float:
        """Pause sending until the config changes or retry_max_seconds pass; the pause's end."""
        with self._cond:
            again, self._auth_refused = self._auth_refused, True
            self._auth_until = until = time.time() + settings.retry_max_seconds
        when = time.strftime("%H:%M:%S", time.localtime(until))
        if again:
            log.info("Imgur still refuses the Client ID; next try at %s", when)
            return until
        message = (
            f"{outcome.reason} Uploads are paused and files wait in the inbox. Fix client_id "
            f"(or IMGDROP_CLIENT_ID), then save the config or send SIGHUP; imgdrop also tries "
            f"again at {when}."
        )
        log.error("%s", message)
        self._notifier.alert("imgdrop: uploads paused", message)
        return until

    @staticmethod
    def _new_client(settings: Settings) -> ImgurClient:
        return ImgurClient(settings.api_url, settings.client_id or "")


def _backoff(failures: int, settings: Settings) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    delay = min(settings.retry_max_seconds, settings.retry_initial_seconds * 2.0 ** (failures - 1))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not crypto


def _open_regular(path: Path) -> BinaryIO | None:
    """`path` opened for reading; None when it is gone or not a plain file (never follows links)."""
    try:
        # O_NONBLOCK: a FIFO swapped in under a picture's name must not hang a worker
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None  # a symlink
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _sha256(stream: BinaryIO) -> str:
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _unchanged(job: _Job, sha256: str) -> bool:
    """Is the inbox name still the file that was hashed? Rehash only when its stat differs."""
    try:
        now = job.path.lstat()
    except FileNotFoundError:
        return False
    if (now.st_dev, now.st_ino) != (job.st.st_dev, job.st.st_ino):
        return False  # replaced by another file
    if (now.st_size, now.st_mtime_ns) == (job.st.st_size, job.st.st_mtime_ns):
        return True
    # tar and cp -p set the mtime after the bytes: same bytes, same upload
    return now.st_size == job.st.st_size and _sha256(job.stream) == sha256


def _same_file(path: Path, ref: os.stat_result, sha256: str | None) -> bool:
    """Is `path` the file `ref` describes (a hard link to it), or a copy of it on another disk?"""
    try:
        there = path.lstat()
    except FileNotFoundError:
        return False
    if (there.st_dev, there.st_ino) == (ref.st_dev, ref.st_ino):
        return True
    if there.st_size != ref.st_size or sha256 is None:
        return False
    stream = _open_regular(path)
    if stream is None:
        return False
    with stream:
        return _sha256(stream) == sha256


def _unlink_if_same(job: _Job) -> None:
    """Unlink the inbox name unless a new file took it meanwhile (that one gets its own turn)."""
    with contextlib.suppress(FileNotFoundError):
        now = job.path.lstat()
        if (now.st_dev, now.st_ino) == (job.st.st_dev, job.st.st_ino):
            job.path.unlink()
        else:
            log.warning("%s: replaced while being filed; the new file is handled next", job.name)


def _holds(path: Path, link: str) -> bool:
    try:
        return links.read_link(path) == link
    except (OSError, ValueError):
        return False
