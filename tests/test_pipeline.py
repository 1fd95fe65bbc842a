"""The whole pipeline in-process: real observer, real folders, real HTTP to the fake Imgur."""

from __future__ import annotations

import os
import plistlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from imgdrop import config, filing
from imgdrop.journal import Journal
from imgdrop.links import read_link
from imgdrop.pipeline import Pipeline
from imgdrop.watcher import Watcher
from tests import images
from tests.conftest import CLIENT_ID, wait_until
from tests.fakeimgur import FakeImgur
from tests.workspace import Workspace


@contextmanager
def running(ws: Workspace, polling: bool = False) -> Iterator[Pipeline]:
    """Watcher and workers on `ws`, wired the way the daemon wires them."""
    settings = ws.settings()
    config.ensure_folders(settings)
    journal = Journal(settings.journal)
    pipeline = Pipeline(settings, journal)
    pipeline.start()
    watcher = Watcher(settings.inbox, settings.settle_seconds, polling, pipeline.submit)
    watcher.start()
    try:
        yield pipeline
    finally:
        watcher.stop()
        pipeline.stop(5)
        journal.close()


def done_count(ws: Workspace, n: int) -> bool:
    return len(ws.names(ws.done)) >= n


def test_png_jpeg_gif_end_as_webloc_with_original_in_done(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path
) -> None:
    ws = workspace
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    contents = {"shot.png": images.png(), "photo.jpg": images.jpeg(), "anim.gif": images.gif()}
    with running(ws):
        ws.drop("shot.png", contents["shot.png"])
        (outside / "photo.jpg").write_bytes(contents["photo.jpg"])
        (outside / "photo.jpg").rename(ws.inbox / "photo.jpg")
        ws.drop("anim.gif", contents["anim.gif"])
        wait_until(lambda: done_count(ws, 3), message="three files in done/")
        wait_until(lambda: len(ws.names(ws.outbox)) == 3, message="three link files")

    assert ws.names(ws.done) == ["anim.gif", "photo.jpg", "shot.png"]
    assert ws.names(ws.inbox) == []
    by_content = {up.content: up for up in fake_imgur.uploads}
    for name, data in contents.items():
        assert (ws.done / name).read_bytes() == data
        upload = by_content[data]  # byte-identical on the server
        assert upload.field == "image"
        assert upload.headers["Authorization"] == f"Client-ID {CLIENT_ID}"
        assert upload.headers["Content-Type"].startswith("multipart/form-data")
        with (ws.outbox / f"{Path(name).stem}.webloc").open("rb") as f:
            assert plistlib.load(f) == {"URL": upload.link}
    assert ws.names(ws.failed) == []


def _write_slowly(path: Path, data: bytes, seconds: float, chunks: int = 20) -> None:
    """A writer that keeps the file open while it trickles bytes in (curl, wget)."""
    step = len(data) // chunks + 1
    with path.open("wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(seconds / chunks)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_slow_writer_is_uploaded_once_complete(
    workspace: Workspace, fake_imgur: FakeImgur, polling: bool
) -> None:
    ws = workspace
    data = images.png(2_000_000)
    with running(ws, polling=polling):
        _write_slowly(ws.inbox / "slow.png", data, seconds=1.5)
        wait_until(lambda: done_count(ws, 1), message="slow.png in done/")
    assert [u.content for u in fake_imgur.uploads] == [data]
    assert (ws.done / "slow.png").read_bytes() == data


def _imagemagick_like(path: Path, data: bytes) -> None:
    """Create the final name, close it empty, reopen at once and write for ~150 ms."""
    path.open("wb").close()
    with path.open("r+b") as f:
        for i in range(0, len(data), len(data) // 10 + 1):
            f.write(data[i : i + len(data) // 10 + 1])
            f.flush()
            time.sleep(0.015)


def _rsync_like(path: Path, data: bytes) -> None:
    """Write a hidden temp name in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.a1B2c3")
    tmp.write_bytes(data)
    tmp.rename(path)


@pytest.mark.parametrize("writer", [_imagemagick_like, _rsync_like], ids=["imagemagick", "rsync"])
def test_real_writer_patterns_give_one_upload_of_the_final_bytes(
    workspace: Workspace, fake_imgur: FakeImgur, writer: object
) -> None:
    ws = workspace
    data = images.png(500_000)
    with running(ws):
        writer(ws.inbox / "out.png", data)  # type: ignore[operator]
        wait_until(lambda: done_count(ws, 1), message="out.png in done/")
        # a late duplicate event would show up as a second upload within the settle time
        time_limit = time.monotonic() + ws.settings().settle_seconds * 2
        wait_until(lambda: time.monotonic() > time_limit, timeout=5, message="settle window")
    assert [u.content for u in fake_imgur.uploads] == [data]
    assert ws.names(ws.failed) == []


def test_files_present_before_start_are_processed(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    for i in range(3):
        ws.drop(f"old{i}.png", images.png())
    with running(ws):
        wait_until(lambda: done_count(ws, 3), message="the three earlier files in done/")
    assert len(fake_imgur.uploads) == 3


def test_rejected_files_land_in_failed_with_a_reason_and_are_never_sent(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, max_image_mb=1, settle_seconds=0.2)
    with running(ws):
        ws.drop("notes.png", b"just some text, not an image\n")
        ws.drop("empty.png", b"")
        ws.drop("huge.png", images.png(1_500_000))
        wait_until(lambda: len(ws.names(ws.failed)) == 6, message="3 files + 3 reasons")
    assert fake_imgur.requests == []
    assert "not an image" in (ws.failed / "notes.png.error.txt").read_text().splitlines()[0]
    assert "empty" in (ws.failed / "empty.png.error.txt").read_text().splitlines()[0]
    assert "limit" in (ws.failed / "huge.png.error.txt").read_text().splitlines()[0]
    assert ws.names(ws.done) == []


def test_symlinks_dotfiles_and_partials_are_left_alone(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path
) -> None:
    ws = workspace
    secret = tmp_path / "id_rsa.png"
    secret_bytes = images.png()
    secret.write_bytes(secret_bytes)
    with running(ws):
        (ws.inbox / "link.png").symlink_to(secret)
        ws.drop(".hidden.png", images.png())
        ws.drop("download.png.part", images.png())
        ws.drop("download.png.crdownload", images.png())
        control = images.png()
        ws.drop("control.png", control)
        wait_until(lambda: done_count(ws, 1), message="the control file in done/")
    assert [u.content for u in fake_imgur.uploads] == [control]
    assert all(secret_bytes not in u.content for u in fake_imgur.uploads)
    assert (ws.inbox / "link.png").is_symlink()
    assert sorted(p.name for p in ws.inbox.iterdir()) == sorted(
        [".hidden.png", "download.png.crdownload", "download.png.part", "link.png"]
    )


def test_same_name_twice_keeps_both(workspace: Workspace, fake_imgur: FakeImgur) -> None:
    ws = workspace
    first, second = images.png(), images.png()
    with running(ws):
        ws.drop("shot.png", first)
        wait_until(lambda: done_count(ws, 1), message="first shot.png in done/")
        ws.drop("shot.png", second)
        wait_until(lambda: done_count(ws, 2), message="second shot.png in done/")
        wait_until(lambda: len(ws.names(ws.outbox)) == 2, message="two link files")
    assert ws.names(ws.done) == ["shot (2).png", "shot.png"]
    assert (ws.done / "shot.png").read_bytes() == first
    assert (ws.done / "shot (2).png").read_bytes() == second
    assert ws.names(ws.outbox) == ["shot (2).webloc", "shot.webloc"]
    links = {read_link(ws.outbox / n) for n in ws.names(ws.outbox)}
    assert links == {u.link for u in fake_imgur.uploads}


def test_names_with_spaces_unicode_and_narrow_no_break_space(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    names = ["Screenshot 2026-05-12 at 4.42.48\u202fPM.png", "café – été.png", "日本語 画像.jpg"]
    with running(ws):
        for name in names:
            ws.drop(name, images.png() if name.endswith("png") else images.jpeg())
        wait_until(lambda: done_count(ws, 3), message="three unicode names in done/")
    assert ws.names(ws.done) == sorted(names)
    assert ws.names(ws.outbox) == sorted(f"{Path(n).stem}.webloc" for n in names)


def test_same_bytes_twice_upload_once_and_get_two_link_files(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    data = images.png()
    with running(ws):
        ws.drop("a.png", data)
        ws.drop("b.png", data)
        wait_until(lambda: done_count(ws, 2), message="a.png and b.png in done/")
    assert len(fake_imgur.uploads) == 1
    assert ws.names(ws.outbox) == ["a.webloc", "b.webloc"]
    assert read_link(ws.outbox / "a.webloc") == read_link(ws.outbox / "b.webloc")


def test_archiving_does_not_delay_the_next_file(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """A rename out of the inbox would hold watchdog's next events for 0.5 s."""
    ws = workspace
    with running(ws):
        ws.drop("first.png", images.png())
        wait_until(lambda: done_count(ws, 1), message="first.png in done/")
        dropped = time.monotonic()
        ws.drop("second.png", images.png())
        wait_until(lambda: done_count(ws, 2), message="second.png in done/")
        took = time.monotonic() - dropped
    assert took < 0.45, f"second file took {took:.3f} s"


def test_local_write_failure_keeps_the_file_until_the_folder_is_usable(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    with running(ws):
        ws.outbox.rmdir()
        ws.outbox.write_text("a file where the outbox folder should be")
        ws.drop("shot.png", images.png())
        wait_until(lambda: len(fake_imgur.uploads) == 1, message="the upload")
        wait_until(
            lambda: any(p.name == "shot.png" for p in ws.inbox.iterdir()),
            timeout=1,
            message="shot.png still in the inbox",
        )
        ws.outbox.unlink()
        wait_until(lambda: done_count(ws, 1), message="shot.png in done/ once the outbox works")
    assert len(fake_imgur.uploads) == 1
    assert ws.names(ws.outbox) == ["shot.webloc"]


@pytest.mark.parametrize("fault", ["502", "malformed"])
def test_an_outage_of_server_errors_never_fails_a_file(
    workspace: Workspace, fake_imgur: FakeImgur, fault: str
) -> None:
    """Defect: a few minutes of 5xx sent every file to failed/ after max_attempts."""
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, max_attempts=2, workers=2)
    if fault == "502":
        fake_imgur.fail_next(6, 502, shape="bytes")
    else:
        fake_imgur.malformed_next(6)
    with running(ws):
        for i in range(3):
            ws.drop(f"shot{i}.png", images.png())
        wait_until(lambda: done_count(ws, 3), timeout=20, message="all three after the outage")
    assert ws.names(ws.failed) == []
    assert len(fake_imgur.uploads) == 3
    # one probe at a time during the outage: never both workers sending into it
    assert len(fake_imgur.requests) <= 6 + 3


def test_a_spent_quota_stops_sending_before_any_429(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, workers=1)
    fake_imgur.exhaust_after(1, reset_in=1.5)
    with running(ws):
        ws.drop("a.png", images.png())
        wait_until(lambda: done_count(ws, 1), message="a.png done")
        reset_at = time.time() + 1.0  # the answer said: 2 s at most, 1 s at least from now
        ws.drop("b.png", images.png())
        wait_until(lambda: done_count(ws, 2), message="b.png done after the reset")
    assert [r.status for r in fake_imgur.requests] == [200, 200]
    assert fake_imgur.requests[1].time >= reset_at


def test_symlinks_and_fifos_handed_to_the_workers_are_never_read(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path
) -> None:
    """Even if a name turns into a symlink or a FIFO after the watcher looked at it."""
    ws = workspace
    secret = tmp_path / "secret.png"
    secret.write_bytes(images.png())
    (ws.inbox / "swapped.png").symlink_to(secret)
    os.mkfifo(ws.inbox / "pipe.png")
    control = images.png()
    with running(ws) as pipeline:
        pipeline.submit(ws.inbox / "swapped.png")
        pipeline.submit(ws.inbox / "pipe.png")
        ws.drop("control.png", control)
        wait_until(lambda: done_count(ws, 1), message="the control file in done/")
        wait_until(pipeline.settled, message="the workers to finish")
    assert [u.content for u in fake_imgur.uploads] == [control]
    assert (ws.inbox / "swapped.png").is_symlink()
    assert (ws.inbox / "pipe.png").exists()
    assert ws.names(ws.failed) == []


def test_same_bytes_after_a_transient_error_are_uploaded_once(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    fake_imgur.fail_next(1, 500)
    data = images.png()
    with running(ws):
        ws.drop("a.png", data)
        ws.drop("b.png", data)
        wait_until(lambda: done_count(ws, 2), message="a.png and b.png in done/")
    assert len(fake_imgur.uploads) == 1
    assert read_link(ws.outbox / "a.webloc") == read_link(ws.outbox / "b.webloc")


def test_a_file_saved_over_the_name_while_filing_is_not_lost(
    workspace: Workspace, fake_imgur: FakeImgur, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A new shot.png renamed into place between the link into done/ and the unlink."""
    ws = workspace
    first, second = images.png(), images.png()
    staged = tmp_path / "second.png"
    staged.write_bytes(second)
    real_link_at = filing.link_at

    def link_then_race(src: Path, dest: Path) -> None:
        real_link_at(src, dest)
        if staged.exists() and dest.parent == ws.done:
            staged.replace(src)  # the user saves again under the same name, right now

    monkeypatch.setattr(filing, "link_at", link_then_race)
    with running(ws):
        ws.drop("shot.png", first)
        wait_until(lambda: done_count(ws, 2), message="both versions in done/")
    assert sorted(u.content for u in fake_imgur.uploads) == sorted([first, second])
    assert sorted((ws.done / n).read_bytes() for n in ws.names(ws.done)) == sorted([first, second])


def test_start_finishes_an_upload_a_crash_left_after_filing(workspace: Workspace) -> None:
    """Killed after the unlink from the inbox but before the journal said done."""
    ws = workspace
    settings = ws.settings()
    config.ensure_folders(settings)
    (ws.done / "shot.png").write_bytes(images.png())
    with Journal(settings.journal) as journal:
        entry = journal.start("ab" * 32, "shot.png", 10, 1234)
        journal.record_upload(entry.id, "imgur", "abc1234", "https://i.imgur.com/abc1234.png", "dh")
        journal.set_link_file(entry.id, ws.outbox / "shot.webloc")
        journal.set_archived_to(entry.id, ws.done / "shot.png")
    with running(ws):
        pass
    with Journal(settings.journal) as journal:
        assert journal.history()[0].state == "done"


def test_a_file_removed_during_its_upload_has_the_upload_deleted(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    fake_imgur.latency = 0.5
    with running(ws) as pipeline:
        ws.drop("oops.png", images.png())
        wait_until(lambda: len(fake_imgur.requests) == 1, message="the upload in flight")
        (ws.inbox / "oops.png").unlink()
        wait_until(
            lambda: any(r.method == "DELETE" for r in fake_imgur.requests), message="the delete"
        )
        wait_until(pipeline.settled, message="the worker to finish")
    assert ws.names(ws.outbox) == []
    assert ws.names(ws.done) == []
    with Journal(ws.journal) as journal:
        assert journal.history()[0].state == "deleted"


def test_stale_temp_files_are_swept_at_start(workspace: Workspace) -> None:
    ws = workspace
    ws.outbox.mkdir(parents=True)
    fresh = ws.outbox / ".imgdrop-4567ef01.tmp"
    fresh.write_bytes(b"another process may be writing this")
    with running(ws):
        pass
    assert fresh.exists()  # younger than a minute: left alone
    filing.remove_stale_temps(ws.outbox, older_than=0.0)
    assert not fresh.exists()
    assert ws.names(ws.outbox) == []


def test_a_file_removed_after_its_link_is_out_keeps_its_upload(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """Uploaded and linked, archiving retried (done/ unusable), then the user removes it:
    the link is out, so the upload stays (the mid-retry race itself is not reproduced here)."""
    ws = workspace
    with running(ws) as pipeline:
        ws.done.rmdir()
        ws.done.write_text("a file where done/ should be")
        ws.drop("kept.png", images.png())
        wait_until(lambda: ws.names(ws.outbox) == ["kept.webloc"], message="the link file")
        (ws.inbox / "kept.png").unlink()
        ws.done.unlink()
        wait_until(pipeline.settled, message="the retry to find the file gone")
    assert [r.method for r in fake_imgur.requests] == ["POST"]


def _upload_started(fake: FakeImgur) -> bool:
    return any(r.path.endswith("/3/image") for r in fake.requests)


def test_renaming_a_file_during_its_upload_keeps_the_upload(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """Defect: a rename mid-upload deleted the upload and sent the bytes again."""
    ws = workspace
    fake_imgur.latency = 0.8
    with running(ws):
        ws.drop("Screenshot.png", images.png())
        wait_until(lambda: _upload_started(fake_imgur), message="the upload under way")
        (ws.inbox / "Screenshot.png").rename(ws.inbox / "holiday.png")
        wait_until(lambda: done_count(ws, 1), message="the renamed file in done/")
        wait_until(lambda: ws.names(ws.outbox) == ["holiday.webloc"], message="its link file")
    assert len(fake_imgur.uploads) == 1
    assert not any(r.method == "DELETE" for r in fake_imgur.requests)
    assert ws.names(ws.done) == ["holiday.png"]


def test_a_file_replaced_while_rejected_is_not_failed_with_the_old_reason(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """Defect: the new file at the name went to failed/ with the old bytes' 400 reason."""
    ws = workspace
    fake_imgur.latency = 0.8
    fake_imgur.fail_next(1, 400, message="Bad image")
    fresh = images.png()
    with running(ws):
        ws.drop("shot.png", images.png())
        wait_until(lambda: _upload_started(fake_imgur), message="the doomed upload")
        tmp = ws.root / "new.png"
        tmp.write_bytes(fresh)
        tmp.replace(ws.inbox / "shot.png")  # a new file takes the name during the upload
        wait_until(lambda: done_count(ws, 1), timeout=15, message="the new file uploaded")
    assert ws.names(ws.failed) == []
    assert (ws.done / "shot.png").read_bytes() == fresh


def test_a_journal_write_that_fails_after_the_upload_never_uploads_twice(
    workspace: Workspace, fake_imgur: FakeImgur, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect: a failed record_upload retried the file: a second, undeletable upload."""
    ws = workspace
    settings = ws.settings()
    config.ensure_folders(settings)
    fake_imgur.latency = 0.6
    with Journal(settings.journal, busy_timeout=0.2) as journal:
        pipeline = Pipeline(settings, journal)
        pipeline.start()
        watcher = Watcher(settings.inbox, settings.settle_seconds, False, pipeline.submit)
        watcher.start()
        blocker = sqlite3.connect(settings.journal, isolation_level=None)
        try:
            ws.drop("shot.png", images.png())
            wait_until(lambda: _upload_started(fake_imgur), message="the upload under way")
            blocker.execute("BEGIN EXCLUSIVE")  # the journal is busy when the answer comes
            wait_until(lambda: "cannot record it" in caplog.text, message="the failed write")
            blocker.execute("COMMIT")
            wait_until(lambda: done_count(ws, 1), message="filed once the journal works")
        finally:
            blocker.close()
            watcher.stop()
            pipeline.stop(5)
    assert len(fake_imgur.uploads) == 1
    assert "its delete link: https://imgur.com/delete/" in caplog.text  # logged while unsaved
    assert ws.names(ws.outbox) == ["shot.webloc"]


def test_a_closed_gate_does_not_read_waiting_files(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """Defect: while the rate limit was used up every due file was read and hashed in full."""
    ws = workspace
    fake_imgur.rate_limited(reset_in=3)
    with running(ws):
        ws.drop("first.png", images.png())
        wait_until(lambda: len(fake_imgur.requests) == 1, message="the 429")
        waiting = [ws.drop(f"w{i}.png", images.png(200_000)) for i in range(3)]
        for path in waiting:  # atime before mtime: the next read moves it (relatime)
            os.utime(path, (1_000_000, path.stat().st_mtime))
        wait_until(lambda: len(fake_imgur.requests) == 1 and all(
            p.stat().st_atime == 1_000_000 for p in waiting), message="files seen")  # fmt: skip

        def read() -> bool:
            return any(p.stat().st_atime != 1_000_000 for p in waiting)

        deadline = time.monotonic() + 1.5  # the gate is closed for ~3 s: no read meanwhile
        wait_until(lambda: read() or time.monotonic() > deadline, message="1.5 s gated")
        assert not read(), "a gated file was read while the gate was closed"
        wait_until(lambda: done_count(ws, 4), timeout=10, message="all after the reset")
    # the probe can fail: once uploaded, the reads did move atime
    assert all((ws.done / p.name).stat().st_atime != 1_000_000 for p in waiting)


def test_a_5xx_for_one_file_counts_only_while_other_files_upload(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """The other half of the outage rule: a file the host keeps failing on still gives up."""
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, max_attempts=3, workers=1)
    poison = images.png()
    fake_imgur.fail_content(poison, 502)
    with running(ws):
        ws.drop("cursed.png", poison)
        for i in range(40):  # keep the host busy with files it takes
            if "cursed.png.error.txt" in ws.names(ws.failed):
                break
            ws.drop(f"fine{i}.png", images.png())
            wait_until(lambda: len(fake_imgur.uploads) > i, message=f"fine{i}.png")  # noqa: B023
        wait_until(lambda: len(ws.names(ws.failed)) == 2, message="cursed.png given up")
    reason = (ws.failed / "cursed.png.error.txt").read_text()
    assert "gave up after 3 attempts" in reason
    assert "502" in reason
    assert "cursed.png" not in ws.names(ws.done)


def test_a_day_old_link_that_is_gone_uploads_the_bytes_afresh(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """Same bytes reuse a live link; one the host answers 404 for (deleted on the web) is not."""
    ws = workspace
    fake_imgur.local_links = True  # the link itself can be asked (HEAD), as on the real web
    data = images.png()
    with running(ws):
        ws.drop("first.png", data)
        wait_until(lambda: done_count(ws, 1), message="the first upload")
    (first,) = fake_imgur.uploads
    a_day_passes(ws)
    with running(ws):
        ws.drop("again.png", data)
        wait_until(lambda: done_count(ws, 2), message="the live link reused after a check")
    assert len(fake_imgur.uploads) == 1
    assert any(r.method == "HEAD" for r in fake_imgur.requests)  # the link, not the API
    requests.delete(f"{fake_imgur.url}/3/image/{first.deletehash}",
                    headers={"Authorization": f"Client-ID {CLIENT_ID}"}, timeout=5)  # fmt: skip
    a_day_passes(ws)
    with running(ws):
        ws.drop("third.png", data)
        wait_until(lambda: done_count(ws, 3), message="uploaded afresh")
    assert len(fake_imgur.uploads) == 2
    assert read_link(ws.outbox / "third.webloc") == fake_imgur.uploads[1].link


def a_day_passes(ws: Workspace) -> None:
    with Journal(ws.settings().journal) as journal:
        journal._conn.execute("UPDATE upload SET uploaded_at = uploaded_at - 90000")


def test_a_name_that_is_not_utf8_is_uploaded_and_filed(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    """Defect: sqlite3 and .error.txt raised on such names; the file was retried forever."""
    ws = workspace
    raw = b"caf\xe9 shot.png"  # Latin-1, as an old camera or a SMB share writes it
    bad = b"r\xe9sum\xe9.png"
    with running(ws):
        (ws.inbox / os.fsdecode(raw)).write_bytes(images.png())
        (ws.inbox / os.fsdecode(bad)).write_bytes(b"not an image")
        wait_until(lambda: len(raw_names(ws.done)) == 1, message="the odd name in done/")
        wait_until(lambda: len(raw_names(ws.failed)) == 2, message="the odd reject in failed/")
    assert raw_names(ws.done) == [raw]
    assert raw_names(ws.failed) == [bad, bad + b".error.txt"]
    assert raw_names(ws.inbox) == []
    (link_file,) = raw_names(ws.outbox)
    assert link_file == b"caf\xe9 shot.webloc"


def raw_names(folder: Path) -> list[bytes]:
    """The names in `folder` as the file system stores them."""
    return sorted(os.listdir(os.fsencode(folder)))  # noqa: PTH208 - bytes names need os.listdir
