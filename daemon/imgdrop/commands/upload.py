"""`imgdrop upload FILE…`: the daemon's checks and hosts for named files; originals untouched."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from imgdrop import filetype, hosts
from imgdrop.config import Settings
from imgdrop.exitcodes import Exit
from imgdrop.hoststate import HostStates
from imgdrop.inboxfile import Job, file_sha256, open_regular, shown
from imgdrop.journal import Journal
from imgdrop.notify import Notifier
from imgdrop.steps import Later, Steps


def upload(settings: Settings, files: list[Path]) -> Exit:
    """Print one link per uploaded file; exit 1 when any could not be uploaded now."""
    ok = True
    with Journal(settings.journal) as journal:
        retry = (settings.retry_initial_seconds, settings.retry_max_seconds)
        states = HostStates(settings.hosts, journal, settings.blocked_retry_hours, retry,
                            on_usable=lambda paced: None)  # fmt: skip
        steps = Steps(journal, states, Notifier(False, False, settings.clipboard_format))
        steps.hosts = {host.name: host for host in hosts.build(settings)}
        try:
            for path in files:
                link, problem = _one(steps, path.expanduser().resolve(), settings)
                if link is not None:
                    print(link, flush=True)
                else:
                    ok = False
                    print(f"imgdrop: {shown(str(path))}: {problem}", file=sys.stderr)
        finally:
            for host in steps.hosts.values():
                host.close()
    return Exit.OK if ok else Exit.FAILURE


def _one(steps: Steps, path: Path, settings: Settings) -> tuple[str | None, str]:
    """The link for `path`, or None and why not."""
    try:
        stream = open_regular(path)
    except OSError as err:
        return None, os.strerror(err.errno or 0) or str(err)
    if stream is None:
        return None, "not found, or not a regular file"
    with stream:
        st = os.fstat(stream.fileno())
        job = Job(path, stream, st, settings, time.monotonic())
        try:
            kind = filetype.check(stream.read(filetype.HEAD_BYTES), st.st_size, settings.videos,
                                  settings.max_image_mb)  # fmt: skip
        except filetype.Rejected as rejected:
            return None, str(rejected)
        sha256 = file_sha256(stream, st.st_size)
        journal = steps.journal
        entry = steps.entry_for(job, sha256)
        if entry.state == "uploading":
            result = steps.send(job, entry, kind)
            if isinstance(result, dict):
                reason = "; ".join(f"{name}: {answer.reason}" for name, answer in result.items())
                journal.fail(entry.id, path.name, st.st_size, sha256, reason)
                return None, reason
            if isinstance(result, Later):
                return None, f"not uploaded now: {result.reason}"
            entry = result
        journal.finish(entry.id)
        return entry.link, ""
