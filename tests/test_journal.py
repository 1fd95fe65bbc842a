"""Journal: real SQLite in tmp_path — lifecycle, lookups, corruption recovery, concurrency,
failed writes (a COMMIT refused for a lock, a full tmpfs), odd names, unusable files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imgdrop import journal as journal_module
from imgdrop.journal import MIGRATIONS, Entry, Journal, JournalError
from tests.conftest import as_nobody

SHA = "a" * 64
OTHER_SHA = "b" * 64


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


@pytest.fixture
def journal(db_path: Path) -> Iterator[Journal]:
    with Journal(db_path) as j:
        yield j


def _get(journal: Journal, entry_id: int) -> Entry:
    """The entry with `entry_id` (the journal itself only looks entries up by content)."""
    (entry,) = [e for e in journal.history() if e.id == entry_id]
    return entry


def _pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def test_creates_parent_folder_wal_and_schema_version(journal: Journal, db_path: Path) -> None:
    assert db_path.is_file()
    assert _pragma(db_path, "journal_mode") == "wal"
    assert _pragma(db_path, "user_version") == len(MIGRATIONS)


def test_lifecycle_start_upload_link_archive_finish(journal: Journal, tmp_path: Path) -> None:
    entry = journal.start(SHA, "shot.png", 1234, 42)
    assert (entry.state, entry.name, entry.size, entry.inode) == ("uploading", "shot.png", 1234, 42)
    assert entry.imgur_id is None and entry.uploaded_at is None and not entry.reused
    assert entry.created_at > 0

    journal.record_attempt(entry.id, "Imgur could not be reached", counts=False)
    uploaded = journal.record_upload(
        entry.id, "imgur", "abc123", "https://i.imgur.com/abc123.png", "dh"
    )
    assert uploaded.state == "uploaded"
    assert (uploaded.imgur_id, uploaded.link, uploaded.deletehash) == (
        "abc123",
        "https://i.imgur.com/abc123.png",
        "dh",
    )
    assert uploaded.uploaded_at is not None and uploaded.uploaded_at >= entry.created_at
    assert uploaded.error is None, "a successful upload clears the last error"

    journal.set_link_file(entry.id, tmp_path / "Links" / "shot.webloc")
    journal.set_archived_to(entry.id, tmp_path / "Done" / "shot.png")
    journal.finish(entry.id)

    done = _get(journal, entry.id)
    assert done.state == "done"
    assert done.link_file == str(tmp_path / "Links" / "shot.webloc")
    assert done.archived_to == str(tmp_path / "Done" / "shot.png")
    assert done.finished_at is not None and done.finished_at >= uploaded.uploaded_at


def test_record_upload_reused_flag(journal: Journal) -> None:
    entry = journal.start(SHA, "copy.png", 10, None)
    assert journal.record_upload(
        entry.id, "imgur", "abc", "https://i.imgur.com/abc.png", "d", True
    ).reused


def test_find_open_matches_only_the_same_drop_in_open_states(journal: Journal) -> None:
    uploading = journal.start(SHA, "a.png", 10, 7)
    assert journal.find_open(SHA, "a.png", 7) == uploading
    assert journal.find_open(SHA, "b.png", 7) is None
    assert journal.find_open(SHA, "a.png", 8) is None
    assert journal.find_open(SHA, "a.png", None) is None
    assert journal.find_open(OTHER_SHA, "a.png", 7) is None

    journal.record_upload(uploading.id, "imgur", "x", "https://i.imgur.com/x.png", "d")
    found = journal.find_open(SHA, "a.png", 7)
    assert found is not None and found.state == "uploaded"

    journal.finish(uploading.id)
    assert journal.find_open(SHA, "a.png", 7) is None

    no_inode = journal.start(SHA, "a.png", 10, None)
    assert journal.find_open(SHA, "a.png", None) == no_inode, "NULL inode matches NULL"
    journal.fail(no_inode.id, "a.png", 10, SHA, "boom")
    assert journal.find_open(SHA, "a.png", None) is None


def test_find_open_returns_newest(journal: Journal) -> None:
    journal.start(SHA, "a.png", 10, 7)
    newer = journal.start(SHA, "a.png", 10, 7)
    assert journal.find_open(SHA, "a.png", 7) == newer


def test_find_live_ignores_failed_deleted_and_unuploaded(journal: Journal) -> None:
    assert journal.find_live(SHA) is None
    journal.start(SHA, "pending.png", 10, 1)  # no imgur_id yet
    assert journal.find_live(SHA) is None

    failed = journal.start(SHA, "failed.png", 10, 2)
    journal.record_upload(failed.id, "imgur", "f", "https://i.imgur.com/f.png", "d")
    journal.fail(failed.id, "failed.png", 10, SHA, "archive failed for good")
    deleted = journal.start(SHA, "deleted.png", 10, 3)
    journal.record_upload(deleted.id, "imgur", "g", "https://i.imgur.com/g.png", "d")
    journal.mark_deleted(deleted.id)
    assert journal.find_live(SHA) is None

    live = journal.start(SHA, "live.png", 10, 4)
    journal.record_upload(live.id, "imgur", "h", "https://i.imgur.com/h.png", "d")
    found = journal.find_live(SHA)
    assert found is not None and found.imgur_id == "h" and found.state == "uploaded"
    journal.finish(live.id)
    found = journal.find_live(SHA)
    assert found is not None and found.state == "done"
    assert journal.find_live(OTHER_SHA) is None


def test_record_attempt_counts_only_when_told(journal: Journal) -> None:
    entry = journal.start(SHA, "a.png", 10, None)
    assert journal.record_attempt(entry.id, "HTTP 503", counts=True) == 1
    assert journal.record_attempt(entry.id, "offline", counts=False) == 1
    assert journal.record_attempt(entry.id, "timeout", counts=True) == 2
    stored = _get(journal, entry.id)
    assert (stored.attempts, stored.error) == (2, "timeout")


def test_fail_existing_entry(journal: Journal) -> None:
    entry = journal.start(SHA, "a.png", 10, None)
    journal.fail(entry.id, "a.png", 10, SHA, "Imgur rejected the file.")
    failed = _get(journal, entry.id)
    assert (failed.state, failed.error) == ("failed", "Imgur rejected the file.")
    assert failed.finished_at is not None
    assert len(journal.history()) == 1


def test_fail_without_entry_inserts_a_row(journal: Journal) -> None:
    journal.fail(None, "notes.txt", 5, None, "This file is not an image Imgur accepts.")
    (row,) = journal.history()
    assert (row.state, row.name, row.size, row.sha256) == ("failed", "notes.txt", 5, None)
    assert row.error == "This file is not an image Imgur accepts."
    assert row.finished_at is not None and row.imgur_id is None


def test_unknown_entry_raises_key_error(journal: Journal) -> None:
    with pytest.raises(KeyError):
        journal.finish(999)


def test_unfinished_lists_uploaded_entries_oldest_first(journal: Journal) -> None:
    assert journal.unfinished() == []
    uploaded = []
    for i in range(3):
        entry = journal.start(f"{i:064x}", f"{i}.png", i, i)
        uploaded.append(
            journal.record_upload(entry.id, "imgur", f"id{i}", f"https://i.imgur.com/{i}", "d")
        )
    journal.start(SHA, "uploading.png", 1, None)
    journal.finish(uploaded[1].id)
    failed = journal.start(OTHER_SHA, "failed.png", 1, None)
    journal.record_upload(failed.id, "imgur", "f", "https://i.imgur.com/f.png", "d")
    journal.fail(failed.id, "failed.png", 1, OTHER_SHA, "boom")
    assert journal.unfinished() == [uploaded[0], uploaded[2]]


def test_database_files_are_private_whatever_the_umask(db_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Journal(db_path) as journal:
            journal.start(SHA, "a.png", 10, None)  # a write, so -wal and -shm exist
            files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
            assert {p.name for p in files} >= {db_path.name, f"{db_path.name}-wal"}
            assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {
                p.name: 0o600 for p in files
            }
    finally:
        os.umask(old)


def test_an_existing_readable_database_is_made_private(db_path: Path) -> None:
    with Journal(db_path):
        pass
    db_path.chmod(0o644)
    with Journal(db_path):
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_history_newest_first_and_limit(journal: Journal) -> None:
    ids = [journal.start(SHA, f"{i}.png", i, None).id for i in range(5)]
    assert [e.id for e in journal.history()] == ids[::-1]
    assert [e.id for e in journal.history(limit=2)] == ids[:-3:-1]
    assert journal.history(limit=0) == []


def test_meta_round_trip(journal: Journal) -> None:
    assert journal.get_meta("rate_limits") is None
    journal.set_meta("rate_limits", '{"user_remaining": 0}')
    journal.set_meta("rate_limits", '{"user_remaining": 5}')
    assert journal.get_meta("rate_limits") == '{"user_remaining": 5}'


def test_reopen_keeps_data_and_migration_is_idempotent(db_path: Path) -> None:
    with Journal(db_path) as first:
        entry = first.start(SHA, "a.png", 10, 1)
        first.set_meta("k", "v")
    with Journal(db_path) as second:
        assert _get(second, entry.id) == entry
        assert second.get_meta("k") == "v"
    assert _pragma(db_path, "user_version") == len(MIGRATIONS)
    assert not list(db_path.parent.glob("*.corrupt-*"))


def test_corrupt_file_is_moved_aside_and_a_fresh_journal_starts(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = b"this is not a database, just garbage bytes\n" * 200
    db_path.write_bytes(garbage)

    with caplog.at_level(logging.WARNING, logger="imgdrop.journal"), Journal(db_path) as journal:
        entry = journal.start(SHA, "a.png", 10, None)
        assert journal.history() == [entry]

    (aside,) = db_path.parent.glob("history.sqlite3.corrupt-*")
    assert aside.read_bytes() == garbage
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(db_path) in warnings[0].getMessage()
    assert str(aside) in warnings[0].getMessage()


_READER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10)
deadline = time.monotonic() + 30
count = 0
while count < int(sys.argv[2]):
    count = conn.execute("SELECT count(*) FROM upload").fetchone()[0]
    if time.monotonic() > deadline:
        sys.exit(f"only saw {count} rows")
print(count)
"""


def test_another_process_reads_while_daemon_writes(journal: Journal, db_path: Path) -> None:
    rows = 200
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(db_path), str(rows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for i in range(rows):
        entry = journal.start(f"{i:064x}", f"{i}.png", i, i)
        journal.record_upload(entry.id, "imgur", f"id{i}", f"https://i.imgur.com/id{i}.png", "d")
    out, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    assert int(out) == rows


def test_second_journal_on_another_thread_reads_while_first_writes(
    journal: Journal, db_path: Path
) -> None:
    rows = 100
    errors: list[BaseException] = []
    seen: list[int] = []

    def read() -> None:
        try:
            with Journal(db_path) as cli:
                while len(cli.history()) < rows:
                    seen.append(len(cli.history(limit=rows)))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    for i in range(rows):
        journal.start(SHA, f"{i}.png", i, None)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    assert seen == sorted(seen), "a reader never sees rows disappear"


def test_concurrent_writers_all_land(journal: Journal) -> None:
    threads, per_thread = 8, 50
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for i in range(per_thread):
                entry = journal.start(f"{t:032x}{i:032x}", f"{t}-{i}.png", i, None)
                journal.record_attempt(entry.id, "HTTP 503", counts=True)
                journal.record_upload(
                    entry.id, "imgur", f"{t}-{i}", f"https://i.imgur.com/{t}-{i}", "d"
                )
                journal.finish(entry.id)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert errors == []
    history = journal.history()
    assert len(history) == threads * per_thread
    assert len({e.id for e in history}) == threads * per_thread
    assert all(e.state == "done" and e.attempts == 1 for e in history)


# --- migration 2: hosts -------------------------------------------------------------------------

# The schema exactly as imgdrop 0.x (user_version 1) created it, so the test does not depend on
# MIGRATIONS[0] staying what it was.
_V1_DDL = (
    """CREATE TABLE upload (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sha256 TEXT, name TEXT NOT NULL, size INTEGER NOT NULL, inode INTEGER,
        state TEXT NOT NULL CHECK (state IN ('uploading', 'uploaded', 'done', 'failed', 'deleted')),
        link TEXT, imgur_id TEXT, deletehash TEXT, link_file TEXT, archived_to TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
        created_at REAL NOT NULL, uploaded_at REAL, finished_at REAL,
        reused INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX upload_sha256 ON upload (sha256)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "PRAGMA user_version = 1",
)


def _make_v1_journal(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for sql in _V1_DDL:
            conn.execute(sql)
        conn.execute(
            "INSERT INTO upload (sha256, name, size, state, link, imgur_id, deletehash,"
            " created_at, uploaded_at) VALUES (?, 'old.png', 10, 'done', ?, 'old1', 'dh1', 1, 2)",
            (SHA, "https://i.imgur.com/old1.png"),
        )
    finally:
        conn.close()


def test_v1_journal_is_migrated_and_its_rows_are_imgur(db_path: Path) -> None:
    _make_v1_journal(db_path)
    with Journal(db_path) as journal:
        (old,) = journal.history()
        assert (old.host, old.imgur_id, old.deletehash, old.state) == (
            "imgur",
            "old1",
            "dh1",
            "done",
        )
        live = journal.find_live(SHA)
        assert live is not None and live.id == old.id
        new = journal.start(OTHER_SHA, "new.png", 5, None)
        recorded = journal.record_upload(new.id, "0x0.st", "x1", "https://0x0.st/x1.png", "tok")
        assert recorded.host == "0x0.st"
    assert _pragma(db_path, "user_version") == len(MIGRATIONS) >= 2
    assert not list(db_path.parent.glob("*.corrupt-*"))


def test_record_upload_keywords_and_no_delete_handle(journal: Journal) -> None:
    entry = journal.start(SHA, "a.png", 10, None)
    recorded = journal.record_upload(
        entry_id=entry.id,
        host="catbox",
        remote_id="abc.png",
        link="https://files.catbox.moe/abc.png",
        delete_handle=None,
    )
    assert (recorded.host, recorded.imgur_id, recorded.deletehash) == ("catbox", "abc.png", None)
    assert recorded.state == "uploaded" and not recorded.reused


def test_find_live_works_across_hosts(journal: Journal) -> None:
    first = journal.start(SHA, "a.png", 10, 1)
    journal.record_upload(first.id, "catbox", "c1", "https://files.catbox.moe/c1.png", None)
    journal.finish(first.id)
    live = journal.find_live(SHA)
    assert live is not None and (live.host, live.link) == (
        "catbox",
        "https://files.catbox.moe/c1.png",
    )
    copy = journal.start(SHA, "b.png", 10, 2)
    reused = journal.record_upload(
        copy.id, live.host, live.imgur_id or "", live.link or "", live.deletehash, reused=True
    )
    assert (reused.host, reused.reused) == ("catbox", True)


# --- defect 8: a failed write, COMMIT included, rolls back ---------------------------------------


def test_commit_refused_for_a_lock_rolls_back_and_later_writes_work(db_path: Path) -> None:
    """SQLITE_BUSY on COMMIT (rollback-journal mode, a reader holding its lock) left SQLite's
    transaction open: every later write failed with "cannot start a transaction within a
    transaction" until restart."""
    with Journal(db_path, busy_timeout=0.1) as journal:
        # What the journal falls back to where WAL is unavailable (it logs "WAL unavailable").
        mode = journal._conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        assert mode == "delete"
        entry = journal.start(SHA, "a.png", 10, 1)
        reader = sqlite3.connect(db_path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM upload").fetchone()  # holds a SHARED lock
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                journal.record_upload(entry.id, "imgur", "x", "https://i.imgur.com/x.png", "dh")
            waited = time.monotonic() - started
            reader.execute("COMMIT")
        finally:
            reader.close()
        assert waited < 5
        assert _get(journal, entry.id).state == "uploading", "nothing half-written"
        # The write the pipeline retries, and any other, now just works.
        recorded = journal.record_upload(entry.id, "imgur", "x", "https://i.imgur.com/x.png", "dh")
        assert (recorded.state, recorded.link) == ("uploaded", "https://i.imgur.com/x.png")
        journal.set_meta("k", "v")
        assert journal.get_meta("k") == "v"


def test_a_failing_statement_rolls_back_the_whole_write(journal: Journal) -> None:
    entry = journal.start(SHA, "a.png", 10, 1)
    with pytest.raises(sqlite3.IntegrityError):  # the state CHECK constraint
        journal._update(entry.id, "link = 'half', state = 'bogus'")
    assert _get(journal, entry.id).link is None
    journal.finish(entry.id)
    assert _get(journal, entry.id).state == "done"


@contextlib.contextmanager
def _tmpfs(options: str) -> Iterator[Path]:
    """Mount a tmpfs with `options` for the test; skip where that is impossible."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    where = Path(tempfile.mkdtemp(prefix="imgdrop-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


@pytest.fixture
def tiny_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs, so "disk full" is real."""
    with _tmpfs("size=1m,mode=0700") as where:
        yield where


def _fill(folder: Path) -> Path:
    """Fill the file system holding `folder` to the last byte; return the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        chunk = b"\0" * 65536
        while chunk:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                chunk = chunk[: len(chunk) // 2]
    return filler


def test_disk_full_writes_fail_cleanly_and_recover(tiny_disk: Path) -> None:
    """On a full disk every write either commits whole or raises sqlite3.Error/OSError after
    rolling back; once space is back, writes work on the same connection, and a reopened journal
    holds exactly the writes that returned."""
    path = tiny_disk / "history.sqlite3"
    with Journal(path) as journal:
        entries = [journal.start(f"{i:064x}", f"{i}.png", i, i) for i in range(40)]
        filler = _fill(tiny_disk)
        committed, failed = [], []
        for entry in entries:
            try:
                journal.record_upload(
                    entry.id, "imgur", f"id{entry.id}", f"https://i.imgur.com/{entry.id}", "d"
                )
            except (sqlite3.Error, OSError) as exc:
                failed.append((entry.id, str(exc)))
            else:
                committed.append(entry.id)
        assert failed, "the full disk refused no write at all"
        assert all("full" in message for _, message in failed), failed
        filler.unlink()
        for entry_id, _ in failed:  # the pipeline's retry of the write
            journal.record_upload(
                entry_id, "imgur", f"id{entry_id}", f"https://i.imgur.com/{entry_id}", "d"
            )
        journal.set_meta("after", "full")
    with Journal(path) as reopened:
        assert all(e.state == "uploaded" for e in reopened.history())
        assert len(reopened.history()) == 40
        assert reopened.get_meta("after") == "full"
    print(f"disk full: {len(committed)} writes fit, {len(failed)} refused, all recovered")


# --- defect 12: names that are not UTF-8 ---------------------------------------------------------


def test_names_that_are_not_utf8_are_stored_and_round_trip(tmp_path: Path, db_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    raw = b"caf\xe9 \xff\xfe.png"  # Latin-1 bytes, as an old SMB share or a zip might give
    try:
        (inbox / os.fsdecode(raw)).touch()
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    (name,) = os.listdir(inbox)  # noqa: PTH208 - exactly what the watcher is handed
    assert name == os.fsdecode(raw) and "\udce9" in name  # a str holding surrogateescape'd bytes
    with Journal(db_path) as journal:
        entry = journal.start(SHA, name, 10, 7)
        assert entry.name == name
        assert journal.find_open(SHA, name, 7) == entry
        assert journal.find_open(SHA, "caf\xe9 \xff\xfe.png", 7) is None, "other text, other name"
        journal.set_link_file(entry.id, tmp_path / "Links" / f"{name}.webloc")
        journal.record_attempt(entry.id, f"{name}: HTTP 503", counts=True)
        journal.record_upload(entry.id, "imgur", "x", "https://i.imgur.com/x.png", "d")
        journal.set_archived_to(entry.id, tmp_path / "Done" / name)
        journal.finish(entry.id)
        journal.fail(None, name + "2", 5, None, f"{name}2 is not an image")
        assert [e.id for e in journal.find_ref(name)] == [entry.id]
    with Journal(db_path) as reopened:
        done = _get(reopened, entry.id)
        assert done.name == name
        assert done.link_file == str(tmp_path / "Links" / f"{name}.webloc")
        assert done.archived_to == str(tmp_path / "Done" / name)
        assert os.fsencode(done.name) == raw, "the very bytes the file system gave"
        assert reopened.history()[0].error == f"{name}2 is not an image"
    # Stored as the file system's own bytes (BLOBs), not as some lossy text.
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT name FROM upload ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [value for (value,) in rows] == [raw, raw.replace(b".png", b".png2")]


def test_utf8_names_stay_text_and_lone_surrogates_do_not_raise(
    journal: Journal, db_path: Path
) -> None:
    entry = journal.start(SHA, "Screenshot 4.42.48\u202fPM.png", 10, 1)
    # A hostile host's JSON may carry a lone surrogate ("\\ud800") that no file system gave.
    recorded = journal.record_upload(entry.id, "imgur", "x\ud800", "https://h/x\ud800", None)
    assert recorded.imgur_id is not None and recorded.imgur_id.startswith("x")
    assert journal.find_open(SHA, "Screenshot 4.42.48\u202fPM.png", 1) is not None
    assert _pragma(db_path, "user_version") == len(MIGRATIONS)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT typeof(name) FROM upload").fetchone()[0] == "text"
    finally:
        conn.close()


# --- defect 15: a journal that cannot be used is one plain line, not a traceback -----------------


def _one_line(err: JournalError, path: Path) -> str:
    message = str(err)
    assert "\n" not in message and str(path) in message and "journal:" in message, message
    return message


def test_a_journal_from_a_newer_imgdrop_is_refused_untouched(db_path: Path) -> None:
    with Journal(db_path) as journal:
        journal.start(SHA, "a.png", 10, None)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(JournalError) as caught:
        Journal(db_path)
    message = _one_line(caught.value, db_path)
    assert "newer imgdrop" in message
    assert f"schema 7; this one knows {len(MIGRATIONS)}" in message
    assert "upgrade imgdrop" in message
    assert _pragma(db_path, "user_version") == 7, "left as the newer imgdrop wrote it"
    assert not list(db_path.parent.glob("*.corrupt-*")), "a newer journal is not corrupt"


def _open_and_write(path: Path) -> Callable[[], object]:
    def action() -> None:
        with Journal(path) as journal:
            journal.start(SHA, "a.png", 10, None)

    return action


def _give(path: Path, user: str, mode: int) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)


def _journal_for_nobody(shared_dir: Path) -> Path:
    """A working journal owned by nobody in a folder owned by nobody."""
    folder = shared_dir / "data"
    path = folder / "history.sqlite3"
    with Journal(path) as journal:
        journal.start(OTHER_SHA, "old.png", 10, None)
    for file in [folder, *folder.iterdir()]:
        _give(file, "nobody", 0o700 if file.is_dir() else 0o600)
    return path


def test_nobody_can_use_their_own_journal(shared_dir: Path) -> None:
    path = _journal_for_nobody(shared_dir)
    assert as_nobody(_open_and_write(path)) == "ok"


def test_a_read_only_journal_is_one_line_with_the_fix(shared_dir: Path) -> None:
    path = _journal_for_nobody(shared_dir)
    path.chmod(0o400)
    outcome = as_nobody(_open_and_write(path))
    assert outcome.startswith("JournalError: "), outcome
    assert f"the journal {path} is read-only: `chmod u+rw {path}`" in outcome
    assert "journal:" in outcome and "\n" not in outcome


def test_a_read_only_folder_is_one_line_with_the_fix(shared_dir: Path) -> None:
    path = _journal_for_nobody(shared_dir)
    path.parent.chmod(0o500)
    outcome = as_nobody(_open_and_write(path))
    assert outcome.startswith("JournalError: "), outcome
    assert f"cannot write the journal's folder {path.parent}" in outcome
    assert f"chmod u+rwx {path.parent}" in outcome


def test_a_journal_owned_by_someone_else_is_one_line_with_the_fix(shared_dir: Path) -> None:
    """What one `sudo imgdrop run` leaves behind: root's -wal and -shm beside the user's file,
    even world-writable; before, chmod's EPERM surfaced as a macOS privacy hint."""
    path = _journal_for_nobody(shared_dir)
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        companion.touch()
        _give(companion, "root", 0o666)
    outcome = as_nobody(_open_and_write(path))
    assert outcome.startswith("JournalError: "), outcome
    assert f"the journal {path}-wal belongs to root, not to you (nobody)" in outcome
    assert f"sudo chown nobody {path}-wal" in outcome


def test_a_folder_that_cannot_be_created_is_one_line(shared_dir: Path) -> None:
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o755)  # root's, so nobody cannot create anything inside
    path = locked / "data" / "history.sqlite3"
    outcome = as_nobody(_open_and_write(path))
    assert outcome.startswith("JournalError: "), outcome
    assert f"cannot create the journal's folder {path.parent}" in outcome


# --- macOS durability ------------------------------------------------------------------------


def _fullfsync(journal: Journal) -> int:
    # The pragma is per connection: only the journal's own connection can tell.
    return int(journal._conn.execute("PRAGMA fullfsync").fetchone()[0])


def test_fullfsync_is_on_for_macos_and_off_elsewhere(db_path: Path) -> None:
    with Journal(db_path, darwin=True) as mac:
        assert _fullfsync(mac) == 1
        mac.start(SHA, "a.png", 10, None)  # commits still work with it on
    with Journal(db_path, darwin=False) as linux:
        assert _fullfsync(linux) == 0


def test_the_default_follows_the_platform(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert journal_module.is_darwin()
    with Journal(db_path) as journal:
        assert _fullfsync(journal) == 1
    monkeypatch.setattr(sys, "platform", "linux")
    assert not journal_module.is_darwin()
    with Journal(db_path) as journal:
        assert _fullfsync(journal) == 0


# --- queries for the commands --------------------------------------------------------------------


def _set_times(db_path: Path, entry_id: int, created: float, uploaded: float | None) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute(
            "UPDATE upload SET created_at = ?, uploaded_at = ? WHERE id = ?",
            (created, uploaded, entry_id),
        )
    finally:
        conn.close()


def _uploaded(journal: Journal, name: str, remote_id: str, host: str = "imgur") -> Entry:
    """A new row uploaded to `host` as `remote_id`; its bytes are unique to that pair."""
    entry = journal.start(
        hashlib.sha256(f"{host}/{remote_id}".encode()).hexdigest(), name, 10, None
    )
    return journal.record_upload(entry.id, host, remote_id, f"https://{host}/{remote_id}", "dh")


def test_history_since_uses_upload_time_else_creation(journal: Journal, db_path: Path) -> None:
    old = _uploaded(journal, "old.png", "o")
    _set_times(db_path, old.id, created=100.0, uploaded=200.0)
    late = _uploaded(journal, "late.png", "l")  # taken before, uploaded after the cut
    _set_times(db_path, late.id, created=100.0, uploaded=1000.0)
    failed = journal.start(SHA, "failed.png", 10, None)
    journal.fail(failed.id, "failed.png", 10, SHA, "not an image")
    _set_times(db_path, failed.id, created=900.0, uploaded=None)
    assert [e.id for e in journal.history(since=500.0)] == [failed.id, late.id]
    assert [e.id for e in journal.history(since=500.0, limit=1)] == [failed.id]
    assert [e.id for e in journal.history(since=0.0)] == [failed.id, late.id, old.id]
    assert journal.history(since=2000.0) == []


def test_find_ref_by_id_link_name_and_last(journal: Journal) -> None:
    first = _uploaded(journal, "shot.png", "aaa")
    second = _uploaded(journal, "shot.png", "bbb", host="0x0.st")
    journal.start(SHA, "pending.png", 10, None)  # no upload yet: never a ref
    copy = journal.start(first.sha256 or "", "copy.png", 10, None)
    copy = journal.record_upload(copy.id, "imgur", "aaa", "https://imgur/aaa", "dh", reused=True)

    assert journal.find_ref("aaa") == [copy, first], "every row holding that upload"
    assert journal.find_ref("https://imgur/aaa") == [copy, first]
    assert journal.find_ref("https://0x0.st/bbb") == [second]
    assert journal.find_ref("shot.png") == [second], "a name: its newest upload"
    assert journal.find_ref("last") == [copy]
    assert journal.find_ref("pending.png") == []
    assert journal.find_ref("nothing") == []


def test_find_ref_last_on_an_empty_journal(journal: Journal) -> None:
    assert journal.find_ref("last") == []
    assert journal.last_upload() is None


def test_last_upload_is_by_upload_time_in_any_state(journal: Journal, db_path: Path) -> None:
    newer_row = _uploaded(journal, "b.png", "b")
    _set_times(db_path, newer_row.id, created=10.0, uploaded=20.0)
    recovered = _uploaded(journal, "a.png", "a")  # an older drop finished after a restart
    _set_times(db_path, recovered.id, created=5.0, uploaded=30.0)
    last = journal.last_upload()
    assert last is not None and last.id == recovered.id
    journal.mark_deleted(recovered.id)
    last = journal.last_upload()
    assert last is not None and (last.id, last.state) == (recovered.id, "deleted"), (
        "`delete last` twice says 'already deleted' rather than deleting an older upload"
    )


def test_mark_deleted_marks_every_copy_of_that_upload_only(journal: Journal) -> None:
    original = _uploaded(journal, "a.png", "aaa")
    journal.finish(original.id)
    copy = journal.start(original.sha256 or "", "copy.png", 10, None)
    journal.record_upload(copy.id, "imgur", "aaa", "https://imgur/aaa", "dh", reused=True)
    other = _uploaded(journal, "b.png", "bbb")
    same_id_elsewhere = _uploaded(journal, "c.png", "aaa", host="0x0.st")  # not the same link

    assert journal.mark_deleted(copy.id) == 2
    states = {e.id: e.state for e in journal.history()}
    assert states == {
        original.id: "deleted",
        copy.id: "deleted",
        other.id: "uploaded",
        same_id_elsewhere.id: "uploaded",
    }
    assert journal.find_live(original.sha256 or "") is None, "the same bytes upload afresh"
    with pytest.raises(KeyError):
        journal.mark_deleted(999)


def test_finish_keeps_a_row_deleted_meanwhile(journal: Journal) -> None:
    """`imgdrop delete` during the link/archive step must not make the dead link live again."""
    entry = _uploaded(journal, "a.png", "aaa")
    journal.mark_deleted(entry.id)
    journal.finish(entry.id)
    done = _get(journal, entry.id)
    assert done.state == "deleted" and done.finished_at is not None
    assert journal.find_live(entry.sha256 or "") is None


def test_uploads_since_counts_real_uploads_only(journal: Journal, db_path: Path) -> None:
    early = _uploaded(journal, "early.png", "e")
    _set_times(db_path, early.id, created=10.0, uploaded=10.0)
    today = _uploaded(journal, "today.png", "t")
    copy = journal.start(today.sha256 or "", "copy.png", 10, None)
    journal.record_upload(copy.id, "imgur", "t", "https://imgur/t", "dh", reused=True)
    journal.fail(None, "bad.txt", 3, None, "not an image")
    deleted = _uploaded(journal, "gone.png", "g")
    journal.mark_deleted(deleted.id)
    assert journal.uploads_since(100.0) == 2, "today.png and gone.png; not the copy, not bad.txt"
    assert journal.uploads_since(0.0) == 3
    assert journal.uploads_since(time.time() + 60) == 0


def test_a_read_only_file_system_is_one_line() -> None:
    """EROFS stops root too; "chmod" would be the wrong fix."""
    with _tmpfs("ro,size=64k") as where:
        path = where / "history.sqlite3"
        with pytest.raises(JournalError) as caught:
            Journal(path)
        message = _one_line(caught.value, path.parent)
        assert "read-only file system" in message and "chmod" not in message
