"""`imgdrop hosts list|import|test` and `upload`, wired to their modules, as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgdrop.testserver import ZIPLINE_TOKEN
from tests.commandkit import image, imgdrop
from tests.fakeimgur import FakeImgur
from tests.workspace import Workspace


def test_import_list_and_test_a_custom_host(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "zipline.sxcu"
    source.write_text(json.dumps(fake_imgur.zipline_sxcu()), encoding="utf-8")
    done = imgdrop(workspace, "hosts", "import", str(source))
    assert done.returncode == 0, done.stderr
    target = workspace.config.parent / "hosts" / "zipline.sxcu"
    assert target.is_file()
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    listed = imgdrop(workspace, "hosts", "list")
    assert listed.returncode == 0, listed.stderr
    assert "imgur" in listed.stdout and "zipline" in listed.stdout
    again = imgdrop(workspace, "hosts", "import", str(source), "--name", "zipline")
    assert again.returncode == 1  # exists already
    workspace.write(api_url=fake_imgur.url, client_id=fake_imgur.client_id, hosts=["zipline"])
    monkeypatch.setenv("ZIPLINE_TOKEN", ZIPLINE_TOKEN)
    tested = imgdrop(workspace, "hosts", "test", "zipline")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert len(fake_imgur.uploads_to("zipline")) == 1


def test_a_bad_sxcu_is_a_config_error_for_config_check(workspace: Workspace) -> None:
    folder = workspace.config.parent / "hosts"
    folder.mkdir()
    (folder / "broken.sxcu").write_text('{"RequestURL": "https://x.example/up", "Body": "Nope"}')
    workspace.write(hosts=["broken"])
    done = imgdrop(workspace, "config", "check")
    assert done.returncode == 78
    assert "broken.sxcu" in done.stderr
    assert "Traceback" not in done.stderr


def test_upload_prints_links_keeps_originals_and_exits_1_on_failure(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path
) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(image(40))
    bad = tmp_path / "bad.txt"
    bad.write_text("not an image")
    ok = imgdrop(workspace, "upload", str(good))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith("https://")
    both = imgdrop(workspace, "upload", str(good), str(bad))
    assert both.returncode == 1
    assert "bad.txt" in both.stderr
    assert good.read_bytes() == image(40) and bad.exists()
