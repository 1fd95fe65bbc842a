"""filing: collision-free names, moves that never overwrite, error files that explain."""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from imgdrop import filing
from imgdrop.filing import candidates, claim, error_path, file_failed, link_at
from tests import images
from tests.conftest import as_nobody


def names(folder: Path) -> list[str]:
    """The sorted names in `folder`."""
    return sorted(p.name for p in folder.iterdir())


def _drop(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_candidates_number_before_the_last_suffix() -> None:
    assert list(itertools.islice(candidates("shot.png"), 4)) == [
        "shot.png",
        "shot (2).png",
        "shot (3).png",
        "shot (4).png",
    ]
    assert list(itertools.islice(candidates("a.tar.gz"), 2)) == ["a.tar.gz", "a.tar (2).gz"]
    assert list(itertools.islice(candidates("noext"), 2)) == ["noext", "noext (2)"]
    assert list(itertools.islice(candidates(".hidden"), 2)) == [".hidden", ".hidden (2)"]


def test_claim_skips_taken_names_and_propagates_other_errors(tmp_path: Path) -> None:
    tried: list[str] = []

    def create(path: Path) -> None:
        tried.append(path.name)
        if len(tried) < 3:
            raise FileExistsError(path)

    assert claim(tmp_path, "a.png", create) == tmp_path / "a (3).png"
    assert tried == ["a.png", "a (2).png", "a (3).png"]

    def broken(path: Path) -> None:
        raise PermissionError(path)

    with pytest.raises(PermissionError):
        claim(tmp_path, "a.png", broken)


def test_file_failed_creates_the_folder_and_keeps_the_inode(tmp_path: Path) -> None:
    data = images.png()
    src = _drop(tmp_path / "Inbox", "shot.png", data)
    inode = src.stat().st_ino
    dest = file_failed(src, tmp_path / "Failed", "Nope.", {})
    assert dest == tmp_path / "Failed" / "shot.png"
    assert dest.read_bytes() == data
    assert dest.stat().st_ino == inode  # a hard link, not a copy
    assert dest.stat().st_nlink == 1
    assert names(tmp_path / "Inbox") == []
    assert names(tmp_path / "Failed") == ["shot.png", "shot.png.error.txt"]


def test_three_files_with_one_name_get_numbered(tmp_path: Path) -> None:
    failed = tmp_path / "Failed"
    bodies = [images.png(), images.png(), images.png()]
    dests = [
        file_failed(_drop(tmp_path / f"in{i}", "shot.png", b), failed, "Nope.", {})
        for i, b in enumerate(bodies)
    ]
    assert [d.name for d in dests] == ["shot.png", "shot (2).png", "shot (3).png"]
    assert [d.read_bytes() for d in dests] == bodies
    assert len(names(failed)) == 6  # three pairs, no temp left


def test_file_failed_never_overwrites(tmp_path: Path) -> None:
    failed = tmp_path / "Failed"
    _drop(failed, "shot.png", b"first")
    _drop(failed, "shot (2).png", b"second")
    src = _drop(tmp_path / "Inbox", "shot.png", b"third")
    dest = file_failed(src, failed, "Nope.", {})
    assert dest.name == "shot (3).png"
    assert (failed / "shot.png").read_bytes() == b"first"
    assert (failed / "shot (2).png").read_bytes() == b"second"
    assert dest.read_bytes() == b"third"


def test_unusable_target_leaves_the_source_in_place(tmp_path: Path) -> None:
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    (tmp_path / "Failed").write_bytes(b"a file where the folder should be")
    with pytest.raises(OSError):
        file_failed(src, tmp_path / "Failed", "Nope.", {})
    assert src.read_bytes() == b"data"


def test_read_only_target_leaves_the_source_in_place(shared_dir: Path) -> None:
    """Run as user nobody: root would write into a read-only folder anyway."""
    inbox, failed = shared_dir / "Inbox", shared_dir / "Failed"
    inbox.mkdir(mode=0o777)
    inbox.chmod(0o777)
    failed.mkdir()
    failed.chmod(0o555)
    src = _drop(inbox, "shot.png", b"data")
    src.chmod(0o666)

    def attempt() -> None:
        with pytest.raises(PermissionError):
            file_failed(src, failed, "Nope.", {})

    assert as_nobody(attempt) == "ok"
    assert names(failed) == []
    assert src.read_bytes() == b"data"


def test_symlink_is_moved_as_a_link_never_followed(tmp_path: Path) -> None:
    secret = _drop(tmp_path / "home", "id_rsa", b"secret")
    src = tmp_path / "Inbox" / "key.png"
    src.parent.mkdir()
    src.symlink_to(secret)
    dest = file_failed(src, tmp_path / "Failed", "Nope.", {})
    assert dest.is_symlink()
    assert dest.readlink() == secret
    assert secret.stat().st_nlink == 1
    assert not src.is_symlink()


def test_file_failed_leaves_a_file_that_replaced_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _drop(tmp_path / "Inbox", "shot.png", b"old")
    real_link_at = filing.link_at

    def link_then_replace(source: Path, dest: Path) -> None:
        real_link_at(source, dest)
        _drop(tmp_path / "Inbox", "new.png", b"new").replace(source)  # the user drops again

    monkeypatch.setattr(filing, "link_at", link_then_replace)
    dest = file_failed(src, tmp_path / "Failed", "Nope.", {})
    assert dest.read_bytes() == b"old"
    assert src.read_bytes() == b"new"


def test_file_failed_removes_its_error_file_when_linking_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(source: Path, dest: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(dest))

    monkeypatch.setattr(filing, "link_at", denied)
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    with pytest.raises(PermissionError):
        file_failed(src, tmp_path / "Failed", "Nope.", {})
    assert src.read_bytes() == b"data"
    assert names(tmp_path / "Failed") == []


def test_file_failed_moves_on_when_the_name_is_taken_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = tmp_path / "Failed"
    real_link_at = filing.link_at

    def racing(source: Path, dest: Path) -> None:
        if dest.name == "shot.png":
            _drop(failed, "shot.png", b"someone else's")
        real_link_at(source, dest)

    monkeypatch.setattr(filing, "link_at", racing)
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    dest = file_failed(src, failed, "Nope.", {})
    assert dest.name == "shot (2).png"
    assert names(failed) == ["shot (2).png", "shot (2).png.error.txt", "shot.png"]
    assert (failed / "shot.png").read_bytes() == b"someone else's"


@pytest.fixture
def other_fs_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a different file system than tmp_path (/dev/shm), or skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm")
    if shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system as tmp_path")
    folder = shm / f"imgdrop-test-{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_file_failed_writes_the_reason_first(tmp_path: Path) -> None:
    src = _drop(tmp_path / "Inbox", "notes.png", b"text")
    reason = "This file is not an image Imgur accepts (it looks like text)."
    dest = file_failed(src, tmp_path / "Failed", reason, {})
    assert dest == tmp_path / "Failed" / "notes.png"
    assert not src.exists()
    lines = error_path(dest).read_text().splitlines()
    assert lines[0] == reason
    assert lines[1] == "file: notes.png"
    assert lines[2].startswith("time: ")
    assert datetime.fromisoformat(lines[2].removeprefix("time: ")).tzinfo is not None
    assert error_path(dest).name == "notes.png.error.txt"


def test_file_failed_lists_the_given_details_in_order(tmp_path: Path) -> None:
    failed = tmp_path / "Failed"
    _drop(failed, "shot.png", b"older failure")
    src = _drop(tmp_path / "Inbox", "shot.png", b"big")
    details = {
        "time": "2026-05-12T16:42:48+02:00",
        "server message": "File is over\n  the size limit",
        "status": "400",
    }
    dest = file_failed(src, failed, "Imgur rejected the file: it is too large.", details)
    assert dest.name == "shot (2).png"
    assert error_path(dest).read_text() == (
        "Imgur rejected the file: it is too large.\n"
        "file: shot.png\n"
        "status: 400\n"
        "server message: File is over the size limit\n"
        "time: 2026-05-12T16:42:48+02:00\n"
    )
    assert names(failed) == ["shot (2).png", "shot (2).png.error.txt", "shot.png"]


def test_file_failed_keeps_the_pair_together_past_a_stale_error_file(tmp_path: Path) -> None:
    failed = tmp_path / "Failed"
    _drop(failed, "shot.png.error.txt", b"stale, the user deleted the image")
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    dest = file_failed(src, failed, "Nope.", {"status": "415"})
    assert dest.name == "shot (2).png"
    assert error_path(dest).read_text().startswith("Nope.\n")
    assert (failed / "shot.png.error.txt").read_bytes() == b"stale, the user deleted the image"
    assert not (failed / "shot.png").exists()


def test_file_failed_caps_huge_server_messages(tmp_path: Path) -> None:
    src = _drop(tmp_path / "Inbox", "a.png", b"x")
    page = "<html>" + "over capacity " * 1000 + "</html>"
    dest = file_failed(
        src, tmp_path / "Failed", "Imgur is over capacity.", {"server message": page}
    )
    text = error_path(dest).read_text()
    assert len(text) < 2500
    assert all(len(line) <= 2100 for line in text.splitlines())


def test_file_failed_across_file_systems_copies(tmp_path: Path, other_fs_dir: Path) -> None:
    failed = tmp_path / "Failed"
    _drop(failed, "clip.mp4", b"already here")
    data = images.png(100_000)
    src = _drop(other_fs_dir, "clip.mp4", data)
    os.utime(src, (1_700_000_000, 1_700_000_000))
    dest = file_failed(src, failed, "Video uploads are off.", {})
    assert dest == failed / "clip (2).mp4"
    assert dest.read_bytes() == data
    assert dest.stat().st_mtime == 1_700_000_000  # copied like shutil.copy2
    assert error_path(dest).read_text().startswith("Video uploads are off.\n")
    assert (failed / "clip.mp4").read_bytes() == b"already here"
    assert not src.exists()
    assert names(failed) == ["clip (2).mp4", "clip (2).mp4.error.txt", "clip.mp4"]  # no temp


def test_cross_device_copy_takes_mode_and_times_never_flags(
    tmp_path: Path, other_fs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # shutil.copystat also copies st_flags (chflags) and xattrs: EPERM on exFAT/SMB and
    # undeletable copies of Finder-locked files on macOS (issue 8).
    def no_copystat(*args: object, **kwargs: object) -> None:
        raise AssertionError("copystat copies BSD flags")

    monkeypatch.setattr(shutil, "copystat", no_copystat)
    src = _drop(other_fs_dir, "shot.png", b"data")
    src.chmod(0o640)
    os.utime(src, ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    dest = tmp_path / "Done" / "shot.png"
    link_at(src, dest)
    st = dest.stat()
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o640, 1_700_000_000_987_654_321)
    assert st.st_atime_ns == 1_600_000_000_123_456_789


def test_file_failed_leaves_the_original_when_the_error_file_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(temp: Path, dest: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    monkeypatch.setattr(filing, "place", full_disk)
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    with pytest.raises(OSError, match="No space"):
        file_failed(src, tmp_path / "Failed", "Nope.", {})
    assert src.read_bytes() == b"data"
    assert names(tmp_path / "Failed") == []


def test_link_at_names_the_exact_path_and_keeps_the_source(tmp_path: Path) -> None:
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    dest = tmp_path / "Done" / "shot (7).png"
    link_at(src, dest)
    assert dest.stat().st_ino == src.stat().st_ino
    with pytest.raises(FileExistsError):
        link_at(src, dest)
    other = _drop(tmp_path / "Inbox", "other.png", b"other")
    with pytest.raises(FileExistsError):
        link_at(other, dest)
    assert dest.read_bytes() == b"data"
    assert names(tmp_path / "Done") == ["shot (7).png"]


def test_link_at_across_file_systems_copies(tmp_path: Path, other_fs_dir: Path) -> None:
    src = _drop(other_fs_dir, "shot.png", b"data")
    dest = tmp_path / "Done" / "shot.png"
    link_at(src, dest)
    assert dest.read_bytes() == b"data"
    assert src.exists()
    with pytest.raises(FileExistsError):
        link_at(src, dest)
    assert names(tmp_path / "Done") == ["shot.png"]


def test_file_failed_without_hard_links_copies_and_survives_a_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = tmp_path / "Failed"
    real_link_at = filing.link_at

    def no_hard_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def racing(source: Path, dest: Path) -> None:
        if dest.name == "shot.png":
            _drop(failed, "shot.png", b"someone else's")
        real_link_at(source, dest)

    monkeypatch.setattr(os, "link", no_hard_links)  # exFAT, some network shares
    monkeypatch.setattr(filing, "link_at", racing)
    src = _drop(tmp_path / "Inbox", "shot.png", b"data")
    dest = file_failed(src, failed, "Nope.", {})
    assert dest.name == "shot (2).png"
    assert dest.read_bytes() == b"data"
    assert error_path(dest).read_text().startswith("Nope.\n")
    assert not src.exists()
    assert names(failed) == ["shot (2).png", "shot (2).png.error.txt", "shot.png"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EPERM, "imgdrop is not allowed to use /x/Done (check its owner"),
        (errno.EACCES, "imgdrop is not allowed to use /x/Done"),
        (errno.ENOSPC, "the disk holding /x/Done is full"),
        (errno.ENOTDIR, "cannot use /x/Done: Not a directory"),
    ],
)
def test_local_errors_are_explained_in_plain_words(
    code: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    err = OSError(code, os.strerror(code), "/x/Done")
    assert filing.explain(err).startswith(expected)


def test_disk_full_names_the_folder_not_our_temp_file(monkeypatch: pytest.MonkeyPatch) -> None:
    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/Links/.imgdrop-0123abcd.tmp")
    assert filing.explain(err) == "the disk holding /x/Links is full"
    assert filing.explain(err, Path("/y/Done")) == "the disk holding /y/Done is full"
    bare = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert filing.explain(bare, Path("/y/Done")) == "the disk holding /y/Done is full"


def test_permission_refusal_on_macos_names_the_privacy_grant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    err = OSError(errno.EPERM, os.strerror(errno.EPERM), "/Users/a/Desktop/Inbox")
    text = filing.explain(err)
    assert "/Users/a/Desktop/Inbox" in text and "Privacy & Security" in text


# --- names: never give up, never too long, any bytes (defect 17, 12) -------------------------


def test_after_the_numbered_names_random_suffixes_never_end() -> None:
    names = list(itertools.islice(candidates("shot.png"), filing.NUMBERED + 50))
    assert names[filing.NUMBERED - 1] == f"shot ({filing.NUMBERED}).png"
    tail = names[filing.NUMBERED :]
    assert all(re.fullmatch(r"shot \([0-9a-f]{8}\)\.png", n) for n in tail)
    assert len(set(names)) == len(names)


def test_claim_past_many_clashes_costs_a_bounded_number_of_tries(tmp_path: Path) -> None:
    for cand in itertools.islice(candidates("a.png"), 500):
        (tmp_path / cand).touch()  # 500 taken names, including 480 random ones
    tried: list[str] = []

    def create(path: Path) -> None:
        tried.append(path.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.close(fd)

    got = claim(tmp_path, "a.png", create)
    assert got.name not in {"a.png"} and len(tried) <= filing.NUMBERED + 2


def test_file_failed_past_ten_thousand_clashes(tmp_path: Path) -> None:
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "x.png").touch()
    for n in range(2, 10_050):
        (failed / f"x ({n}).png").touch()
    src = _drop(tmp_path / "in", "x.png", b"data")
    dest = file_failed(src, failed, "bad", {})
    assert dest.read_bytes() == b"data" and not src.exists()
    assert re.fullmatch(r"x \([0-9a-f]{8}\)\.png", dest.name)


def test_long_names_are_trimmed_keeping_the_suffix_and_whole_characters() -> None:
    name = "é" * 127 + ".png"  # 254 + 4 bytes: over the limit once numbered
    first, second = itertools.islice(candidates(name), 2)
    assert first.endswith(".png") and len(os.fsencode(first)) <= 255
    assert second.endswith(" (2).png") and len(os.fsencode(second)) <= 255
    second.encode("utf-8")  # no split sequence
    reserved = next(candidates("a" * 255, reserve=10))
    assert len(reserved) == 245


def test_error_text_of_a_non_utf8_name_is_written(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    raw = b"caf\xe9 \xff.png"
    src = inbox / os.fsdecode(raw)  # pathlib encodes it back to the same bytes
    src.write_bytes(images.png())
    assert os.fsencode(inbox) + b"/" + raw in [os.fsencode(p) for p in inbox.iterdir()]
    dest = file_failed(src, tmp_path / "failed", "not an image", {"server message": "x\ud800y"})
    assert os.fsencode(dest.name) == raw
    text = error_path(dest).read_text(encoding="utf-8")
    assert "file: caf\\xe9 \\xff.png" in text
    assert "server message: x\\ud800y" in text


# --- the property: any name, any clashes --------------------------------------------------

name_bytes = st.binary(min_size=1, max_size=300).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@hsettings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=name_bytes, taken=st.integers(min_value=0, max_value=30))
def test_naming_never_overwrites_fits_and_round_trips(
    tmp_path: Path, raw: bytes, taken: int
) -> None:
    name = os.fsdecode(raw[:255])
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    existing = list(itertools.islice(candidates(name), taken))
    for i, cand in enumerate(existing):
        (folder / cand).write_bytes(str(i).encode())

    def create(path: Path) -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))

    got = claim(folder, name, create, reserve=len(filing.ERROR_SUFFIX))
    encoded = os.fsencode(got.name)
    assert len(encoded) + len(filing.ERROR_SUFFIX) <= 255
    assert os.fsdecode(encoded) == got.name  # round-trips through the OS
    assert got.name not in existing
    for i, cand in enumerate(existing):
        assert (folder / cand).read_bytes() == str(i).encode()  # nothing overwritten
    if not taken and len(raw) <= 245:
        assert encoded == raw[:255]  # a name that fits is kept as it is
    shutil.rmtree(folder)


@hsettings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=name_bytes, clashes=st.integers(min_value=0, max_value=3))
def test_file_failed_files_any_name_beside_its_reason(
    tmp_path: Path, raw: bytes, clashes: int
) -> None:
    name = os.fsdecode(raw[:255])
    root = tmp_path / uuid.uuid4().hex
    inbox, failed = root / "in", root / "failed"
    inbox.mkdir(parents=True)
    failed.mkdir()
    for cand in itertools.islice(candidates(name, len(filing.ERROR_SUFFIX)), clashes):
        (failed / cand).write_bytes(b"older")
    src = inbox / name
    src.write_bytes(b"new")
    dest = file_failed(src, failed, f"rejected {name}", {"server message": name})
    assert dest.read_bytes() == b"new" and not src.exists()
    assert len(os.fsencode(error_path(dest).name)) <= 255
    assert error_path(dest).read_bytes().decode("utf-8").startswith("rejected ")
    assert sum(p.read_bytes() == b"older" for p in failed.iterdir()) == clashes
    shutil.rmtree(root)
