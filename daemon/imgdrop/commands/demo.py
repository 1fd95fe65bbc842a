"""`imgdrop demo`: the whole flow offline, in a temporary sandbox that is removed afterwards.

A local test host (`python -m imgdrop.testserver`), a real `imgdrop run` daemon with its own
config and journal in a temp folder, a few generated images and one non-image dropped by plain
file writes; then what happened in plain words. The user's config, journal and folders are
never read or touched: the daemon gets an explicit --config and a clean environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from imgdrop import filing, testserver
from imgdrop.exitcodes import Exit
from imgdrop.journal import Journal

START_TIMEOUT = 5.0
FLOW_TIMEOUT = 8.0
STOP_TIMEOUT = 5.0
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 70), "blue": (40, 90, 220)}
REJECTED = "notes.txt"
_ENV_DROPPED = ("IMGDROP_CONFIG", "IMGDROP_CLIENT_ID", "IMGDROP_API_URL", "IMGDROP_LOG_FILE")


def png(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """Return a `size`×`size` PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROPPED}
    env["HOME"] = str(root / "home")  # platformdirs of the child land in the sandbox
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):  # fmt: skip
        env[var] = str(root / "home" / sub)
    return env


def _config(root: Path, url: str) -> Path:
    lines = [
        f"client_id: {testserver.DEMO_CLIENT_ID}",
        f'api_url: "{url}"',
        *(f'{key}: "{root / key}"' for key in ("inbox", "outbox", "done", "failed")),
        f'journal: "{root / "data" / "history.sqlite3"}"',
        "settle_seconds: 0.2",
        "retry_initial_seconds: 0.2",
        "retry_max_seconds: 1",
        "clipboard: false",
        "notify: false",
    ]
    path = root / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def _say(text: str = "") -> None:
    print(text, flush=True)


def demo() -> Exit:
    """Run the sandbox; 0 when every file ended where it should."""
    root = Path(tempfile.mkdtemp(prefix="imgdrop-demo-"))
    server: subprocess.Popen[bytes] | None = None
    daemon: subprocess.Popen[bytes] | None = None
    try:
        (root / "home").mkdir()
        env = _env(root)
        server = subprocess.Popen(
            [sys.executable, "-m", "imgdrop.testserver"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        assert server.stdout is not None
        url = server.stdout.readline().decode().strip()
        if not url.startswith("http://127.0.0.1:"):
            _say("imgdrop demo: the local test host did not start")
            return Exit.FAILURE
        _say(f"1. A local stand-in for Imgur runs at {url} (nothing leaves this machine).")
        cfg = _config(root, url)
        log_path = root / "daemon.log"
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "imgdrop", "--config", str(cfg), "run"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        if not _wait(lambda: "watching" in log_path.read_text(errors="replace"), START_TIMEOUT):
            _say("imgdrop demo: the daemon did not start; its log:")
            _say(log_path.read_text(errors="replace"))
            return Exit.FAILURE
        inbox = root / "inbox"
        _say(f"2. A daemon (`imgdrop run`, pid {daemon.pid}) watches the inbox {inbox}.")
        names = [f"{colour}.png" for colour in COLOURS]
        for name, rgb in zip(names, COLOURS.values(), strict=True):
            (inbox / name).write_bytes(png(rgb))
        (inbox / REJECTED).write_text("a shopping list, not an image\n", encoding="utf-8")
        _say(f"3. Saved into the inbox: {', '.join(names)} and {REJECTED}.")
        done = root / "done"
        ok = _wait(
            lambda: not any(inbox.iterdir()) and len(list(done.glob("*.png"))) == len(names),
            FLOW_TIMEOUT,
        )
        _report(root, names)
        if not ok:
            _say("imgdrop demo: not every file finished in time; the daemon's log:")
            _say(log_path.read_text(errors="replace"))
            return Exit.FAILURE
        _say("6. Stopping the daemon and the test host, removing the sandbox. Done.")
        _say("   For real: imgdrop init, put your Imgur Client ID in the config, imgdrop run.")
        return Exit.OK
    finally:
        _stop(daemon)
        _stop(server)
        if server is not None and server.stdout is not None:
            server.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


def _report(root: Path, names: list[str]) -> None:
    with contextlib.closing(Journal(root / "data" / "history.sqlite3")) as journal:
        rows = {e.name: e for e in reversed(journal.history()) if e.link}
    _say("4. Uploaded (the daemon copies each link to the clipboard; the demo leaves yours alone):")
    for name in names:
        entry = rows.get(name)
        done = root / "done" / name
        if entry is None:
            _say(f"   {name}: not uploaded (yet)")
            continue
        where = "done/" if done.exists() else "?"
        _say(f"   {name} -> {entry.link}  (original moved to {where}{name})")
    weblocs = sorted((root / "outbox").glob("*.webloc"))
    if weblocs:
        _say(f"   Link files are in outbox/; {weblocs[0].name} is what you double-click. It holds:")
        for line in weblocs[0].read_text(encoding="utf-8").strip().splitlines():
            _say(f"     {line}")
    error = root / "failed" / (REJECTED + filing.ERROR_SUFFIX)
    if error.exists():
        reason = error.read_text(encoding="utf-8", errors="replace").splitlines()[0]
        _say(f"5. {REJECTED} was not uploaded: it went to failed/ with {error.name}, which says:")
        _say(f"     {reason}")
    else:
        _say(f"5. {REJECTED}: not in failed/ (yet)")
