"""`run --service`: the daemon as launchd/systemd run it — never exits on what it can wait out.

Each case starts the rendered service the way the manager would: its ProgramArguments exactly,
only its EnvironmentVariables (plus what launchd itself sets), cwd /.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import plistlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgdrop import cli, daemon, service
from imgdrop.exitcodes import Exit
from tests import images
from tests.conftest import CLIENT_ID, wait_until
from tests.fakeimgur import FakeImgur
from tests.workspace import DaemonProcess, Workspace

FAKE_NOTIFY = """#!/bin/sh
printf '%s\\n' "$*" >> "{record}"
"""


class Service:
    """One service process started from a rendered plist; its log is the rotated file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log
        self.proc = subprocess.Popen(
            argv,
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def says(self, text: str) -> bool:
        assert self.proc.poll() is None, f"service exited {self.proc.returncode}:\n{self.log}"
        return text in self.log

    def stop(self, timeout: float) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for s in services:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(5)
        if s.proc.stderr is not None:
            s.proc.stderr.close()


def cli_has_service_flag() -> bool:
    # argparse answers --help before it rejects an unknown flag, so ask the parser itself.
    _, extra = cli._parser().parse_known_args(["run", "--service"])
    return not extra


def rendered(ws: Workspace, fakebin: Path) -> tuple[list[str], dict[str, str]]:
    """ProgramArguments and environment of the plist `service install` would write."""
    env = service.service_environment(f"{fakebin}:{service.SANE_PATH['launchd']}", os.environ)
    data = service.render_plist(service.program_path(), ws.config, service.log_dir(), env)
    job = plistlib.loads(data)
    argv: list[str] = job["ProgramArguments"]
    if not cli_has_service_flag():
        # Until the CLI wires `run --service` (REQUESTS.md), run the same entry point directly.
        assert argv[-4:] == ["--config", str(ws.config), "run", "--service"]
        code = "import sys; from pathlib import Path; from imgdrop.daemon import run_service; "
        code += "sys.exit(run_service(Path(sys.argv[1])))"
        argv = [sys.executable, "-c", code, str(ws.config)]
    # launchd adds these itself; nothing else of the test's environment leaks in
    launchd_env = {
        k: os.environ[k] for k in ("HOME", "USER", "LOGNAME", "TMPDIR") if k in os.environ
    }
    return argv, {**launchd_env, **job["EnvironmentVariables"]}


@pytest.fixture
def fakebin(tmp_path: Path) -> Path:
    folder = tmp_path / "fakebin"
    folder.mkdir()
    for tool in ("notify-send", "osascript"):
        script = folder / tool
        script.write_text(FAKE_NOTIFY.format(record=tmp_path / "notified.txt"))
        script.chmod(0o755)
    return folder


def start_service(ws: Workspace, fakebin: Path, started: list[Service]) -> Service:
    argv, env = rendered(ws, fakebin)
    svc = Service(argv, env, daemon.service_log_file())
    started.append(svc)
    return svc


def test_config_error_waits_for_the_fix_then_uploads(
    workspace: Workspace,
    fake_imgur: FakeImgur,
    fakebin: Path,
    tmp_path: Path,
    started: list[Service],
) -> None:
    ws = workspace
    good = ws.config.read_text()
    ws.config.write_text(good.replace("inbox:", "inbx:"))
    svc = start_service(ws, fakebin, started)
    wait_until(lambda: svc.says("waiting for its config"), 20, f"the config error; {svc.log}")
    wait_until((tmp_path / "notified.txt").exists, 10, "the notification")
    time.sleep(2 * daemon.CONFIG_POLL)  # a few rounds of the wait: still alive, said once
    assert svc.proc.poll() is None
    assert svc.log.count("waiting for its config") == 1
    assert "did you mean 'inbox'" in svc.log
    assert (tmp_path / "notified.txt").read_text().count("cannot start") == 1
    ws.config.write_text(good)
    wait_until(lambda: svc.says("watching"), 20, f"the daemon to start; {svc.log}")
    assert "config ok again" in svc.log
    ws.drop("shot.png", images.png())
    wait_until(lambda: ws.names(ws.done) == ["shot.png"], 20, f"the upload; {svc.log}")
    assert len(fake_imgur.uploads) == 1
    assert svc.stop(service.EXIT_TIMEOUT) == Exit.OK
    assert "stopped" in svc.log.splitlines()[-1]


def test_missing_client_id_waits_too(
    workspace: Workspace, fakebin: Path, started: list[Service]
) -> None:
    ws = workspace
    good = ws.config.read_text()
    ws.config.write_text("\n".join(ln for ln in good.splitlines() if "client_id" not in ln))
    svc = start_service(ws, fakebin, started)
    wait_until(lambda: svc.says("client_id is not set"), 20, f"the error; {svc.log}")
    started_at = time.monotonic()
    assert svc.stop(service.EXIT_TIMEOUT) == Exit.OK  # SIGTERM while waiting: a clean exit
    assert time.monotonic() - started_at < 5


def test_a_held_lock_is_waited_for(
    workspace: Workspace,
    fake_imgur: FakeImgur,
    fakebin: Path,
    started: list[Service],
    daemons: list[DaemonProcess],
) -> None:
    ws = workspace
    first = DaemonProcess(ws)
    daemons.append(first)
    wait_until(first.started, 20, f"the first daemon; {first.log}")
    svc = start_service(ws, fakebin, started)
    wait_until(lambda: svc.says("waiting for it to stop"), 20, f"the wait; {svc.log}")
    assert f"pid {first.proc.pid}" in svc.log
    first.signal(signal.SIGTERM)
    assert first.wait(20) == Exit.OK
    wait_until(lambda: svc.says("watching"), 20, f"the service to take over; {svc.log}")
    assert svc.log.count("waiting for it to stop") == 1
    ws.drop("a.png", images.png())
    wait_until(lambda: ws.names(ws.done) == ["a.png"], 20, f"the upload; {svc.log}")
    started_at = time.monotonic()
    assert svc.stop(service.EXIT_TIMEOUT) == Exit.OK
    assert time.monotonic() - started_at < service.EXIT_TIMEOUT - 10


def test_sigterm_during_an_upload_exits_0_inside_the_timeout(
    workspace: Workspace, fake_imgur: FakeImgur, fakebin: Path, started: list[Service]
) -> None:
    ws = workspace
    svc = start_service(ws, fakebin, started)
    wait_until(lambda: svc.says("watching"), 20, f"the daemon; {svc.log}")
    ws.drop("a.png", images.png())
    wait_until(lambda: len(fake_imgur.requests) > 0 or ws.names(ws.done), 20, "an upload")
    started_at = time.monotonic()
    assert svc.stop(service.EXIT_TIMEOUT) == Exit.OK
    assert time.monotonic() - started_at < daemon.STOP_GRACE + 5 < service.EXIT_TIMEOUT


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def test_service_log_is_rotated_under_10_mb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    assert (daemon.LOG_BACKUPS + 1) * daemon.LOG_BYTES <= 10_000_000
    monkeypatch.setattr(daemon, "LOG_BYTES", 20_000)
    path = tmp_path / "logs" / "imgdrop.log"
    daemon.log_to_file(path)
    line = "x" * 200
    for _ in range(2000):  # 400 kB through a 5 x 20 kB log
        logging.getLogger("imgdrop.test").info(line)
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["imgdrop.log", *(f"imgdrop.log.{i}" for i in range(1, 5))]
    assert sum(f.stat().st_size for f in files) <= 5 * (20_000 + 300)


def test_service_log_file_is_in_the_user_log_dir() -> None:
    assert daemon.service_log_file() == service.log_dir() / "imgdrop.log"


def test_run_once_gives_up_on_a_file_held_open_for_writing(
    workspace: Workspace, fake_imgur: FakeImgur
) -> None:
    ws = workspace  # settle_seconds 0.3: the bound is 3 s
    ws.drop("done.png", images.png())
    held = ws.inbox / "writing.png"
    with held.open("wb") as writer:
        writer.write(images.png()[:20])
        writer.flush()
        if fcntl.fcntl(writer.fileno(), fcntl.F_GETFL) < 0:  # pragma: no cover
            pytest.skip("cannot hold the file open")
        started_at = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "imgdrop", "--config", str(ws.config), "run", "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started_at
    assert done.returncode == Exit.FAILURE, done.stderr
    assert "still being written" in done.stderr
    assert took < 20
    assert ws.names(ws.done) == ["done.png"]
    assert "writing.png" in ws.names(ws.inbox)
    assert CLIENT_ID not in done.stderr


def test_a_privacy_refusal_on_macos_names_the_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    err = PermissionError(1, "Operation not permitted", "/Users/u/Desktop/in")
    text = daemon._plain(err)
    assert "/Users/u/Desktop/in" in text
    assert "Privacy & Security › Full Disk Access" in text
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    assert daemon._plain(err) == str(err)
