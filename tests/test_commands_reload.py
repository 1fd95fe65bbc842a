"""`imgdrop reload`: SIGHUP to the lock holder; a waiting file goes now; 3 without a daemon."""

from __future__ import annotations

import os

from tests.commandkit import image, imgdrop
from tests.conftest import wait_until
from tests.fakeimgur import FakeImgur
from tests.workspace import DaemonProcess, Workspace


def test_reload_without_a_daemon_exits_3(workspace: Workspace) -> None:
    lock = workspace.journal.with_name(workspace.journal.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()}\n")  # stale: this pid must never be signalled
    done = imgdrop(workspace, "reload")
    assert done.returncode == 3
    assert "no daemon is running" in done.stderr


def _slow_retries_daemon(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> DaemonProcess:
    workspace.write(
        api_url=fake_imgur.url, client_id=fake_imgur.client_id,
        retry_initial_seconds=120, retry_max_seconds=300,
    )  # fmt: skip
    proc = DaemonProcess(workspace)
    daemons.append(proc)
    wait_until(proc.started, 10, "the daemon to start")
    return proc


def test_reload_makes_a_file_waiting_on_a_paused_host_go_now(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    workspace.write(api_url=fake_imgur.url, client_id="other-client-id-0000")
    proc = DaemonProcess(workspace)
    daemons.append(proc)
    wait_until(proc.started, 10, "the daemon to start")
    workspace.drop("later.png", image(32))
    wait_until(lambda: "later.png" in proc.log and "waits" in proc.log, 10, "the auth pause")
    fake_imgur.client_id = "other-client-id-0000"  # Imgur takes the ID now; nothing else changed
    done = imgdrop(workspace, "reload")
    assert done.returncode == 0, done.stderr
    assert f"pid {proc.proc.pid}" in done.stdout
    wait_until((workspace.done / "later.png").exists, 5, "the retry:\n" + proc.log)


def test_reload_makes_a_file_waiting_on_an_outage_go_now(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    fake_imgur.fail_next(1, 503)
    proc = _slow_retries_daemon(workspace, fake_imgur, daemons)
    workspace.drop("later.png", image(30))
    wait_until(lambda: len(fake_imgur.requests) >= 1, 10, "the first (failing) try")
    assert (workspace.inbox / "later.png").exists()
    done = imgdrop(workspace, "reload")
    assert done.returncode == 0, done.stderr
    wait_until((workspace.done / "later.png").exists, 5, "the retry:\n" + proc.log)
