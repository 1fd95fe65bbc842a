"""`imgdrop retry`: failed files back into the inbox, .error.txt removed, names never clash."""

from __future__ import annotations

from tests.commandkit import imgdrop, names_in, upload_once
from tests.workspace import Workspace


def test_retry_all_moves_back_and_drops_error_files(workspace: Workspace) -> None:
    upload_once(workspace, {"a.txt": b"not an image", "b.txt": b"nor this"})
    assert names_in(workspace.failed) == ["a.txt", "a.txt.error.txt", "b.txt", "b.txt.error.txt"]
    done = imgdrop(workspace, "retry")
    assert done.returncode == 0, done.stderr
    assert names_in(workspace.failed) == []
    assert names_in(workspace.inbox) == ["a.txt", "b.txt"]
    assert (workspace.inbox / "a.txt").read_bytes() == b"not an image"


def test_retry_by_name_keeps_the_rest_and_never_overwrites(workspace: Workspace) -> None:
    upload_once(workspace, {"a.txt": b"not an image", "b.txt": b"nor this"})
    workspace.drop("a.txt", b"a different a.txt already waiting")
    done = imgdrop(workspace, "retry", "a.txt")
    assert done.returncode == 0, done.stderr
    assert names_in(workspace.failed) == ["b.txt", "b.txt.error.txt"]
    assert names_in(workspace.inbox) == ["a (2).txt", "a.txt"]
    assert (workspace.inbox / "a (2).txt").read_bytes() == b"not an image"
    missing = imgdrop(workspace, "retry", "zzz.png")
    assert missing.returncode == 1
    assert "zzz.png is not in" in missing.stderr


def test_retry_with_nothing_failed_says_so(workspace: Workspace) -> None:
    done = imgdrop(workspace, "retry")
    assert done.returncode == 0
    assert "nothing to retry" in done.stdout
