"""`imgdrop doctor`: one line per check with the fix; 0 when all pass, else 1."""

from __future__ import annotations

from pathlib import Path

from imgdrop import managers
from tests.commandkit import imgdrop
from tests.conftest import CLIENT_ID, wait_until
from tests.fakeimgur import FakeImgur
from tests.workspace import DaemonProcess, Workspace


def test_everything_in_place_passes(
    workspace: Workspace, fake_imgur: FakeImgur, daemons: list[DaemonProcess]
) -> None:
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
    assert "/3/credits" in [r.path for r in fake_imgur.requests]
    assert fake_imgur.uploads == []  # the check costs no upload
    assert CLIENT_ID not in done.stdout


def test_a_rejected_client_id_and_missing_tools_fail_with_fixes(
    workspace: Workspace, fake_imgur: FakeImgur, tmp_path: Path
) -> None:
    workspace.write(
        api_url=fake_imgur.url, client_id="not-the-right-id-000", clipboard=True, notify=True
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
