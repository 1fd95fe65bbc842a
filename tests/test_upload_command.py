"""`imgdrop upload FILE…`: same checks and hosts as the daemon, originals untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgdrop.commands.upload import upload
from imgdrop.exitcodes import Exit
from imgdrop.journal import Journal
from imgdrop.testserver import FakeImgur
from tests import images
from tests.workspace import Workspace


def test_prints_one_link_per_file_and_leaves_the_originals(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [tmp_path / "a.png", tmp_path / "b.jpg"]
    files[0].write_bytes(images.png())
    files[1].write_bytes(images.jpeg())
    before = {p: p.read_bytes() for p in files}
    assert upload(workspace.settings(), files) == Exit.OK
    links = capsys.readouterr().out.split()
    assert links == [u.link for u in fake_imgur.uploads]
    assert {p: p.read_bytes() for p in files} == before
    with Journal(workspace.settings().journal) as journal:
        assert [e.state for e in journal.history()] == ["done", "done"]


def test_same_bytes_reuse_the_link(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = images.png()
    (tmp_path / "one.png").write_bytes(data)
    (tmp_path / "two.png").write_bytes(data)
    assert upload(workspace.settings(), [tmp_path / "one.png", tmp_path / "two.png"]) == Exit.OK
    first, second = capsys.readouterr().out.split()
    assert first == second
    assert len(fake_imgur.uploads) == 1


def test_a_file_no_host_takes_exits_1_with_the_reason(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "ok.png").write_bytes(images.png())
    code = upload(workspace.settings(), [tmp_path / "notes.txt", tmp_path / "ok.png"])
    out = capsys.readouterr()
    assert code == Exit.FAILURE
    assert "notes.txt" in out.err
    assert len(out.out.split()) == 1  # the good one still uploaded
    assert (tmp_path / "notes.txt").exists()
    assert fake_imgur.uploads[0].content == (tmp_path / "ok.png").read_bytes()


def test_a_missing_file_exits_1(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert upload(workspace.settings(), [tmp_path / "nope.png"]) == Exit.FAILURE
    assert "nope.png" in capsys.readouterr().err
    assert fake_imgur.requests == []
