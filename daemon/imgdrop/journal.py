"""Upload history in SQLite (WAL): one row per upload, so a restart finishes work, never repeats it.

Rows move uploading -> uploaded -> done (or failed / deleted). The daemon's workers share one
connection behind a lock; the CLI opens its own and reads while the daemon writes (WAL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

STATES = ("uploading", "uploaded", "done", "failed", "deleted")

# Schema history: entry N takes user_version N to N+1. Append new entries; never edit old ones.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE upload (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sha256 TEXT, name TEXT NOT NULL, size INTEGER NOT NULL, inode INTEGER,
            state TEXT NOT NULL CHECK (state IN {STATES!r}),
            link TEXT, imgur_id TEXT, deletehash TEXT, link_file TEXT, archived_to TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
            created_at REAL NOT NULL, uploaded_at REAL, finished_at REAL,
            reused INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX upload_sha256 ON upload (sha256)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # 2: uploads go to several hosts. Rows from before were all Imgur uploads; `imgur_id` now holds
    # the host's id and `deletehash` its delete handle (names kept so old files need no rewrite).
    ("ALTER TABLE upload ADD COLUMN host TEXT NOT NULL DEFAULT 'imgur'",),
)

# Long enough to wait out another process's write or migration, short enough to surface a hang.
_BUSY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Entry:
    """One upload as recorded in the journal."""

    id: int
    sha256: str | None
    name: str
    size: int
    inode: int | None
    state: str
    link: str | None
    imgur_id: str | None
    deletehash: str | None
    link_file: str | None
    archived_to: str | None
    attempts: int
    error: str | None
    created_at: float
    uploaded_at: float | None
    finished_at: float | None
    reused: bool
    host: str = "imgur"


_SELECT = f"SELECT {', '.join(f.name for f in fields(Entry))} FROM upload"  # noqa: S608 - column names


def _entry(row: Any) -> Entry:
    """Return the Entry for a row selected with _SELECT (reused is stored as 0/1)."""
    values: dict[str, Any] = {f.name: value for f, value in zip(fields(Entry), row, strict=True)}
    values["reused"] = bool(values["reused"])
    return Entry(**values)


def _make_private(path: Path) -> None:
    """Restrict the database and its -wal/-shm companions to the owner (files made before 0600)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").chmod(0o600)


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Return True for "not a database" / "malformed": subclasses mean busy, I/O, permissions."""
    return type(exc) is sqlite3.DatabaseError


class Journal:
    """Thread-safe upload history; each method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            # Keep the bad file for inspection, but never crash-loop on it: start afresh.
            aside = Path(f"{path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{path}{suffix}")
                if src.exists():
                    src.rename(f"{aside}{suffix}")
            log.warning("journal %s is unreadable (%s); moved it to %s", path, exc, aside)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        """Return a migrated connection; raises sqlite3.DatabaseError when the file is bad."""
        # The file holds deletehashes: create it private whatever the umask (SQLite would use
        # 0644 & ~umask). SQLite gives -wal and -shm the main file's mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so DDL is transactional too.
        conn = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("database disk image is malformed")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.warning("journal %s: WAL unavailable, using %s mode", self.path, mode)
            # FULL: every commit is on disk before we write the link file or file the original,
            # so a power cut never keeps those but loses the upload and its deletehash.
            conn.execute("PRAGMA synchronous=FULL")
            self._migrate(conn)
            _make_private(self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the migrations this file lacks; raises RuntimeError for a newer schema."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
            return
        # IMMEDIATE takes the write lock before re-reading, so two processes never both migrate.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this imgdrop knows; "
                    "upgrade imgdrop"
                )
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Yield the connection inside a write transaction, committed on success."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, where: str, params: tuple[object, ...]) -> Entry | None:
        """Return the newest entry matching `where`, or None."""
        with self._lock:
            sql = f"{_SELECT} WHERE {where} ORDER BY id DESC LIMIT 1"
            row = self._conn.execute(sql, params).fetchone()
        return None if row is None else _entry(row)

    def _insert(self, columns: str, params: tuple[object, ...]) -> Entry:
        """Insert one row and return it."""
        # `columns` is always a literal from this class, never input.
        marks = ", ".join("?" * len(params))
        with self._write() as conn:
            cur = conn.execute(f"INSERT INTO upload ({columns}) VALUES ({marks})", params)  # noqa: S608
            return _entry(conn.execute(f"{_SELECT} WHERE id = ?", (cur.lastrowid,)).fetchone())

    def _update(self, entry_id: int, assignments: str, params: tuple[object, ...] = ()) -> Entry:
        """Update one row and return it; raises KeyError when there is no such entry."""
        with self._write() as conn:
            sql = f"UPDATE upload SET {assignments} WHERE id = ?"  # noqa: S608 - fixed clauses
            if conn.execute(sql, (*params, entry_id)).rowcount == 0:
                raise KeyError(f"no journal entry {entry_id}")
            return _entry(conn.execute(f"{_SELECT} WHERE id = ?", (entry_id,)).fetchone())

    def start(self, sha256: str, name: str, size: int, inode: int | None) -> Entry:
        """Return a new entry in state 'uploading'."""
        return self._insert(
            "sha256, name, size, inode, state, created_at",
            (sha256, name, size, inode, "uploading", time.time()),
        )

    def find_open(self, sha256: str, name: str, inode: int | None) -> Entry | None:
        """Return the newest unfinished entry for this very drop (crash recovery), or None."""
        return self._one(
            "sha256 = ? AND name = ? AND inode IS ? AND state IN ('uploading', 'uploaded')",
            (sha256, name, inode),
        )

    def find_live(self, sha256: str) -> Entry | None:
        """Return the newest live upload of this content, whose link can be reused, or None."""
        return self._one(
            "sha256 = ? AND imgur_id IS NOT NULL AND state IN ('uploaded', 'done')", (sha256,)
        )

    def record_upload(
        self,
        entry_id: int,
        host: str,
        remote_id: str,
        link: str,
        delete_handle: str | None,
        reused: bool = False,
    ) -> Entry:
        """Record a successful (or reused) upload to `host` and return the updated entry.

        Either the whole row is committed or this raises (sqlite3.Error / OSError) after rolling
        back, so the caller can keep the host's answer and simply call again.
        """
        return self._update(
            entry_id,
            "state = 'uploaded', host = ?, imgur_id = ?, link = ?, deletehash = ?, reused = ?,"
            " uploaded_at = ?, error = NULL",
            (host, remote_id, link, delete_handle, int(reused), time.time()),
        )

    def record_attempt(self, entry_id: int, error: str, counts: bool) -> int:
        """Store the last error, count the attempt when it `counts`; return the attempts so far."""
        return self._update(
            entry_id, "error = ?, attempts = attempts + ?", (error, int(counts))
        ).attempts

    def set_link_file(self, entry_id: int, path: Path) -> None:
        """Record the link file written, so recovery never writes a second one."""
        self._update(entry_id, "link_file = ?", (str(path),))

    def set_archived_to(self, entry_id: int, path: Path) -> None:
        """Record where the original was filed."""
        self._update(entry_id, "archived_to = ?", (str(path),))

    def finish(self, entry_id: int) -> None:
        """Mark the entry done."""
        self._update(entry_id, "state = 'done', finished_at = ?", (time.time(),))

    def fail(
        self, entry_id: int | None, name: str, size: int, sha256: str | None, error: str
    ) -> None:
        """Mark the entry failed, or record a new failed entry when there is none yet."""
        now = time.time()
        if entry_id is None:
            self._insert(
                "sha256, name, size, state, error, created_at, finished_at",
                (sha256, name, size, "failed", error, now, now),
            )
        else:
            self._update(entry_id, "state = 'failed', error = ?, finished_at = ?", (error, now))

    def mark_deleted(self, entry_id: int) -> None:
        """Mark the upload as deleted from Imgur, so its link is never reused."""
        self._update(entry_id, "state = 'deleted'")

    def unfinished(self) -> list[Entry]:
        """Return the entries uploaded but not yet done (state 'uploaded'), oldest first."""
        with self._lock:
            rows = self._conn.execute(f"{_SELECT} WHERE state = 'uploaded' ORDER BY id").fetchall()
        return [_entry(row) for row in rows]

    def history(self, limit: int | None = None) -> list[Entry]:
        """Return entries newest first, at most `limit` of them."""
        with self._lock:
            rows = self._conn.execute(
                f"{_SELECT} ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,)
            ).fetchall()
        return [_entry(row) for row in rows]

    def get_meta(self, key: str) -> str | None:
        """Return the stored value for `key`, or None."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store `value` under `key` (small state such as rate limits)."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
