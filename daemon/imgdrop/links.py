"""Link files in the outbox: render, write atomically without overwriting, read back."""

from __future__ import annotations

import contextlib
import logging
import os
import plistlib
from pathlib import Path, PurePath

from imgdrop import filing

log = logging.getLogger(__name__)

FORMATS = ("webloc", "url", "desktop", "txt")

# Link files are tiny; anything bigger is not one of ours.
_MAX_READ = 1 << 20


def render(link: str, fmt: str, title: str) -> bytes:
    """Return a link file's bytes in format `fmt`; raise ValueError for a bad format or link."""
    if any(ch in link for ch in "\r\n\x00"):
        raise ValueError(f"link contains a line break or NUL: {link!r}")
    if fmt == "webloc":
        return plistlib.dumps({"URL": link}, fmt=plistlib.FMT_XML)
    if fmt == "url":
        return f"[InternetShortcut]\r\nURL={link}\r\n".encode()
    if fmt == "desktop":
        # Name= must be UTF-8: bytes of a non-UTF-8 file name show as U+FFFD.
        name = _desktop_escape(os.fsencode(title).decode("utf-8", "replace"))
        return f"[Desktop Entry]\nType=Link\nName={name}\nURL={link}\n".encode()
    if fmt == "txt":
        return f"{link}\n".encode()
    raise ValueError(f"unknown link format {fmt!r}; expected one of {', '.join(FORMATS)}")


def link_name(original_name: str, fmt: str) -> str:
    """Return the link file's name for an original: "shot.png" -> "shot.webloc"."""
    stem = PurePath(original_name).stem or original_name
    return f"{stem}.{fmt}"


def write_link(folder: Path, original_name: str, link: str, fmt: str) -> Path:
    """Write the link file for `original_name` into `folder` under a free name; return its path."""
    data = render(link, fmt, PurePath(original_name).stem or original_name)
    folder.mkdir(parents=True, exist_ok=True)
    temp = filing.write_temp(folder, data)
    try:
        path = filing.claim(folder, link_name(original_name, fmt), lambda p: filing.place(temp, p))
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    filing.fsync_dir(folder)
    return path


def write_link_at(path: Path, link: str, fmt: str) -> None:
    """Write a link file at exactly `path`, atomically; raise FileExistsError if it exists."""
    data = render(link, fmt, path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = filing.write_temp(path.parent, data)
    try:
        filing.place(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    filing.fsync_dir(path.parent)


def read_link(path: Path) -> str:
    """Return the URL stored in a link file of any supported format; raise ValueError if none."""
    with path.open("rb") as f:
        data = f.read(_MAX_READ)
    if data.startswith(b"bplist") or b"<plist" in data[:512]:
        return _read_plist(path, data)
    text = _decode(data)
    lines = [line.strip() for line in text.splitlines()]
    content = [line for line in lines if line and not line.startswith(("#", ";"))]
    if not content:
        raise ValueError(f"{path}: empty link file")
    if content[0].startswith("["):
        return _read_ini(path, content)
    return content[0]


def _read_plist(path: Path, data: bytes) -> str:
    """Return the URL key of a webloc plist (XML or binary)."""
    try:
        root = plistlib.loads(data)
    except Exception as e:  # plistlib raises several unrelated types on bad input
        raise ValueError(f"{path}: not a readable plist ({e})") from e
    url = root.get("URL") if isinstance(root, dict) else None
    if not isinstance(url, str) or not url:
        raise ValueError(f"{path}: plist has no URL")
    return url


def _read_ini(path: Path, lines: list[str]) -> str:
    """Return URL= from the [InternetShortcut] or [Desktop Entry] group."""
    group = ""
    for line in lines:
        if line.startswith("["):
            group = line.strip("[]").strip().lower()
            continue
        key, sep, value = line.partition("=")
        if sep and group in ("internetshortcut", "desktop entry") and key.strip().lower() == "url":
            return value.strip()
    raise ValueError(f"{path}: no URL= line in an [InternetShortcut] or [Desktop Entry] group")


def _decode(data: bytes) -> str:
    """Decode a text link file: UTF-8 (with or without BOM), else Latin-1 (old Windows .url)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _desktop_escape(value: str) -> str:
    """Escape a value for a freedesktop entry: backslash and control characters."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
