"""Move originals into done/ and failed/ under collision-free names; nothing is ever overwritten.

Files leave the inbox by ``os.link`` into the target folder and ``os.unlink`` from the inbox,
never by a rename: watchdog holds every later inbox event for 0.5 s after a rename out of the
watched folder (IMGUR.md). A crash between the two steps leaves the same file in both places,
which recovery finishes by unlinking the inbox copy.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePath

log = logging.getLogger(__name__)

# After this many numbered names a random suffix follows: probing "name (10001).png" one by
# one would cost a stat per taken name on every claim.
NUMBERED = 20
# The longest file name (in bytes) macOS (APFS/HFS+) and Linux file systems take.
NAME_MAX = 255
# A longer "suffix" is no extension ("notes.read me first ..."): trim it like a stem.
_MAX_SUFFIX_BYTES = 32

# os.link errors that mean "no hard link possible here" rather than "cannot write here":
# another file system, a file system without hard links (exFAT, some network shares),
# Linux protected_hardlinks (source owned by someone else), too many links.
_NO_LINK = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)

ERROR_SUFFIX = ".error.txt"
# Order of the well-known detail lines in an .error.txt; other keys follow in given order.
_DETAIL_ORDER = ("file", "status", "server message", "time")
_MAX_DETAIL_CHARS = 2000


def candidates(name: str, reserve: int = 0) -> Iterator[str]:
    """Yield `name`, "stem (2).suffix" … "stem (NUMBERED).suffix", then random suffixes forever.

    Every name fits in NAME_MAX - `reserve` bytes (room for e.g. ".error.txt"): the stem is
    trimmed by whole characters, the suffix kept. Names hold any bytes as surrogateescape'd str.
    """
    limit = NAME_MAX - reserve
    stem, suffix = PurePath(name).stem, PurePath(name).suffix
    if len(os.fsencode(suffix)) > _MAX_SUFFIX_BYTES:
        stem, suffix = name, ""
    yield _fit(stem, "", suffix, limit)
    for n in range(2, NUMBERED + 1):
        yield _fit(stem, f" ({n})", suffix, limit)
    while True:
        yield _fit(stem, f" ({secrets.token_hex(4)})", suffix, limit)


def _fit(stem: str, tag: str, suffix: str, limit: int) -> str:
    """Return stem+tag+suffix, the stem shortened by whole characters to fit `limit` bytes."""
    tail = len(os.fsencode(tag + suffix))
    size = len(os.fsencode(stem))
    # Dropping characters from the end never splits a UTF-8 sequence (and an escaped
    # non-UTF-8 byte is one character of one byte).
    while stem and size + tail > limit:
        size -= len(os.fsencode(stem[-1]))
        stem = stem[:-1]
    return stem + tag + suffix


def claim(folder: Path, name: str, create: Callable[[Path], None], reserve: int = 0) -> Path:
    """Return the first folder/candidate for which `create` did not raise FileExistsError."""
    for cand in candidates(name, reserve):
        path = folder / cand
        try:
            create(path)
        except FileExistsError:
            continue
        return path
    raise AssertionError("candidates() never ends")  # pragma: no cover


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
    text = _encode(error_text(reason, {"file": src.name, **details}))
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

    dest = claim(folder, src.name, create, reserve=len(ERROR_SUFFIX))
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
    return dest.with_name(dest.name + ERROR_SUFFIX)


def error_text(reason: str, details: Mapping[str, str]) -> str:
    """Return the .error.txt text: the reason, then `key: value` lines (time added if absent)."""
    merged = dict(details)
    merged.setdefault("time", datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"))
    keys = [k for k in _DETAIL_ORDER if k in merged] + [k for k in merged if k not in _DETAIL_ORDER]
    lines = [_one_line(reason)] + [f"{k}: {_one_line(str(merged[k]))}" for k in keys]
    return "\n".join(lines) + "\n"


_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _encode(text: str) -> bytes:
    """Return `text` as UTF-8; bytes of a non-UTF-8 name show as \\xNN, never an error."""
    # A lone surrogate that is no escaped byte (e.g. from a server's JSON) shows as \\uNNNN.
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").encode()


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
            st = os.fstat(fin.fileno())  # before reading moves the access time
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        # Mode and times only: copystat would also copy BSD flags (uchg from a Finder lock,
        # refused with EPERM on exFAT/SMB) and xattrs such as quarantine.
        temp.chmod(stat.S_IMODE(st.st_mode))
        os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
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


def explain(err: OSError, folder: Path | None = None) -> str:
    """A local file error in plain words, naming `folder` (else the error's file); with the fix."""
    where: object = folder or err.filename or "a folder"
    if folder is None and err.filename and PurePath(str(err.filename)).name.startswith(".imgdrop-"):
        where = PurePath(str(err.filename)).parent  # our temp file means nothing to the user
    if err.errno in (errno.EPERM, errno.EACCES):
        if sys.platform == "darwin":
            from imgdrop import macos  # noqa: PLC0415 - only macOS has TCC to explain

            return macos.eperm_hint(str(where))
        return f"imgdrop is not allowed to use {where} (check its owner and permissions)"
    if err.errno == errno.ENOSPC:
        return f"the disk holding {where} is full"
    if err.errno == errno.EDQUOT:
        return f"your disk quota for {where} is used up"
    return f"cannot use {where}: {err.strerror or err}"


def remove_stale_temps(folder: Path, older_than: float = 60.0) -> None:
    """Delete temp files a killed imgdrop left in `folder` (only ours: `.imgdrop-*.tmp`)."""
    cutoff = time.time() - older_than
    for temp in folder.glob(".imgdrop-*.tmp"):
        with contextlib.suppress(OSError):
            if temp.lstat().st_ctime < cutoff:  # a copy's mtime is the original's; not ctime
                temp.unlink()
