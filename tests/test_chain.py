"""The host chain end to end: blocked, rate-limited and refusing hosts hand files to the next."""

from __future__ import annotations

import json
import os
import signal

import pytest

from imgdrop.links import read_link
from imgdrop.testserver import ZIPLINE_TOKEN, FakeImgur
from tests import images
from tests.conftest import CLIENT_ID, wait_until
from tests.test_pipeline import running
from tests.workspace import DaemonProcess, Workspace

HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + os.urandom(64)


@pytest.fixture(autouse=True)
def custom_host(workspace: Workspace, fake_imgur: FakeImgur, monkeypatch: pytest.MonkeyPatch
                ) -> None:  # fmt: skip
    """`zip`: the fake's Zipline-like API as a .sxcu; the anonymous hosts point at the fake."""
    folder = workspace.config.parent / "hosts"
    folder.mkdir(exist_ok=True)
    (folder / "zip.sxcu").write_text(json.dumps(fake_imgur.zipline_sxcu()))
    monkeypatch.setenv("ZIPLINE_TOKEN", ZIPLINE_TOKEN)
    for key, value in fake_imgur.env().items():
        monkeypatch.setenv(key, value)


def imgur_posts(fake: FakeImgur) -> int:
    return sum(1 for r in fake.requests if r.path.startswith("/3/"))


def test_imgur_blocked_files_land_via_the_custom_host_and_stay_skipped_after_restart(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, hosts=["imgur", "zip"])
    fake_imgur.edge_block()
    daemon = DaemonProcess(ws)
    daemons.append(daemon)
    wait_until(daemon.started, message="the daemon")
    for i in range(3):
        ws.drop(f"s{i}.png", images.png())
    wait_until(lambda: len(ws.names(ws.done)) == 3, message=f"all three; log:\n{daemon.log}")
    assert imgur_posts(fake_imgur) == 1  # asked once, then skipped
    assert len(fake_imgur.uploads_to("zipline")) == 3
    issued = {u.link for u in fake_imgur.uploads_to("zipline")}
    assert {read_link(ws.outbox / f"s{i}.webloc") for i in range(3)} == issued
    assert daemon.log.count("Skipped until") == 1  # one line when the host becomes unusable
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0

    again = DaemonProcess(ws)
    daemons.append(again)
    wait_until(again.started, message="the restarted daemon")
    ws.drop("later.png", images.png())
    wait_until(lambda: len(ws.names(ws.done)) == 4, message=f"after restart; log:\n{again.log}")
    assert imgur_posts(fake_imgur) == 1  # remembered across the restart
    assert ws.names(ws.failed) == []


def test_imgur_blocked_alone_files_wait_and_nothing_fails(
    workspace: Workspace, fake_imgur: FakeImgur, caplog: pytest.LogCaptureFixture
) -> None:
    ws = workspace
    fake_imgur.edge_block()
    with running(ws) as pipeline:
        ws.drop("a.png", images.png())
        ws.drop("b.png", images.png())
        wait_until(lambda: pipeline.waiting() == 2, message="both waiting")
    assert imgur_posts(fake_imgur) == 1
    assert ws.names(ws.inbox) == ["a.png", "b.png"]
    assert ws.names(ws.failed) == []
    assert "files wait in the inbox" in caplog.text  # the log says why, in one line


def test_while_imgur_is_rate_limited_files_flow_to_the_next_host(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, hosts=["imgur", "0x0.st"])
    fake_imgur.rate_limited(reset_in=600)
    with running(ws):
        for i in range(3):
            ws.drop(f"r{i}.png", images.png())
        wait_until(lambda: len(ws.names(ws.done)) == 3, message="all via 0x0.st")
    assert imgur_posts(fake_imgur) == 1
    assert len(fake_imgur.uploads_to("0x0.st")) == 3


def test_a_file_imgur_rejects_goes_to_the_next_host(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, hosts=["imgur", "catbox"])
    fake_imgur.fail_next(1, 400, message="Image format not supported")
    with running(ws):
        ws.drop("odd.png", images.png())
        wait_until(lambda: ws.names(ws.done) == ["odd.png"], message="odd.png via catbox")
    (upload,) = fake_imgur.uploads_to("catbox")
    assert read_link(ws.outbox / "odd.webloc") == upload.link


def test_heic_skips_imgur_without_asking_it(workspace: Workspace, fake_imgur: FakeImgur) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, hosts=["imgur", "catbox"])
    with running(ws):
        ws.drop("IMG_0001.HEIC", HEIC)
        wait_until(lambda: ws.names(ws.done) == ["IMG_0001.HEIC"], message="the photo via catbox")
    assert imgur_posts(fake_imgur) == 0


def test_refused_by_every_host_lands_in_failed_with_each_answer(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    ws.write(api_url=fake_imgur.url, client_id=CLIENT_ID, hosts=["imgur", "catbox"])
    fake_imgur.fail_next(1, 400, message="Image format not supported")
    fake_imgur.fail_host("catbox", 1, 415, body="File type not allowed")
    with running(ws):
        ws.drop("odd.png", images.png())
        wait_until(lambda: len(ws.names(ws.failed)) == 2, message="odd.png and its reason")
    text = (ws.failed / "odd.png.error.txt").read_text()
    assert text.splitlines()[0].startswith("No host took the file.")
    assert "imgur" in text
    assert "catbox" in text
    assert "415" in text


def test_one_host_rejecting_sends_the_file_to_failed(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace
    fake_imgur.fail_next(1, 400, message="Image format not supported")
    with running(ws):
        ws.drop("odd.png", images.png())
        wait_until(lambda: len(ws.names(ws.failed)) == 2, message="odd.png and its reason")
    assert "400" in (ws.failed / "odd.png.error.txt").read_text()
