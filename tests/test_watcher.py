"""The watcher with real observers on real folders: what gets reported, when, and only once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from imgdrop import watcher as watcher_module
from imgdrop import writers
from imgdrop.watcher import Watcher, is_ignored, on_disk_path, open_for_writing
from tests.conftest import wait_until

PAYLOAD = os.urandom(2 * 1024 * 1024)  # 2 MB: big enough that a partial read would show
SCREENSHOT = "Screenshot 2026-05-12 at 4.42.48\u202fPM.png"
linux_leases = pytest.mark.skipif(
    sys.platform != "linux", reason="only Linux leases can see a writer that pauses"
)


class Recorder:
    """An on_ready callback recording (path, bytes read at that moment, monotonic time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[Path, bytes, float]] = []

    def __call__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            data = f"<unreadable: {exc}>".encode()
        with self._lock:
            self.calls.append((path, data, time.monotonic()))

    def snapshot(self) -> list[tuple[Path, bytes, float]]:
        """Return a copy of the calls so far."""
        with self._lock:
            return list(self.calls)

    def names(self) -> list[str]:
        """Return the reported file names in order."""
        return [p.name for p, _, _ in self.snapshot()]

    def calls_for(self, name: str) -> list[tuple[Path, bytes, float]]:
        """Return the calls for one file name."""
        return [c for c in self.snapshot() if c[0].name == name]

    def has(self, name: str) -> bool:
        """Return True once `name` has been reported."""
        return name in self.names()


Start = Callable[..., tuple[Watcher, Recorder]]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """The watched folder."""
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def start(inbox: Path) -> Iterator[Start]:
    """Start a Watcher on `inbox` with a Recorder; every watcher is stopped afterwards."""
    watchers: list[Watcher] = []

    def _start(
        polling: bool = False, settle: float = 2.0, rescan: float = 60.0, folder: Path = inbox
    ) -> tuple[Watcher, Recorder]:
        recorder = Recorder()
        watcher = Watcher(folder, settle, polling, recorder, rescan_seconds=rescan)
        watchers.append(watcher)
        watcher.start()
        return watcher, recorder

    yield _start
    for watcher in watchers:
        watcher.stop()


@pytest.fixture(params=[False, True], ids=["native", "polling"])
def polling(request: pytest.FixtureRequest) -> bool:
    """Run a test under the native observer (inotify here) and the polling observer."""
    return bool(request.param)


def settle_for(polling: bool) -> float:
    """A settle time long enough to tell fast paths apart natively, short when polling."""
    return 0.3 if polling else 2.0


def write_file(path: Path, data: bytes) -> float:
    """Write and close `path`; return the monotonic time of the close."""
    with path.open("wb") as f:
        f.write(data)
    return time.monotonic()


def barrier(inbox: Path, watcher: Watcher, recorder: Recorder, timeout: float = 10.0) -> None:
    """Wait until every earlier event has been processed and nothing is pending.

    A fresh file is reported only after the events before it were read; once it is and no
    candidate remains, no further on_ready call can come without a new event.
    """
    name = f"zz-barrier-{time.monotonic_ns()}.png"
    write_file(inbox / name, b"barrier")
    wait_until(lambda: recorder.has(name), timeout, f"barrier file {name}")
    wait_until(lambda: watcher.pending() == 0, timeout, "nothing pending")


def assert_reported_once(recorder: Recorder, name: str, data: bytes) -> float:
    """Assert `name` was reported exactly once with `data`; return when."""
    calls = recorder.calls_for(name)
    assert len(calls) == 1, f"{name} reported {len(calls)} times"
    assert calls[0][1] == data, f"{name} reported with {len(calls[0][1])} of {len(data)} bytes"
    return calls[0][2]


def paced_writer(
    path: Path, data: bytes, seconds: float, chunks: int, close_empty_first: bool = False
) -> threading.Thread:
    """Start a thread writing `data` to `path` in `chunks` pieces spread over `seconds`."""

    def run() -> None:
        if close_empty_first:  # ImageMagick: create the final name empty, close, reopen at once
            path.open("wb").close()
            time.sleep(0.001)
        step = len(data) // chunks + 1
        with path.open("wb") as f:
            for i in range(0, len(data), step):
                f.write(data[i : i + step])
                f.flush()
                time.sleep(seconds / chunks)  # the simulated program's own pace

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def pausing_writer(path: Path, parts: list[bytes], pause: float) -> threading.Thread:
    """Start a thread that opens `path`, writes `parts` with `pause` between them, then closes."""

    def run() -> None:
        with path.open("wb") as f:
            for i, part in enumerate(parts):
                if i:
                    time.sleep(pause)  # the simulated program stalls with the file open
                f.write(part)
                f.flush()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.png",
        ".DS_Store",
        "a.part",
        "b.crdownload",
        "c.download",
        "d.tmp",
        "e.png~",
        "F.PART",
        "g.png.aria2",
        "g.png.aria2__temp",
        "Icon\r",
        "desktop.ini",
        "Thumbs.db",
    ],
)
def test_is_ignored_names(name: str) -> None:
    assert is_ignored(name)


@pytest.mark.parametrize(
    "name",
    ["shot.png", SCREENSHOT, "my photo.jpg", "partial.png", "tmp.png", "a.tmp.png", "~a.png"],
)
def test_is_not_ignored_names(name: str) -> None:
    assert not is_ignored(name)


def test_written_and_closed_file_is_ready_once(start: Start, inbox: Path, polling: bool) -> None:
    settle = settle_for(polling)
    watcher, recorder = start(polling, settle)
    closed = write_file(inbox / "shot.png", PAYLOAD)
    wait_until(lambda: recorder.has("shot.png"), 10, "shot.png reported")
    ready = assert_reported_once(recorder, "shot.png", PAYLOAD)
    if not polling:
        assert ready - closed < settle / 4, f"close→ready took {ready - closed:.3f}s"
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "shot.png", PAYLOAD)


def test_rename_within_inbox_reports_final_name_only(
    start: Start, inbox: Path, polling: bool
) -> None:
    watcher, recorder = start(polling, settle_for(polling))
    temp = inbox / ".shot.png.Xa91bQ"  # rsync / screencapture style hidden temp
    write_file(temp, PAYLOAD)
    temp.rename(inbox / "shot.png")
    renamed = time.monotonic()
    wait_until(lambda: recorder.has("shot.png"), 10, "shot.png reported")
    ready = assert_reported_once(recorder, "shot.png", PAYLOAD)
    if not polling:
        assert ready - renamed < 0.5, f"rename→ready took {ready - renamed:.3f}s"
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "shot.png", PAYLOAD)
    assert not any(n.startswith(".") for n in recorder.names())


@pytest.mark.parametrize("old", [False, True], ids=["fresh", "old-mtime"])
def test_rename_in_from_another_folder(
    start: Start, inbox: Path, tmp_path: Path, polling: bool, old: bool
) -> None:
    settle = 0.3 if polling else 1.0
    watcher, recorder = start(polling, settle)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_file(elsewhere / "moved.png", PAYLOAD)
    if old:  # saved a while ago, moved in now: needs no full settle period
        os.utime(elsewhere / "moved.png", (time.time() - 60, time.time() - 60))
    (elsewhere / "moved.png").rename(inbox / "moved.png")
    moved = time.monotonic()
    wait_until(lambda: recorder.has("moved.png"), 10, "moved.png reported")
    ready = assert_reported_once(recorder, "moved.png", PAYLOAD)
    if old and not polling:
        assert ready - moved < settle / 4, f"old file took {ready - moved:.3f}s"
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "moved.png", PAYLOAD)


def test_imagemagick_close_empty_then_rewrite(start: Start, inbox: Path, polling: bool) -> None:
    watcher, recorder = start(polling, settle_for(polling))
    writer = paced_writer(inbox / "convert.png", PAYLOAD, 0.15, 30, close_empty_first=True)
    wait_until(lambda: recorder.has("convert.png"), 10, "convert.png reported")
    writer.join()
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "convert.png", PAYLOAD)


def test_slow_writer_with_file_open(start: Start, inbox: Path, polling: bool) -> None:
    watcher, recorder = start(polling, 0.5)
    writer = paced_writer(inbox / "download.png", PAYLOAD, 1.5, 30)  # curl -o at 1.4 MB/s
    wait_until(lambda: recorder.has("download.png"), 10, "download.png reported")
    writer.join()
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "download.png", PAYLOAD)


def test_startup_scan_reports_existing_files(start: Start, inbox: Path, polling: bool) -> None:
    settle = 1.0 if not polling else 0.5
    write_file(inbox / "fresh.png", b"fresh")
    write_file(inbox / "old.png", b"old")
    os.utime(inbox / "old.png", (time.time() - 60, time.time() - 60))
    write_file(inbox / "empty.png", b"")
    began = time.monotonic()
    watcher, recorder = start(polling, settle)
    assert watcher.pending() >= 3
    wait_until(lambda: len(recorder.names()) == 3, 10, "the three files reported")
    wait_until(lambda: watcher.pending() == 0, 5, "nothing pending")
    assert recorder.calls_for("old.png")[0][2] - began < settle / 2
    assert recorder.calls_for("empty.png")[0][2] - began >= settle
    assert_reported_once(recorder, "fresh.png", b"fresh")
    assert_reported_once(recorder, "empty.png", b"")


@pytest.mark.parametrize("suffix", [".part", ".aria2"])
def test_empty_placeholder_waits_for_its_download(
    start: Start, inbox: Path, polling: bool, suffix: str
) -> None:
    watcher, recorder = start(polling, 0.3)
    write_file(inbox / "photo.png", b"")  # Firefox: empty final name + photo.png.part
    write_file(inbox / f"photo.png{suffix}", PAYLOAD[:1000])
    # Created later, so due no earlier than the placeholder: once it is out, the
    # placeholder has been checked at least once after its settle period.
    write_file(inbox / "control.png", b"")
    wait_until(lambda: recorder.has("control.png"), 10, "empty control.png reported")
    assert not recorder.has("photo.png")
    if suffix == ".part":
        (inbox / "photo.png.part").write_bytes(PAYLOAD)
        (inbox / "photo.png.part").rename(inbox / "photo.png")
    else:  # aria2 writes the final name in place, then removes its control file
        write_file(inbox / "photo.png", PAYLOAD)
        (inbox / "photo.png.aria2").unlink()
    wait_until(lambda: recorder.has("photo.png"), 10, "photo.png reported")
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "photo.png", PAYLOAD)


def test_ignored_entries_are_never_reported(
    start: Start, inbox: Path, tmp_path: Path, polling: bool
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"never upload me")
    (inbox / "at-start-link.png").symlink_to(secret)
    write_file(inbox / ".at-start-hidden.png", b"x")
    watcher, recorder = start(polling, settle_for(polling))
    for name in [".hidden.png", "a.part", "b.crdownload", "c.download", "d.tmp", "e.png~"]:
        write_file(inbox / name, b"x")
    (inbox / "folder.png").mkdir()
    write_file(inbox / "folder.png" / "inside.png", b"x")  # not recursive
    (inbox / "link.png").symlink_to(secret)
    write_file(inbox / "control.png", b"control")
    wait_until(lambda: recorder.has("control.png"), 10, "control.png reported")
    barrier(inbox, watcher, recorder)
    names = recorder.names()
    assert [n for n in names if not n.startswith("zz-barrier")] == ["control.png"]
    assert all(data != b"never upload me" for _, data, _ in recorder.snapshot())


def test_unicode_and_space_names(start: Start, inbox: Path, polling: bool) -> None:
    watcher, recorder = start(polling, settle_for(polling))
    names = [SCREENSHOT, "my holiday photo é.png", "写真 1.jpg"]
    for name in names:
        write_file(inbox / name, name.encode())
    wait_until(lambda: all(recorder.has(n) for n in names), 10, "unicode names reported")
    barrier(inbox, watcher, recorder)
    for name in names:
        calls = recorder.calls_for(name)
        assert calls[0][0] == inbox / name
        assert_reported_once(recorder, name, name.encode())


def test_stop_is_fast_and_idempotent(start: Start, inbox: Path, polling: bool) -> None:
    watcher, _ = start(polling, 30.0)
    watcher.start()  # second start is a no-op
    write_file(inbox / "unfinished.png", b"waiting to settle")
    wait_until(lambda: watcher.pending() == 1, 5, "a candidate waiting")
    began = time.monotonic()
    watcher.stop()
    assert time.monotonic() - began < 1.0
    watcher.stop()  # second stop is a no-op


def test_restart_after_stop(start: Start, inbox: Path) -> None:
    watcher, recorder = start(False, 2.0)
    watcher.stop()
    watcher.start()
    write_file(inbox / "again.png", b"again")
    wait_until(lambda: recorder.has("again.png"), 10, "again.png reported after restart")


def test_on_ready_errors_do_not_stop_the_watcher(inbox: Path) -> None:
    seen: list[str] = []

    def on_ready(path: Path) -> None:
        seen.append(path.name)
        if path.name == "boom.png":
            raise RuntimeError("pipeline bug")

    watcher = Watcher(inbox, 2.0, False, on_ready)
    watcher.start()
    try:
        write_file(inbox / "boom.png", b"1")
        wait_until(lambda: "boom.png" in seen, 10, "boom.png reported")
        write_file(inbox / "after.png", b"2")
        wait_until(lambda: "after.png" in seen, 10, "after.png reported after a failing call")
    finally:
        watcher.stop()


def test_missing_inbox_is_created(tmp_path: Path) -> None:
    inbox = tmp_path / "not" / "yet" / "there"
    recorder = Recorder()
    watcher = Watcher(inbox, 0.3, False, recorder)
    watcher.start()
    try:
        assert inbox.is_dir()
        write_file(inbox / "shot.png", b"v1")
        wait_until(lambda: recorder.has("shot.png"), 10, "shot.png reported")
    finally:
        watcher.stop()


@linux_leases
@pytest.mark.parametrize(
    "first", [PAYLOAD[: len(PAYLOAD) // 2], b""], ids=["stalled-mid-body", "empty-until-first-byte"]
)
def test_writer_pausing_with_file_open_waits(
    start: Start, inbox: Path, polling: bool, first: bytes
) -> None:
    # curl -o from a server stalling mid-body; wget holding an empty file open for the first byte
    settle = 0.4
    watcher, recorder = start(polling, settle)
    writer = pausing_writer(inbox / "slow.png", [first, PAYLOAD[len(first) :]], 2.5 * settle)
    wait_until(lambda: recorder.has("slow.png"), 10, "slow.png reported")
    writer.join()
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "slow.png", PAYLOAD)


def test_abandoned_download_is_not_pending(start: Start, inbox: Path, polling: bool) -> None:
    write_file(inbox / "dl.png", b"")  # Firefox gave up: empty final name + dl.png.part
    write_file(inbox / "dl.png.part", PAYLOAD[:1000])
    watcher, recorder = start(polling, 0.3)
    wait_until(lambda: watcher.pending() == 0, 10, "nothing pending but the placeholder")
    barrier(inbox, watcher, recorder)
    assert not recorder.has("dl.png")
    (inbox / "dl.png.part").unlink()  # the user clears the dead download
    wait_until(lambda: recorder.has("dl.png"), 10, "placeholder reported once alone")
    assert_reported_once(recorder, "dl.png", b"")


@linux_leases
def test_open_for_writing_probe(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    with path.open("wb"):
        assert open_for_writing(path) is True
    assert open_for_writing(path) is False
    with path.open("rb"):
        assert open_for_writing(path) is False  # readers do not count
    (tmp_path / "link.png").symlink_to(path)
    assert open_for_writing(tmp_path / "link.png") is None  # never followed
    assert open_for_writing(tmp_path / "missing.png") is None


LEASE_BREAK = """
import fcntl, sys, threading, time
from pathlib import Path
from imgdrop import watcher

path = Path(sys.argv[1])
real = fcntl.fcntl
writers = []

def writer_races_in(fd, cmd, arg=0):
    result = real(fd, cmd, arg)
    if cmd == fcntl.F_SETLEASE and arg == fcntl.F_RDLCK:
        # A writer opens while the probe holds its lease: the kernel signals the holder.
        writers.append(threading.Thread(target=lambda: path.open("ab").close()))
        writers[0].start()
        deadline = time.monotonic() + 10
        while real(fd, fcntl.F_GETLEASE) != fcntl.F_UNLCK and time.monotonic() < deadline:
            time.sleep(0.001)
    return result

fcntl.fcntl = writer_races_in
print(watcher.open_for_writing(path))
writers[0].join()
print("alive")
"""


@linux_leases
def test_lease_break_does_not_kill_the_process(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(b"done")
    result = subprocess.run(
        [sys.executable, "-c", LEASE_BREAK, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout.split()) == (0, ["False", "alive"]), result.stderr


# --- lost events: periodic rescan and rescan on overflow (defect 3) ---------------------------


def test_periodic_rescan_finds_files_the_events_missed(
    start: Start, inbox: Path, polling: bool
) -> None:
    watcher, recorder = start(polling, 0.2, rescan=0.3)
    write_file(inbox / "seen.png", b"seen")
    wait_until(lambda: recorder.has("seen.png"), 10, "seen.png reported")
    # Lose every later event, as an overflowed queue or an FSEvents drop would.
    observer = watcher._observer
    assert observer is not None
    observer.unschedule_all()
    write_file(inbox / "missed.png", b"missed")
    wait_until(lambda: recorder.has("missed.png"), 10, "missed.png found by the rescan")
    # Several more rescans pass: neither file is handed over again while it stays unchanged.
    rescans_done = time.monotonic() + 0.7
    wait_until(lambda: time.monotonic() > rescans_done, 5, "three rescans")
    assert_reported_once(recorder, "seen.png", b"seen")
    assert_reported_once(recorder, "missed.png", b"missed")
    write_file(inbox / "missed.png", b"changed")  # a change after hand-over counts again
    wait_until(lambda: len(recorder.calls_for("missed.png")) == 2, 10, "changed file again")


@pytest.fixture
def tiny_inotify_queue() -> Iterator[None]:
    """Shrink the kernel's per-instance inotify queue for watchers started inside."""
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    try:
        old = knob.read_text()
        knob.write_text("16\n")
    except OSError as exc:
        pytest.skip(f"cannot shrink the inotify queue ({exc.strerror}); needs root on Linux")
    try:
        yield
    finally:
        knob.write_text(old)


def test_overflow_rescans_at_once_and_every_file_is_noticed(
    inbox: Path, tiny_inotify_queue: None, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    # A rescan period far beyond the test: only the overflow can trigger the rescan.
    watcher = Watcher(inbox, 0.2, False, recorder, rescan_seconds=3600)
    watcher.start()
    Path("/proc/sys/fs/inotify/max_queued_events").write_text("16384\n")  # only ours is tiny
    try:
        names = [f"flood-{i:04d}.png" for i in range(400)]
        for name in names:
            write_file(inbox / name, name.encode())
        wait_until(lambda: set(names) <= set(recorder.names()), 20, "every flooded file reported")
        assert any("overflow" in r.getMessage().lower() for r in caplog.records)
        barrier(inbox, watcher, recorder)
        for name in names:
            assert_reported_once(recorder, name, name.encode())
    finally:
        watcher.stop()


# --- settle runs on our clock, not the file's mtime (defect 9) ------------------------------


def test_growing_file_with_an_old_mtime_is_not_handed_over(
    start: Start, inbox: Path, polling: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A NAS whose clock is behind, on a file system without leases: the probe cannot tell.
    monkeypatch.setattr(watcher_module, "open_for_writing", lambda path: None)
    settle = 0.5
    _, recorder = start(polling, settle)
    path = inbox / "nas.png"
    old = time.time() - 3600
    began = time.monotonic()
    with path.open("wb") as f:
        for i in range(4):
            f.write(PAYLOAD[i * 1000 : (i + 1) * 1000])
            f.flush()
            os.utime(path, (old, old))
            time.sleep(settle / 3)  # the writer's own pace: quicker than settle
            assert not recorder.has("nas.png"), f"handed over while growing (step {i})"
    done = time.monotonic()
    wait_until(lambda: recorder.has("nas.png"), 10, "nas.png reported once complete")
    ready = assert_reported_once(recorder, "nas.png", PAYLOAD[:4000])
    assert ready - began >= settle
    assert ready >= done - 0.05 or polling


# --- macOS readiness pieces, decided by small functions ------------------------------------


class FakeFcntl:
    """A module with only the names a platform's fcntl has."""

    def __init__(self, **names: int) -> None:
        self.__dict__.update(names)


def test_lease_constants_per_platform() -> None:
    darwin = writers.lease_constants("darwin", FakeFcntl(F_RDLCK=1, F_UNLCK=2))
    assert darwin == writers.Lease(106, 1, 2, None)
    linux = writers.lease_constants(
        "linux", FakeFcntl(F_SETLEASE=1024, F_SETSIG=10, F_RDLCK=0, F_UNLCK=2)
    )
    assert linux == writers.Lease(1024, 0, 2, 10)
    # A lease break without F_SETSIG would deliver SIGIO and kill the daemon on Linux.
    assert (
        writers.lease_constants("linux", FakeFcntl(F_SETLEASE=1024, F_RDLCK=0, F_UNLCK=2)) is None
    )
    assert writers.lease_constants("freebsd14", FakeFcntl(F_RDLCK=1, F_UNLCK=2)) is None


def test_probe_answers_unknown_where_the_lease_call_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(b"x")
    bogus = writers.Lease(setlease=0x7FFF, rdlck=1, unlck=2, setsig=None)  # EINVAL here
    assert open_for_writing(path, bogus) is None


def test_finder_copy_marks() -> None:
    busy = writers.FINDER_BUSY_BIRTHTIME
    assert busy == datetime(1946, 2, 14, 8, 34, 56, tzinfo=timezone.utc).timestamp()
    assert writers.finder_busy(busy, None)
    assert writers.finder_busy(busy + 0.5, None)
    assert writers.finder_busy(None, b"brokMACS" + bytes(24))
    assert writers.finder_busy(1_700_000_000.0, b"brokMACS" + bytes(24))
    assert not writers.finder_busy(1_700_000_000.0, b"PNGf8BIM" + bytes(24))
    assert not writers.finder_busy(None, None)
    assert not writers.finder_busy(1_700_000_000.0, bytes(32))


def test_finder_copying_never_raises(tmp_path: Path) -> None:
    assert writers.finder_copying(tmp_path / "missing.png") is False
    (tmp_path / "f.png").write_bytes(b"x")
    assert writers.finder_copying(tmp_path / "f.png") is False


# --- the inbox by identity, watched under its on-disk spelling (issue 8 item 4) ------------


def test_on_disk_path_resolves_symlinks_dots_and_the_spelling(tmp_path: Path) -> None:
    (tmp_path / "real" / "Inbox").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    given = Path(f"{tmp_path}/alias/./Inbox/")
    real = os.path.realpath(tmp_path / "real" / "Inbox")
    assert on_disk_path(given, spelling=lambda p: p) == Path(real)
    # macOS: F_GETPATH returns the volume's case and Unicode form.
    seen: list[str] = []

    def volume_spelling(path: str) -> str:
        seen.append(path)
        return path.replace("Inbox", "INBOX")

    assert on_disk_path(given, spelling=volume_spelling) == Path(real.replace("Inbox", "INBOX"))
    assert seen == [real]


def test_disk_spelling_is_the_path_itself_off_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert watcher_module.disk_spelling("/a/b") == "/a/b"


def test_disk_spelling_falls_back_when_f_getpath_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The darwin branch run here: fcntl command 50 is refused off macOS, a missing folder
    # cannot be opened; both keep the path as given instead of raising.
    monkeypatch.setattr(sys, "platform", "darwin")
    assert watcher_module.disk_spelling(str(tmp_path)) == str(tmp_path)
    assert watcher_module.disk_spelling(str(tmp_path / "missing")) == str(tmp_path / "missing")


def test_finder_info_read_through_libc_where_os_has_no_getxattr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python on macOS has no os.getxattr: the ctypes path must answer, never raise.
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delattr(os, "getxattr", raising=False)
    (tmp_path / "f.png").write_bytes(b"x")
    assert writers.finder_copying(tmp_path / "f.png") is False
    assert writers._finder_info(tmp_path / "f.png") is None


def test_inbox_through_a_symlinked_parent_gets_live_events(
    start: Start, tmp_path: Path, polling: bool
) -> None:
    (tmp_path / "real" / "Inbox").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    configured = Path(f"{tmp_path}/alias/./Inbox/")
    watcher, recorder = start(polling, 0.2, folder=configured)
    barrier(configured, watcher, recorder)  # nothing at start: this file is a live event
    write_file(tmp_path / "real" / "Inbox" / "live.png", b"live")
    wait_until(lambda: recorder.has("live.png"), 10, "live.png reported from an event")
    path = recorder.calls_for("live.png")[0][0]
    assert path == Path(configured) / "live.png"  # named as configured, for the pipeline


def test_events_match_the_inbox_by_identity_not_spelling(tmp_path: Path) -> None:
    inbox = tmp_path / "Inbox"
    inbox.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "same").symlink_to(inbox)
    w = Watcher(inbox, 1.0, True, lambda path: None)
    w._inbox_id = watcher_module._identity(inbox)
    w._spellings = {str(inbox): True}
    assert w._inbox_child(f"{tmp_path}/same/a.png") == inbox / "a.png"  # another spelling
    assert w._inbox_child(f"{tmp_path}/other/a.png") is None
    assert w._inbox_child(f"{inbox}/Thumbs.db") is None


def test_an_unlistable_moment_does_not_requeue_handed_files(
    start: Start, inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher, recorder = start(False, 0.2, rescan=0.2)
    write_file(inbox / "waiting.png", b"in backoff")  # stays in the inbox, as in a backoff
    wait_until(lambda: recorder.has("waiting.png"), 10, "waiting.png reported")
    real_scan = watcher._scan
    failed: list[float] = []

    def unlistable() -> list[str] | None:  # EIO from a dropped network volume, say
        failed.append(time.monotonic())
        return None

    monkeypatch.setattr(watcher, "_scan", unlistable)
    wait_until(lambda: len(failed) >= 2, 5, "two failed rescans")
    monkeypatch.setattr(watcher, "_scan", real_scan)
    listed_again = time.monotonic() + 0.5
    wait_until(lambda: time.monotonic() > listed_again, 5, "rescans that list again")
    assert_reported_once(recorder, "waiting.png", b"in backoff")


def test_a_file_finder_marks_busy_waits_until_the_mark_goes(
    start: Start, inbox: Path, polling: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Finder's marks exist only on macOS: the reader of them is stubbed, the rest is real.
    busy = {"copy.png"}
    monkeypatch.setattr(watcher_module, "finder_copying", lambda path: path.name in busy)
    monkeypatch.setattr(watcher_module, "open_for_writing", lambda path: None)  # no lease
    watcher, recorder = start(polling, 0.2)
    write_file(inbox / "copy.png", PAYLOAD)
    write_file(inbox / "other.png", b"other")
    wait_until(lambda: recorder.has("other.png"), 10, "other.png reported")
    deadline = time.monotonic() + 0.5
    wait_until(lambda: time.monotonic() > deadline, 5, "two settle periods")
    assert not recorder.has("copy.png")
    busy.clear()  # Finder finished: it resets the creation date and FinderInfo
    wait_until(lambda: recorder.has("copy.png"), 10, "copy.png reported after the copy")
    barrier(inbox, watcher, recorder)
    assert_reported_once(recorder, "copy.png", PAYLOAD)
