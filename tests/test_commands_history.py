"""`imgdrop history`: newest first, SPEC's JSON keys, --limit, --today, handles masked in text."""

from __future__ import annotations

import json
import time

from imgdrop.commands.history import JSON_KEYS
from imgdrop.journal import Journal
from tests.commandkit import image, imgdrop, upload_once
from tests.workspace import Workspace


def test_history_json_has_the_spec_keys_newest_first(workspace: Workspace) -> None:
    upload_once(workspace, {"first.png": image(1)})
    upload_once(workspace, {"second.png": image(2)})
    done = imgdrop(workspace, "history", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["file"] for row in rows] == ["second.png", "first.png"]
    assert JSON_KEYS == (
        "file", "sha256", "host", "state", "link", "id",
        "deletehash", "delete_url", "link_file", "uploaded_at",
    )  # fmt: skip
    for row in rows:
        assert tuple(row) == JSON_KEYS
        assert row["host"] == "imgur"
        assert row["state"] == "done"
        assert row["delete_url"] == f"https://imgur.com/delete/{row['deletehash']}"
        assert row["link_file"].endswith(".webloc")
        assert row["uploaded_at"][:4].isdigit() and "T" in row["uploaded_at"]
        assert len(row["sha256"]) == 64
    limited = json.loads(imgdrop(workspace, "history", "--json", "--limit", "1").stdout)
    assert [row["file"] for row in limited] == ["second.png"]


def test_today_leaves_out_older_uploads_and_text_masks_handles(workspace: Workspace) -> None:
    upload_once(workspace, {"old.png": image(3), "new.png": image(4)})
    with Journal(workspace.journal) as journal:
        old = next(e for e in journal.history() if e.name == "old.png")
        journal._conn.execute(
            "UPDATE upload SET uploaded_at = ?, created_at = ? WHERE id = ?",
            (time.time() - 2 * 86400, time.time() - 2 * 86400, old.id),
        )
        journal._conn.commit()
        hashes = [e.deletehash for e in journal.history() if e.deletehash]
    today = json.loads(imgdrop(workspace, "history", "--today", "--json").stdout)
    assert [row["file"] for row in today] == ["new.png"]
    text = imgdrop(workspace, "history").stdout
    assert "old.png" in text and "new.png" in text
    assert hashes and not any(h in text for h in hashes)


def test_no_journal_yet_is_an_empty_history(workspace: Workspace) -> None:
    done = imgdrop(workspace, "history", "--json")
    assert (done.returncode, json.loads(done.stdout)) == (0, [])
    assert not workspace.journal.exists()


def test_names_that_are_not_utf8_print_safely(workspace: Workspace) -> None:
    name = b"caf\xe9.png".decode("utf-8", "surrogateescape")
    with Journal(workspace.journal) as journal:
        entry = journal.start("2" * 64, name, 10, None)
        journal.record_upload(entry.id, "imgur", "abc", "https://i.imgur.com/abc.png", "dh123456")
    rows = json.loads(imgdrop(workspace, "history", "--json").stdout)
    assert rows[0]["file"] == "caf\\xe9.png"
    text = imgdrop(workspace, "history")
    assert text.returncode == 0 and "caf\\xe9.png" in text.stdout
    assert "dh123456" not in text.stdout
