"""links: each format renders and reads back; writes are atomic and never overwrite."""

from __future__ import annotations

import errno
import os
import plistlib
from pathlib import Path

import pytest

from imgdrop import filing, links
from imgdrop.links import FORMATS, link_name, read_link, render, write_link, write_link_at
from tests.conftest import as_nobody


def names(folder: Path) -> list[str]:
    """The sorted names in `folder`."""
    return sorted(p.name for p in folder.iterdir())


LINK = "https://i.imgur.com/AbC123x.png"


def test_render_webloc_is_an_xml_plist_with_url() -> None:
    data = render(LINK, "webloc", "shot")
    assert data.startswith(b"<?xml")
    assert plistlib.loads(data) == {"URL": LINK}


def test_render_url_uses_crlf() -> None:
    assert render(LINK, "url", "shot") == f"[InternetShortcut]\r\nURL={LINK}\r\n".encode()


def test_render_desktop_and_txt() -> None:
    assert render(LINK, "desktop", "shot") == (
        f"[Desktop Entry]\nType=Link\nName=shot\nURL={LINK}\n".encode()
    )
    assert render(LINK, "txt", "shot") == f"{LINK}\n".encode()


def test_render_desktop_escapes_the_name() -> None:
    data = render(LINK, "desktop", "a\\b\nc").decode()
    assert "Name=a\\\\b\\nc\n" in data


def test_webloc_escapes_xml_special_characters(tmp_path: Path) -> None:
    link = "https://example.com/a?b=1&c=<2>"
    path = write_link(tmp_path, "x.png", link, "webloc")
    with path.open("rb") as f:
        assert plistlib.load(f) == {"URL": link}


def test_render_refuses_unknown_format_and_broken_links() -> None:
    with pytest.raises(ValueError, match="unknown link format"):
        render(LINK, "html", "shot")
    with pytest.raises(ValueError, match="line break"):
        render(LINK + "\r\nURL=https://evil.example", "url", "shot")


def test_link_name_uses_the_stem() -> None:
    assert link_name("shot.png", "webloc") == "shot.webloc"
    assert link_name("Screenshot 2026-05-12 at 4.42.48\u202fPM.png", "url") == (
        "Screenshot 2026-05-12 at 4.42.48\u202fPM.url"
    )
    assert link_name("archive.tar.gz", "txt") == "archive.tar.txt"
    assert link_name("noext", "desktop") == "noext.desktop"


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_link_round_trips(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "Links"
    path = write_link(out, "shot.png", LINK, fmt)
    assert path == out / f"shot.{fmt}"
    assert path.read_bytes() == render(LINK, fmt, "shot")
    assert read_link(path) == LINK
    assert names(out) == [f"shot.{fmt}"]  # no temp file left


def test_webloc_is_readable_by_plistlib_load(tmp_path: Path) -> None:
    path = write_link(tmp_path, "shot.png", LINK, "webloc")
    with path.open("rb") as f:
        assert plistlib.load(f) == {"URL": LINK}


def test_read_link_accepts_binary_webloc(tmp_path: Path) -> None:
    path = tmp_path / "finder.webloc"
    with path.open("wb") as f:
        plistlib.dump({"URL": LINK}, f, fmt=plistlib.FMT_BINARY)
    assert read_link(path) == LINK


def test_read_link_accepts_windows_url_with_other_groups(tmp_path: Path) -> None:
    path = tmp_path / "win.url"
    path.write_bytes(
        b"\xef\xbb\xbf[DEFAULT]\r\nBASEURL=https://other.example/\r\n"
        b"[InternetShortcut]\r\nIDList=\r\nurl=" + LINK.encode() + b"\r\nIconIndex=0\r\n"
    )
    assert read_link(path) == LINK


def test_read_link_accepts_desktop_with_comments_and_txt_with_blank_lines(tmp_path: Path) -> None:
    desktop = tmp_path / "a.desktop"
    desktop.write_text(f"# made by hand\n[Desktop Entry]\nName=a\nType=Link\nURL={LINK}\n")
    txt = tmp_path / "a.txt"
    txt.write_text(f"\n\n  {LINK}  \n")
    assert read_link(desktop) == LINK
    assert read_link(txt) == LINK


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n", b"[Desktop Entry]\nType=Link\n", plistlib.dumps({"url": LINK}), b"<plist>"],
)
def test_read_link_raises_value_error_without_a_url(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.webloc"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        read_link(path)


def test_collisions_get_numbered_names_and_nothing_is_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "Links"
    out.mkdir()
    (out / "shot.webloc").write_bytes(b"someone else's")
    second = write_link(out, "shot.png", LINK, "webloc")
    third = write_link(out, "shot.jpg", LINK + "?3", "webloc")
    assert second.name == "shot (2).webloc"
    assert third.name == "shot (3).webloc"
    assert (out / "shot.webloc").read_bytes() == b"someone else's"
    assert read_link(second) == LINK
    assert read_link(third) == LINK + "?3"
    assert names(out) == ["shot (2).webloc", "shot (3).webloc", "shot.webloc"]


def test_write_link_at_writes_the_exact_path_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "new" / "shot (4).url"
    write_link_at(path, LINK, "url")
    assert read_link(path) == LINK
    with pytest.raises(FileExistsError):
        write_link_at(path, LINK + "?other", "url")
    assert read_link(path) == LINK
    assert names(path.parent) == ["shot (4).url"]


def test_temp_is_complete_hidden_in_the_same_folder_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, bytes, bool]] = []
    real_place = filing.place

    def spy(temp: Path, dest: Path) -> None:
        seen.append((temp, temp.read_bytes(), dest.exists()))
        real_place(temp, dest)

    monkeypatch.setattr(filing, "place", spy)
    out = tmp_path / "Links"
    path = write_link(out, "shot.png", LINK, "webloc")
    [(temp, content, dest_existed)] = seen
    assert temp.parent == out
    assert temp.name.startswith(".")
    assert content == render(LINK, "webloc", "shot")  # complete before it gets a real name
    assert not dest_existed
    assert not temp.exists()
    assert names(out) == [path.name]


def test_temp_removed_and_no_link_file_when_naming_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(temp: Path, dest: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    monkeypatch.setattr(filing, "place", full_disk)
    out = tmp_path / "Links"
    with pytest.raises(OSError, match="No space"):
        write_link(out, "shot.png", LINK, "webloc")
    with pytest.raises(OSError, match="No space"):
        write_link_at(out / "x.url", LINK, "url")
    assert names(out) == []


def test_read_only_folder_leaves_nothing_behind(shared_dir: Path) -> None:
    """Run as user nobody: root would write into a read-only folder anyway."""
    folder = shared_dir / "Links"
    folder.mkdir()
    folder.chmod(0o555)

    def attempt() -> None:
        with pytest.raises(PermissionError):
            write_link(folder, "shot.png", LINK, "webloc")

    assert as_nobody(attempt) == "ok"
    assert names(folder) == []


def test_folder_is_created_when_missing(tmp_path: Path) -> None:
    path = write_link(tmp_path / "a" / "b", "shot.png", LINK, "txt")
    assert path.read_text() == LINK + "\n"


def test_link_file_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_link(tmp_path, "shot.png", LINK, "webloc")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_formats_constant() -> None:
    assert links.FORMATS == ("webloc", "url", "desktop", "txt")


def test_long_and_non_utf8_names_give_a_link_file(tmp_path: Path) -> None:
    long_name = "é" * 126 + ".png"  # 256 bytes of name: the link name must be trimmed
    path = write_link(tmp_path, long_name, "https://i.imgur.com/a.png", "webloc")
    assert path.name.endswith(".webloc") and len(os.fsencode(path.name)) <= 255
    raw = os.fsdecode(b"caf\xe9.png")
    for fmt in FORMATS:
        made = write_link(tmp_path, raw, "https://i.imgur.com/b.png", fmt)
        assert os.fsencode(made.name) == b"caf\xe9." + fmt.encode()
        assert read_link(made) == "https://i.imgur.com/b.png"
