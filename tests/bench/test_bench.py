"""Benchmarks: readiness, drop-to-link, throughput, memory during a video upload, idle cost.

Figures only: the assertions check that the work got done, never how fast it went.
Run with `make bench`; each figure is one `BENCH <name>: <value> <unit> (<details>)` line.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from imgdrop.watcher import POLL_SECONDS, Watcher
from tests import images
from tests.conftest import CLIENT_ID, wait_until
from tests.fakeimgur import FakeImgur, Reply
from tests.test_pipeline import running
from tests.workspace import DaemonProcess, Workspace

Report = Callable[[str, str, str, str], None]

MIB = 1024 * 1024
# An ISO BMFF 'ftyp' box (major brand isom): filetype.sniff calls the rest an MP4.
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
VIDEO_MIB = 150
WATCHDOG_HOLD = 0.5  # watchdog's wait for a moved-to after a moved-from (IMGUR.md)
POLL_INTERVAL = 0.0005  # how often the end-to-end benches look for the link file


# -- figures -------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _p95(samples: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def report_latency(report: Report, name: str, samples: list[float], what: str) -> None:
    """One line: median in ms, then p95, max and the number of samples."""
    details = (
        f"median; p95 {_ms(_p95(samples))} ms; max {_ms(max(samples))} ms; n={len(samples)}; {what}"
    )
    report(name, _ms(statistics.median(samples)), "ms", details)


# -- timing helpers ------------------------------------------------------------------------


class ReadyClock:
    """An on_ready callback that records when each file name was first reported."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._times: dict[str, float] = {}

    def __call__(self, path: Path) -> None:
        now = time.monotonic()
        with self._cond:
            self._times.setdefault(path.name, now)
            self._cond.notify_all()

    def wait(self, name: str, timeout: float = 10.0) -> float:
        """Return the monotonic time `name` was reported; fail after `timeout` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: name in self._times, timeout):
                pytest.fail(f"{name} not reported within {timeout:.1f}s")
            return self._times[name]

    def count(self) -> int:
        with self._cond:
            return len(self._times)


@contextmanager
def watching(inbox: Path, settle: float, polling: bool) -> Iterator[ReadyClock]:
    """A Watcher alone on `inbox`, reporting to a ReadyClock."""
    clock = ReadyClock()
    watcher = Watcher(inbox, settle, polling, clock)
    watcher.start()
    try:
        yield clock
    finally:
        watcher.stop()


def write_and_close(path: Path, data: bytes) -> float:
    """Write `path`, then close it; return the monotonic time just before the close."""
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        closing = time.monotonic()
        f.close()
    return closing


def rename(src: Path, dest: Path) -> float:
    """Rename; return the monotonic time just before the call."""
    before = time.monotonic()
    src.rename(dest)
    return before


def poll_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = POLL_INTERVAL
) -> float:
    """Check `predicate` every `interval` s; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic()


def absent(path: Path) -> Callable[[], bool]:
    """Return a predicate: `path` no longer exists."""
    return lambda: not path.exists()


def count_files(folder: Path) -> int:
    """Return how many entries `folder` has (cheaper than listing them as Paths)."""
    with os.scandir(folder) as entries:
        return sum(1 for _ in entries)


def pause(seconds: float) -> None:
    """Let time pass on purpose (a measurement window, or outlasting a known hold)."""
    done = threading.Event()
    done.wait(seconds)


# -- 1. readiness ----------------------------------------------------------------------------


def test_readiness_latency_inotify(tmp_path: Path, report: Report) -> None:
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    data = images.png(100_000)
    close: list[float] = []
    within: list[float] = []
    old_in: list[float] = []
    fresh_in: list[float] = []
    after_rename_out: list[float] = []
    after_link_out: list[float] = []
    with watching(inbox, settle=1.0, polling=False) as clock:
        for i in range(50):
            name = f"close{i:02d}.png"
            start = write_and_close(inbox / name, data)
            close.append(clock.wait(name) - start)
        for i in range(50):
            name = f"within{i:02d}.png"
            temp = inbox / f".{name}.a1B2c3"  # rsync's hidden temp name
            temp.write_bytes(data)
            start = rename(temp, inbox / name)
            within.append(clock.wait(name) - start)
        for i in range(50):
            name = f"old{i:02d}.png"
            (outside / name).write_bytes(data)
            long_ago = time.time() - 60
            os.utime(outside / name, (long_ago, long_ago))  # saved a while ago, moved in now
            start = rename(outside / name, inbox / name)
            old_in.append(clock.wait(name) - start)
        for i in range(5):
            name = f"fresh{i:02d}.png"
            (outside / name).write_bytes(data)  # just written elsewhere: must settle
            start = rename(outside / name, inbox / name)
            fresh_in.append(clock.wait(name) - start)
        for i in range(5):
            # control: a rename out of the inbox holds every later event (watchdog's grouper)
            leaving = inbox / f".leaving{i}"
            leaving.write_bytes(b"x")
            leaving.rename(outside / leaving.name)
            name = f"after_mv{i}.png"
            start = write_and_close(inbox / name, data)
            after_rename_out.append(clock.wait(name) - start)
        for i in range(20):
            # what filing does instead: hard link out, then unlink
            leaving = inbox / f".linked{i}"
            leaving.write_bytes(b"x")
            os.link(leaving, outside / leaving.name)
            leaving.unlink()
            name = f"after_ln{i:02d}.png"
            start = write_and_close(inbox / name, data)
            after_link_out.append(clock.wait(name) - start)
        assert clock.count() == 180

    what = "Watcher alone, inotify, settle 1.0 s, 100 KB PNG"
    report_latency(report, "ready_close_inotify", close, f"write+close -> on_ready; {what}")
    report_latency(
        report, "ready_rename_within_inotify", within, f"rename of a hidden temp; {what}"
    )
    report_latency(
        report,
        "ready_rename_in_old_mtime_inotify",
        old_in,
        f"rename in from another folder, mtime 60 s old; {what}",
    )
    report_latency(
        report,
        "ready_rename_in_fresh_mtime_inotify",
        fresh_in,
        f"rename in from another folder right after writing it: waits settle_seconds; {what}",
    )
    report_latency(
        report,
        "ready_close_after_rename_out_inotify",
        after_rename_out,
        f"control: close right after a rename out of the inbox (watchdog's 0.5 s hold); {what}",
    )
    report_latency(
        report,
        "ready_close_after_link_unlink_out_inotify",
        after_link_out,
        f"close right after link+unlink out of the inbox, as filing archives; {what}",
    )


def test_readiness_latency_polling(tmp_path: Path, report: Report) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = images.png(100_000)
    close: list[float] = []
    within: list[float] = []
    rng = random.Random(5)
    with watching(inbox, settle=0.3, polling=True) as clock:
        for i in range(20):
            pause(rng.uniform(0, POLL_SECONDS))  # or every sample lands at the same poll phase
            name = f"close{i:02d}.png"
            start = write_and_close(inbox / name, data)
            close.append(clock.wait(name) - start)
        for i in range(10):
            name = f"within{i:02d}.png"
            temp = inbox / f".{name}.a1B2c3"
            temp.write_bytes(data)
            # a snapshot must see the temp name, or the rename looks like a create
            pause(POLL_SECONDS + 0.1 + rng.uniform(0, POLL_SECONDS))
            start = rename(temp, inbox / name)
            within.append(clock.wait(name) - start)
        assert clock.count() == 30

    what = f"Watcher alone, polling observer every {POLL_SECONDS} s, settle 0.3 s, 100 KB PNG"
    report_latency(report, "ready_close_polling", close, f"write+close -> on_ready; {what}")
    report_latency(
        report, "ready_rename_within_polling", within, f"rename of a hidden temp; {what}"
    )


# -- 2. drop to link ------------------------------------------------------------------------


def time_answers(fake: FakeImgur, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Return a list that fills with how long FakeImgur takes to answer each upload."""
    durations: list[float] = []
    answer = fake.answer_upload

    def timed(*args: Any) -> Reply:
        began = time.perf_counter()
        try:
            return answer(*args)
        finally:
            durations.append(time.perf_counter() - began)

    monkeypatch.setattr(fake, "answer_upload", timed)
    return durations


def test_drop_to_link_latency(
    workspace: Workspace, fake_imgur: FakeImgur, report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    server_times = time_answers(fake_imgur, monkeypatch)
    spaced, back_to_back = 30, 15
    payloads = [images.png(1_000_000) for _ in range(spaced + back_to_back)]
    to_link: list[float] = []
    to_link_after_archive: list[float] = []
    to_done: list[float] = []
    with running(ws):
        for i, data in enumerate(payloads):
            if 0 < i < spaced:
                pause(WATCHDOG_HOLD + 0.1)  # so that a hold after the last archive would be over
            name = f"drop{i:02d}"
            original, link = ws.inbox / f"{name}.png", ws.outbox / f"{name}.webloc"
            start = write_and_close(original, data)
            linked = poll_until(link.exists, 10, f"{link.name}")
            archived = poll_until(absent(original), 10, f"{name}.png archived")
            (to_link if i < spaced else to_link_after_archive).append(linked - start)
            to_done.append(archived - start)

    total = spaced + back_to_back
    assert len(ws.names(ws.done)) == total
    assert len(ws.names(ws.outbox)) == total
    assert ws.names(ws.failed) == []
    assert len(fake_imgur.uploads) == total
    how = (
        "1 MB PNG, close -> .webloc exists; in-process Watcher+Pipeline, FakeImgur on loopback; "
        f"outbox polled every {POLL_INTERVAL * 1000:g} ms"
    )
    server = (
        f"of which FakeImgur's answer (parsing the body) {_ms(statistics.median(server_times))} ms"
    )
    report_latency(report, "drop_to_link", to_link, f"{how}; 0.6 s idle before each drop; {server}")
    report_latency(
        report,
        "drop_to_link_after_archive",
        to_link_after_archive,
        f"{how}; each dropped the moment the previous original left the inbox",
    )
    report_latency(report, "drop_to_archived", to_done, f"close -> original gone from inbox; {how}")


# -- 3. throughput --------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("where", ["in_process", "daemon"])
def test_throughput(
    workspace: Workspace,
    fake_imgur: FakeImgur,
    daemons: list[DaemonProcess],
    report: Report,
    where: str,
    workers: int,
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, workers=workers, log_level="INFO")
    count = 200
    payloads = [images.png(50_000) for _ in range(count)]
    cpu = ""
    with ExitStack() as stack:
        daemon = start_daemon(ws, daemons) if where == "daemon" else None
        if daemon is None:
            stack.enter_context(running(ws))
        else:
            cpu_before = _cpu_seconds(daemon.proc.pid)
        start = time.monotonic()
        for i, data in enumerate(payloads):
            ws.drop(f"many{i:03d}.png", data)
        written = time.monotonic()
        finished = poll_until(lambda: count_files(ws.done) >= count, 50, "all in done/", 0.005)
        if daemon is not None:
            used = _cpu_seconds(daemon.proc.pid) - cpu_before
            cpu = f"; daemon CPU {used * 1000 / count:.1f} ms per file (user+sys)"

    assert len(ws.names(ws.done)) == count
    assert ws.names(ws.inbox) == []
    assert ws.names(ws.failed) == []
    assert len(fake_imgur.uploads) == count
    elapsed = finished - start
    how = (
        "Watcher+Pipeline in the test process, sharing its GIL with FakeImgur"
        if where == "in_process"
        else "the real `imgdrop run` process; FakeImgur in the test process"
    )
    name = "throughput" if where == "in_process" else "throughput_daemon"
    report(
        f"{name}_workers_{workers}",
        f"{count / elapsed:.0f}",
        "files/s",
        f"{count} x 50 KB PNG written at once (writing took {_ms(written - start)} ms), "
        f"all in done/ {elapsed:.2f} s after the first write; workers={workers}; {how}; "
        f"loopback{cpu}",
    )


# -- 4 and 5: the real daemon process ---------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """Return the kB fields (VmHWM, VmRSS, ...) of /proc/<pid>/status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0])
    return fields


def _mib(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time of `pid`, from /proc/<pid>/stat."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime = int(after_name[11]), int(after_name[12])  # fields 14 and 15
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _context_switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary context switches per thread of `pid`."""
    counts: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        counts[int(task.name)] = sum(
            int(line.split()[1]) for line in text.splitlines() if "ctxt_switches" in line
        )
    return counts


def start_daemon(ws: Workspace, daemons: list[DaemonProcess]) -> DaemonProcess:
    """Start `imgdrop run` on `ws` and return once it watches the inbox."""
    daemon = DaemonProcess(ws)
    daemons.append(daemon)
    wait_until(daemon.started, timeout=20, message=f"'watching' in {daemon.log_path}")
    return daemon


def stay_up(daemon: DaemonProcess, seconds: float) -> None:
    """Let `seconds` pass, failing at once if the daemon exits meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        assert daemon.proc.poll() is None, f"the daemon exited; log:\n{daemon.log}"
        pause(min(0.5, left))


def test_memory_while_uploading_a_video(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess], report: Report
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, videos=True, log_level="INFO")
    daemon = start_daemon(ws, daemons)
    pid = daemon.proc.pid
    stay_up(daemon, 1.0)
    idle = _proc_status(pid)

    # the first upload imports and sets up the rest of the HTTP stack: measure apart
    ws.drop("warmup.png", images.png(1_000_000))
    wait_until((ws.done / "warmup.png").exists, 20, "warmup.png in done/")
    warm = _proc_status(pid)

    size = len(MP4_HEAD) + VIDEO_MIB * MIB
    with (ws.inbox / "clip.mp4").open("xb") as f:
        f.write(MP4_HEAD)
        for _ in range(VIDEO_MIB):
            f.write(os.urandom(MIB))
        f.flush()
        start = time.monotonic()
    wait_until((ws.done / "clip.mp4").exists, 45, "clip.mp4 in done/")
    elapsed = time.monotonic() - start
    after = _proc_status(pid)

    videos = [u for u in fake_imgur.uploads if u.field == "video"]
    assert [len(u.content) for u in videos] == [size]
    assert ws.names(ws.failed) == []
    grew = after["VmHWM"] - warm["VmHWM"]
    report(
        "daemon_peak_rss_idle",
        _mib(idle["VmHWM"]),
        "MiB",
        f"VmHWM of `imgdrop run` 1 s after start, nothing uploaded; "
        f"VmRSS {_mib(idle['VmRSS'])} MiB",
    )
    report(
        "daemon_peak_rss_after_1mb_upload",
        _mib(warm["VmHWM"]),
        "MiB",
        f"VmHWM after one 1 MB PNG; VmRSS {_mib(warm['VmRSS'])} MiB",
    )
    report(
        "daemon_peak_rss_video_upload",
        _mib(after["VmHWM"]),
        "MiB",
        f"VmHWM after uploading a {VIDEO_MIB} MiB MP4: +{_mib(grew)} MiB over the previous "
        f"peak, so the body is {'streamed' if grew < VIDEO_MIB * 1024 / 4 else 'BUFFERED'}; "
        f"close -> done/ {elapsed:.1f} s, most of it FakeImgur parsing the body in memory; "
        f"VmRSS {_mib(after['VmRSS'])} MiB",
    )


def test_idle_cost(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess], report: Report
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, log_level="INFO")
    daemon = start_daemon(ws, daemons)
    pid = daemon.proc.pid
    stay_up(daemon, 1.0)  # let start-up finish
    window = 10.0
    cpu_before, switches_before = _cpu_seconds(pid), _context_switches(pid)
    began = time.monotonic()
    stay_up(daemon, window)
    measured = time.monotonic() - began
    cpu_after, switches_after = _cpu_seconds(pid), _context_switches(pid)

    cpu = cpu_after - cpu_before
    per_thread = {
        tid: switches_after[tid] - switches_before[tid]
        for tid in switches_after
        if tid in switches_before
    }
    others = sorted((n for tid, n in per_thread.items() if tid != pid), reverse=True)
    assert fake_imgur.requests == []
    tick = 1 / os.sysconf("SC_CLK_TCK")
    report(
        "idle_cpu",
        f"{cpu * 1000:.0f}" if cpu > 0 else f"<{tick * 1000:.0f}",
        f"ms CPU per {window:.0f} s",
        f"user+sys of an idle `imgdrop run` over {measured:.2f} s, from /proc/<pid>/stat "
        f"(clock tick {tick * 1000:.0f} ms); "
        f"{100 * cpu / measured:.2f} % of one core",
    )
    report(
        "idle_wakeups",
        f"{sum(per_thread.values())}",
        f"per {window:.0f} s",
        f"context switches summed over {len(per_thread)} threads; main thread "
        f"{per_thread.get(pid, 0)}, others {others}",
    )
