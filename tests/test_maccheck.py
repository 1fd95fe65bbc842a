"""`make mac-check`: its command lines, its parsing, and a whole run against fake macOS tools
(a launchctl that really starts the job, screencapture and ditto that record their argv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgdrop import cli, filetype, maccheck, managers, service
from imgdrop.exitcodes import Exit
from tests import images
from tests.conftest import wait_until
from tests.fakemanagers import FakeManager

UID = os.getuid()


def test_command_lines() -> None:
    assert maccheck.screencapture_cmd(Path("/t/in/a b.png")) == [
        "screencapture",
        "-x",
        "/t/in/a b.png",
    ]
    assert maccheck.ditto_cmd(Path("/t/big.png"), Path("/t/in/big.png")) == [
        "ditto",
        "/t/big.png",
        "/t/in/big.png",
    ]
    assert maccheck.launchctl_cmd("stop", "x.y", 501) == ["launchctl", "stop", "x.y"]
    assert maccheck.launchctl_cmd("start", "x.y", 501) == ["launchctl", "start", "x.y"]
    assert maccheck.launchctl_cmd("print", "x.y", 501) == ["launchctl", "print", "gui/501/x.y"]
    assert maccheck.label_for(42) == "io.github.imgdrop.maccheck.42"
    assert maccheck.label_for(42) != service.LABEL


PRINTED = """gui/501/io.github.imgdrop.maccheck.1 = {
\tactive count = 0
\tstate = not running
\tlast exit code = 0
\tendpoints = {
\t\tstate = active
\t}
}"""


def test_job_state_parsing() -> None:
    assert maccheck.job_state(PRINTED, 0) == ("not running", "0")
    assert maccheck.job_state("", 113) == ("gone", None)
    assert maccheck.job_state("gui/501/x = {\n}", 0) == ("unknown", None)


def test_big_png_is_a_png_of_the_size_asked() -> None:
    data = maccheck.big_png(200_000)
    assert filetype.sniff(data[:64]) is not None
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert 190_000 < len(data) < 210_000


FAKE_SCREENCAPTURE = """#!/bin/sh
printf '%s\\n' "screencapture $*" >> "{log}"
[ -n "$FAKE_SCREENCAPTURE_FAILS" ] && {{ echo "could not create image from display" >&2; exit 1; }}
for last; do :; done
dir=$(/usr/bin/dirname "$last")
/bin/cp "{png}" "$dir/.Screenshot-tmp.png" && /bin/mv "$dir/.Screenshot-tmp.png" "$last"
"""
FAKE_DITTO = """#!/bin/sh
printf '%s\\n' "ditto $*" >> "{log}"
/bin/cp "$1" "$2"
"""
# Until the CLI wires `run --service` (REQUESTS.md) the job runs the same entry point directly.
SERVICE_SHIM = """#!{python}
import sys
from pathlib import Path
from imgdrop.daemon import run_service
args = sys.argv[1:]
sys.exit(run_service(Path(args[args.index("--config") + 1])))
"""


@pytest.fixture
def mac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeManager:
    fake = FakeManager(tmp_path, "launchctl", monkeypatch)
    monkeypatch.setenv("FAKE_SPAWN", "1")
    monkeypatch.setenv("PATH", f"{fake.bin}:/usr/bin:/bin")
    png = tmp_path / "shot.png"
    png.write_bytes(images.png(50_000))
    for name, body in (("screencapture", FAKE_SCREENCAPTURE), ("ditto", FAKE_DITTO)):
        script = fake.bin / name
        script.write_text(body.format(log=fake.log, png=png))
        script.chmod(0o755)
    _, extra = cli._parser().parse_known_args(["run", "--service"])
    if extra:
        shim = fake.bin / "imgdrop-service"
        shim.write_text(SERVICE_SHIM.format(python=sys.executable))
        shim.chmod(0o755)
        monkeypatch.setattr(service, "program_path", lambda: [str(shim)])
    monkeypatch.setattr(maccheck, "STAY_SECONDS", 0.5)
    monkeypatch.setattr(managers, "POLL", 0.05)
    monkeypatch.setattr(maccheck, "POLL", 0.05)
    monkeypatch.setattr(maccheck, "BIG_BYTES", 3_000_000)
    return fake


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a reparented zombie still answers kill 0; its state says it is dead
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_a_whole_run_passes_and_leaves_nothing(
    mac: FakeManager, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said: list[str] = []
    root = tmp_path / "check"
    root.mkdir()
    label = maccheck.label_for(4242)
    check = maccheck.Check(root, label, timeout=30, say=said.append)
    assert check.run_all() == Exit.OK, "\n".join(said)
    assert [line.split("  ")[0] for line in said if line[:4] in ("PASS", "FAIL")] == ["PASS"] * 6
    assert said[-1] == "6/6 steps passed; everything it made was removed"
    calls = mac.calls()
    inbox = root / "Inbox"
    assert f"screencapture -x {inbox}/maccheck screenshot.png" in calls
    assert f"ditto {root}/big.png {inbox}/big.png" in calls
    assert f"launchctl stop {label}" in calls
    assert f"launchctl start {label}" in calls
    assert f"launchctl bootstrap gui/{UID} {managers.plist_path(label)}" in calls
    assert calls[-1] == f"launchctl print gui/{UID}/{label}"  # waited until it was gone
    assert not root.exists()
    assert not managers.plist_path(label).exists()
    assert check.host is not None and check.host.poll() is not None
    assert not (isolated_home / "Library" / "Logs").exists()  # the user's log untouched
    assert label not in mac.jobs()
    pid = int(capsys.readouterr().out.split("pid = ")[1].split(",")[0])
    wait_until(lambda: not _alive(pid), 10, "the job's process to end")


def test_a_failing_step_is_reported_and_still_cleaned_up(
    mac: FakeManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SCREENCAPTURE_FAILS", "1")
    said: list[str] = []
    root = tmp_path / "check"
    root.mkdir()
    check = maccheck.Check(root, maccheck.label_for(7), timeout=30, say=said.append)
    assert check.run_all() == Exit.FAILURE
    assert "FAIL  screenshot uploaded: could not create image from display" in said
    assert said[-1] == "5/6 steps passed; everything it made was removed"
    assert not root.exists()
    assert not managers.plist_path(maccheck.label_for(7)).exists()


def test_main_refuses_off_macos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "imgdrop.maccheck"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 1
    assert "macOS only" in done.stderr
