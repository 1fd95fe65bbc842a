"""End to end: the real `imgdrop run` process against a misbehaving fake Imgur."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from imgdrop.exitcodes import Exit
from imgdrop.links import read_link
from tests import images
from tests.conftest import CLIENT_ID, wait_until
from tests.fakeimgur import FakeImgur
from tests.workspace import DaemonProcess, Workspace


def start(ws: Workspace, daemons: list[DaemonProcess], *args: str) -> DaemonProcess:
    daemon = DaemonProcess(ws, *args)
    daemons.append(daemon)
    wait_until(daemon.started, timeout=20, message=f"daemon to start; log:\n{daemon.log}")
    return daemon


def stop(daemon: DaemonProcess) -> int:
    daemon.signal(signal.SIGTERM)
    return daemon.wait(15)


def uploads_sent(fake: FakeImgur) -> int:
    return sum(1 for r in fake.requests if r.method == "POST")


def in_done(ws: Workspace, n: int) -> bool:
    return len(ws.names(ws.done)) >= n


@pytest.mark.parametrize(
    "fault",
    ["500-twice", "reset-twice", "html-503"],
)
def test_transient_failures_are_retried_until_done(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess], fault: str
) -> None:
    ws = workspace
    if fault == "500-twice":
        fake_imgur.fail_next(2, 500)
    elif fault == "reset-twice":
        fake_imgur.reset_next(2)
    else:
        fake_imgur.fail_next(1, 503, shape="html")
    daemon = start(ws, daemons)
    data = images.png()
    ws.drop("shot.png", data)
    wait_until(lambda: in_done(ws, 1), message=f"shot.png in done/; log:\n{daemon.log}")
    assert [u.content for u in fake_imgur.uploads] == [data]
    assert ws.names(ws.failed) == []
    assert ws.names(ws.outbox) == ["shot.webloc"]
    assert stop(daemon) == Exit.OK


def test_bad_request_goes_to_failed_with_the_server_message(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    fake_imgur.fail_next(1, 400, message="File is over the size limit")
    start(ws, daemons)
    ws.drop("big.png", images.png())
    wait_until(lambda: len(ws.names(ws.failed)) == 2, message="big.png and its reason")
    reason = (ws.failed / "big.png.error.txt").read_text()
    assert "File is over the size limit" in reason
    assert "400" in reason
    assert uploads_sent(fake_imgur) == 1


def test_rate_limit_stops_all_sending_until_the_reset(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, workers=3)
    reset_at = time.time() + 2.0
    fake_imgur.rate_limited(reset_in=2.0, header="user")
    daemon = start(ws, daemons)
    for i in range(4):
        ws.drop(f"r{i}.png", images.png())
    wait_until(lambda: in_done(ws, 4), timeout=20, message=f"all in done/; log:\n{daemon.log}")
    refused = [r for r in fake_imgur.requests if r.status == 429]
    assert 1 <= len(refused) <= 3  # only what was already in flight on 3 workers
    after = [r for r in fake_imgur.requests if r.time > refused[-1].time]
    assert after, "uploads resumed"
    assert min(r.time for r in after) >= reset_at - 0.05
    assert ws.names(ws.failed) == []
    assert daemon.log.count("no uploads until") == 1


def test_server_down_only_delays(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    fake_imgur.down()
    daemon = start(ws, daemons)
    for i in range(3):
        ws.drop(f"d{i}.png", images.png())
    wait_until(lambda: daemon.log.count("could not be reached") >= 3, message="retries")
    assert ws.names(ws.inbox) == ["d0.png", "d1.png", "d2.png"]
    fake_imgur.up()
    wait_until(lambda: in_done(ws, 3), message=f"all in done/; log:\n{daemon.log}")
    assert ws.names(ws.failed) == []
    assert daemon.log.count("WARNING Imgur cannot be reached") == 1  # not one per file and try
    assert daemon.log.count("Imgur is reachable again") == 1


def test_bad_client_id_pauses_until_the_config_is_fixed(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id="not-the-right-id-000")
    daemon = start(ws, daemons)
    ws.drop("a.png", images.png())
    ws.drop("b.png", images.png())
    wait_until(lambda: "paused" in daemon.log, message="the pause to be logged")
    assert ws.names(ws.inbox) == ["a.png", "b.png"]
    assert daemon.proc.poll() is None
    assert daemon.log.count("paused") == 1
    assert "not-the-right-id-000" not in daemon.log
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID)
    wait_until(lambda: in_done(ws, 2), message=f"both in done/; log:\n{daemon.log}")
    assert CLIENT_ID not in daemon.log


def test_sigterm_lets_uploads_in_flight_finish_and_exits_0(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    fake_imgur.latency = 1.5
    daemon = start(ws, daemons)
    names = [f"t{i}.png" for i in range(4)]
    for name in names:
        ws.drop(name, images.png())
    wait_until(lambda: len(fake_imgur.requests) >= 1, message="an upload in flight")
    asked = time.monotonic()
    assert stop(daemon) == Exit.OK
    assert time.monotonic() - asked < 12
    for name in names:
        if (ws.done / name).exists():
            assert (ws.outbox / f"{Path(name).stem}.webloc").exists()
        else:
            assert (ws.inbox / name).exists()
    assert ws.names(ws.done), "the upload in flight finished"


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_loop_loses_nothing_and_uploads_each_file_once(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess], workers: int
) -> None:
    """SIGKILL at random moments; only an upload answered but not yet journalled (a window
    of about a millisecond) may be sent twice: at most one per worker per kill."""
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, workers=workers)
    fake_imgur.latency = 0.02  # stretch the work so the kills land in the middle of it
    rng = random.Random(7)
    contents = {f"k{i:02d}.png": images.png(4096) for i in range(60)}
    names = list(contents)
    for name in names[:30]:
        ws.drop(name, contents[name])
    kills = 0
    for round_ in range(4):
        daemon = start(ws, daemons)
        if round_ == 0:
            for name in names[30:]:
                ws.drop(name, contents[name])
        # a separate process picks the moment, so it is independent of this process's threads
        delay = rng.uniform(0.05, 0.3)
        subprocess.run(["sh", "-c", f"sleep {delay:.3f}; kill -KILL {daemon.proc.pid}"], check=True)
        assert daemon.wait(5) == -signal.SIGKILL
        kills += 1
    assert ws.names(ws.done), "the kills landed while work was going on"
    assert ws.names(ws.inbox), "the kills landed while work was going on"
    daemon = start(ws, daemons)
    wait_until(lambda: in_done(ws, 60), timeout=60, message=f"all 60 in done/; log:\n{daemon.log}")
    assert stop(daemon) == Exit.OK
    assert ws.names(ws.done) == sorted(names)
    assert ws.names(ws.inbox) == []
    assert ws.names(ws.failed) == []
    assert ws.names(ws.outbox) == sorted(f"{Path(n).stem}.webloc" for n in names)
    by_link = {u.link: u.content for u in fake_imgur.uploads}
    for name in names:
        assert by_link[read_link(ws.outbox / f"{Path(name).stem}.webloc")] == contents[name]
    sent = Counter(u.content for u in fake_imgur.uploads)
    duplicates = {n: sent[c] for n, c in contents.items() if sent[c] > 1}
    print(f"kills: {kills}, uploads: {len(fake_imgur.uploads)}, duplicated: {duplicates}")
    assert len(fake_imgur.uploads) <= 60 + kills * workers


def test_same_file_dropped_twice_is_uploaded_once(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    data = images.png()
    start(ws, daemons)
    ws.drop("first.png", data)
    wait_until(lambda: in_done(ws, 1), message="first.png in done/")
    ws.drop("again.png", data)
    wait_until(lambda: in_done(ws, 2), message="again.png in done/")
    assert len(fake_imgur.uploads) == 1
    assert ws.names(ws.outbox) == ["again.webloc", "first.webloc"]
    assert read_link(ws.outbox / "again.webloc") == fake_imgur.uploads[0].link


def test_second_daemon_on_the_same_config_exits_75(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    first = start(workspace, daemons)
    second = DaemonProcess(workspace)
    daemons.append(second)
    assert second.wait(20) == Exit.ALREADY_RUNNING
    assert f"pid {first.proc.pid}" in second.log
    assert first.proc.poll() is None


def test_config_edits_while_running(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    daemon = start(ws, daemons)
    good = ws.config.read_text()
    ws.config.write_text(good + "workers: [oops\n")
    wait_until(lambda: "config not reloaded" in daemon.log, message="the invalid edit logged")
    assert "config.yaml:" in daemon.log  # the same message `config check` gives
    ws.drop("still.png", images.png())
    wait_until(lambda: in_done(ws, 1), message="still.png done under the old config")

    new_inbox = ws.root / "new inbox"
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, inbox=str(new_inbox))
    wait_until(lambda: "now watching" in daemon.log, message="the new inbox")
    assert new_inbox.is_dir()
    (new_inbox / "moved.png").write_bytes(images.png())
    wait_until(lambda: in_done(ws, 2), message=f"moved.png done; log:\n{daemon.log}")
    assert daemon.proc.poll() is None


def test_run_once_drains_the_inbox_and_exits_0(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    for i in range(3):
        ws.drop(f"o{i}.png", images.png())
    ws.drop("bad.png", b"not an image")
    daemon = DaemonProcess(ws, "--once")
    daemons.append(daemon)
    assert daemon.wait(30) == Exit.OK, daemon.log
    assert ws.names(ws.done) == ["o0.png", "o1.png", "o2.png"]
    assert ws.names(ws.failed) == ["bad.png", "bad.png.error.txt"]


def test_run_once_exits_1_when_files_must_wait(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.write(
        api_url=fake_imgur.url, client_id=CLIENT_ID, retry_initial_seconds=30, retry_max_seconds=60
    )
    fake_imgur.down()
    ws.drop("later.png", images.png())
    daemon = DaemonProcess(ws, "--once")
    daemons.append(daemon)
    assert daemon.wait(20) == Exit.FAILURE, daemon.log
    assert ws.names(ws.inbox) == ["later.png"]
    assert ws.names(ws.failed) == []


def test_rate_limit_survives_a_restart(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    reset_at = time.time() + 3.0
    fake_imgur.rate_limited(reset_in=3.0, header="post")
    daemon = start(ws, daemons)
    ws.drop("a.png", images.png())
    wait_until(lambda: any(r.status == 429 for r in fake_imgur.requests), message="a 429")
    assert stop(daemon) == Exit.OK
    seen = len(fake_imgur.requests)
    daemon = start(ws, daemons)
    wait_until(lambda: in_done(ws, 1), timeout=20, message=f"a.png done; log:\n{daemon.log}")
    assert min(r.time for r in fake_imgur.requests[seen:]) >= reset_at - 0.05
    assert [r.status for r in fake_imgur.requests[seen:]] == [200]


def test_sighup_reloads_the_config(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, link_format="url")
    daemon = start(ws, daemons)
    # an edit the file watch cannot see (same size, inode and mtime): only SIGHUP reveals it
    before = ws.config.stat()
    text = ws.config.read_text().replace("link_format: url", "link_format: txt")
    with ws.config.open("r+", encoding="utf-8") as f:
        f.write(text)
    os.utime(ws.config, ns=(before.st_atime_ns, before.st_mtime_ns))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in daemon.log, message="the reload")
    ws.drop("shot.png", images.png())
    wait_until(lambda: in_done(ws, 1), message="shot.png done")
    assert ws.names(ws.outbox) == ["shot.txt"]


def test_a_corrupt_journal_is_moved_aside(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.journal.parent.mkdir(parents=True)
    ws.journal.write_bytes(b"this is not a database" * 100)
    daemon = start(ws, daemons)
    ws.drop("shot.png", images.png())
    wait_until(lambda: in_done(ws, 1), message="shot.png done with a fresh journal")
    assert len(list(ws.journal.parent.glob("history.sqlite3.corrupt-*"))) == 1
    assert daemon.log.count("is unreadable") == 1


def test_auth_pause_sends_one_notification(
    workspace: Workspace,
    fake_imgur: FakeImgur,
    daemons: list[DaemonProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = workspace
    record = tmp_path / "notifications.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_notify = bin_dir / "notify-send"
    fake_notify.write_text(f'#!/bin/sh\necho "$@" >> "{record}"\n')
    fake_notify.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    ws.write(api_url=fake_imgur.url, client_id="revoked-id-000000", notify=True)
    daemon = start(ws, daemons)
    ws.drop("a.png", images.png())
    ws.drop("b.png", images.png())
    wait_until(record.exists, message=f"a notification; log:\n{daemon.log}")
    assert ws.names(ws.inbox) == ["a.png", "b.png"]
    assert len(record.read_text().splitlines()) == 1
    assert "paused" in record.read_text()
    assert "revoked-id-000000" not in record.read_text()


def test_an_uncreatable_folder_is_a_config_error(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, done="/dev/null/done")
    daemon = DaemonProcess(ws)
    daemons.append(daemon)
    assert daemon.wait(20) == Exit.CONFIG
    assert "/dev/null/done" in daemon.log
    assert "Traceback" not in daemon.log


def test_an_edit_naming_an_uncreatable_folder_keeps_the_old_config(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    daemon = start(ws, daemons)
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, done="/dev/null/done")
    wait_until(lambda: "config not reloaded" in daemon.log, message="the refused edit")
    ws.drop("shot.png", images.png())
    wait_until(lambda: in_done(ws, 1), message="shot.png filed under the old config")
    assert daemon.proc.poll() is None


def test_an_inbox_deleted_and_made_again_is_watched_again(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    daemon = start(ws, daemons)
    ws.inbox.rmdir()
    ws.inbox.mkdir(exist_ok=True)  # the daemon may have made it again already
    wait_until(lambda: "was removed or replaced" in daemon.log, message="the inbox watched again")
    ws.drop("again.png", images.png())
    wait_until(lambda: in_done(ws, 1), message=f"again.png done; log:\n{daemon.log}")


def test_an_auth_pause_ends_on_sighup_or_by_itself(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    """A 403 that Imgur lifts later (over capacity, an app unblocked): no config edit needed."""
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, retry_max_seconds=60)
    fake_imgur.client_id = "someone-else-0000"
    daemon = start(ws, daemons)
    ws.drop("a.png", images.png())
    wait_until(lambda: "Uploads are paused" in daemon.log, message="the pause")
    fake_imgur.client_id = CLIENT_ID
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: in_done(ws, 1), message=f"a.png after SIGHUP; log:\n{daemon.log}")
    assert "accepts the Client ID again" in daemon.log

    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, retry_max_seconds=1)
    wait_until(lambda: "config reloaded" in daemon.log, message="the shorter pause")
    fake_imgur.client_id = "someone-else-0000"
    ws.drop("b.png", images.png())
    wait_until(lambda: daemon.log.count("Uploads are paused") == 2, message="the second pause")
    fake_imgur.client_id = CLIENT_ID
    wait_until(lambda: in_done(ws, 2), message=f"b.png without any signal; log:\n{daemon.log}")


def test_a_file_waiting_through_an_outage_is_named_once(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    """An outage of changing 5xx answers: each waiting file is named once, not per probe."""
    ws = workspace
    for status in (502, 503, 500, 504, 502, 503):
        fake_imgur.fail_next(1, status)
    daemon = start(ws, daemons)
    for i in range(3):
        ws.drop(f"w{i}.png", images.png())
    wait_until(lambda: in_done(ws, 3), timeout=20, message=f"all in done/; log:\n{daemon.log}")
    for i in range(3):
        assert daemon.log.count(f"w{i}.png: waits in the inbox") <= 1, daemon.log
