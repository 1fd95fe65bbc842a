"""Clipboard and desktop notifications: best effort, off the caller's thread, never blocking.

Events go into a queue served by one short-lived thread, which gathers the files that finish
within BATCH_SECONDS of each other into one clipboard entry and one notification.
"""

from __future__ import annotations

import collections
import html
import logging
import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 5.0
BATCH_SECONDS = 1.0  # files finishing closer together than this share one entry
BATCH_MAX_SECONDS = 10.0  # a steady stream still gets announced this often
MAX_QUEUED = 1000  # beyond this the OLDEST entries go, never the newest link
FORMATS = {
    "url": "{url}",
    "markdown": "![{name}]({url})",
    "html": '<img src="{url}" alt="{name}">',
    "bbcode": "[img]{url}[/img]",
}
# What to install for a missing tool (said once at INFO).
PACKAGES = {
    "clipboard": "install wl-clipboard (Wayland), xclip or xsel",
    "notification": "install libnotify-bin (notify-send)",
}
SCRIPT_EDITOR_HINT = (
    "notifications are shown through osascript, which macOS files under Script Editor: allow "
    "them in System Settings › Notifications › Script Editor (if it is not listed, open Script "
    'Editor once and run: display notification "hi"); for notifications that open the link '
    "when clicked: brew install terminal-notifier"
)

Which = Callable[[str], str | None]
_SAID: set[str] = set()  # one INFO line per process for each missing or failing tool


def _say_once(key: str, message: str, *args: object) -> None:
    if key not in _SAID:
        _SAID.add(key)
        log.info(message, *args)


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


def clipboard_env(system: str, env: Mapping[str, str]) -> dict[str, str]:
    """Return the environment for the clipboard tool: pbcopy mangles UTF-8 without LC_CTYPE."""
    out = dict(env)
    if system == "Darwin":
        out["LC_CTYPE"] = "UTF-8"
    return out


def notification_command(
    title: str, message: str, system: str, which: Which, open_url: str | None = None
) -> list[str] | None:
    """Return the command that shows a desktop notification, or None if there is none."""
    if system == "Darwin":
        if which("terminal-notifier"):
            # A leading "[" or "-" would be read as markup or an option: a space defuses it.
            cmd = ["terminal-notifier", "-title", _defuse(title), "-message", _defuse(message)]
            cmd += ["-group", "imgdrop"]
            return [*cmd, "-open", open_url] if open_url else cmd
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


def _defuse(text: str) -> str:
    return f" {text}" if text[:1] in ("[", "-") else text


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


def clip_text(clipboard_format: str, name: str, url: str, delete_url: str | None) -> str:
    """Return one link as the clipboard gets it; a broken template falls back to the URL."""
    template = FORMATS.get(clipboard_format, clipboard_format)
    if clipboard_format == "html":
        name = html.escape(name, quote=True)
    elif clipboard_format == "markdown":  # keep [ ] \ in a name from ending the alt text
        name = name.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    try:
        return template.format_map({"url": url, "name": name, "delete_url": delete_url or ""})
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        _say_once(
            "template",
            "clipboard_format %r is not a valid template (%s); copying the URL",
            template,
            e,
        )
        return url


def report_missing_tools(clipboard: bool, notify: bool, system: str | None = None) -> None:
    """Say once at INFO which wanted tool is missing and what provides it (call at start)."""
    system = system or platform.system()
    if clipboard and clipboard_command(system, os.environ, shutil.which) is None:
        _say_once("no clipboard", "no clipboard tool found: %s", PACKAGES["clipboard"])
    if not notify:
        return
    if system == "Darwin" and not shutil.which("terminal-notifier"):
        _say_once("script editor", "%s", SCRIPT_EDITOR_HINT)
    elif notification_command("t", "m", system, shutil.which) is None:
        _say_once("no notification", "no notification tool found: %s", PACKAGES["notification"])


@dataclass(frozen=True)
class _Event:
    kind: str  # "uploaded", "failed", "alert"
    name: str
    text: str  # link, reason or message
    delete_url: str | None = None
    reused: bool = False


class Notifier:
    """Copies links and shows notifications as the config asks; every call returns at once."""

    def __init__(self, clipboard: bool, notify: bool, clipboard_format: str = "url") -> None:
        self.clipboard = clipboard
        self.notify = notify
        self.clipboard_format = clipboard_format
        self._lock = threading.Condition()
        self._queue: collections.deque[_Event] = collections.deque(maxlen=MAX_QUEUED)
        self._thread: threading.Thread | None = None

    def uploaded(
        self, name: str, link: str, delete_url: str | None = None, reused: bool = False
    ) -> None:
        """Copy `link` (if clipboard) and announce the upload of `name` (if notify)."""
        if self.clipboard or self.notify:
            self._put(_Event("uploaded", name, link, delete_url, reused))

    def failed(self, name: str, reason: str) -> None:
        """Announce that `name` went to failed/ and why (if notify)."""
        if self.notify:
            self._put(_Event("failed", name, reason))

    def alert(self, title: str, message: str) -> None:
        """Announce a problem that needs the user, such as a rejected Client ID (if notify)."""
        if self.notify:
            self._put(_Event("alert", title, message))

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued has been delivered; return False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._thread is None, timeout)

    def _put(self, event: _Event) -> None:
        with self._lock:
            self._queue.append(event)
            self._lock.notify_all()
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._serve, name="imgdrop-notify", daemon=True)
            try:
                thread.start()
            except RuntimeError as e:  # interpreter shutting down, thread limits
                log.debug("cannot start notification thread: %s", e)
                return
            self._thread = thread

    def _next_batch(self) -> list[_Event]:
        """Take the events that arrive within BATCH_SECONDS of each other (lock held)."""
        batch: list[_Event] = []
        started = time.monotonic()
        while True:
            batch.extend(self._queue)
            self._queue.clear()
            if not batch or time.monotonic() - started >= BATCH_MAX_SECONDS:
                return batch
            if not self._lock.wait_for(lambda: bool(self._queue), BATCH_SECONDS):
                return batch

    def _serve(self) -> None:
        """Deliver batches until the queue is empty, then end (a new event starts a new one)."""
        while True:
            with self._lock:
                batch = self._next_batch()
                if not batch:
                    self._thread = None
                    self._lock.notify_all()
                    return
            try:
                self._deliver(batch)
            except Exception:  # never let a side effect kill the thread silently
                log.exception("notification failed")

    def _deliver(self, batch: list[_Event]) -> None:
        system = platform.system()  # looked up now: tests and PATH may change
        uploads = [e for e in batch if e.kind == "uploaded"]
        if self.clipboard and uploads:
            text = "\n".join(
                clip_text(self.clipboard_format, e.name, e.text, e.delete_url) for e in uploads
            )
            cmd = clipboard_command(system, os.environ, shutil.which)
            _run_quietly(cmd, text, "clipboard", clipboard_env(system, os.environ))
        if not self.notify:
            return
        for title, message, url in _notes(batch):
            cmd = notification_command(title, message, system, shutil.which, url)
            _run_quietly(cmd, None, "notification", None)


def _notes(batch: list[_Event]) -> list[tuple[str, str, str | None]]:
    """Return (title, message, link to open) for one batch: one note per kind of event."""
    notes: list[tuple[str, str, str | None]] = []
    uploads = [e for e in batch if e.kind == "uploaded"]
    if len(uploads) == 1:
        e = uploads[0]
        title = f"Link reused for {e.name}" if e.reused else f"Uploaded {e.name}"
        notes.append((title, e.text, e.text))
    elif uploads:
        reused = sum(e.reused for e in uploads)
        title = f"{len(uploads)} images uploaded"
        if reused:
            title += f" ({reused} link{'s' if reused > 1 else ''} reused)"
        notes.append((title, "Links copied: " + ", ".join(e.name for e in uploads), None))
    failed = [e for e in batch if e.kind == "failed"]
    if len(failed) == 1:
        notes.append((f"Could not upload {failed[0].name}", failed[0].text, None))
    elif failed:
        names = ", ".join(e.name for e in failed)
        notes.append((f"{len(failed)} files could not be uploaded", names, None))
    notes += [(e.name, e.text, None) for e in batch if e.kind == "alert"]
    return notes


def _run_quietly(
    cmd: list[str] | None, stdin: str | None, what: str, env: dict[str, str] | None
) -> None:
    """Run `cmd` with a timeout; a missing or failing tool is said once at INFO."""
    if cmd is None:
        _say_once(f"no {what}", "no %s tool found: %s", what, PACKAGES.get(what, ""))
        return
    # Clipboard tools on X11/Wayland fork a child that keeps serving the selection; it would
    # hold captured pipes open until the timeout, so clipboard output goes to /dev/null.
    out = subprocess.DEVNULL if stdin is not None else subprocess.PIPE
    try:
        done = subprocess.run(
            cmd,
            input=stdin.encode("utf-8", "replace") if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _say_once(
            f"fail {cmd[0]}", "%s command %s timed out after %.0f s", what, cmd[0], COMMAND_TIMEOUT
        )
        return
    except OSError as e:
        _say_once(f"fail {cmd[0]}", "%s command %s failed: %s", what, cmd[0], e)
        return
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() if done.stderr else ""
        _say_once(
            f"fail {cmd[0]}", "%s command %s exited %d %s", what, cmd[0], done.returncode, detail
        )
