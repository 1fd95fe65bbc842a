"""The inbox file as a worker opened it: never through a link, hashed, and checked again later.

Every decision about a file (upload, archive, fail) is about the file that was read; these
functions tell whether the inbox name still holds it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imgdrop.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One file on its way: the open file and what it was when opened."""

    path: Path
    stream: BinaryIO
    st: os.stat_result
    settings: Settings
    started: float

    @property
    def name(self) -> str:
        return shown(self.path.name)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def shown(name: str) -> str:
    """A file name fit for logs, notifications and the clipboard (any bytes, never raising)."""
    return os.fsencode(name).decode("utf-8", "replace")


def open_regular(path: Path) -> BinaryIO | None:
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


def file_sha256(stream: BinaryIO, size: int | None = None) -> str:
    """The sha256 of the first `size` bytes (all when None): exactly what the host is sent."""
    stream.seek(0)
    digest = hashlib.sha256()
    left = size if size is not None else -1
    while left != 0 and (chunk := stream.read(1 << 20 if left < 0 else min(left, 1 << 20))):
        digest.update(chunk)
        left = left - len(chunk) if left > 0 else left
    return digest.hexdigest()


def same_as_read(job: Job) -> bool:
    """Is the inbox name still the file opened, with the size and mtime it had then?"""
    try:
        now = job.path.lstat()
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (
        job.st.st_dev, job.st.st_ino, job.st.st_size, job.st.st_mtime_ns
    )  # fmt: skip


def unchanged(job: Job, sha256: str) -> bool:
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
    return now.st_size == job.st.st_size and file_sha256(job.stream) == sha256


def renamed_to(job: Job) -> Path | None:
    """The inbox name the opened file has now, when it was renamed within the inbox."""
    with contextlib.suppress(OSError), os.scandir(job.path.parent) as entries:
        for item in entries:
            st = item.stat(follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (job.st.st_dev, job.st.st_ino):
                same = (st.st_size, st.st_mtime_ns) == (job.st.st_size, job.st.st_mtime_ns)
                return Path(item.path) if same and item.name != job.path.name else None
    return None


def same_file(path: Path, ref: os.stat_result, sha256: str | None) -> bool:
    """Is `path` the file `ref` describes (a hard link to it), or a copy of it on another disk?"""
    try:
        there = path.lstat()
    except FileNotFoundError:
        return False
    if (there.st_dev, there.st_ino) == (ref.st_dev, ref.st_ino):
        return True
    if there.st_size != ref.st_size or sha256 is None:
        return False
    stream = open_regular(path)
    if stream is None:
        return False
    with stream:
        return file_sha256(stream) == sha256


def unlink_if_same(job: Job) -> None:
    """Unlink the inbox name unless a new file took it meanwhile (that one gets its own turn)."""
    with contextlib.suppress(FileNotFoundError):
        now = job.path.lstat()
        if (now.st_dev, now.st_ino) == (job.st.st_dev, job.st.st_ino):
            job.path.unlink()
        else:
            log.warning("%s: replaced while being filed; the new file is handled next", job.name)
