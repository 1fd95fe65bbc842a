"""service: the rendered plist and unit, and install/uninstall/status through fake managers.

The checked-in launchd/io.github.imgdrop.plist is render_plist() of EXAMPLE_* below.
"""

from __future__ import annotations

import os
import platform
import plistlib
import stat
import sys
from pathlib import Path

import platformdirs
import pytest

from imgdrop import service
from imgdrop.service import (
    LABEL,
    SANE_PATH,
    program_path,
    render_plist,
    render_unit,
    run_service,
    systemd_word,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROGRAM = ["/usr/local/bin/imgdrop"]
EXAMPLE_LOG_DIR = Path("/Users/you/Library/Logs/imgdrop")
EXAMPLE_PATH_ENV = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
UID = os.getuid()


def example_plist(config_file: Path | None = None) -> dict[str, object]:
    data = render_plist(EXAMPLE_PROGRAM, config_file, EXAMPLE_LOG_DIR, EXAMPLE_PATH_ENV)
    loaded: dict[str, object] = plistlib.loads(data)
    return loaded


def test_checked_in_plist_is_what_the_renderer_makes() -> None:
    expected = render_plist(EXAMPLE_PROGRAM, None, EXAMPLE_LOG_DIR, EXAMPLE_PATH_ENV)
    assert (REPO / "launchd" / f"{LABEL}.plist").read_bytes() == expected


def test_checked_in_plist_has_the_spec_keys() -> None:
    job = plistlib.loads((REPO / "launchd" / f"{LABEL}.plist").read_bytes())
    assert job == {
        "Label": "io.github.imgdrop",
        "ProgramArguments": ["/usr/local/bin/imgdrop", "run"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Background",
        "StandardOutPath": "/Users/you/Library/Logs/imgdrop/imgdrop.log",
        "StandardErrorPath": "/Users/you/Library/Logs/imgdrop/imgdrop.log",
        "EnvironmentVariables": {"PATH": EXAMPLE_PATH_ENV},
    }


def test_plist_names_a_config_only_when_given_and_before_run() -> None:
    assert example_plist()["ProgramArguments"] == ["/usr/local/bin/imgdrop", "run"]
    args = example_plist(Path("/Users/you/my config.yaml"))["ProgramArguments"]
    assert args == ["/usr/local/bin/imgdrop", "--config", "/Users/you/my config.yaml", "run"]


def test_plist_escapes_xml_in_values() -> None:
    data = render_plist(["/opt/a&b <c>/imgdrop"], None, EXAMPLE_LOG_DIR, EXAMPLE_PATH_ENV)
    assert b"a&amp;b &lt;c&gt;" in data
    assert plistlib.loads(data)["ProgramArguments"][0] == "/opt/a&b <c>/imgdrop"


def test_unit_file() -> None:
    unit = render_unit(["/usr/bin/imgdrop"], None, "/usr/bin:/bin")
    lines = unit.splitlines()
    assert lines[0] == "[Unit]"
    for line in [
        "[Service]",
        "Type=simple",
        "ExecStart=/usr/bin/imgdrop run",
        "Restart=on-failure",
        "RestartSec=10",
        "Environment=PATH=/usr/bin:/bin",
        "[Install]",
        "WantedBy=default.target",
    ]:
        assert line in lines
    assert unit.endswith("\n")


def test_unit_quotes_paths_with_spaces_and_puts_config_before_run() -> None:
    unit = render_unit(
        ["/opt/my apps/bin/python", "-m", "imgdrop"], Path("/home/u/My Files/c.yaml"), "/a b:/c"
    )
    assert (
        'ExecStart="/opt/my apps/bin/python" -m imgdrop --config "/home/u/My Files/c.yaml" run'
        in unit.splitlines()
    )
    assert 'Environment="PATH=/a b:/c"' in unit.splitlines()


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


def test_print_picks_the_platform_manager(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert run_service("print", None, default_config(), config_given=False) == 0
    job = plistlib.loads(capsys.readouterr().out.encode())
    assert job["ProgramArguments"] == [*program_path(), "run"]
    assert job["EnvironmentVariables"] == {"PATH": SANE_PATH["launchd"]}
    log = str(Path(platformdirs.user_log_dir("imgdrop")) / "imgdrop.log")
    assert job["StandardOutPath"] == job["StandardErrorPath"] == log

    monkeypatch.setattr(platform, "system", lambda: "Linux")
    assert run_service("print", None, default_config(), config_given=False) == 0
    assert "WantedBy=default.target" in capsys.readouterr().out


def test_print_names_a_non_default_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    # e.g. chosen by IMGDROP_CONFIG, which the job would not inherit
    assert run_service("print", "launchd", elsewhere, config_given=False) == 0
    args = plistlib.loads(capsys.readouterr().out.encode())["ProgramArguments"]
    assert args[-3:] == ["--config", str(elsewhere), "run"]
    assert run_service("print", "launchd", default_config(), config_given=True) == 0
    args = plistlib.loads(capsys.readouterr().out.encode())["ProgramArguments"]
    assert args[-3:] == ["--config", str(default_config()), "run"]


class FakeTool:
    """A fake launchctl/systemctl, alone on PATH, that records its arguments."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = root / "fakebin"
        self.bin.mkdir()
        self.record = root / "calls.txt"
        monkeypatch.setenv("PATH", str(self.bin))  # the real ones must not be found

    def add(self, name: str, replies: dict[str, tuple[int, str]] | None = None) -> None:
        """Install `name`; replies maps a prefix of its arguments to (exit status, stdout)."""
        cases = "".join(
            f"  \"{prefix}\"*) printf '%s' '{out}'; exit {status};;\n"
            for prefix, (status, out) in (replies or {}).items()
        )
        script = self.bin / name
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{self.record}"\ncase "$*" in\n{cases}esac\nexit 0\n'
        )
        script.chmod(0o755)

    def calls(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTool:
    return FakeTool(tmp_path, monkeypatch)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_launchd_install(
    fake: FakeTool, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add("launchctl", {"bootout": (3, "")})  # not loaded yet
    assert run_service("install", "launchd", default_config(), config_given=False) == 0
    plist = isolated_home / "Library" / "LaunchAgents" / "io.github.imgdrop.plist"
    assert fake.calls() == [
        f"launchctl bootout gui/{UID}/io.github.imgdrop",
        f"launchctl bootstrap gui/{UID} {plist}",
    ]
    assert mode(plist) == 0o644
    assert plistlib.loads(plist.read_bytes())["Label"] == LABEL
    assert Path(platformdirs.user_log_dir("imgdrop")).is_dir()
    out = capsys.readouterr().out
    assert f"installed {plist} and started it; stop with: launchctl stop io.github.imgdrop" in out
    assert list(plist.parent.iterdir()) == [plist]  # no temp file left behind


def test_launchd_install_replaces_a_loaded_copy(fake: FakeTool, isolated_home: Path) -> None:
    plist = isolated_home / "Library" / "LaunchAgents" / "io.github.imgdrop.plist"
    plist.parent.mkdir(parents=True)
    plist.write_text("old")
    plist.chmod(0o666)  # launchd would refuse this one
    fake.add("launchctl")
    assert run_service("install", "launchd", default_config(), config_given=False) == 0
    assert mode(plist) == 0o644
    assert plist.read_bytes().startswith(b"<?xml")


def test_launchd_install_reports_a_failed_bootstrap(
    fake: FakeTool, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add("launchctl", {"bootstrap": (5, "Bootstrap failed: 5: Input/output error")})
    assert run_service("install", "launchd", default_config(), config_given=False) == 1
    err = capsys.readouterr().err
    assert "launchctl bootstrap" in err
    assert "Input/output error" in err


def test_launchd_uninstall(
    fake: FakeTool, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add("launchctl")
    assert run_service("install", "launchd", default_config(), config_given=False) == 0
    plist = isolated_home / "Library" / "LaunchAgents" / "io.github.imgdrop.plist"
    fake.record.unlink()
    capsys.readouterr()
    assert run_service("uninstall", "launchd", default_config(), config_given=False) == 0
    assert fake.calls() == [f"launchctl bootout gui/{UID}/io.github.imgdrop"]
    assert not plist.exists()
    assert f"stopped io.github.imgdrop and removed {plist}" in capsys.readouterr().out


def test_launchd_uninstall_when_nothing_is_installed(
    fake: FakeTool, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add("launchctl", {"bootout": (113, "")})
    assert run_service("uninstall", "launchd", default_config(), config_given=False) == 0
    assert "nothing to uninstall" in capsys.readouterr().out


LAUNCHCTL_PRINT = """gui/501/io.github.imgdrop = {
\tactive count = 1
\tpath = /Users/you/Library/LaunchAgents/io.github.imgdrop.plist
\tstate = running
\tpid = 4242
\tlast exit code = (never exited)
\tendpoints = {
\t\tstate = active
\t}
}"""


def test_launchd_status_loaded(fake: FakeTool, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("launchctl", {"print": (0, LAUNCHCTL_PRINT)})
    assert run_service("status", "launchd", default_config(), config_given=False) == 0
    assert fake.calls() == [f"launchctl print gui/{UID}/io.github.imgdrop"]
    out = capsys.readouterr().out
    assert "state = running, pid = 4242, last exit code = (never exited)" in out


def test_launchd_status_not_loaded(fake: FakeTool, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("launchctl", {"print": (113, "Could not find service")})
    assert run_service("status", "launchd", default_config(), config_given=False) == 3
    assert "not loaded" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["install", "uninstall", "status"])
def test_missing_launchctl_is_a_clear_failure(
    fake: FakeTool, isolated_home: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    assert run_service(action, "launchd", default_config(), config_given=False) == 1
    assert "launchctl not found" in capsys.readouterr().err
    assert not (isolated_home / "Library").exists()  # failed before writing anything


def test_systemd_install(
    fake: FakeTool, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add("systemctl")
    config_file = isolated_home / "my config.yaml"
    assert run_service("install", "systemd", config_file, config_given=True) == 0
    unit = isolated_home / ".config" / "systemd" / "user" / "imgdrop.service"
    assert fake.calls() == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now imgdrop.service",
    ]
    assert mode(unit) == 0o644
    assert f'--config "{config_file}" run' in unit.read_text()
    assert f"installed {unit} and started it" in capsys.readouterr().out


def test_systemd_install_honours_xdg_config_home(
    fake: FakeTool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    fake.add("systemctl")
    assert run_service("install", "systemd", default_config(), config_given=False) == 0
    assert (tmp_path / "xdg" / "systemd" / "user" / "imgdrop.service").is_file()


def test_systemd_install_reports_a_failed_enable(
    fake: FakeTool, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add("systemctl", {"--user enable": (1, "Failed to connect to bus")})
    assert run_service("install", "systemd", default_config(), config_given=False) == 1
    assert "Failed to connect to bus" in capsys.readouterr().err


def test_systemd_uninstall(fake: FakeTool, isolated_home: Path) -> None:
    fake.add("systemctl")
    assert run_service("install", "systemd", default_config(), config_given=False) == 0
    unit = isolated_home / ".config" / "systemd" / "user" / "imgdrop.service"
    fake.record.unlink()
    assert run_service("uninstall", "systemd", default_config(), config_given=False) == 0
    assert fake.calls() == [
        "systemctl --user disable --now imgdrop.service",
        "systemctl --user daemon-reload",
    ]
    assert not unit.exists()


@pytest.mark.parametrize(
    ("status", "state", "code"), [(0, "active", 0), (3, "inactive", 3), (3, "failed", 3)]
)
def test_systemd_status(
    fake: FakeTool, capsys: pytest.CaptureFixture[str], status: int, state: str, code: int
) -> None:
    fake.add("systemctl", {"--user is-active": (status, state)})
    assert run_service("status", "systemd", default_config(), config_given=False) == code
    assert fake.calls() == ["systemctl --user is-active imgdrop.service"]
    assert f"imgdrop.service is {state}" in capsys.readouterr().out


def test_missing_systemctl_is_a_clear_failure(
    fake: FakeTool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_service("install", "systemd", default_config(), config_given=False) == 1
    assert "systemctl not found" in capsys.readouterr().err


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        run_service("restart", "launchd", default_config(), config_given=False)
