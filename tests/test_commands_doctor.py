"""`imgdrop doctor`: one line per check with the fix; 0 when all pass, else 1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from imgdrop import managers
from tests.commandkit import imgdrop
from tests.conftest import CLIENT_ID, wait_until
from tests.workspace import DaemonProcess, Workspace


class _Credits(BaseHTTPRequestHandler):
    """Imgur's GET /3/credits: 200 for CLIENT_ID, 403 otherwise (the shared fake lacks it yet)."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        ok = self.headers.get("Authorization") == f"Client-ID {CLIENT_ID}"
        doc = {"data": {"UserRemaining": 500, "ClientRemaining": 12000}} if ok else {"data": {}}
        body = json.dumps({**doc, "success": ok, "status": 200 if ok else 403}).encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def credits_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Credits)
    thread = threading.Thread(target=server.serve_forever, name="credits", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_everything_in_place_passes(
    workspace: Workspace, credits_url: str, daemons: list[DaemonProcess]
) -> None:
    workspace.write(api_url=credits_url, client_id=CLIENT_ID)
    for folder in (workspace.outbox, workspace.done, workspace.failed):
        folder.mkdir(parents=True, exist_ok=True)
    unit = managers.unit_path()
    unit.parent.mkdir(parents=True)
    unit.write_text("[Unit]\n")
    proc = DaemonProcess(workspace)
    daemons.append(proc)
    wait_until(proc.started, 10, "the daemon to start")
    done = imgdrop(workspace, "doctor")
    assert done.returncode == 0, done.stdout
    assert "FAIL" not in done.stdout
    assert "Client ID" in done.stdout and "accepted" in done.stdout
    assert "/3/credits" in _Credits.seen
    assert CLIENT_ID not in done.stdout


def test_a_rejected_client_id_and_missing_tools_fail_with_fixes(
    workspace: Workspace, credits_url: str, tmp_path: Path
) -> None:
    workspace.write(
        api_url=credits_url, client_id="not-the-right-id-000", clipboard=True, notify=True
    )
    empty = tmp_path / "empty-path"
    empty.mkdir()
    done = imgdrop(workspace, "doctor", env_path=str(empty))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    imgur = next(line for line in lines if "host imgur" in line)
    assert imgur.startswith("FAIL") and "fix:" in imgur and "client_id in" in imgur
    clip = next(line for line in lines if line.startswith("FAIL  clipboard"))
    assert "xclip" in clip or "pbcopy" in clip or "wl-clipboard" in clip
    assert any(line.startswith("FAIL  notifications") for line in lines)
    assert any(line.startswith("FAIL  daemon: not running") for line in lines)
    assert "not-the-right-id-000" not in done.stdout


def test_no_config_says_init(tmp_path: Path) -> None:
    ws = Workspace(root=tmp_path, config=tmp_path / "missing.yaml")
    done = imgdrop(ws, "doctor")
    assert done.returncode == 1
    assert "imgdrop init" in done.stdout
