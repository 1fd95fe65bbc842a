"""Upload history in SQLite (WAL): one row per upload, so a restart finishes work, never repeats it.

Rows move uploading -> uploaded -> done (or failed / deleted); each row names its host. The
daemon's workers share one connection behind a lock; the CLI opens its own and reads while the
daemon writes (WAL). Every write commits whole or rolls back and raises; a journal this user
cannot use raises JournalError with one line for the person; a corrupt one is moved aside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import sqlite3
import sys
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

# The files SQLite keeps for one database: all must be ours and writable.
_COMPANIONS = ("", "-wal", "-shm")

_ELSEWHERE = "set `journal:` in the config to another file"
_FIX = f"or {_ELSEWHERE}"


class JournalError(Exception):
    """The journal cannot be used as it is; the message is one plain line naming file and fix."""


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


def _to_sql(value: object) -> object:
    """Return `value` as SQLite can store it: a str that is not valid UTF-8 becomes its bytes.

    Names come from os.listdir, so a file named with invalid UTF-8 is a str holding
    surrogateescape'd bytes, which sqlite3 refuses to encode. Stored as a BLOB of the original
    bytes, it compares equal to the same name bound the same way, and reads back as the same str.
    """
    if not isinstance(value, str):
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate not from a file name (e.g. parsed JSON)
            return value.encode("utf-8", "surrogatepass")
    return value


def _bind(params: tuple[object, ...]) -> tuple[object, ...]:
    """Return `params` ready to bind (see _to_sql)."""
    return tuple(_to_sql(p) for p in params)


def _from_sql(value: object) -> object:
    """Return a column value as Python sees it: BLOBs written by _to_sql become str again."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _entry(row: Any) -> Entry:
    """Return the Entry for a row selected with _SELECT (reused is stored as 0/1)."""
    values: dict[str, Any] = {
        f.name: _from_sql(value) for f, value in zip(fields(Entry), row, strict=True)
    }
    values["reused"] = bool(values["reused"])
    return Entry(**values)


def _make_private(path: Path) -> None:
    """Restrict the database and its -wal/-shm companions to the owner (files made before 0600)."""
    for suffix in _COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").chmod(0o600)


def _is_corrupt(exc: BaseException) -> bool:
    """Return True for "not a database" / "malformed": subclasses mean busy, I/O, permissions."""
    return type(exc) is sqlite3.DatabaseError


def is_darwin() -> bool:
    """Return True on macOS, where only F_FULLFSYNC gets a commit past the drive's cache."""
    return sys.platform == "darwin"


def _can(path: Path, mode: int) -> bool:
    """Return True when this process (its effective ids, as SQLite will be) may use `path`."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _owner(uid: int) -> str:
    """Return the user name for `uid` (or the number when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _read_only_mount(folder: Path) -> bool:
    """Return True when `folder` is on a file system mounted read-only (no chmod helps)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False  # the access checks below will say what is wrong


def _access_problem(path: Path) -> str | None:
    """Return why this user cannot use the journal files at `path` (one line with the fix)."""
    me = os.geteuid()
    for suffix in _COMPANIONS:
        file = Path(f"{path}{suffix}")
        try:
            st = file.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"cannot reach the journal {file} ({exc.strerror}): fix its folder {_FIX}."
        # Typically left by one `sudo imgdrop`: SQLite would open it read-only, or chmod would
        # fail with EPERM, which reads like a macOS privacy refusal.
        if me not in (0, st.st_uid):  # root may use anyone's file
            return (
                f"the journal {file} belongs to {_owner(st.st_uid)}, not to you "
                f"({_owner(me)}): `sudo chown {_owner(me)} {file}` {_FIX}."
            )
        if not _can(file, os.R_OK | os.W_OK):
            return f"the journal {file} is read-only: `chmod u+rw {file}` {_FIX}."
    folder = path.parent
    if _read_only_mount(folder):
        return f"the journal's folder {folder} is on a read-only file system: {_ELSEWHERE}."
    if not _can(folder, os.W_OK | os.X_OK):
        # SQLite creates -wal/-shm (or -journal) beside the file at every write.
        return f"cannot write the journal's folder {folder}: `chmod u+rwx {folder}` {_FIX}."
    return None


def _explain(path: Path, exc: BaseException) -> str:
    """Return the one-line JournalError message for an open failure that is not corruption."""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return f"the journal {path} is locked by another program: close it and retry, {_FIX}."
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot open the journal {path} ({reason}): check the file and its folder, {_FIX}."


class Journal:
    """Thread-safe upload history; each method is one short transaction."""

    def __init__(
        self,
        path: Path,
        *,
        darwin: bool | None = None,
        busy_timeout: float = _BUSY_TIMEOUT_SECONDS,
    ) -> None:
        """Open (creating or migrating) the journal; raises JournalError when it cannot be used.

        `darwin` (default: running on macOS) turns on F_FULLFSYNC commits.
        """
        self.path = path
        self._darwin = is_darwin() if darwin is None else darwin
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal's folder {path.parent} ({exc.strerror}): {_FIX}."
            ) from exc
        problem = _access_problem(path)
        if problem is not None:
            raise JournalError(problem)
        try:
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc):
                    raise
                self._move_aside(exc)
                self._conn = self._open()
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(_explain(path, exc)) from exc

    def _move_aside(self, exc: BaseException) -> None:
        """Rename a corrupt journal to <journal>.corrupt-<time>: kept to inspect, no crash loop."""
        aside = Path(f"{self.path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in _COMPANIONS:
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.rename(f"{aside}{suffix}")
        log.warning("journal %s is unreadable (%s); moved it to %s", self.path, exc, aside)

    def _open(self) -> sqlite3.Connection:
        """Return a migrated connection; raises sqlite3.DatabaseError when the file is bad."""
        # The file holds deletehashes: create it private whatever the umask (SQLite would use
        # 0644 & ~umask). SQLite gives -wal and -shm the main file's mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so DDL is transactional too.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("database disk image is malformed")
            self._check_version(conn)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.warning("journal %s: WAL unavailable, using %s mode", self.path, mode)
            # FULL: every commit is on disk before we write the link file or file the original,
            # so a power cut never keeps those but loses the upload and its deletehash.
            conn.execute("PRAGMA synchronous=FULL")
            if self._darwin:
                # macOS fsync() leaves the data in the drive's cache: only F_FULLFSYNC makes the
                # commit survive a power cut (it also covers WAL checkpoints).
                conn.execute("PRAGMA fullfsync=ON")
            self._migrate(conn)
            _make_private(self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> None:
        """Raise JournalError for a journal written by a newer imgdrop (before touching it)."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise JournalError(
                f"the journal {self.path} is from a newer imgdrop (schema {version}; this one "
                f"knows {len(MIGRATIONS)}): upgrade imgdrop {_FIX}."
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the migrations this file lacks; raises JournalError for a newer schema."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
            return
        # IMMEDIATE takes the write lock before re-reading, so two processes never both migrate.
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._check_version(conn)  # another process may have upgraded it meanwhile
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
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
        """Yield the connection inside a write transaction, committed on success.

        Any failure, the COMMIT's included, rolls back before it propagates, so the next write
        starts clean: a COMMIT refused with SQLITE_BUSY leaves SQLite's transaction open, and
        every later BEGIN would fail with "cannot start a transaction within a transaction".
        """
        with self._lock:
            _rollback(self._conn)  # only if an earlier ROLLBACK itself failed
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                _rollback(self._conn)
                raise

    def _many(self, where: str, params: tuple[object, ...] = ()) -> list[Entry]:
        """Return the entries matching `where` (which may end in ORDER BY / LIMIT)."""
        with self._lock:
            rows = self._conn.execute(f"{_SELECT} WHERE {where}", _bind(params)).fetchall()
        return [_entry(row) for row in rows]

    def _one(self, where: str, params: tuple[object, ...], order: str = "id DESC") -> Entry | None:
        """Return the first entry matching `where` in `order` (default: the newest), or None."""
        found = self._many(f"{where} ORDER BY {order} LIMIT 1", params)
        return found[0] if found else None

    def _insert(self, columns: str, params: tuple[object, ...]) -> Entry:
        """Insert one row and return it."""
        # `columns` is always a literal from this class, never input.
        marks = ", ".join("?" * len(params))
        with self._write() as conn:
            sql = f"INSERT INTO upload ({columns}) VALUES ({marks})"  # noqa: S608
            cur = conn.execute(sql, _bind(params))
            return _entry(conn.execute(f"{_SELECT} WHERE id = ?", (cur.lastrowid,)).fetchone())

    def _update(self, entry_id: int, assignments: str, params: tuple[object, ...] = ()) -> Entry:
        """Update one row and return it; raises KeyError when there is no such entry."""
        with self._write() as conn:
            sql = f"UPDATE upload SET {assignments} WHERE id = ?"  # noqa: S608 - fixed clauses
            if conn.execute(sql, _bind((*params, entry_id))).rowcount == 0:
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
        """Mark the entry done (a row deleted meanwhile stays deleted: its link is gone)."""
        self._update(
            entry_id,
            "state = CASE state WHEN 'deleted' THEN state ELSE 'done' END, finished_at = ?",
            (time.time(),),
        )

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

    def mark_deleted(self, entry_id: int) -> int:
        """Mark the entry's upload deleted, so its link is never reused; return the rows marked.

        Copies that reused the same link (same host) are marked too: the upload is gone for all.
        Raises KeyError when there is no such entry.
        """
        with self._write() as conn:
            row = conn.execute("SELECT host, link FROM upload WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise KeyError(f"no journal entry {entry_id}")
            conn.execute("UPDATE upload SET state = 'deleted' WHERE id = ?", (entry_id,))
            copies = conn.execute(
                "UPDATE upload SET state = 'deleted' WHERE host = ? AND link = ? AND id != ?"
                " AND state IN ('uploaded', 'done')",
                (*row, entry_id),
            ).rowcount
        return 1 + copies

    def unfinished(self) -> list[Entry]:
        """Return the entries uploaded but not yet done (state 'uploaded'), oldest first."""
        return self._many("state = 'uploaded' ORDER BY id")

    def history(self, limit: int | None = None, since: float | None = None) -> list[Entry]:
        """Return entries newest first: at most `limit`, uploaded (or made) at or after `since`."""
        cap = -1 if limit is None else limit
        if since is None:
            return self._many("1 ORDER BY id DESC LIMIT ?", (cap,))
        return self._many(
            "COALESCE(uploaded_at, created_at) >= ? ORDER BY id DESC LIMIT ?", (since, cap)
        )

    def last_upload(self) -> Entry | None:
        """Return the most recently uploaded (or reused) entry in any state, or None."""
        return self._one("uploaded_at IS NOT NULL", (), order="uploaded_at DESC, id DESC")

    def find_ref(self, ref: str) -> list[Entry]:
        """Return the uploaded entries `ref` names, newest first ([] when none).

        `last`: the last upload. Else the host's id or the link: every row holding that upload
        (copies included). Else an original file name: its newest upload. Deleted rows count,
        so a second delete can say it was done already.
        """
        if ref == "last":
            last = self.last_upload()
            return [] if last is None else [last]
        rows = self._many(
            "link IS NOT NULL AND (imgur_id = ? OR link = ?) ORDER BY id DESC", (ref, ref)
        )
        if rows:
            return rows
        named = self._one("link IS NOT NULL AND name = ?", (ref,))
        return [] if named is None else [named]

    def uploads_since(self, epoch: float) -> int:
        """Return how many files went to a host at or after `epoch` (reused links not counted)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM upload WHERE uploaded_at >= ? AND reused = 0", (epoch,)
            ).fetchone()
        return int(row[0])

    def get_meta(self, key: str) -> str | None:
        """Return the stored value for `key`, or None."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store `value` under `key` (small state such as rate limits)."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _rollback(conn: sqlite3.Connection) -> None:
    """End the open transaction, if any, keeping the error that brought us here.

    SQLite rolls back by itself after some failures (disk full, I/O error), so ROLLBACK may
    have nothing to do; after others (SQLITE_BUSY on COMMIT) the transaction is still open.
    """
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
