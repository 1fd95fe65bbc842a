"""Shared fixtures: an isolated home, bounded waits, leak checks, the fake Imgur server."""

from __future__ import annotations

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
