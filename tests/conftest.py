"""Shared fixtures: an isolated home, bounded waits, leak checks, the fake Imgur server."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakeimgur import FakeImgur
from tests.workspace import DaemonProcess, Workspace, make_workspace

CLIENT_ID = "test-client-id-0123456789"


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, message: str = "condition"
) -> None:
    """Poll `predicate` until it is truthy; fail the test with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and every XDG location into tmp_path so no test touches the real home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in [
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_PICTURES_DIR", "Pictures"),
    ]:
        monkeypatch.setenv(var, str(home / sub))
    for var in ("IMGDROP_CONFIG", "IMGDROP_CLIENT_ID", "IMGDROP_API_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (watchdog observers are easy to forget)."""
    before = set(threading.enumerate())
    yield

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive()]

    deadline = time.monotonic() + 5
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked(), f"threads left running: {leaked()}"


@pytest.fixture
def fake_imgur() -> Iterator[FakeImgur]:
    """A local Imgur-compatible API on loopback, accepting CLIENT_ID."""
    server = FakeImgur(client_id=CLIENT_ID)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def workspace(tmp_path: Path, fake_imgur: FakeImgur) -> Workspace:
    """Folders and a config pointing at the fake Imgur, with short settle and retry times."""
    return make_workspace(tmp_path / "ws", fake_imgur.url, CLIENT_ID)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemon processes started by a test; any still running at the end are killed."""
    started: list[DaemonProcess] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to run as")
    where = Path(tempfile.mkdtemp(prefix="imgdrop-journal-"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def as_nobody(action: Callable[[], object]) -> str:
    """Run `action` in a forked child as user nobody; return "ok" or "<Error>: <message>".

    A fork rather than `subprocess(user=...)`: the interpreter lives under /root, which nobody
    cannot execute, while a forked child already has everything loaded.
    """
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        outcome = "child crashed"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            action()
            outcome = "ok"
        except BaseException as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(BaseException):
                os.write(write_end, outcome.encode("utf-8", "replace"))
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return result
