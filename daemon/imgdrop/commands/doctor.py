"""`imgdrop doctor`: one line per thing a working setup needs, each failure with its fix."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

from imgdrop import config, hosts, macos, managers, notify
from imgdrop.commands.common import running_pid
from imgdrop.exitcodes import Exit
from imgdrop.hosts.imgur import ImgurHost

Check = tuple[bool, str, str]  # passed, what was checked, the fix (when it failed)


def _config(path: Path) -> tuple[config.Settings | None, Check]:
    if not path.exists():
        return None, (False, f"config: {path} does not exist", "run: imgdrop init")
    try:
        settings = config.load(path)
    except config.ConfigError as err:
        return None, (False, f"config: {err}", f"edit {path}, then: imgdrop config check")
    return settings, (True, f"config: {path} is valid", "")


def _hosts(settings: config.Settings) -> list[Check]:
    out: list[Check] = []
    for name in settings.hosts:
        try:
            host = hosts.build_one(settings, name)
        except config.ConfigError as err:
            out.append((False, f"host {name}: {err}", "fix the config, then: imgdrop hosts list"))
            continue
        try:
            if isinstance(host, ImgurHost):
                out.append(_client_id(settings, host))
            else:
                out.append((True, f"host {name}: configured", ""))
        finally:
            host.close()
    return out


def _client_id(settings: config.Settings, host: ImgurHost) -> Check:
    from_env = os.environ.get("IMGDROP_CLIENT_ID")
    origin = "IMGDROP_CLIENT_ID" if from_env else f"client_id in {settings.path}"
    problem = host.check_client_id()
    if problem is None:
        return True, f"host imgur: the Client ID ({origin}) is accepted", ""
    if isinstance(problem, hosts.Transient):
        reason = problem.reason.rstrip(".").removesuffix("; will retry")
        fix = "check the network connection (and api_url), then run imgdrop doctor again"
        return False, f"host imgur: the Client ID could not be checked: {reason}", fix
    fix = f"check {origin}; a new ID: api.imgur.com/oauth2/addclient"
    return False, f"host imgur: {problem.reason.rstrip('.')}", fix


def _folders(settings: config.Settings) -> list[Check]:
    out: list[Check] = []
    for key in config.FOLDER_KEYS:
        folder: Path = getattr(settings, key)
        if not folder.is_dir():
            out.append((False, f"{key}: {folder} does not exist", f"mkdir -p '{folder}'"))
        elif not os.access(folder, os.W_OK | os.X_OK):
            out.append((False, f"{key}: {folder} is not writable", f"chmod u+rwx '{folder}'"))
        else:
            out.append((True, f"{key}: {folder} is writable", ""))
    return out


def _tools(
    settings: config.Settings, system: str, which: Callable[[str], str | None]
) -> list[Check]:
    out: list[Check] = []
    if settings.clipboard:
        cmd = notify.clipboard_command(system, os.environ, which)
        fix = notify.PACKAGES["clipboard"] + " (or set clipboard: false)"
        out.append((cmd is not None, f"clipboard: {cmd[0] if cmd else 'no tool found'}", fix))
    if settings.notify:
        cmd = notify.notification_command("imgdrop", "check", system, which)
        tool = "brew install terminal-notifier"
        if system != "Darwin":
            tool = notify.PACKAGES["notification"]
        fix = tool + " (or set notify: false)"
        out.append((cmd is not None, f"notifications: {cmd[0] if cmd else 'no tool found'}", fix))
    return out


def _service(settings: config.Settings, system: str) -> list[Check]:
    unit = managers.plist_path() if system == "Darwin" else managers.unit_path()
    installed = unit.is_file()
    pid = running_pid(settings)
    running = pid is not None
    daemon = f"running (pid {pid or '?'})" if running else "not running"
    return [
        (installed, f"service: {unit} {'is installed' if installed else 'is missing'}",
         "imgdrop service install"),
        (running, f"daemon: {daemon}",
         "imgdrop service install (or imgdrop run in a terminal)"),
    ]  # fmt: skip


def doctor(path: Path) -> Exit:
    """Print every check; 0 when all pass, else 1."""
    system = platform.system()
    settings, first = _config(path)
    checks = [first]
    if settings is not None:
        checks += _hosts(settings)
        checks += _folders(settings)
        checks += _tools(settings, system, shutil.which)
        checks += _service(settings, system)
        if system == "Darwin":
            guarded = macos.privacy_protected(settings.inbox)
            checks.append((not guarded, f"macOS privacy: {settings.inbox}"
                           + (" is protected" if guarded else " is not protected"),
                           macos.grant_hint(settings.inbox)))  # fmt: skip
    for passed, what, fix in checks:
        print(f"ok    {what}" if passed else f"FAIL  {what} — fix: {fix}")
    failed = sum(1 for passed, _, _ in checks if not passed)
    print(f"{len(checks) - failed} of {len(checks)} checks passed")
    return Exit.OK if failed == 0 else Exit.FAILURE
