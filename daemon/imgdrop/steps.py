"""One file's steps: check, hash, journal, upload along the host chain, link file, archive.

Order, chosen so that a crash anywhere is finished by the next start:
type check -> hash -> journal row -> upload -> journal records the link -> journal records the
link file's name -> link file -> journal records the archive name -> hard link into done/ ->
unlink from inbox -> journal says done. Only a crash between a host's answer and the journal
write can cause a second upload; a journal write that fails there keeps the answer in memory.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from imgdrop import filetype, filing, links
from imgdrop.config import Settings
from imgdrop.hosts import (
    AuthFailed,
    Blocked,
    Deleted,
    Host,
    Permanent,
    RateLimited,
    Reply,
    Transient,
    Uploaded,
    link_exists,
)
from imgdrop.hoststate import BUSY, HostStates, label, when
from imgdrop.inboxfile import (
    Job,
    file_sha256,
    open_regular,
    renamed_to,
    same_as_read,
    same_file,
    shown,
    unchanged,
    unlink_if_same,
)
from imgdrop.journal import Entry, Journal
from imgdrop.notify import Notifier

log = logging.getLogger(__name__)

DAY = 86400.0
FALLBACK_RATE_WAIT = 60.0  # a 429 that names no reset time
PROBE_TURN = 0.05  # seconds a failed probe waits behind the files that waited with it


@dataclass(frozen=True)
class Later:
    """The file stays in the inbox until epoch `due`; `reason` says why (logged unless quiet)."""

    due: float
    reason: str
    quiet: bool = False  # waits for a host, not for this file: named once (INFO), not warned
    moment: bool = False  # waits only for another file's answer: DEBUG
    cause: str = ""  # what it waits for, without times: the file is named again only if it changes


def backoff(failures: int, settings: Settings) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    delay = min(settings.retry_max_seconds, settings.retry_initial_seconds * 2.0 ** (failures - 1))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not crypto


class Steps:
    """The steps every file goes through; shared by the workers (state behind one lock)."""

    def __init__(self, journal: Journal, states: HostStates, notifier: Notifier) -> None:
        self.journal = journal
        self.states = states
        self.notifier = notifier
        self.hosts: dict[str, Host] = {}
        self._lock = threading.Condition()
        self._hashing: set[str] = set()  # sha256 of files between journal lookup and upload
        self._held: dict[str, tuple[str, Uploaded]] = {}  # sha256 -> answer not yet journalled
        self._failures: dict[Path, int] = {}  # consecutive transient errors, for backoff
        self._seen: dict[tuple[Path, str], int] = {}  # host successes at a file's last try

    # -- the file ------------------------------------------------------------

    def process(self, path: Path, settings: Settings) -> Later | None:
        """Take one inbox file as far as it goes now; Later when it must wait, else None."""
        wait = self.states.next_usable()
        if wait > time.time():  # checked before the file is even opened
            return self._waiting(wait, set())
        try:
            stream = open_regular(path)
            if stream is None:
                self.forget(path)
                return None  # gone, or not a plain file: never read through a symlink
            with stream:
                st = os.fstat(stream.fileno())
                later = self._handle(Job(path, stream, st, settings, time.monotonic()))
        except (OSError, sqlite3.Error) as err:
            reason = filing.explain(err) if isinstance(err, OSError) else f"journal: {err}"
            later = Later(time.time() + self._backoff(path, settings), reason)
        if later is None:
            self.forget(path)
        return later

    def forget(self, path: Path) -> None:
        with self._lock:
            self._failures.pop(path, None)
            for key in [k for k in self._seen if k[0] == path]:
                del self._seen[key]

    def _backoff(self, path: Path, settings: Settings) -> float:
        with self._lock:
            self._failures[path] = failures = self._failures.get(path, 0) + 1
        return backoff(failures, settings)

    def _handle(self, job: Job) -> Later | None:
        settings = job.settings
        head = job.stream.read(filetype.HEAD_BYTES)
        try:
            kind = filetype.check(head, job.st.st_size, settings.videos, settings.max_image_mb)
        except filetype.Rejected as rejected:
            return self._fail(job, None, str(rejected), {})
        sha256 = file_sha256(job.stream, job.st.st_size)
        with self._only_one(sha256):  # two copies dropped at once: one upload
            if not unchanged(job, sha256):
                return None  # filed by the worker that held these bytes, or changed: its event
            entry = self.entry_for(job, sha256)
            fresh = entry.state == "uploading"  # this job sends it (else resumed or reused)
            if fresh:
                result = self.send(job, entry, kind)
                if isinstance(result, dict):
                    return self._fail_everywhere(job, entry, result)
                if isinstance(result, Later):
                    return result
                entry = result
            if not unchanged(job, sha256):
                return self._changed(job, entry, fresh)
        self._file_away(job, entry)
        return None

    def _changed(self, job: Job, entry: Entry, fresh: bool) -> Later | None:
        """The inbox name no longer holds what was uploaded: follow a rename or take it back."""
        moved = renamed_to(job)
        if moved is not None:  # renamed during its upload (a common habit): same upload
            log.info("%s: renamed to %s during its upload; filed under the new name",
                     job.name, shown(moved.name))  # fmt: skip
            self._file_away(replace(job, path=moved), entry)
            return None
        if fresh:
            self._withdraw(job, entry)  # before another drop of these bytes reuses it
        else:  # its link may be out already: never delete it
            log.info("%s: changed before it was filed; waiting for it", job.name)
        return None

    def _file_away(self, job: Job, entry: Entry) -> None:
        assert entry.link is not None
        link_file = self._write_link(entry, job)
        self._archive(job, entry)
        self.journal.finish(entry.id)
        host = self.hosts.get(entry.host)
        delete_url = host.delete_url(entry.deletehash, entry.link) if host else None
        self.notifier.uploaded(job.name, entry.link, delete_url=delete_url, reused=entry.reused)
        how = "link reused" if entry.reused else f"uploaded to {entry.host}"
        log.info("%s: %s %s -> %s (%.2f s)", job.name, how, entry.link, shown(link_file.name),
                 job.elapsed())  # fmt: skip

    @contextmanager
    def _only_one(self, sha256: str) -> Iterator[None]:
        """Serialise workers holding the same bytes."""
        with self._lock:
            while sha256 in self._hashing:
                self._lock.wait()
            self._hashing.add(sha256)
        try:
            yield
        finally:
            with self._lock:
                self._hashing.discard(sha256)
                self._lock.notify_all()

    def entry_for(self, job: Job, sha256: str) -> Entry:
        """The journal row for this drop: resumed after a crash, reusing a live upload, or new."""
        entry = self.journal.find_open(sha256, job.path.name, job.st.st_ino) or self.journal.start(
            sha256, job.path.name, job.st.st_size, job.st.st_ino
        )
        if entry.state != "uploading":
            return entry
        if sha256 in self._held:
            return self._record(job, entry, *self._held[sha256])  # the answer kept in memory
        live = self._live(sha256)
        if live is None or not (live.imgur_id and live.link):
            return entry
        log.debug("%s: same bytes as %s, reusing %s", job.name, shown(live.name), live.link)
        return self.journal.record_upload(
            entry.id, live.host, live.imgur_id, live.link, live.deletehash, reused=True
        )

    def _live(self, sha256: str) -> Entry | None:
        """A live upload of these bytes; a link older than a day is checked first (404: gone)."""
        live = self.journal.find_live(sha256)
        if live is None or not live.link or time.time() - (live.uploaded_at or 0) < DAY:
            return live
        if link_exists(live.link) is False:
            log.info("%s is gone from %s; the bytes upload afresh", live.link, live.host)
            self.journal.mark_deleted(live.id)
            return None
        return live

    # -- the host chain ------------------------------------------------------

    def send(self, job: Job, entry: Entry, kind: filetype.FileType
             ) -> Entry | Later | dict[str, Permanent]:  # fmt: skip
        """Send the file to the first usable host that takes it.

        Returns the recorded upload, a wait, or every host's refusal when none will take it.
        """
        refused: dict[str, Permanent] = {}  # host -> why it will not take these bytes
        size = job.st.st_size

        def allowed(name: str) -> bool:
            host = self.hosts.get(name)
            return host is not None and name not in refused and host.refuses(kind, size) is None

        for host_name, host in self.hosts.items():
            if (why := host.refuses(kind, size)) is not None:
                refused[host_name] = Permanent(why)
        sent = False
        while (name := self.states.pick(allowed)) is not None:
            sent = True
            with self._lock:
                since = self._seen.setdefault((job.path, name), self.states.successes(name))
            job.stream.seek(0)
            try:
                reply = self.hosts[name].upload(job.stream, size, job.path.name, kind)
                with self._lock:
                    self._seen[(job.path, name)] = self.states.successes(name)
                result = self._answer(job, entry, name, reply, since)
            finally:
                self.states.release_probe(name)  # after the answer changed the host's state
            if isinstance(result, Permanent):
                refused[name] = result
                continue
            if result is not None:
                return result
        if refused and all(name in refused for name in self.hosts):
            return refused
        due = self.states.next_usable(allowed)
        if sent:  # this file was the probe: the next probe is another waiting file
            due += PROBE_TURN
        return self._waiting(due, refused)

    def _waiting(self, due: float, refused: Collection[str]) -> Later:
        why = {n: self.states.why(n) for n in self.hosts if n not in refused}
        reason = "waiting for a host ({})".format("; ".join(f"{n}: {w}" for n, w in why.items()))
        cause = ", ".join(f"{n} {self.states.state_of(n)}" for n in why)
        moment = all(w == BUSY for w in why.values())
        return Later(due, reason, quiet=True, moment=moment, cause=cause)

    def _answer(self, job: Job, entry: Entry, name: str, reply: Reply, since: int
                ) -> Entry | Later | Permanent | None:  # fmt: skip
        """Act on a host's answer: the recorded upload, a wait, a refusal, or None (next host)."""
        outcome = reply.outcome
        if isinstance(outcome, Uploaded):  # first thing: this write closes the duplicate window
            recorded = self._record(job, entry, name, outcome)
            self.states.note_success(name)
            self.states.note_limits(name, reply.limits, reply.blocked_until)
            return recorded
        self.states.note_limits(name, reply.limits, reply.blocked_until)
        if isinstance(outcome, Permanent):
            self.states.note_alive(name)
            return outcome
        if isinstance(outcome, RateLimited):
            until = outcome.until or time.time() + FALLBACK_RATE_WAIT
            self.states.note_limits(name, None, until, outcome.reason)
        elif isinstance(outcome, AuthFailed):
            if self.states.note_auth(name, outcome.reason):
                self._say_paused(name, outcome.reason, job.settings)
        elif isinstance(outcome, Blocked):
            self.states.note_blocked(name, outcome.reason)
        elif isinstance(outcome, Transient):
            # offline never counts; a 5xx counts only while the host works for other files
            counts = self.states.note_trouble(
                name, outcome.reason, since if outcome.counts else None
            )
            attempts = self.journal.record_attempt(entry.id, outcome.reason, counts)
            if counts:
                return self._counted(job, name, outcome, attempts)
        return None

    def _counted(self, job: Job, name: str, outcome: Transient, attempts: int
                 ) -> Later | Permanent:  # fmt: skip
        """A 5xx while the host works for other files: back off, or give up after max_attempts."""
        if attempts >= job.settings.max_attempts:
            reason = f"{outcome.reason.rstrip('.')} — gave up after {attempts} attempts."
            return Permanent(reason, outcome.status, outcome.message)
        due = time.time() + self._backoff(job.path, job.settings)
        return Later(due, f"{name}: {outcome.reason.rstrip('.')}; will retry at {when(due)}")

    def _record(self, job: Job, entry: Entry, name: str, uploaded: Uploaded) -> Entry:
        """Journal the upload; a failed write keeps the answer, so these bytes are never resent."""
        try:
            recorded = self.journal.record_upload(
                entry.id, name, uploaded.id, uploaded.link, uploaded.delete_handle
            )
        except (sqlite3.Error, OSError) as err:
            with self._lock:
                first = entry.sha256 not in self._held
                self._held[entry.sha256 or ""] = (name, uploaded)
            if first:
                host = self.hosts.get(name)
                url = host.delete_url(uploaded.delete_handle, uploaded.link) if host else None
                log.error("%s: uploaded to %s as %s but the journal cannot record it (%s); "
                          "will keep trying%s", job.name, name, uploaded.link, err,
                          f"; its delete link: {url}" if url else "")  # fmt: skip
            raise
        with self._lock:
            self._held.pop(entry.sha256 or "", None)
        return recorded

    def _say_paused(self, name: str, reason: str, settings: Settings) -> None:
        source = "IMGDROP_CLIENT_ID" if os.environ.get("IMGDROP_CLIENT_ID") else str(settings.path)
        message = (
            f"{reason} Uploads are paused for {label(name)} and files wait in the inbox. Fix "
            f"the Client ID in {source}, then save the config or run `imgdrop reload`."
        )
        log.error("%s", message)
        self.notifier.alert(
            f"imgdrop: {label(name)} paused", f"{label(name)} refused the Client ID."
        )

    def _withdraw(self, job: Job, entry: Entry) -> None:
        """The file was removed or replaced while it was uploading: take the upload back."""
        what = "was replaced" if job.path.exists() else "was removed from the inbox"
        host = self.hosts.get(entry.host)
        if entry.reused or not entry.deletehash or host is None or not host.can_delete:
            reason = f"{what} before it was filed"
            self.journal.fail(entry.id, job.path.name, job.st.st_size, entry.sha256, reason)
            log.info("%s: %s", job.name, reason)
            return
        outcome = host.delete(entry.deletehash, entry.link or "")
        if isinstance(outcome, Deleted):
            self.journal.mark_deleted(entry.id)
            log.info("%s: %s during its upload, so the upload was deleted again", job.name, what)
        else:  # the journal keeps the handle: never log it
            log.warning("%s: %s during its upload and deleting it failed (%s); "
                        "`imgdrop delete %s` tries again", job.name, what, outcome.reason,
                        entry.link)  # fmt: skip

    # -- failing -------------------------------------------------------------

    def _fail_everywhere(self, job: Job, entry: Entry, refused: dict[str, Permanent]
                         ) -> Later | None:  # fmt: skip
        """No host will take the file: failed/, with each host's answer in the details."""
        if len(refused) == 1:
            ((name, answer),) = refused.items()
            details = {"host": name, "status": str(answer.status or ""),
                       "server message": answer.message}  # fmt: skip
            return self._fail(job, entry, answer.reason, details)
        first = next(iter(refused.values())).reason
        details = {f"host {name}": _answer_text(answer) for name, answer in refused.items()}
        return self._fail(job, entry, f"No host took the file. {first}", details)

    def _fail(self, job: Job, entry: Entry | None, reason: str, details: dict[str, str]
              ) -> Later | None:  # fmt: skip
        """File the very file that was read into failed/; if it changed meanwhile, look again."""
        if not same_as_read(job):
            return Later(time.time() + job.settings.settle_seconds, "changed while being checked")
        dest = filing.file_failed(job.path, job.settings.failed, reason, details)
        sha256 = entry.sha256 if entry else None
        self.journal.fail(entry.id if entry else None, job.path.name, job.st.st_size, sha256,
                          reason)  # fmt: skip
        self.notifier.failed(job.name, reason)
        log.warning("%s: failed: %s -> %s (%.2f s)", job.name, reason, shown(str(dest)),
                    job.elapsed())  # fmt: skip
        return None

    # -- link file and archive -----------------------------------------------

    def _write_link(self, entry: Entry, job: Job) -> Path:
        """Write the link file once per drop: its name is journalled before it is written."""
        link, settings = entry.link, job.settings
        assert link is not None
        if entry.link_file and _holds(Path(entry.link_file), link):
            return Path(entry.link_file)

        def write(dest: Path) -> None:
            if dest.exists():
                raise FileExistsError(dest)  # taken: journal nothing, try the next name
            self.journal.set_link_file(entry.id, dest)
            links.write_link_at(dest, link, settings.link_format)

        settings.outbox.mkdir(parents=True, exist_ok=True)
        name = links.link_name(job.path.name, settings.link_format)
        return filing.claim(settings.outbox, name, write)

    def _archive(self, job: Job, entry: Entry) -> None:
        """Hard-link into done/ under a journalled name, then unlink the inbox name."""
        if entry.archived_to and same_file(Path(entry.archived_to), job.st, entry.sha256):
            unlink_if_same(job)  # a crash fell between the link and the unlink
            return

        def link(dest: Path) -> None:
            if dest.exists():
                raise FileExistsError(dest)
            self.journal.set_archived_to(entry.id, dest)
            filing.link_at(job.path, dest)

        job.settings.done.mkdir(parents=True, exist_ok=True)
        filing.claim(job.settings.done, job.path.name, link)
        unlink_if_same(job)


def _answer_text(answer: Permanent) -> str:
    status = f" (HTTP {answer.status}: {answer.message})" if answer.status else ""
    return answer.reason + status


def _holds(path: Path, link: str) -> bool:
    try:
        return links.read_link(path) == link
    except (OSError, ValueError):
        return False
