"""service: the rendered plist and unit, validation, and install/uninstall/status through
stateful fake managers (tests/fakemanagers.py).

The checked-in launchd/io.github.imgdrop.plist is render_plist() of EXAMPLE_* below.
"""

from __future__ import annotations

import os
import platform
import plistlib
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import platformdirs
import pytest

from imgdrop import config, daemon, macos, managers, service
from imgdrop.service import (
    LABEL,
    SANE_PATH,
    program_path,
    render_plist,
    render_unit,
    run_service,
    systemd_word,
)
from tests.conftest import CLIENT_ID
from tests.fakemanagers import FakeManager

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROGRAM = ["/usr/local/bin/imgdrop"]
EXAMPLE_CONFIG = Path("/Users/you/Library/Application Support/imgdrop/config.yaml")
EXAMPLE_LOG_DIR = Path("/Users/you/Library/Logs/imgdrop")
EXAMPLE_ENV = {"PATH": SANE_PATH["launchd"]}
UID = os.getuid()
TARGET = f"gui/{UID}/{LABEL}"


def example_plist() -> bytes:
    return render_plist(EXAMPLE_PROGRAM, EXAMPLE_CONFIG, EXAMPLE_LOG_DIR, EXAMPLE_ENV)


def test_checked_in_plist_is_what_the_renderer_makes() -> None:
    assert (REPO / "launchd" / f"{LABEL}.plist").read_bytes() == example_plist()


def test_checked_in_plist_has_every_spec_key() -> None:
    job = plistlib.loads((REPO / "launchd" / f"{LABEL}.plist").read_bytes())
    assert job == {
        "Label": "io.github.imgdrop",
        "ProgramArguments": [
            "/usr/local/bin/imgdrop",
            "--config",
            str(EXAMPLE_CONFIG),
            "run",
            "--service",
        ],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ExitTimeOut": 30,
        "ProcessType": "Background",
        "StandardOutPath": "/Users/you/Library/Logs/imgdrop/imgdrop.out.log",
        "StandardErrorPath": "/Users/you/Library/Logs/imgdrop/imgdrop.out.log",
        "EnvironmentVariables": {"PATH": SANE_PATH["launchd"]},
    }


def test_exit_timeout_leaves_the_daemon_a_margin() -> None:
    # launchd SIGKILLs after ExitTimeOut; the daemon must be done well before.
    assert service.EXIT_TIMEOUT >= 20
    assert daemon.STOP_GRACE + 10 <= service.EXIT_TIMEOUT


def test_plist_escapes_xml_in_values() -> None:
    data = render_plist(["/opt/a&b <c>/imgdrop"], EXAMPLE_CONFIG, EXAMPLE_LOG_DIR, EXAMPLE_ENV)
    assert b"a&amp;b &lt;c&gt;" in data
    assert plistlib.loads(data)["ProgramArguments"][0] == "/opt/a&b <c>/imgdrop"


def test_unit_file() -> None:
    unit = render_unit(["/usr/bin/imgdrop"], Path("/home/u/c.yaml"), {"PATH": "/usr/bin:/bin"})
    lines = unit.splitlines()
    assert lines[0] == "[Unit]"
    for line in [
        "[Service]",
        "Type=simple",
        "ExecStart=/usr/bin/imgdrop --config /home/u/c.yaml run --service",
        "Restart=on-failure",
        "RestartSec=10",
        "TimeoutStopSec=30",
        "Environment=PATH=/usr/bin:/bin",
        "[Install]",
        "WantedBy=default.target",
    ]:
        assert line in lines
    assert unit.endswith("\n")


def test_unit_quotes_paths_with_spaces_and_puts_config_before_run() -> None:
    unit = render_unit(
        ["/opt/my apps/bin/python", "-m", "imgdrop"],
        Path("/home/u/My Files/c.yaml"),
        {"PATH": "/a b:/c"},
    )
    assert (
        'ExecStart="/opt/my apps/bin/python" -m imgdrop --config "/home/u/My Files/c.yaml" '
        "run --service" in unit.splitlines()
    )
    assert 'Environment="PATH=/a b:/c"' in unit.splitlines()


def test_service_environment_carries_absolute_xdg_dirs_only() -> None:
    env = {"XDG_DATA_HOME": "/h/data", "XDG_STATE_HOME": "relative", "HOME": "/h", "FOO": "x"}
    assert service.service_environment("/bin", env) == {"PATH": "/bin", "XDG_DATA_HOME": "/h/data"}


def test_systemd_word_escapes_what_systemd_would_interpret() -> None:
    assert systemd_word("/usr/bin/imgdrop") == "/usr/bin/imgdrop"
    assert systemd_word("") == '""'
    assert systemd_word('a "b"') == '"a \\"b\\""'
    assert systemd_word("C:\\x") == '"C:\\\\x"'
    assert systemd_word("100%") == "100%%"  # % starts a specifier
    assert systemd_word("$HOME") == "$$HOME"  # ExecStart expands variables
    assert systemd_word("$HOME", expand_variables=False) == "$HOME"
    assert systemd_word("a\nb") == '"a\\x0ab"'  # a newline would end the setting


def test_program_path_is_absolute_and_runnable() -> None:
    program = program_path()
    assert Path(program[0]).is_absolute()
    script = Path(sys.executable).absolute().parent / "imgdrop"
    if script.is_file():
        assert program == [str(script)]
    else:
        assert program[1:] == ["-m", "imgdrop"]


def test_program_path_falls_back_to_python_m(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(python))
    assert program_path() == [str(python), "-m", "imgdrop"]  # the symlink, not its target
    (python.parent / "imgdrop").write_text("#!/bin/sh\n")
    assert program_path() == [str(python.parent / "imgdrop")]


def test_default_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert service.default_manager() == "launchd"
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    assert service.default_manager() == "systemd"


def default_config() -> Path:
    return Path(platformdirs.user_config_dir("imgdrop")) / "config.yaml"


def good_config(path: Path | None = None) -> Path:
    path = path or default_config()
    config.write_config(path, CLIENT_ID)
    return path


def test_print_always_names_an_absolute_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.chdir(tmp_path)
    assert run_service("print", None, Path("rel.yaml"), config_given=True) == 0
    job = plistlib.loads(capsys.readouterr().out.encode())
    assert job["ProgramArguments"] == [
        *program_path(),
        "--config",
        str(tmp_path / "rel.yaml"),
        "run",
        "--service",
    ]
    assert job["EnvironmentVariables"]["PATH"] == SANE_PATH["launchd"]
    log = str(Path(platformdirs.user_log_dir("imgdrop")) / "imgdrop.out.log")
    assert job["StandardOutPath"] == job["StandardErrorPath"] == log
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    assert run_service("print", None, default_config(), config_given=False) == 0
    assert "WantedBy=default.target" in capsys.readouterr().out


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    for mode in (["--user"], []):  # --user needs a user session; the syntax is the same
        done = subprocess.run(
            ["systemd-analyze", *mode, "verify", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if "Failed to initialize manager" not in done.stderr:
            return done
    pytest.skip("systemd-analyze cannot start a manager here")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "imgdrop.service"
    text = render_unit(program_path(), good_config(), {"PATH": SANE_PATH["systemd"]})
    unit.write_text(text)
    done = _verify(unit)
    assert done.returncode == 0, done.stderr
    assert str(unit) not in done.stderr, done.stderr
    # the check is not vacuous: a misspelt key is reported
    unit.write_text(text.replace("TimeoutStopSec=", "TimeoutStopSecs="))
    assert "Unknown key 'TimeoutStopSecs'" in _verify(unit).stderr


# --- validation -------------------------------------------------------------------------


@pytest.fixture
def launchctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeManager:
    monkeypatch.setattr(managers, "POLL", 0.05)
    return FakeManager(tmp_path, "launchctl", monkeypatch)


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeManager:
    return FakeManager(tmp_path, "systemctl", monkeypatch)


def test_install_refuses_a_client_id_only_in_the_environment(
    launchctl: FakeManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = default_config()
    config.write_config(path, None)
    monkeypatch.setenv("IMGDROP_CLIENT_ID", CLIENT_ID)
    assert run_service("install", "launchd", path, config_given=False) == 78
    err = capsys.readouterr().err
    assert "only in the environment (IMGDROP_CLIENT_ID)" in err
    assert f"client_id: <your id> in {path}" in err
    assert CLIENT_ID not in err
    assert launchctl.calls() == []
    assert not managers.plist_path().exists()


def test_install_refuses_a_missing_config(
    systemctl: FakeManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_service("install", "systemd", default_config(), config_given=False) == 78
    assert f"imgdrop --config {default_config()} init" in capsys.readouterr().err
    assert systemctl.calls() == []


def test_install_refuses_a_broken_config(
    systemctl: FakeManager, capsys: pytest.CaptureFixture[str]
) -> None:
    path = default_config()
    path.parent.mkdir(parents=True)
    path.write_text("inbx: ~/x\n")
    assert run_service("install", "systemd", path, config_given=False) == 78
    assert "did you mean 'inbox'" in capsys.readouterr().err
    assert systemctl.calls() == []


def test_install_refuses_an_inbox_macos_privacy_blocks(
    launchctl: FakeManager,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = good_config()
    text = path.read_text().replace("inbox:", f"inbox: {isolated_home}/Desktop/shots\n#", 1)
    path.write_text(text)
    assert run_service("install", "launchd", path, config_given=False) == 78
    err = capsys.readouterr().err
    assert f"inbox {isolated_home}/Desktop/shots" in err
    assert "System Settings › Privacy & Security › Full Disk Access" in err
    assert str(macos.tcc_binary()) in err
    assert launchctl.calls() == []
    # systemd on Linux has no such privacy rules; with the grant made, launchd goes ahead
    monkeypatch.setenv("IMGDROP_PRIVACY_GRANTED", "1")
    assert run_service("install", "launchd", path, config_given=False) == 0


# --- launchd ------------------------------------------------------------------------------


def test_launchd_install_fresh(
    launchctl: FakeManager, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config()
    assert run_service("install", "launchd", path, config_given=False) == 0
    plist = isolated_home / "Library" / "LaunchAgents" / "io.github.imgdrop.plist"
    assert launchctl.calls() == [
        f"launchctl print {TARGET}",
        f"launchctl enable {TARGET}",
        f"launchctl bootstrap gui/{UID} {plist}",
        f"launchctl print {TARGET}",
        f"launchctl print {TARGET}",
    ]
    assert stat.S_IMODE(plist.stat().st_mode) == 0o644
    job = plistlib.loads(plist.read_bytes())
    assert job["ProgramArguments"][-4:] == ["--config", str(path), "run", "--service"]
    assert Path(platformdirs.user_log_dir("imgdrop")).is_dir()
    out = capsys.readouterr().out
    assert f"installed {plist}" in out
    assert "io.github.imgdrop is loaded: state = running, pid = 4242" in out
    assert "launchctl stop io.github.imgdrop" in out
    assert list(plist.parent.iterdir()) == [plist]  # no temp file left behind


def test_launchd_install_again_waits_for_bootout(
    launchctl: FakeManager, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config()
    assert run_service("install", "launchd", path, config_given=False) == 0
    launchctl.reset_calls()
    started = time.monotonic()
    assert run_service("install", "launchd", path, config_given=False) == 0
    assert time.monotonic() - started >= 1.4  # the fake's bootout takes 1.5 s
    calls = launchctl.calls()
    assert calls[:2] == [f"launchctl print {TARGET}", f"launchctl bootout {TARGET}"]
    polls = calls[2 : calls.index(f"launchctl enable {TARGET}")]
    assert len(polls) > 3 and set(polls) == {f"launchctl print {TARGET}"}
    assert calls.count(f"launchctl bootstrap gui/{UID} {managers.plist_path()}") == 1
    assert "state = running" in capsys.readouterr().out.splitlines()[-2]
    assert launchctl.jobs()[LABEL]["state"] == "running"


def test_launchd_bootstrap_retries_input_output_error(
    launchctl: FakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = good_config()
    assert run_service("install", "launchd", path, config_given=False) == 0
    # print says "gone" at once while launchd is still tearing the job down
    monkeypatch.setenv("FAKE_PRINT_LIES", "1")
    monkeypatch.setattr(managers, "BOOTSTRAP_RETRY_DELAY", 0.5)
    launchctl.reset_calls()
    assert run_service("install", "launchd", path, config_given=False) == 0
    bootstraps = [c for c in launchctl.calls() if " bootstrap " in c]
    assert 2 <= len(bootstraps) <= managers.BOOTSTRAP_TRIES


def test_launchd_bootstrap_gives_up_with_the_message(
    launchctl: FakeManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config()
    assert run_service("install", "launchd", path, config_given=False) == 0
    monkeypatch.setenv("FAKE_PRINT_LIES", "1")
    monkeypatch.setenv("FAKE_BOOTOUT_LAG", "60")
    monkeypatch.setattr(managers, "BOOTSTRAP_RETRY_DELAY", 0.05)
    assert run_service("install", "launchd", path, config_given=False) == 1
    err = capsys.readouterr().err
    assert "launchctl bootstrap" in err and "5: Input/output error" in err


def test_launchd_install_reports_a_job_that_does_not_run(
    launchctl: FakeManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_NEVER_RUNS", "1")
    monkeypatch.setattr(managers, "START_TIMEOUT", 0.3)
    assert run_service("install", "launchd", good_config(), config_given=False) == 1
    assert "is loaded but not running" in capsys.readouterr().out


def test_launchd_status_uninstall_status(
    launchctl: FakeManager, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config()
    assert run_service("status", "launchd", path, config_given=False) == 3
    assert "io.github.imgdrop is not loaded" in capsys.readouterr().out
    assert run_service("install", "launchd", path, config_given=False) == 0
    assert run_service("status", "launchd", path, config_given=False) == 0
    capsys.readouterr()
    launchctl.reset_calls()
    assert run_service("uninstall", "launchd", path, config_given=False) == 0
    calls = launchctl.calls()
    assert calls[:2] == [f"launchctl print {TARGET}", f"launchctl bootout {TARGET}"]
    assert set(calls[2:]) == {f"launchctl print {TARGET}"}  # waited until it was gone
    assert not managers.plist_path().exists()
    assert f"stopped io.github.imgdrop and removed {managers.plist_path()}" in (
        capsys.readouterr().out
    )
    assert run_service("status", "launchd", path, config_given=False) == 3
    assert run_service("uninstall", "launchd", path, config_given=False) == 0
    assert "nothing to uninstall" in capsys.readouterr().out


def test_launchd_stopped_job_is_reported_not_running(
    launchctl: FakeManager, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config()
    assert run_service("install", "launchd", path, config_given=False) == 0
    subprocess.run(["launchctl", "stop", LABEL], check=True)
    capsys.readouterr()
    assert run_service("status", "launchd", path, config_given=False) == 3
    out = capsys.readouterr().out
    assert "loaded but not running: state = not running" in out and "last exit code = 0" in out


@pytest.mark.parametrize("action", ["install", "uninstall", "status"])
def test_missing_launchctl_is_a_clear_failure(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    action: str,
) -> None:
    path = good_config()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert run_service(action, "launchd", path, config_given=False) == 1
    assert "launchctl not found" in capsys.readouterr().err
    assert not (isolated_home / "Library").exists()  # failed before writing anything


# --- systemd ------------------------------------------------------------------------------


def test_systemd_install_again_status_uninstall(
    systemctl: FakeManager, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config(isolated_home / "my config.yaml")
    unit = isolated_home / ".config" / "systemd" / "user" / "imgdrop.service"
    assert run_service("install", "systemd", path, config_given=True) == 0
    assert systemctl.calls() == [
        "systemctl --user is-active imgdrop.service",
        "systemctl --user daemon-reload",
        "systemctl --user enable --now imgdrop.service",
        "systemctl --user is-active imgdrop.service",
    ]
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert f'--config "{path}" run --service' in unit.read_text()
    assert "imgdrop.service is active (running)" in capsys.readouterr().out
    systemctl.reset_calls()
    assert run_service("install", "systemd", path, config_given=True) == 0
    assert systemctl.calls() == [
        "systemctl --user is-active imgdrop.service",
        "systemctl --user daemon-reload",
        "systemctl --user enable --now imgdrop.service",
        "systemctl --user restart imgdrop.service",  # the new unit runs, not the old process
        "systemctl --user is-active imgdrop.service",
    ]
    assert systemctl.jobs()["starts"] == 2  # type: ignore[comparison-overlap]
    assert run_service("status", "systemd", path, config_given=True) == 0
    systemctl.reset_calls()
    assert run_service("uninstall", "systemd", path, config_given=True) == 0
    assert systemctl.calls() == [
        "systemctl --user disable --now imgdrop.service",
        "systemctl --user daemon-reload",
    ]
    assert not unit.exists()
    capsys.readouterr()
    assert run_service("status", "systemd", path, config_given=True) == 3
    assert "imgdrop.service is inactive (not running)" in capsys.readouterr().out


def test_systemd_install_honours_xdg_config_home(
    systemctl: FakeManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = good_config()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert run_service("install", "systemd", path, config_given=False) == 0
    unit = tmp_path / "xdg" / "systemd" / "user" / "imgdrop.service"
    assert f"Environment=XDG_CONFIG_HOME={tmp_path}/xdg" in unit.read_text().splitlines()


def test_systemd_install_reports_a_failed_enable(
    systemctl: FakeManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "enable")
    assert run_service("install", "systemd", good_config(), config_given=False) == 1
    assert "Failed to connect to bus" in capsys.readouterr().err


def test_missing_systemctl_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert run_service("install", "systemd", good_config(), config_given=False) == 1
    assert "systemctl not found" in capsys.readouterr().err


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        run_service("restart", "launchd", default_config(), config_given=False)
