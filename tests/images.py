"""Image bytes for tests: real magic bytes, random bodies so no two are alike."""

from __future__ import annotations

import os
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(size: int = 2048) -> bytes:
    """A decodable greyscale PNG of roughly `size` bytes with random pixels."""
    width = 256
    rows = max(1, size // (width + 1))
    raw = b"".join(b"\x00" + os.urandom(width) for _ in range(rows))
    header = struct.pack(">IIBBBBB", width, rows, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 0))
        + _chunk(b"IEND", b"")
    )


def jpeg(size: int = 2048) -> bytes:
    """JPEG magic (SOI + JFIF APP0), a random body, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + os.urandom(max(0, size - 22)) + b"\xff\xd9"


def gif(size: int = 2048) -> bytes:
    """GIF89a magic, a random body, trailer."""
    return b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + os.urandom(max(0, size - 14)) + b";"
