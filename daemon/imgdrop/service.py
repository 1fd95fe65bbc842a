"""Service files: render the LaunchAgent plist or systemd user unit, and install them.

Rendering is pure (data in, bytes out); `run_service` does the side effects of
`imgdrop service ...`. launchd/io.github.imgdrop.plist is render_plist() of the example
inputs named in tests/test_service.py, and a test keeps the two identical.
"""

from __future__ import annotations

import os
import platform
import plistlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import platformdirs

from imgdrop import config
from imgdrop.exitcodes import Exit

LABEL = "io.github.imgdrop"
UNIT_NAME = "imgdrop.service"
ACTIONS = ("print", "install", "uninstall", "status")
MANAGERS = ("launchd", "systemd")
TOOLS = {"launchd": "launchctl", "systemd": "systemctl"}
COMMAND_TIMEOUT = 30
# launchd starts jobs with only /usr/bin:/bin:/usr/sbin:/sbin; Homebrew's tools live elsewhere.
SANE_PATH = {
    "launchd": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "systemd": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
}
_MISSING_HINT = {  # keyed by the TOOLS values
    "launchctl": "the launchd manager works on macOS only (use --manager systemd on Linux)",
    "systemctl": "the systemd manager needs a Linux with systemd (use --manager launchd on macOS)",
}

_UNIT_TEMPLATE = """\
[Unit]
Description=imgdrop: upload images dropped into a folder to Imgur

[Service]
Type=simple
ExecStart={exec_start}
# Like launchd's KeepAlive {{SuccessfulExit: false}}: a clean exit (after SIGTERM) stays down.
Restart=on-failure
RestartSec=10
Environment={environment}

[Install]
WantedBy=default.target
"""


class ServiceError(Exception):
    """A service manager command that could not run or failed; str(e) is the message."""


def _arguments(program: list[str], config_file: Path | None) -> list[str]:
    # --config is a global option: it goes before the command.
    options = ["--config", str(config_file)] if config_file is not None else []
    return [*program, *options, "run"]


def render_plist(
    program: list[str], config_file: Path | None, log_dir: Path, path_env: str
) -> bytes:
    """Return the LaunchAgent plist (XML) that runs `program run`; config_file None: default."""
    log_file = str(log_dir / "imgdrop.log")
    job = {
        "Label": LABEL,
        "ProgramArguments": _arguments(program, config_file),
        "RunAtLoad": True,
        # exit 0 (SIGTERM, `launchctl stop`) stays stopped; a crash is restarted
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Background",
        "StandardOutPath": log_file,
        "StandardErrorPath": log_file,
        "EnvironmentVariables": {"PATH": path_env},
    }
    return plistlib.dumps(job)


def systemd_word(word: str, expand_variables: bool = True) -> str:
    """Return `word` quoted and escaped so systemd reads it back as one unchanged word."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 else c for c in escaped)
    if expand_variables:  # ExecStart= expands $VAR; Environment= does not
        escaped = escaped.replace("$", "$$")
    if word and not any(c.isspace() or c in "\"'\\" for c in word):
        return escaped
    return f'"{escaped}"'


def render_unit(program: list[str], config_file: Path | None, path_env: str) -> str:
    """Return the systemd user unit that runs `program run`; config_file None: default."""
    return _UNIT_TEMPLATE.format(
        exec_start=" ".join(systemd_word(arg) for arg in _arguments(program, config_file)),
        environment=systemd_word(f"PATH={path_env}", expand_variables=False),
    )


def program_path() -> list[str]:
    """Return the absolute command that starts imgdrop: its console script, else python -m."""
    # Absolute but not resolved: a venv's python is a symlink whose target lacks the venv.
    python = Path(sys.executable).absolute()
    script = python.parent / "imgdrop"
    if script.is_file():
        return [str(script)]
    return [str(python), "-m", "imgdrop"]


def default_manager() -> str:
    """Return "launchd" on macOS, else "systemd"."""
    return "launchd" if platform.system() == "Darwin" else "systemd"


def plist_path() -> Path:
    """Return where the LaunchAgent plist is installed."""
    return Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def unit_path() -> Path:
    """Return where the systemd user unit is installed ($XDG_CONFIG_HOME/systemd/user)."""
    xdg = Path(os.environ.get("XDG_CONFIG_HOME", ""))
    base = xdg if xdg.is_absolute() else Path.home() / ".config"  # XDG: ignore a relative one
    return base / "systemd" / "user" / UNIT_NAME


def log_dir() -> Path:
    """Return the folder launchd writes the daemon's log into."""
    return Path(platformdirs.user_log_dir(config.APP))


def _config_option(config_file: Path, config_given: bool) -> Path | None:
    # The job does not inherit IMGDROP_CONFIG, so any non-default file is named explicitly.
    default = Path(platformdirs.user_config_dir(config.APP)) / "config.yaml"
    if config_given or config_file.absolute() != default:
        return config_file.absolute()
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, mode 0644; raise OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # launchd refuses a plist that others can write
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Return the finished `cmd`, whatever its exit status; raise ServiceError if it cannot run."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise _missing(cmd[0]) from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`{shlex.join(cmd)}` did not finish in {COMMAND_TIMEOUT} s") from None


def _missing(tool: str) -> ServiceError:
    """Return the error for a service manager tool that is not installed."""
    return ServiceError(f"{tool} not found: {_MISSING_HINT[tool]}")


def _check(cmd: list[str]) -> None:
    """Run `cmd`; raise ServiceError with its own message when it fails."""
    done = _run(cmd)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip() or "no message"
        raise ServiceError(f"`{shlex.join(cmd)}` failed (exit {done.returncode}): {said}")


def _launchd(action: str, data: bytes) -> Exit:
    """Install, uninstall or query the LaunchAgent."""
    path, domain = plist_path(), f"gui/{os.getuid()}"
    target = f"{domain}/{LABEL}"
    if action == "install":
        _run(["launchctl", "bootout", target])  # fails when not loaded: fine
        log_dir().mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
        _check(["launchctl", "bootstrap", domain, str(path)])
        print(f"installed {path} and started it; stop with: launchctl stop {LABEL}")
        print(f"start again with: launchctl start {LABEL}; log: {log_dir() / 'imgdrop.log'}")
        return Exit.OK
    if action == "uninstall":
        loaded = _run(["launchctl", "bootout", target]).returncode == 0
        return _removed(path, loaded, LABEL)
    shown = _run(["launchctl", "print", target])
    if shown.returncode != 0:
        print(f"{LABEL} is not loaded (install it with: imgdrop service install)")
        return Exit.NOT_RUNNING
    print(f"{LABEL} is loaded: {_launchd_details(shown.stdout)}")
    return Exit.OK


def _launchd_details(output: str) -> str:
    """Return the job's state, pid and last exit code from `launchctl print` output."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.strip().partition(" = ")
        # nested sections repeat "state"; the job's own lines come first
        if sep and key in ("state", "pid", "last exit code") and key not in found:
            found[key] = value
    return ", ".join(f"{key} = {value}" for key, value in found.items()) or "no details"


def _systemd(action: str, data: bytes) -> Exit:
    """Install, uninstall or query the systemd user unit."""
    path, systemctl = unit_path(), ["systemctl", "--user"]
    if action == "install":
        _write_atomically(path, data)
        _check([*systemctl, "daemon-reload"])
        _check([*systemctl, "enable", "--now", UNIT_NAME])
        print(f"installed {path} and started it; stop with: systemctl --user stop {UNIT_NAME}")
        print(f"log: journalctl --user -u {UNIT_NAME}")
        return Exit.OK
    if action == "uninstall":
        stopped = _run([*systemctl, "disable", "--now", UNIT_NAME]).returncode == 0
        result = _removed(path, stopped, UNIT_NAME)
        _check([*systemctl, "daemon-reload"])  # forget the removed unit
        return result
    state = _run([*systemctl, "is-active", UNIT_NAME]).stdout.strip()
    if state == "active":
        print(f"{UNIT_NAME} is active (running)")
        return Exit.OK
    print(f"{UNIT_NAME} is {state or 'not active'} (not running)")
    return Exit.NOT_RUNNING


def _removed(path: Path, stopped: bool, name: str) -> Exit:
    """Remove the service file `path` and say what uninstall did."""
    if not path.exists() and not stopped:
        print(f"nothing to uninstall: {path} does not exist and {name} is not loaded")
        return Exit.OK
    path.unlink(missing_ok=True)
    done = f"stopped {name} and removed {path}"
    print(done if stopped else f"removed {path} (it was not loaded)")
    return Exit.OK


def run_service(action: str, manager: str | None, config_file: Path, config_given: bool) -> int:
    """Do `imgdrop service ACTION`; return 0, 1 on failure, or 3 when `status` finds it stopped."""
    if action not in ACTIONS or manager not in (*MANAGERS, None):
        raise ValueError(f"unknown service action {action!r} or manager {manager!r}")
    manager = manager or default_manager()
    program, option = program_path(), _config_option(config_file, config_given)
    if manager == "launchd":
        data = render_plist(program, option, log_dir(), SANE_PATH[manager])
    else:
        data = render_unit(program, option, SANE_PATH[manager]).encode()
    if action == "print":
        sys.stdout.write(data.decode())
        return Exit.OK
    try:
        if shutil.which(TOOLS[manager]) is None:  # before touching any file
            raise _missing(TOOLS[manager])
        return (_launchd if manager == "launchd" else _systemd)(action, data)
    except (ServiceError, OSError) as e:
        print(f"imgdrop: {e}", file=sys.stderr)
        return Exit.FAILURE
