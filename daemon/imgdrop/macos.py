"""macOS privacy (TCC): which folders a launchd agent may not read, and who needs the grant.

Pure path logic, so it is tested on any system; callers decide when it applies (macOS, launchd).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Folders under the home that TCC guards for processes launchd starts (~/Pictures is not one).
PROTECTED = ("Desktop", "Documents", "Downloads", "Library/Mobile Documents")
SETTINGS_PATH = "System Settings › Privacy & Security › Full Disk Access"
FOLDERS_PATH = "System Settings › Privacy & Security › Files and Folders"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def privacy_protected(folder: Path, home: Path | None = None) -> bool:
    """Return True when `folder` is Desktop, Documents, Downloads or iCloud Drive (or inside)."""
    home = (home or Path.home()).resolve()
    # Resolved both ways: a symlink from ~/Pictures into ~/Desktop is still guarded.
    candidates = {Path(folder).expanduser().absolute(), Path(folder).expanduser().resolve()}
    guarded = [home / name for name in PROTECTED]
    return any(_inside(path, g) for path in candidates for g in guarded)


def tcc_binary(executable: str | None = None) -> Path:
    """Return the binary TCC judges for this Python: the framework's Python.app, else itself."""
    real = Path(executable or sys.executable).resolve()
    parts = real.parts
    # python.org and Homebrew `bin/python3` are stubs that exec the app bundle's binary.
    if "Python.framework" in parts:
        at = parts.index("Python.framework")
        framework = Path(*parts[: at + 1])
        if len(parts) > at + 2 and parts[at + 1] == "Versions":
            version = framework / "Versions" / parts[at + 2]
            app = version / "Resources" / "Python.app" / "Contents" / "MacOS" / "Python"
            if app.is_file():
                return app
    return real


def grant_hint(folder: Path, executable: str | None = None) -> str:
    """Return the plain-words grant a user makes so the service may read `folder`."""
    binary = tcc_binary(executable)
    return (
        f"macOS privacy protects {folder}: a background service may not read it until you "
        f"allow {binary} in {SETTINGS_PATH} (or {FOLDERS_PATH}): click +, press "
        f"Cmd-Shift-G, paste that path. Python upgrades (brew upgrade) change the path and "
        "need the grant again; or use a folder under ~/Pictures"
    )


def eperm_hint(path: Path | str, executable: str | None = None) -> str:
    """Return the explanation of 'Operation not permitted' on `path` for the log and the CLI."""
    binary = tcc_binary(executable)
    return (
        f"macOS does not allow imgdrop to use {path}: allow {binary} in {SETTINGS_PATH} "
        f"(or {FOLDERS_PATH}), then restart imgdrop"
    )
