"""The command line: exit codes, messages, and what `init`/`run` leave on disk."""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import stat
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from imgdrop import __version__
from imgdrop.cli import main
from imgdrop.config import load
from imgdrop.exitcodes import Exit
from tests.conftest import CLIENT_ID, as_nobody

REPO = Path(__file__).resolve().parents[1]


def imgdrop(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the real `imgdrop` console script (the one `make install` put next to this Python)."""
    script = Path(sys.executable).with_name("imgdrop")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [int(code) for code in Exit] == [0, 1, 2, 3, 75, 78]


def test_version_from_the_installed_script() -> None:
    result = imgdrop("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"imgdrop {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["init"],
        ["run"],
        ["service"],
        ["config"],
        ["config", "path"],
        ["config", "show"],
        ["config", "check"],
        ["upload"],
        ["status"],
        ["history"],
        ["delete"],
        ["retry"],
        ["reload"],
        ["doctor"],
        ["hosts"],
        ["hosts", "list"],
        ["hosts", "import"],
        ["hosts", "test"],
        ["demo"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: imgdrop" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == Exit.USAGE
    assert main([]) == Exit.USAGE


def test_run_without_config_creates_it_and_explains_the_client_id(
    isolated_home: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "cfg" / "config.yaml"
    result = imgdrop("--config", str(config_file), "run")
    assert result.returncode == Exit.CONFIG
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert "api.imgur.com/oauth2/addclient" in result.stderr
    assert str(config_file) in result.stderr
    assert "Traceback" not in result.stderr
    pictures = isolated_home / "Pictures" / "imgdrop"
    assert {p.name for p in pictures.iterdir()} >= {"Inbox", "Links", "Done", "Failed"}


def test_run_uses_the_default_config_location(isolated_home: Path) -> None:
    result = imgdrop("run")
    assert result.returncode == Exit.CONFIG
    assert (isolated_home / ".config" / "imgdrop" / "config.yaml").exists()


def test_init_writes_a_private_config_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "config.yaml"
    assert main(["--config", str(config_file), "init", "--client-id", CLIENT_ID]) == Exit.OK
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert f"client_id: {CLIENT_ID}" in config_file.read_text()
    out = capsys.readouterr().out
    assert CLIENT_ID not in out
    assert main(["--config", str(config_file), "init"]) == Exit.FAILURE
    assert "--force" in capsys.readouterr().err
    assert main(["--config", str(config_file), "init", "--force", "--reset"]) == Exit.OK
    assert CLIENT_ID not in config_file.read_text()
    assert len(list(tmp_path.glob("config.yaml.bak-*"))) == 1


def test_init_force_keeps_set_values_adds_missing_keys_and_backs_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"client_id: {CLIENT_ID}\nworkers: 5\nhosts: [catbox, imgur]\n"
        f"inbox: {tmp_path / 'in'}\n# my own note\n",
        encoding="utf-8",
    )
    old = config_file.read_text()
    assert main(["--config", str(config_file), "init", "--force"]) == Exit.OK
    text = config_file.read_text()
    settings = load(config_file)
    assert (settings.client_id, settings.workers, settings.hosts) == (
        CLIENT_ID,
        5,
        ("catbox", "imgur"),
    )
    assert settings.inbox == tmp_path / "in"
    assert "rescan_seconds: 60" in text and "# my own note" not in text  # comments rewritten
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    (backup,) = tmp_path.glob("config.yaml.bak-*")
    assert backup.read_text() == old
    assert CLIENT_ID not in capsys.readouterr().out


def test_reset_without_force_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["--config", str(tmp_path / "c.yaml"), "init", "--reset"]) == Exit.USAGE


def test_config_given_after_the_command_says_where_it_goes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--config", "x.yaml"])
    assert exit_info.value.code == Exit.USAGE
    assert "--config goes before the command" in capsys.readouterr().err


def test_config_check_without_a_config_suggests_init(tmp_path: Path) -> None:
    result = imgdrop("--config", str(tmp_path / "none.yaml"), "config", "check")
    assert result.returncode == Exit.CONFIG
    assert "imgdrop init" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    assert main(["--config", str(config_file), "init", "--client-id", CLIENT_ID]) == Exit.OK
    script = str(Path(sys.executable).with_name("imgdrop"))
    for args in (
        ["--config", str(config_file), "config", "show"],
        ["--help"],
        ["history", "--help"],
    ):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before imgdrop writes a byte: every write fails
        try:
            done = subprocess.run(
                [script, *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
                timeout=30, check=False,
            )  # fmt: skip
        finally:
            os.close(write_end)
        assert (done.returncode, done.stderr) == (0, ""), args
    shell = f"'{script}' --config '{config_file}' config show | true; echo ${{PIPESTATUS[0]}}"
    piped = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=30, check=False
    )
    assert (piped.stdout.strip(), piped.stderr) == ("0", "")


def test_journal_error_is_one_line_exit_78(shared_dir: Path) -> None:
    """As user nobody (root can write anything): a read-only journal is one line, exit 78."""
    journal = shared_dir / "ro" / "history.sqlite3"
    journal.parent.mkdir()
    config_file = shared_dir / "config.yaml"
    config_file.write_text(
        f"client_id: {CLIENT_ID}\njournal: {journal}\ninbox: {shared_dir / 'i'}\n"
        f"outbox: {shared_dir / 'o'}\ndone: {shared_dir / 'd'}\nfailed: {shared_dir / 'f'}\n",
        encoding="utf-8",
    )
    journal.write_bytes(b"")
    for path, mode in ((config_file, 0o600), (journal, 0o400), (journal.parent, 0o500)):
        os.chown(path, *_nobody_ids())
        path.chmod(mode)
    for folder in "iodf":
        (shared_dir / folder).mkdir(mode=0o777)
        (shared_dir / folder).chmod(0o777)

    def attempt() -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["--config", str(config_file), "delete", "last"])
        assert code == Exit.CONFIG, err.getvalue()
        assert "Traceback" not in err.getvalue()
        assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()

    assert as_nobody(attempt) == "ok"


def _nobody_ids() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def test_config_path_follows_option_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMGDROP_CONFIG", str(tmp_path / "from-env.yaml"))
    assert main(["config", "path"]) == Exit.OK
    assert capsys.readouterr().out.strip() == str(tmp_path / "from-env.yaml")
    assert main(["--config", str(tmp_path / "opt.yaml"), "config", "path"]) == Exit.OK
    assert capsys.readouterr().out.strip() == str(tmp_path / "opt.yaml")


def test_config_show_masks_the_client_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"client_id: {CLIENT_ID}\nworkers: 3\n")
    config_file.chmod(0o644)
    assert main(["--config", str(config_file), "config", "show"]) == Exit.OK
    captured = capsys.readouterr()
    assert CLIENT_ID not in captured.out + captured.err
    assert "workers: 3" in captured.out
    assert f"chmod 600 {config_file}" in captured.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inbx: ~/x\n", "config.yaml:1: unknown key 'inbx' — did you mean 'inbox'?"),
        ("client_id: abc\nworkers: [1\n", "config.yaml:3"),
        ("client_id: abc\nworkers: 40\n", "config.yaml:2: 'workers'"),
        ("client_id: abc\nworkers: many\n", "'workers' must be"),
        ("client_id: abc\nlink_format: pdf\n", "'link_format'"),
        ("client_id: abc\napi_url: http://example.com\n", "'api_url'"),
    ],
    ids=["unknown-key", "yaml-syntax", "out-of-range", "wrong-type", "bad-choice", "plain-http"],
)
@pytest.mark.parametrize("command", [["config", "check"], ["run", "--once"]])
def test_config_errors_exit_78_with_file_and_line(
    tmp_path: Path, text: str, expected: str, command: list[str]
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(text)
    result = imgdrop("--config", str(config_file), *command)
    assert result.returncode == Exit.CONFIG
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"client_id: {CLIENT_ID}\n")
    config_file.chmod(0o600)
    result = imgdrop("--config", str(config_file), "config", "check")
    assert result.returncode == Exit.OK, result.stderr
    assert "ok" in result.stdout


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imgdrop", "--version"], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == f"imgdrop {__version__}"


@pytest.mark.timeout(300)
def test_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path, isolated_home: Path) -> None:
    """What ships: the built wheel alone (no checkout) must init a config."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
        timeout=240,
    )
    wheel = next(dist.glob("imgdrop-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", str(wheel)], check=True, timeout=240)
    script = env_dir / "bin" / "imgdrop"
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert version.stdout.strip() == f"imgdrop {__version__}"
    config_file = tmp_path / "c" / "config.yaml"
    init = subprocess.run(
        [str(script), "--config", str(config_file), "init"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert init.returncode == 0, init.stderr
    assert config_file.read_text() == (REPO / "config" / "imgdrop.example.yaml").read_text()


def test_run_service_is_a_hidden_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--service" not in capsys.readouterr().out
