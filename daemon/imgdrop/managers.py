"""Talking to the service managers: launchctl (launchd) and systemctl --user (systemd).

Each action ends by asking the manager what is true now, and says that — not what was hoped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from imgdrop.exitcodes import Exit

LABEL = "io.github.imgdrop"
UNIT_NAME = "imgdrop.service"
COMMAND_TIMEOUT = 30
GONE_TIMEOUT = 15.0  # seconds bootout may take before the job is really gone
START_TIMEOUT = 5.0  # seconds a freshly loaded job gets to reach "running"
POLL = 0.1
BOOTSTRAP_TRIES = 5
BOOTSTRAP_RETRY_DELAY = 1.0
# launchctl's answers while the previous instance is still being torn down.
BUSY_CODES = (5, 37)
_MISSING_HINT = {
    "launchctl": "the launchd manager works on macOS only (use --manager systemd on Linux)",
    "systemctl": "the systemd manager needs a Linux with systemd (use --manager launchd on macOS)",
}


class ServiceError(Exception):
    """A service manager command that could not run or failed; str(e) is the message."""


def missing(tool: str) -> ServiceError:
    """Return the error for a service manager tool that is not installed."""
    return ServiceError(f"{tool} not found: {_MISSING_HINT[tool]}")


def plist_path(label: str = LABEL) -> Path:
    """Return where the LaunchAgent plist is installed."""
    return Path.home() / "Library" / "LaunchAgents" / f"{label}.plist"


def unit_path(name: str = UNIT_NAME) -> Path:
    """Return where the systemd user unit is installed ($XDG_CONFIG_HOME/systemd/user)."""
    xdg = Path(os.environ.get("XDG_CONFIG_HOME", ""))
    base = xdg if xdg.is_absolute() else Path.home() / ".config"  # XDG: ignore a relative one
    return base / "systemd" / "user" / name


def write_atomically(path: Path, data: bytes) -> None:
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


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Return the finished `cmd`, whatever its exit status; raise ServiceError if it cannot run."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise missing(cmd[0]) from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`{shlex.join(cmd)}` did not finish in {COMMAND_TIMEOUT} s") from None


def _said(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr or done.stdout).strip() or "no message"


def check(cmd: list[str]) -> None:
    """Run `cmd`; raise ServiceError with its own message when it fails."""
    done = run(cmd)
    if done.returncode != 0:
        raise ServiceError(f"`{shlex.join(cmd)}` failed (exit {done.returncode}): {_said(done)}")


# --- launchd -------------------------------------------------------------------------------


def _print(target: str) -> subprocess.CompletedProcess[str]:
    return run(["launchctl", "print", target])


def launchd_details(output: str) -> dict[str, str]:
    """Return the job's state, pid and last exit code from `launchctl print` output."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.strip().partition(" = ")
        # nested sections repeat "state"; the job's own lines come first
        if sep and key in ("state", "pid", "last exit code") and key not in found:
            found[key] = value
    return found


def wait_gone(target: str, timeout: float = GONE_TIMEOUT) -> None:
    """Return once `launchctl print` no longer finds `target` (bootout is asynchronous)."""
    deadline = time.time() + timeout
    while _print(target).returncode == 0:
        if time.time() > deadline:
            raise ServiceError(f"{target} was still loaded {timeout:.0f} s after bootout")
        time.sleep(POLL)


def _bootstrap(domain: str, target: str, path: Path) -> None:
    """Load the plist, retrying while launchd is still tearing down the previous instance."""
    cmd = ["launchctl", "bootstrap", domain, str(path)]
    for attempt in range(1, BOOTSTRAP_TRIES + 1):
        done = run(cmd)
        if done.returncode == 0:
            return
        busy = done.returncode in BUSY_CODES or "Input/output error" in _said(done)
        if not busy or attempt == BOOTSTRAP_TRIES:
            raise ServiceError(
                f"`{shlex.join(cmd)}` failed (exit {done.returncode}): {_said(done)}"
            )
        wait_gone(target)
        time.sleep(BOOTSTRAP_RETRY_DELAY)


def launchd_status(target: str, log_file: Path) -> Exit:
    """Print whether the job is loaded and running; 0 when running, else 3."""
    shown = _print(target)
    label = target.rsplit("/", 1)[-1]
    if shown.returncode != 0:
        print(f"{label} is not loaded (install it with: imgdrop service install)")
        return Exit.NOT_RUNNING
    found = launchd_details(shown.stdout)
    details = ", ".join(f"{k} = {v}" for k, v in found.items()) or "no details"
    if found.get("state") == "running":
        print(f"{label} is loaded: {details}")
        return Exit.OK
    print(f"{label} is loaded but not running: {details}; see {log_file}")
    return Exit.NOT_RUNNING


def _wait_running(target: str) -> None:
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        shown = _print(target)
        if shown.returncode == 0 and launchd_details(shown.stdout).get("state") == "running":
            return
        time.sleep(POLL)


def launchd(action: str, data: bytes, log_dir: Path, label: str = LABEL) -> Exit:
    """Install, uninstall or query the LaunchAgent `label`."""
    path, domain = plist_path(label), f"gui/{os.getuid()}"
    target, log_file = f"{domain}/{label}", log_dir / "imgdrop.log"
    if action == "install":
        log_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
        if _print(target).returncode == 0:
            check(["launchctl", "bootout", target])
            wait_gone(target)
        check(["launchctl", "enable", target])  # a label once disabled refuses to bootstrap
        _bootstrap(domain, target, path)
        _wait_running(target)
        print(f"installed {path}")
        code = launchd_status(target, log_file)
        print(f"stop: launchctl stop {label}; start: launchctl start {label}; log: {log_file}")
        return Exit.OK if code == Exit.OK else Exit.FAILURE
    if action == "uninstall":
        loaded = _print(target).returncode == 0
        if loaded:
            check(["launchctl", "bootout", target])
            wait_gone(target)
        return _removed(path, loaded, label)
    return launchd_status(target, log_file)


# --- systemd -------------------------------------------------------------------------------


def _active(systemctl: list[str], name: str) -> str:
    return run([*systemctl, "is-active", name]).stdout.strip()


def systemd_status(name: str = UNIT_NAME) -> Exit:
    """Print whether the unit is active; 0 when it is, else 3."""
    state = _active(["systemctl", "--user"], name)
    if state == "active":
        print(f"{name} is active (running)")
        return Exit.OK
    print(f"{name} is {state or 'not active'} (not running); see: journalctl --user -u {name}")
    return Exit.NOT_RUNNING


def systemd(action: str, data: bytes, name: str = UNIT_NAME) -> Exit:
    """Install, uninstall or query the systemd user unit `name`."""
    path, systemctl = unit_path(name), ["systemctl", "--user"]
    if action == "install":
        was_active = _active(systemctl, name) == "active"
        write_atomically(path, data)
        check([*systemctl, "daemon-reload"])
        check([*systemctl, "enable", "--now", name])
        if was_active:  # enable --now leaves the old process running the old unit
            check([*systemctl, "restart", name])
        print(f"installed {path}")
        code = systemd_status(name)
        print(f"stop: systemctl --user stop {name}; log: journalctl --user -u {name}")
        return Exit.OK if code == Exit.OK else Exit.FAILURE
    if action == "uninstall":
        stopped = run([*systemctl, "disable", "--now", name]).returncode == 0
        result = _removed(path, stopped, name)
        check([*systemctl, "daemon-reload"])  # forget the removed unit
        return result
    return systemd_status(name)


def _removed(path: Path, stopped: bool, name: str) -> Exit:
    """Remove the service file `path` and say what uninstall did."""
    if not path.exists() and not stopped:
        print(f"nothing to uninstall: {path} does not exist and {name} is not loaded")
        return Exit.OK
    path.unlink(missing_ok=True)
    print(f"stopped {name} and removed {path}" if stopped else f"removed {path} (not loaded)")
    return Exit.OK
