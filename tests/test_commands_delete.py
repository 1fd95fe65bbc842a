"""`imgdrop delete`: by id, link, name or `last`; several at once; twice; hosts without delete."""

from __future__ import annotations

import json

import pytest

from imgdrop.journal import Journal
from tests.commandkit import image, imgdrop, upload_once
from tests.conftest import CLIENT_ID
from tests.fakeimgur import FakeImgur
from tests.workspace import Workspace


def _deletes(fake: FakeImgur) -> list[str]:
    return [r.path for r in fake.requests if r.method == "DELETE"]


def _rows(ws: Workspace) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(imgdrop(ws, "history", "--json").stdout)
    return rows


def test_delete_last_then_again_sends_nothing(workspace: Workspace, fake_imgur: FakeImgur) -> None:
    upload_once(workspace, {"oops.png": image(10)})
    (row,) = _rows(workspace)
    done = imgdrop(workspace, "delete", "last")
    assert done.returncode == 0, done.stderr
    assert "deleted" in done.stdout and row["link"] in done.stdout
    assert row["deletehash"] not in done.stdout + done.stderr
    assert _deletes(fake_imgur) == [f"/3/image/{row['deletehash']}"]
    assert _rows(workspace)[0]["state"] == "deleted"
    again = imgdrop(workspace, "delete", "last")
    assert again.returncode == 0
    assert "already deleted" in again.stdout
    assert len(_deletes(fake_imgur)) == 1


def test_delete_by_id_link_and_name_at_once(workspace: Workspace, fake_imgur: FakeImgur) -> None:
    upload_once(workspace, {"a.png": image(11), "b.png": image(12), "c.png": image(13)})
    by_name = {row["file"]: row for row in _rows(workspace)}
    refs = [by_name["a.png"]["id"], by_name["b.png"]["link"], "c.png"]
    done = imgdrop(workspace, "delete", *refs)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("deleted ") == 3
    assert len(_deletes(fake_imgur)) == 3
    assert {row["state"] for row in _rows(workspace)} == {"deleted"}


def test_unknown_ref_fails_plainly_and_others_still_go(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    upload_once(workspace, {"keep.png": image(14)})
    done = imgdrop(workspace, "delete", "nosuch.png", "keep.png")
    assert done.returncode == 1
    assert "no upload matches 'nosuch.png'" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(_deletes(fake_imgur)) == 1


def test_deleted_bytes_upload_afresh(workspace: Workspace, fake_imgur: FakeImgur) -> None:
    data = image(15)
    upload_once(workspace, {"again.png": data})
    assert imgdrop(workspace, "delete", "last").returncode == 0
    before = len(fake_imgur.uploads)
    upload_once(workspace, {"again copy.png": data})
    assert len(fake_imgur.uploads) == before + 1


def test_a_host_without_delete_says_so(workspace: Workspace, fake_imgur: FakeImgur) -> None:
    with Journal(workspace.journal) as journal:
        entry = journal.start("0" * 64, "cat.png", 10, None)
        journal.record_upload(
            entry.id, "catbox", "abc.png", "https://files.catbox.moe/abc.png", None
        )
    done = imgdrop(workspace, "delete", "cat.png")
    assert done.returncode == 1
    assert "catbox has no delete" in done.stderr
    assert fake_imgur.requests == []


def test_an_upload_gone_from_the_host_is_marked_deleted(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    upload_once(workspace, {"gone.png": image(16)})
    assert imgdrop(workspace, "delete", "gone.png").returncode == 0
    with Journal(workspace.journal) as journal:  # as if the journal never heard of that delete
        (entry,) = journal.find_ref("gone.png")
        journal._conn.execute("UPDATE upload SET state = 'done' WHERE id = ?", (entry.id,))
        journal._conn.commit()
    done = imgdrop(workspace, "delete", "gone.png")
    assert done.returncode == 0, done.stderr
    assert "already gone from imgur" in done.stdout
    assert _rows(workspace)[0]["state"] == "deleted"


def test_delete_uses_the_rows_host_0x0_with_its_token(
    workspace: Workspace, fake_imgur: FakeImgur, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in fake_imgur.env().items():
        monkeypatch.setenv(key, value)
    workspace.write(api_url=fake_imgur.url, client_id=CLIENT_ID, hosts=["0x0.st"])
    upload_once(workspace, {"zero.png": image(16)})
    (row,) = _rows(workspace)
    assert row["host"] == "0x0.st"
    assert fake_imgur.file_at(row["link"]) is not None
    done = imgdrop(workspace, "delete", "last")
    assert done.returncode == 0, done.stderr
    assert fake_imgur.file_at(row["link"]) is None  # gone on the host, by its X-Token
    assert not any(r.path.startswith("/3/") for r in fake_imgur.requests)  # Imgur untouched
    assert row["deletehash"] not in done.stdout + done.stderr
