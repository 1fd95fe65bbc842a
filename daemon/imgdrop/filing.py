"""Move originals into done/ and failed/ under collision-free names; nothing is ever overwritten.

Files leave the inbox by ``os.link`` into the target folder and ``os.unlink`` from the inbox,
never by a rename: watchdog holds every later inbox event for 0.5 s after a rename out of the
watched folder (IMGUR.md). A crash between the two steps leaves the same file in both places,
which recovery finishes by unlinking the inbox copy.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePath

log = logging.getLogger(__name__)

# Give up after this many taken names rather than probe forever.
MAX_CANDIDATES = 10_000

# os.link errors that mean "no hard link possible here" rather than "cannot write here":
# another file system, a file system without hard links (exFAT, some network shares),
# Linux protected_hardlinks (source owned by someone else), too many links.
_NO_LINK = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)

# Order of the well-known detail lines in an .error.txt; other keys follow in given order.
_DETAIL_ORDER = ("file", "status", "server message", "time")
_MAX_DETAIL_CHARS = 2000


def candidates(name: str) -> Iterator[str]:
    """Yield `name`, then "stem (2).suffix", "stem (3).suffix", ... without end."""
    yield name
    stem, suffix = PurePath(name).stem, PurePath(name).suffix
    for n in itertools.count(2):
        yield f"{stem} ({n}){suffix}"


def claim(folder: Path, name: str, create: Callable[[Path], None]) -> Path:
    """Return the first folder/candidate for which `create` did not raise FileExistsError."""
    for cand in itertools.islice(candidates(name), MAX_CANDIDATES):
        path = folder / cand
        try:
            create(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(
        errno.EEXIST, f"no free name for {name!r} after {MAX_CANDIDATES} tries", str(folder)
    )


def write_temp(folder: Path, data: bytes) -> Path:
    """Write `data` to a new hidden temp file in `folder`, fsynced; return its path."""
    while True:
        path = folder / f".imgdrop-{secrets.token_hex(8)}.tmp"
        try:
            # 0o666 so the umask decides the final mode, as for any file the user saves.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path


def place(temp: Path, dest: Path) -> None:
    """Give the complete temp file `temp` the name `dest`; raise FileExistsError if `dest` exists.

    For a temp in `dest`'s folder; the fallback consumes it. A hard link makes the name appear
    complete, at once, and cannot replace anything. Where hard links are impossible, an
    exclusive empty placeholder reserves the name and a rename swaps the contents in.
    """
    try:
        os.link(temp, dest, follow_symlinks=False)
    except OSError as e:  # FileExistsError (EEXIST) is never in _NO_LINK
        if e.errno not in _NO_LINK:
            raise
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        try:
            temp.replace(dest)
        except BaseException:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise


def link_at(src: Path, dest: Path) -> None:
    """Give `src` the extra name `dest`; raise FileExistsError if taken. `src` stays in place.

    A hard link where possible; across file systems (or where hard links are impossible) a
    complete copy appears under `dest` at once. For callers that journal `dest` first.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        log.debug("cannot hard-link %s to %s (%s); copying", src.name, dest, e)
        staged = _copy_to_temp(src, dest.parent)
        try:
            place(staged, dest)
        finally:
            with contextlib.suppress(OSError):
                staged.unlink()
    fsync_dir(dest.parent)


def file_failed(src: Path, folder: Path, reason: str, details: Mapping[str, str]) -> Path:
    """Move `src` into `folder` with `<name>.error.txt` beside it (reason first); return the path.

    Raises OSError when it cannot be filed; `src` then stays where it was. If a new file took
    `src`'s name meanwhile, that file is left in place (logged) and the path is still returned.
    """
    text = error_text(reason, {"file": src.name, **details}).encode("utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    before = src.lstat()

    def create(dest: Path) -> None:
        if os.path.lexists(dest) or os.path.lexists(error_path(dest)):
            raise FileExistsError(dest)  # each file keeps its own error text, never a stale one
        temp = write_temp(folder, text)  # per try: place's fallback consumes it
        try:
            place(temp, error_path(dest))
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()
        try:
            link_at(src, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                error_path(dest).unlink()
            raise

    dest = claim(folder, src.name, create)
    with contextlib.suppress(FileNotFoundError):
        now = src.lstat()
        # A hard link shares dest's inode; a copy was made from the file `before` describes.
        if not (os.path.samestat(now, before) or os.path.samestat(now, dest.lstat())):
            log.warning("%s was replaced while being filed; leaving the new file", src)
            return dest
        src.unlink()
        fsync_dir(src.parent)
    return dest


def error_path(dest: Path) -> Path:
    """Return where the error text for the failed file `dest` lives."""
    return dest.with_name(f"{dest.name}.error.txt")


def error_text(reason: str, details: Mapping[str, str]) -> str:
    """Return the .error.txt text: the reason, then `key: value` lines (time added if absent)."""
    merged = dict(details)
    merged.setdefault("time", datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"))
    keys = [k for k in _DETAIL_ORDER if k in merged] + [k for k in merged if k not in _DETAIL_ORDER]
    lines = [_one_line(reason)] + [f"{k}: {_one_line(str(merged[k]))}" for k in keys]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """Collapse whitespace (server messages can be whole HTML pages) and cap the length."""
    flat = " ".join(text.split())
    if len(flat) > _MAX_DETAIL_CHARS:
        flat = flat[: _MAX_DETAIL_CHARS - 1] + "…"
    return flat


def _copy_to_temp(src: Path, folder: Path) -> Path:
    """Copy `src` (never following a symlink) to a fsynced hidden temp in `folder`; return it."""
    temp = write_temp(folder, b"")
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fin, temp.open("r+b") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, temp, follow_symlinks=False)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp


def fsync_dir(folder: Path) -> None:
    """Flush a directory's entries to disk; best effort (not every platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def explain(err: OSError) -> str:
    """A local file error in plain words; macOS privacy refusals get the fix."""
    where = err.filename or "a folder"
    if err.errno in (errno.EPERM, errno.EACCES):
        return (
            f"imgdrop is not allowed to use {where} (on macOS: give the Python that runs "
            "imgdrop Full Disk Access in System Settings > Privacy & Security)"
        )
    if err.errno == errno.ENOSPC:
        return f"the disk holding {where} is full"
    return f"cannot use {where}: {err.strerror or err}"


def remove_stale_temps(folder: Path, older_than: float = 60.0) -> None:
    """Delete temp files a killed imgdrop left in `folder` (only ours: `.imgdrop-*.tmp`)."""
    cutoff = time.time() - older_than
    for temp in folder.glob(".imgdrop-*.tmp"):
        with contextlib.suppress(OSError):
            if temp.lstat().st_ctime < cutoff:  # copystat may set an old mtime; not ctime
                temp.unlink()
