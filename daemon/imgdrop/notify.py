"""Clipboard and desktop notifications: best effort, off the caller's thread, never blocking."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 5.0
# Side effects still waiting or running; beyond this a burst drops the extras.
MAX_PENDING = 8

Which = Callable[[str], str | None]


def clipboard_command(system: str, env: Mapping[str, str], which: Which) -> list[str] | None:
    """Return the command that copies its stdin to the clipboard, or None if there is none."""
    if system == "Darwin":
        return ["pbcopy"] if which("pbcopy") else None
    if system == "Windows":
        return None
    if env.get("WAYLAND_DISPLAY") and which("wl-copy"):
        return ["wl-copy"]
    if which("xclip"):
        return ["xclip", "-selection", "clipboard"]
    if which("xsel"):
        return ["xsel", "--clipboard", "--input"]
    return None


def notification_command(title: str, message: str, system: str, which: Which) -> list[str] | None:
    """Return the command that shows a desktop notification, or None if there is none."""
    if system == "Darwin":
        if not which("osascript"):
            return None
        script = (
            f"display notification {applescript_string(message)} "
            f"with title {applescript_string(title)}"
        )
        return ["osascript", "-e", script]
    if system == "Windows" or not which("notify-send"):
        return None
    return ["notify-send", "--app-name=imgdrop", title, message]


def applescript_string(text: str) -> str:
    """Return `text` as a double-quoted AppleScript string literal."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class Notifier:
    """Copies links and shows notifications as the config asks; every call returns at once."""

    def __init__(self, clipboard: bool, notify: bool) -> None:
        self.clipboard = clipboard
        self.notify = notify
        # Run one job at a time so the clipboard ends with the latest link, not a random one.
        self._serial = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_PENDING)

    def uploaded(self, name: str, link: str) -> None:
        """Copy `link` (if clipboard) and announce the upload of `name` (if notify)."""
        self._spawn(copy=link if self.clipboard else None, note=(f"Uploaded {name}", link))

    def failed(self, name: str, reason: str) -> None:
        """Announce that `name` went to failed/ and why (if notify)."""
        self._spawn(copy=None, note=(f"Could not upload {name}", reason))

    def alert(self, title: str, message: str) -> None:
        """Announce a problem that needs the user, such as a rejected Client ID (if notify)."""
        self._spawn(copy=None, note=(title, message))

    def _spawn(self, copy: str | None, note: tuple[str, str]) -> None:
        """Start a short-lived daemon thread for the side effects that are turned on."""
        wanted_note = note if self.notify else None
        if copy is None and wanted_note is None:
            return
        if not self._slots.acquire(blocking=False):
            log.debug("too many notifications pending; dropping %r", note[0])
            return
        thread = threading.Thread(
            target=self._run, args=(copy, wanted_note), name="imgdrop-notify", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as e:  # cannot start a thread (interpreter shutting down, limits)
            self._slots.release()
            log.debug("cannot start notification thread: %s", e)

    def _run(self, copy: str | None, note: tuple[str, str] | None) -> None:
        """Resolve the platform's tools now (PATH may have changed) and run them in turn."""
        try:
            with self._serial:
                system = platform.system()
                if copy is not None:
                    cmd = clipboard_command(system, os.environ, shutil.which)
                    _run_quietly(cmd, copy, "clipboard", keep_output=False)
                if note is not None:
                    cmd = notification_command(*note, system, shutil.which)
                    _run_quietly(cmd, None, "notification", keep_output=True)
        finally:
            self._slots.release()


def _run_quietly(cmd: list[str] | None, stdin: str | None, what: str, keep_output: bool) -> None:
    """Run `cmd` with a timeout; log any trouble at DEBUG and carry on."""
    if cmd is None:
        log.debug("no %s tool available; skipped", what)
        return
    # Clipboard tools on X11/Wayland fork a child that keeps serving the selection; it would
    # hold captured pipes open until the timeout, so their output goes to /dev/null instead.
    out = subprocess.PIPE if keep_output else subprocess.DEVNULL
    try:
        done = subprocess.run(
            cmd,
            input=stdin.encode() if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("%s command %s failed: %s", what, cmd[0], e)
        return
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() if done.stderr else ""
        log.debug("%s command %s exited %d %s", what, cmd[0], done.returncode, detail)
