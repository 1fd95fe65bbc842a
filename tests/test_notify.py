"""notify: the right command lines per platform, and real runs through fake tools on PATH."""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imgdrop import notify
from imgdrop.notify import Notifier, applescript_string, clipboard_command, notification_command
from tests.conftest import wait_until

LINK = "https://i.imgur.com/AbC123x.png"


def which_of(*present: str) -> Callable[[str], str | None]:
    """A fake shutil.which that finds only `present`."""
    return lambda name: f"/usr/bin/{name}" if name in present else None


def test_clipboard_command_on_macos() -> None:
    assert clipboard_command("Darwin", {}, which_of("pbcopy")) == ["pbcopy"]
    assert clipboard_command("Darwin", {}, which_of()) is None


def test_clipboard_command_on_linux_prefers_wayland_then_xclip_then_xsel() -> None:
    wayland = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    everything = which_of("wl-copy", "xclip", "xsel")
    assert clipboard_command("Linux", wayland, everything) == ["wl-copy"]
    assert clipboard_command("Linux", {"DISPLAY": ":0"}, everything) == [
        "xclip",
        "-selection",
        "clipboard",
    ]
    assert clipboard_command("Linux", wayland, which_of("xclip", "xsel")) == [
        "xclip",
        "-selection",
        "clipboard",
    ]
    assert clipboard_command("Linux", {}, which_of("xsel")) == ["xsel", "--clipboard", "--input"]


def test_clipboard_command_when_nothing_is_available() -> None:
    assert clipboard_command("Linux", {"WAYLAND_DISPLAY": "w"}, which_of()) is None
    assert clipboard_command("Windows", {}, which_of("xclip")) is None


def test_notification_command_on_macos() -> None:
    cmd = notification_command("Uploaded shot.png", LINK, "Darwin", which_of("osascript"))
    assert cmd == [
        "osascript",
        "-e",
        f'display notification "{LINK}" with title "Uploaded shot.png"',
    ]
    assert notification_command("t", "m", "Darwin", which_of()) is None


def test_notification_command_escapes_applescript_strings() -> None:
    cmd = notification_command(
        'Uploaded "quoted".png', 'C:\\temp\\x "y"\nz', "Darwin", which_of("osascript")
    )
    assert cmd is not None
    assert cmd[2] == (
        'display notification "C:\\\\temp\\\\x \\"y\\"\\nz" with title "Uploaded \\"quoted\\".png"'
    )


def test_applescript_string_cannot_be_broken_out_of() -> None:
    hostile = '" & (do shell script "rm -rf ~") & "\\'
    literal = applescript_string(hostile)
    assert literal == '"\\" & (do shell script \\"rm -rf ~\\") & \\"\\\\"'
    inner = literal[1:-1]
    # every quote inside is escaped by an odd run of backslashes
    for i, ch in enumerate(inner):
        if ch == '"':
            run = len(inner[:i]) - len(inner[:i].rstrip("\\"))
            assert run % 2 == 1


def test_notification_command_on_linux() -> None:
    cmd = notification_command("Uploaded shot.png", LINK, "Linux", which_of("notify-send"))
    assert cmd == ["notify-send", "--app-name=imgdrop", "Uploaded shot.png", LINK]
    assert notification_command("t", "m", "Linux", which_of()) is None


# --- real runs through fake executables ---------------------------------------------------

FAKE_TOOL = """#!/bin/sh
# Record argv (one per line), then stdin, into $RECORD_DIR/<tool>; write-then-rename.
name=${{0##*/}}
tmp="$RECORD_DIR/.$name.$$"
{{ for a in "$@"; do printf '%s\\n' "$a"; done; printf -- '--stdin--\\n'; /bin/cat; }} > "$tmp"
/bin/mv "$tmp" "$RECORD_DIR/$name"
printf '%s\\n' "$name" >> "$RECORD_DIR/.calls"
printf '%s\\n' "$LC_CTYPE" > "$RECORD_DIR/.$name.lc_ctype"
{extra}
"""


class Tools:
    """Fake clipboard/notification tools in a bin folder that is all of PATH (plus sh basics)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = root / "bin"
        self.records = root / "records"
        self.bin.mkdir()
        self.records.mkdir()
        monkeypatch.setenv("RECORD_DIR", str(self.records))
        monkeypatch.setenv("PATH", f"{self.bin}:/usr/bin:/bin")
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    def add(self, name: str, extra: str = "") -> None:
        path = self.bin / name
        path.write_text(FAKE_TOOL.format(extra=extra))
        path.chmod(0o755)

    def record(self, name: str) -> tuple[list[str], str]:
        """Wait for `name` to have run; return its argv and stdin."""
        path = self.records / name
        wait_until(path.exists, 5, f"{name} to run")
        argv, _, stdin = path.read_text().partition("--stdin--\n")
        return argv.splitlines(), stdin

    def calls(self) -> list[str]:
        path = self.records / ".calls"
        return path.read_text().splitlines() if path.exists() else []

    def ran(self) -> list[str]:
        return sorted(p.name for p in self.records.iterdir() if not p.name.startswith("."))


def _notify_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "imgdrop-notify"]


def _settled() -> None:
    wait_until(lambda: not _notify_threads(), 5, "notification threads to finish")


@pytest.fixture(autouse=True)
def fresh_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short batch window, and the once-only INFO lines not yet said."""
    monkeypatch.setattr(notify, "BATCH_SECONDS", 0.2)
    monkeypatch.setattr(notify, "_SAID", set())


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tools:
    return Tools(tmp_path, monkeypatch)


def _pretend(monkeypatch: pytest.MonkeyPatch, system: str) -> None:
    # notify looks platform.system() up at call time, so patching the function is enough.
    monkeypatch.setattr(platform, "system", lambda: system)


def test_uploaded_on_linux_copies_and_notifies(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    tools.add("notify-send")
    Notifier(clipboard=True, notify=True).uploaded("shot.png", LINK)
    assert tools.record("xclip") == (["-selection", "clipboard"], LINK)
    assert tools.record("notify-send") == (
        ["--app-name=imgdrop", "Uploaded shot.png", LINK],
        "",
    )
    _settled()


def test_uploaded_on_macos_uses_pbcopy_and_osascript(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend(monkeypatch, "Darwin")
    tools.add("pbcopy")
    tools.add("osascript")
    Notifier(clipboard=True, notify=True).uploaded('say "hi".png', LINK)
    assert tools.record("pbcopy") == ([], LINK)
    argv, _ = tools.record("osascript")
    assert argv == ["-e", f'display notification "{LINK}" with title "Uploaded say \\"hi\\".png"']
    _settled()


def test_wayland_uses_wl_copy(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Linux")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    tools.add("wl-copy")
    tools.add("xclip")
    Notifier(clipboard=True, notify=False).uploaded("shot.png", LINK)
    assert tools.record("wl-copy") == ([], LINK)
    _settled()
    assert tools.ran() == ["wl-copy"]


def test_failed_and_alert_only_notify(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    tools.add("notify-send")
    notifier = Notifier(clipboard=True, notify=True)
    notifier.failed("notes.png", "This file is not an image Imgur accepts (it looks like text).")
    argv, _ = tools.record("notify-send")
    assert argv == [
        "--app-name=imgdrop",
        "Could not upload notes.png",
        "This file is not an image Imgur accepts (it looks like text).",
    ]
    _settled()
    (tools.records / "notify-send").unlink()
    notifier.alert("Imgur refused the Client ID", "Uploads are paused until the config is fixed.")
    argv, _ = tools.record("notify-send")
    assert argv[1:] == [
        "Imgur refused the Client ID",
        "Uploads are paused until the config is fixed.",
    ]
    _settled()
    assert tools.ran() == ["notify-send"]  # the clipboard was never touched


def test_clipboard_only_does_not_notify(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    tools.add("notify-send")
    notifier = Notifier(clipboard=True, notify=False)
    notifier.failed("a.png", "reason")
    notifier.alert("title", "message")
    assert _notify_threads() == []
    notifier.uploaded("a.png", LINK)
    assert tools.record("xclip")[1] == LINK
    _settled()
    assert tools.ran() == ["xclip"]


def test_both_off_runs_nothing(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    tools.add("notify-send")
    before = set(threading.enumerate())
    notifier = Notifier(clipboard=False, notify=False)
    notifier.uploaded("a.png", LINK)
    notifier.failed("a.png", "reason")
    notifier.alert("title", "message")
    assert set(threading.enumerate()) == before  # nothing was started, so nothing can run
    assert tools.ran() == []


def test_a_hanging_tool_never_blocks_the_caller(
    tools: Tools, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _pretend(monkeypatch, "Linux")
    monkeypatch.setattr(notify, "COMMAND_TIMEOUT", 0.3)
    tools.add("notify-send", extra="exec /bin/sleep 30")
    caplog.set_level(logging.DEBUG, logger="imgdrop.notify")
    started = time.monotonic()
    Notifier(clipboard=False, notify=True).uploaded("a.png", LINK)
    assert time.monotonic() - started < 0.2
    tools.record("notify-send")
    _settled()
    assert "timed out" in caplog.text


def test_missing_and_failing_tools_are_said_once_at_info(
    tools: Tools, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _pretend(monkeypatch, "Linux")
    monkeypatch.setenv("PATH", str(tools.bin))  # no xclip, xsel, wl-copy anywhere
    tools.add("notify-send", extra="echo 'cannot connect to the bus' >&2; exit 1")
    caplog.set_level(logging.DEBUG, logger="imgdrop.notify")
    notifier = Notifier(clipboard=True, notify=True)
    notifier.uploaded("a.png", LINK)
    assert notifier.drain(5)
    notifier.uploaded("b.png", LINK)
    assert notifier.drain(5)
    assert tools.calls() == ["notify-send", "notify-send"]
    lines = [r.getMessage() for r in caplog.records if r.name == "imgdrop.notify"]
    assert lines == [
        "no clipboard tool found: install wl-clipboard (Wayland), xclip or xsel",
        "notification command notify-send exited 1 cannot connect to the bus",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "imgdrop.notify")


def test_constructor_has_no_side_effects(tools: Tools) -> None:
    before = set(threading.enumerate())
    Notifier(clipboard=True, notify=True)
    assert set(threading.enumerate()) == before
    assert tools.ran() == []


# --- formats, batches, reuse, macOS tools ---------------------------------------------------

NAME = 'my "best" \\ shot [1].png'


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("url", LINK),
        ("markdown", f'![my "best" \\\\ shot \\[1\\].png]({LINK})'),
        ("html", f'<img src="{LINK}" alt="my &quot;best&quot; \\ shot [1].png">'),
        ("bbcode", f"[img]{LINK}[/img]"),
        ("{name} -> {url} (delete: {delete_url})", f"{NAME} -> {LINK} (delete: https://d/x)"),
        ("broken {nope}", LINK),
        ("broken {", LINK),
    ],
)
def test_clip_text_formats(fmt: str, expected: str) -> None:
    assert notify.clip_text(fmt, NAME, LINK, "https://d/x") == expected


@pytest.mark.parametrize("fmt", ["url", "markdown", "html", "bbcode", "<{url}|{name}>"])
def test_each_format_reaches_the_clipboard(
    tools: Tools, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    _pretend(monkeypatch, "Darwin")
    tools.add("pbcopy")
    notifier = Notifier(clipboard=True, notify=False, clipboard_format=fmt)
    notifier.uploaded(NAME, LINK, delete_url=None)
    assert notifier.drain(5)
    assert tools.record("pbcopy") == ([], notify.clip_text(fmt, NAME, LINK, None))
    assert (tools.records / ".pbcopy.lc_ctype").read_text() == "UTF-8\n"


def test_a_batch_of_three_gives_one_entry_and_one_notification(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    tools.add("notify-send")
    notifier = Notifier(True, True, "markdown")
    links = [f"https://i.imgur.com/{n}.png" for n in ("a", "b", "c")]
    for n, link in zip("abc", links, strict=True):
        notifier.uploaded(f"{n}.png", link)
    assert notifier.drain(5)
    assert tools.calls() == ["xclip", "notify-send"]
    assert tools.record("xclip")[1] == "\n".join(
        f"![{n}.png]({u})" for n, u in zip("abc", links, strict=True)
    )
    assert tools.record("notify-send")[0] == [
        "--app-name=imgdrop",
        "3 images uploaded",
        "Links copied: a.png, b.png, c.png",
    ]


def test_files_further_apart_get_their_own_entries(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    notifier = Notifier(True, False)
    notifier.uploaded("a.png", "https://i.imgur.com/a.png")
    assert notifier.drain(5)
    notifier.uploaded("b.png", "https://i.imgur.com/b.png")
    assert notifier.drain(5)
    assert tools.calls() == ["xclip", "xclip"]
    assert tools.record("xclip")[1] == "https://i.imgur.com/b.png"


def test_a_burst_never_drops_the_newest(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("xclip")
    notifier = Notifier(True, False)
    for i in range(notify.MAX_QUEUED + 500):
        notifier.uploaded(f"{i}.png", f"https://i.imgur.com/{i}.png")
    assert notifier.drain(10)
    last = f"https://i.imgur.com/{notify.MAX_QUEUED + 499}.png"
    assert tools.record("xclip")[1].splitlines()[-1] == last


def test_reused_link_is_announced_as_such(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Linux")
    tools.add("notify-send")
    notifier = Notifier(False, True)
    notifier.uploaded("a.png", LINK, reused=True)
    assert notifier.drain(5)
    assert tools.record("notify-send")[0][1:] == ["Link reused for a.png", LINK]
    notifier.uploaded("a.png", LINK, reused=True)
    notifier.uploaded("b.png", LINK)
    assert notifier.drain(5)
    assert tools.record("notify-send")[0][1] == "2 images uploaded (1 link reused)"


def test_terminal_notifier_opens_the_link(tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, "Darwin")
    tools.add("terminal-notifier")
    tools.add("osascript")
    notifier = Notifier(False, True)
    notifier.uploaded(NAME, LINK)
    assert notifier.drain(5)
    assert tools.calls() == ["terminal-notifier"]
    argv, _ = tools.record("terminal-notifier")
    assert argv == [
        "-title",
        f"Uploaded {NAME}",
        "-message",
        LINK,
        "-group",
        "imgdrop",
        "-open",
        LINK,
    ]


def test_terminal_notifier_defuses_leading_bracket() -> None:
    cmd = notification_command("[x]", "-y", "Darwin", which_of("terminal-notifier"))
    assert cmd == ["terminal-notifier", "-title", " [x]", "-message", " -y", "-group", "imgdrop"]


def test_report_missing_tools_names_packages_once(
    tools: Tools, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tools.bin))
    caplog.set_level(logging.INFO, logger="imgdrop.notify")
    notify.report_missing_tools(True, True, "Linux")
    notify.report_missing_tools(True, True, "Linux")
    assert [r.getMessage() for r in caplog.records] == [
        "no clipboard tool found: install wl-clipboard (Wayland), xclip or xsel",
        "no notification tool found: install libnotify-bin (notify-send)",
    ]
    caplog.clear()
    tools.add("osascript")
    notify.report_missing_tools(False, True, "Darwin")
    notify.report_missing_tools(False, True, "Darwin")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "System Settings › Notifications › Script Editor" in line
    assert "brew install terminal-notifier" in line


def test_no_tool_at_all_runs_nothing_and_does_not_raise(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend(monkeypatch, "Darwin")
    monkeypatch.setenv("PATH", str(tools.bin))
    notifier = Notifier(True, True, "html")
    notifier.uploaded("a.png", LINK)
    notifier.failed("b.png", "not an image")
    assert notifier.drain(5)
    assert tools.calls() == []
