"""`imgdrop status`: exit 0/3 from the lock really held (never a stale pid), --json, waiting."""

from __future__ import annotations

import json
import os

from imgdrop.journal import Journal
from tests.commandkit import image, imgdrop, upload_once
from tests.conftest import wait_until
from tests.fakeimgur import FakeImgur
from tests.workspace import DaemonProcess, Workspace


def test_not_running_exits_3_even_with_a_stale_pid(workspace: Workspace) -> None:
    done = imgdrop(workspace, "status")
    assert done.returncode == 3
    assert "not running" in done.stdout
    lock = workspace.journal.with_name(workspace.journal.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()}\n")  # a live pid, but nobody holds the lock
    report = json.loads(imgdrop(workspace, "status", "--json").stdout)
    assert (report["running"], report["pid"]) == (False, None)


def test_running_daemon_json_report(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    upload_once(workspace, {"one.png": image(20)})
    proc = DaemonProcess(workspace)
    daemons.append(proc)
    wait_until(proc.started, 10, "the daemon to start")
    done = imgdrop(workspace, "status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["running"] is True
    assert report["pid"] == proc.proc.pid
    assert report["uploads_today"] == 1
    assert report["last_upload"]["file"] == "one.png"
    assert report["hosts"]["imgur"]["state"] == "usable"
    assert report["log_file"].endswith("imgdrop.log")
    text = imgdrop(workspace, "status")
    assert text.returncode == 0
    assert f"pid {proc.proc.pid}" in text.stdout
    assert "uploads today: 1" in text.stdout


def test_waiting_files_and_why(workspace: Workspace) -> None:
    workspace.drop("queued.png", image(21))
    workspace.drop(".hidden.png", image(22))
    with Journal(workspace.journal) as journal:
        entry = journal.start("1" * 64, "stuck.png", 10, None)
        journal.record_attempt(entry.id, "Imgur is not answering (HTTP 503)", True)
        journal.set_meta(
            "host:imgur",
            json.dumps({"state": "rate-limited", "until": 4102444800, "reason": "429",
                        "limits": {"user_remaining": 0, "user_reset": 4102444800}}),
        )  # fmt: skip
    workspace.drop("stuck.png", image(23))
    report = json.loads(imgdrop(workspace, "status", "--json").stdout)
    why = {item["file"]: item["why"] for item in report["waiting"]}
    assert set(why) == {"queued.png", "stuck.png"}
    assert "HTTP 503" in why["stuck.png"]
    assert "rate-limited" in why["queued.png"]
    text = imgdrop(workspace, "status").stdout
    assert "imgur: rate-limited until" in text and "user 0 left" in text
