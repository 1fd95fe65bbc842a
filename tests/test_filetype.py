"""filetype: magic bytes decide, names never do; size and video rules give plain reasons."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from imgdrop import filetype
from imgdrop.filetype import HEAD_BYTES, MB, FileType, Rejected, check, sniff
from tests import images


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    return _box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible)) + _box(b"free", b"")


def _ebml(doctype: bytes) -> bytes:
    body = b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
    body += b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    body += b"\x42\x87\x81\x04\x42\x85\x81\x02"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + b"\x18\x53\x80\x67"


def _apng() -> bytes:
    png = images.png(512)
    ihdr_end = 8 + 8 + 13 + 4
    actl = struct.pack(">I", 8) + b"acTL" + struct.pack(">II", 2, 0) + b"\x00\x00\x00\x00"
    return png[:ihdr_end] + actl + png[ihdr_end:]


BMP = (
    b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<IiiHH", 40, 1, 1, 1, 24) + b"\0" * 16
)

SAMPLES: dict[str, tuple[bytes, str, bool]] = {
    "png": (images.png(), "image/png", False),
    "apng": (_apng(), "image/png", False),
    "jpeg": (images.jpeg(), "image/jpeg", False),
    "gif": (images.gif(), "image/gif", False),
    "tiff-le": (b"II*\x00\x08\x00\x00\x00" + b"\x00" * 56, "image/tiff", False),
    "tiff-be": (b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 56, "image/tiff", False),
    "bmp": (BMP, "image/bmp", False),
    "webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 40, "image/webp", False),
    "heic": (_ftyp(b"heic", b"mif1", b"heic"), "image/heic", False),
    "heif": (_ftyp(b"mif1", b"mif1", b"heic"), "image/heic", False),
    "heif-generic": (_ftyp(b"mif1", b"mif1", b"miaf"), "image/heif", False),
    "mp4": (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4", True),
    "mp4-mp42": (_ftyp(b"mp42", b"mp42", b"isom"), "video/mp4", True),
    "mov": (_ftyp(b"qt  ", b"qt  "), "video/quicktime", True),
    "mov-legacy": (_box(b"wide", b"") + _box(b"mdat", b"\x00" * 32), "video/quicktime", True),
    "webm": (_ebml(b"webm"), "video/webm", True),
    "mkv": (_ebml(b"matroska"), "video/x-matroska", True),
    "avi": (
        b"RIFF\x00\x10\x00\x00AVI LIST\x00\x01\x00\x00hdrlavih" + b"\x00" * 40,
        "video/x-msvideo",
        True,
    ),
}

NOT_ACCEPTED = {
    "text": b"hello, this is plain text\n",
    "utf8-cut": "Grüße aus Köln — ünïcödé".encode()[:29],
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    "avif": _ftyp(b"avif", b"avif", b"mif1", b"miaf"),
    "avif-under-mif1": _ftyp(b"mif1", b"mif1", b"avif", b"miaf"),
    "m4a": _ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"),
    "bm-text": b"BMW and Audi are car makers, not image formats at all.",
    "riff-wave": b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>',
    "random-binary": b"\x00\x01\x02\x03\xfe\xff" * 10,
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _check(path: Path, videos: bool = False, max_image_mb: float = 10) -> FileType:
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    return check(head, path.stat().st_size, videos=videos, max_image_mb=max_image_mb)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_sniff_recognises_each_supported_type(kind: str) -> None:
    data, mime, video = SAMPLES[kind]
    assert sniff(data[: filetype.HEAD_BYTES]) == FileType(mime, video)


@pytest.mark.parametrize("kind", sorted(NOT_ACCEPTED))
def test_sniff_refuses_everything_else(kind: str) -> None:
    assert sniff(NOT_ACCEPTED[kind]) is None


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_check_accepts_supported_files_whatever_their_name(tmp_path: Path, kind: str) -> None:
    data, mime, video = SAMPLES[kind]
    path = _write(tmp_path / "no-extension-at-all", data)
    assert _check(path, videos=True) == FileType(mime, video)


def test_text_named_png_is_rejected_as_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.png", b"TODO: buy milk\n")
    with pytest.raises(Rejected) as err:
        _check(path)
    assert str(err.value) == "This file is not an image Imgur accepts (it looks like text)."


@pytest.mark.parametrize(
    ("kind", "words"),
    [("pdf", "PDF"), ("zip", "ZIP"), ("avif", "AVIF"), ("random-binary", "no supported")],
)
def test_rejection_says_what_the_file_looks_like(tmp_path: Path, kind: str, words: str) -> None:
    path = _write(tmp_path / "picture.jpg", NOT_ACCEPTED[kind])
    with pytest.raises(Rejected, match=words):
        _check(path)


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "shot.png", b"")
    with pytest.raises(Rejected) as err:
        _check(path)
    assert str(err.value) == "The file is empty."


def test_file_emptied_after_stat_is_rejected_as_empty() -> None:
    with pytest.raises(Rejected, match="empty"):
        check(b"", 2048, videos=False, max_image_mb=10)


def _sparse(path: Path, head: bytes, size: int) -> Path:
    """A file of `size` bytes that takes no disk space beyond its head."""
    path.write_bytes(head)
    os.truncate(path, size)
    return path


def test_oversize_image_is_rejected_with_sizes_in_words(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "big.png", images.png(512), int(14.2 * MB) + 1)
    with pytest.raises(Rejected) as err:
        _check(path)
    assert str(err.value) == "The file is 14.2 MB, over the 10 MB limit for images."


def test_image_at_the_limit_is_accepted_and_limit_is_configurable(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "big.png", images.png(512), 10 * MB)
    assert _check(path).mime == "image/png"
    with pytest.raises(Rejected, match=r"over the 2\.5 MB limit for images"):
        _check(path, max_image_mb=2.5)


def test_just_over_the_limit_never_reads_as_equal_to_it(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "big.png", images.png(512), 10 * MB + 1)
    with pytest.raises(Rejected) as err:
        _check(path)
    assert str(err.value) == (
        "The file is 10,485,761 bytes, over the 10 MB (10,485,760 bytes) limit for images."
    )


def test_video_rejected_when_videos_are_off(tmp_path: Path) -> None:
    path = _write(tmp_path / "clip.mp4", SAMPLES["mp4"][0])
    with pytest.raises(Rejected) as err:
        _check(path, videos=False)
    assert str(err.value) == (
        "This is a video; video uploads are turned off (set `videos: true` to allow them)."
    )


def test_video_accepted_when_videos_are_on_with_the_200_mb_limit(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "clip.mov", SAMPLES["mov"][0], 150 * MB)
    assert _check(path, videos=True) == FileType("video/quicktime", True)
    os.truncate(path, 201 * MB)
    with pytest.raises(Rejected) as err:
        _check(path, videos=True)
    assert str(err.value) == "The file is 201.0 MB, over the 200 MB limit for videos."
