"""What a file is, by its first bytes (never its name), and whether Imgur will take it."""

from __future__ import annotations

from dataclasses import dataclass

# Sizes are in MiB (1 MB = 1024 * 1024 bytes here), the stricter reading of Imgur's "10 MB".
MB = 1024 * 1024
VIDEO_LIMIT_MB = 200.0
HEAD_BYTES = 64


@dataclass(frozen=True)
class FileType:
    """A type Imgur accepts: its MIME type and whether it goes up as a video."""

    mime: str
    video: bool


class Rejected(Exception):
    """The file must not be uploaded; str() is the reason in plain words."""


VIDEOS_OFF = "This is a video; video uploads are turned off (set `videos: true` to allow them)."

# ISO base media (ftyp) brands. HEIF stills first, then movies.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"hevc", b"hevx", b"hevm", b"hevs", b"mif2"}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
    b"mp41", b"mp42", b"mp71", b"avc1", b"dash", b"M4V ", b"M4VH", b"M4VP", b"f4v ",
    b"mmp4", b"MSNV", b"NDAS", b"XAVC",
}  # fmt: skip
# Look-alikes Imgur does not take: AVIF stills (which also list mif1), audio-only MP4.
_AVIF_BRANDS = {b"avif", b"avis"}
_REFUSED_BRANDS = {*_AVIF_BRANDS, b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Old QuickTime files start with a bare atom instead of ftyp.
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"pnot"}

_IMAGE = {
    "png": FileType("image/png", video=False),  # APNG too: same signature, still image/png
    "jpeg": FileType("image/jpeg", video=False),
    "gif": FileType("image/gif", video=False),
    "tiff": FileType("image/tiff", video=False),
    "bmp": FileType("image/bmp", video=False),
    "webp": FileType("image/webp", video=False),
    "heic": FileType("image/heic", video=False),
    "heif": FileType("image/heif", video=False),
}
_VIDEO = {
    "mp4": FileType("video/mp4", video=True),
    "mov": FileType("video/quicktime", video=True),
    "webm": FileType("video/webm", video=True),
    "mkv": FileType("video/x-matroska", video=True),
    "avi": FileType("video/x-msvideo", video=True),
}
# BMP DIB header sizes: core, OS/2 2.x short, info, v2..v5.
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_PREFIXES = (
    (b"\x89PNG\r\n\x1a\n", _IMAGE["png"]),
    (b"\xff\xd8\xff", _IMAGE["jpeg"]),
    (b"GIF87a", _IMAGE["gif"]),
    (b"GIF89a", _IMAGE["gif"]),
    (b"II*\x00", _IMAGE["tiff"]),
    (b"MM\x00*", _IMAGE["tiff"]),
)
_BRANDS = {
    **dict.fromkeys(_HEIC_BRANDS, _IMAGE["heic"]),
    **dict.fromkeys(_HEIF_BRANDS, _IMAGE["heif"]),
    **dict.fromkeys(_MP4_BRANDS, _VIDEO["mp4"]),
    b"qt  ": _VIDEO["mov"],
}


def sniff(head: bytes) -> FileType | None:
    """Return the type the magic bytes at the start of a file show, or None if not one we upload."""
    for magic, kind in _PREFIXES:
        if head.startswith(magic):
            return kind
    for probe in (_sniff_bmp, _sniff_riff, _sniff_ebml, _sniff_isobmff):
        found = probe(head)
        if found is not None:
            return found
    return None


def _sniff_bmp(head: bytes) -> FileType | None:
    """BMP: "BM" alone is too weak (text starts with it), so also check the DIB header size."""
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return _IMAGE["bmp"]
    return None


def _sniff_riff(head: bytes) -> FileType | None:
    """RIFF containers: WebP stills and AVI movies (WAVE and others are not ours)."""
    if not head.startswith(b"RIFF"):
        return None
    return {b"WEBP": _IMAGE["webp"], b"AVI ": _VIDEO["avi"]}.get(head[8:12])


def _sniff_ebml(head: bytes) -> FileType | None:
    """EBML: the header's DocType, within the first bytes, tells WebM from Matroska."""
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    return _VIDEO["webm"] if b"webm" in head else _VIDEO["mkv"]


def _sniff_isobmff(head: bytes) -> FileType | None:
    """ISO base media (HEIF, MP4, QuickTime): an ftyp box, or a bare atom in old QuickTime."""
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head[4:8] in _QT_ATOMS:
        return _VIDEO["mov"]
    return None


def _sniff_ftyp(head: bytes) -> FileType | None:
    """Classify an ftyp box by its major brand, then its compatible brands."""
    box_size = int.from_bytes(head[0:4], "big")
    end = min(len(head), box_size) if box_size >= 16 else len(head)
    major = head[8:12]
    listed = [head[i : i + 4] for i in range(16, end - 3, 4)]
    compatible = set(listed)
    if major in _REFUSED_BRANDS or (_AVIF_BRANDS & compatible and not _HEIC_BRANDS & compatible):
        return None  # AVIF (also when filed under the generic HEIF brand mif1), audio-only MP4
    kind = next((_BRANDS[b] for b in [major, *listed] if b in _BRANDS), None)
    if kind == _IMAGE["heif"] and _HEIC_BRANDS & compatible:
        # Generic HEIF (mif1...) is HEIC when the HEVC brand is listed too (iPhone photos).
        kind = _IMAGE["heic"]
    return kind


def check(head: bytes, size: int, videos: bool, max_image_mb: float) -> FileType:
    """Return the file's type if Imgur should get it; raise Rejected with the reason otherwise.

    `head` is the file's first HEAD_BYTES (or fewer), `size` its fstat size.
    """
    if size <= 0 or not head:
        raise Rejected("The file is empty.")
    kind = sniff(head)
    if kind is None:
        raise Rejected(f"This file is not an image Imgur accepts ({_looks_like(head)}).")
    if kind.video and not videos:
        raise Rejected(VIDEOS_OFF)
    limit_mb = VIDEO_LIMIT_MB if kind.video else max_image_mb
    if size > limit_mb * MB:
        what = "videos" if kind.video else "images"
        raise Rejected(f"The file is {_over_limit(size, limit_mb)} limit for {what}.")
    return kind


def _over_limit(size: int, limit_mb: float) -> str:
    """Return "14.2 MB, over the 10 MB", with enough precision that size visibly exceeds it."""
    limit = f"{limit_mb:g} MB"
    for digits in (1, 2, 3):
        shown = round(size / MB, digits)
        if shown > limit_mb:
            return f"{shown:.{digits}f} MB, over the {limit}"
    return f"{size:,} bytes, over the {limit} ({int(limit_mb * MB):,} bytes)"


def _looks_like(head: bytes) -> str:
    """Return a short guess at what an unsupported file is, for the rejection reason."""
    if head.startswith(b"%PDF"):
        return "it looks like a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "it looks like a ZIP archive or office document"
    if head[4:8] == b"ftyp" and _AVIF_BRANDS & {
        head[i : i + 4] for i in range(8, len(head) - 3, 4)
    }:
        return "it looks like an AVIF image, which Imgur does not take"
    if _is_text(head):
        return "it looks like text"
    return "its contents match no supported image or video type"


def _is_text(head: bytes) -> bool:
    """True for NUL-free UTF-8 (a character cut off at the end is allowed)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.reason == "unexpected end of data" and e.start >= len(head) - 3
    return True
