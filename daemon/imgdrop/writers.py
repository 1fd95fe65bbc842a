"""Is some process still writing this file? Read leases (Linux, macOS 13+) and Finder's marks.

Size and mtime cannot tell a finished file from a writer pausing with it open (curl stalled
mid-body, Finder copying from a slow disk), so readiness asks the OS where it can. Every
probe answers True (busy), False (no writer) or None (cannot tell: settling decides).
"""

from __future__ import annotations

import calendar
import contextlib
import ctypes
import ctypes.util
import fcntl
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any, NamedTuple


class Lease(NamedTuple):
    """The fcntl numbers for taking and dropping a read lease."""

    setlease: int
    rdlck: int
    unlck: int
    setsig: int | None  # Linux signals the holder when a writer opens; macOS has no F_SETSIG


# macOS 13+ takes F_SETLEASE but Python's fcntl module does not name it (IMGUR.md).
_DARWIN_LEASE = Lease(setlease=106, rdlck=1, unlck=2, setsig=None)


def lease_constants(platform: str = sys.platform, module: Any = fcntl) -> Lease | None:
    """Return the lease numbers for `platform`, or None where there are no leases."""
    setlease = getattr(module, "F_SETLEASE", None)
    if setlease is not None:
        setsig = getattr(module, "F_SETSIG", None)
        if platform.startswith("linux") and setsig is None:
            return None  # without F_SETSIG a lease break would send SIGIO, killing us
        return Lease(setlease, module.F_RDLCK, module.F_UNLCK, setsig)
    if platform == "darwin":
        return _DARWIN_LEASE
    return None


def open_for_writing(path: Path, lease: Lease | None = None) -> bool | None:
    """Return True if some process has `path` open for writing, False if none, None if unknown."""
    # The kernel refuses a read lease while anyone has the file open for writing: take one and
    # drop it at once. EINVAL (no leases on this file system, or an older macOS) and EACCES
    # (not the owner) mean unknown.
    lease = lease or lease_constants()
    if lease is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except BlockingIOError:
        return True  # someone holds a write lease on it: it has the file open
    except OSError:
        return None
    try:
        if lease.setsig is not None:
            # A writer opening the file while we hold the lease makes the kernel signal us,
            # SIGIO by default, whose default action kills the daemon. SIGURG is ignored.
            fcntl.fcntl(fd, lease.setsig, signal.SIGURG)
        fcntl.fcntl(fd, lease.setlease, lease.rdlck)
    except BlockingIOError:  # EAGAIN: a writer has it open
        return True
    except OSError:
        return None
    else:
        with contextlib.suppress(OSError):  # closing releases it anyway
            fcntl.fcntl(fd, lease.setlease, lease.unlck)
        return False
    finally:
        os.close(fd)


# Finder gives a file it is still copying this creation date and FinderInfo type.
FINDER_BUSY_BIRTHTIME = calendar.timegm((1946, 2, 14, 8, 34, 56, 0, 0, 0))
FINDER_BUSY_TYPE = b"brok"


def finder_busy(birthtime: float | None, finder_info: bytes | None) -> bool:
    """Return True when the creation date or FinderInfo says Finder is still copying."""
    if birthtime is not None and math.floor(birthtime) == FINDER_BUSY_BIRTHTIME:
        return True
    return finder_info is not None and finder_info[:4] == FINDER_BUSY_TYPE


def finder_copying(path: Path) -> bool:
    """Return True while Finder marks `path` as a copy in progress (never raises)."""
    try:
        birthtime = getattr(path.lstat(), "st_birthtime", None)  # macOS and BSD only
    except OSError:
        return False
    return finder_busy(birthtime, _finder_info(path) if sys.platform == "darwin" else None)


def _finder_info(path: Path) -> bytes | None:
    """Return the com.apple.FinderInfo xattr of `path` (not followed), or None."""
    getxattr = getattr(os, "getxattr", None)  # Linux has it; Python on macOS does not
    if getxattr is not None:
        try:
            return bytes(getxattr(path, "com.apple.FinderInfo", follow_symlinks=False))
        except OSError:
            return None
    return _darwin_getxattr(os.fsencode(path), b"com.apple.FinderInfo")


def _darwin_getxattr(path: bytes, name: bytes) -> bytes | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buf = ctypes.create_string_buffer(32)  # FinderInfo is 32 bytes
        xattr_nofollow = 0x0001
        size = libc.getxattr(path, name, buf, ctypes.c_size_t(32), 0, xattr_nofollow)
    except (OSError, AttributeError, TypeError):
        return None
    return buf.raw[:size] if size > 0 else None
