"""`make mac-check`: five minutes on a real Mac that prove the macOS paths work end to end.

Starts the offline fake host, points a temporary inbox at it, installs the service under a
temporary label, saves a real screenshot and a Finder-style `ditto` copy of a big file into the
inbox, stops and starts the job with launchctl, prints PASS/FAIL per step, removes everything.
Nothing of the user's own config, journal, log or LaunchAgent is touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from imgdrop import daemon, macos, managers, service
from imgdrop.exitcodes import Exit
from imgdrop.testserver import DEMO_CLIENT_ID

CLIENT_ID = DEMO_CLIENT_ID  # what `python -m imgdrop.testserver` accepts
STEP_TIMEOUT = 60.0
BIG_BYTES = 9_500_000  # under the default 10 MB image limit, big enough to take a while
POLL = 0.2
STAY_SECONDS = 3.0  # how long a stopped job must stay stopped


def label_for(pid: int) -> str:
    """Return the temporary LaunchAgent label for this run (never the real one)."""
    return f"{service.LABEL}.maccheck.{pid}"


def screencapture_cmd(dest: Path) -> list[str]:
    """Return the command that saves a silent screenshot to `dest` (-x: no sound)."""
    return ["screencapture", "-x", str(dest)]


def ditto_cmd(src: Path, dest: Path) -> list[str]:
    """Return Finder's way of copying `src` to `dest`."""
    return ["ditto", str(src), str(dest)]


def launchctl_cmd(action: str, label: str, uid: int) -> list[str]:
    """Return the launchctl command for stop/start/print of `label`."""
    return ["launchctl", action, f"gui/{uid}/{label}" if action == "print" else label]


def job_state(print_output: str, returncode: int) -> tuple[str, str | None]:
    """Return (state, last exit code) parsed from `launchctl print`; ("gone", None) if absent."""
    if returncode != 0:
        return "gone", None
    found = managers.launchd_details(print_output)
    return found.get("state", "unknown"), found.get("last exit code")


def big_png(size: int) -> bytes:
    """Return a decodable greyscale PNG of about `size` bytes (stored, not compressed)."""
    width = 1024
    rows = max(1, size // (width + 1))
    raw = b"".join(b"\x00" + os.urandom(width) for _ in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, rows, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 0))
        + chunk(b"IEND", b"")
    )


@dataclass
class Check:
    """One run of the self-check in `root`; `results` holds (step, passed, detail)."""

    root: Path
    label: str
    uid: int = field(default_factory=os.getuid)
    timeout: float = STEP_TIMEOUT
    results: list[tuple[str, bool, str]] = field(default_factory=list)
    host: subprocess.Popen[str] | None = None
    say: Callable[[str], None] = print

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def folder(self, name: str) -> Path:
        return self.root / name

    def step(self, name: str, passed: bool, detail: str = "") -> bool:
        self.results.append((name, passed, detail))
        self.say(f"{'PASS' if passed else 'FAIL'}  {name}{': ' + detail if detail else ''}")
        return passed

    def wait(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        deadline = time.time() + (timeout or self.timeout)
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(POLL)
        return predicate()

    # --- the steps ---------------------------------------------------------------------

    def start_host(self) -> bool:
        self.host = subprocess.Popen(
            [sys.executable, "-m", "imgdrop.testserver"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.host.stdout is not None
        url = self.host.stdout.readline().strip()
        ok = url.startswith("http://127.0.0.1:")
        if ok:
            self.write_config(url)
        return self.step("offline test host started", ok, url or "no URL printed")

    def write_config(self, url: str) -> None:
        values = {
            "client_id": CLIENT_ID,
            "api_url": url,
            "inbox": str(self.folder("Inbox")),
            "outbox": str(self.folder("Links")),
            "done": str(self.folder("Done")),
            "failed": str(self.folder("Failed")),
            "journal": str(self.folder("data") / "history.sqlite3"),
            "clipboard": False,
            "notify": False,
            "log_level": "DEBUG",
        }
        for name in ("Inbox", "Links", "Done", "Failed", "data", "logs"):
            self.folder(name).mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(values), encoding="utf-8")
        self.config.chmod(0o600)

    def plist(self) -> bytes:
        env = service.service_environment(service.SANE_PATH["launchd"], os.environ)
        env[daemon.LOG_FILE_ENV] = str(self.log_file)
        logs = self.folder("logs")
        return service.render_plist(service.program_path(), self.config, logs, env, self.label)

    @property
    def log_file(self) -> Path:
        return self.folder("logs") / "imgdrop.log"

    def state(self) -> tuple[str, str | None]:
        done = self.run(launchctl_cmd("print", self.label, self.uid))
        return job_state(done.stdout, done.returncode)

    def run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return subprocess.CompletedProcess(cmd, 127, "", str(e))

    def install(self) -> bool:
        try:
            code = managers.launchd("install", self.plist(), self.folder("logs"), self.label)
        except (managers.ServiceError, OSError) as e:
            return self.step("service installed under a temporary label", False, str(e))
        watching = self.wait(lambda: "watching" in self._log())
        detail = f"{self.label}, state {self.state()[0]}"
        return self.step("service installed and running", code == Exit.OK and watching, detail)

    def _log(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def uploaded(self, name: str) -> bool:
        stem = Path(name).stem
        return (self.folder("Done") / name).exists() and (
            self.folder("Links") / f"{stem}.webloc"
        ).exists()

    def screenshot(self) -> bool:
        done = self.run(screencapture_cmd(self.folder("Inbox") / "maccheck screenshot.png"))
        if done.returncode != 0:
            return self.step("screenshot uploaded", False, done.stderr.strip() or "failed")
        ok = self.wait(lambda: self.uploaded("maccheck screenshot.png"))
        return self.step("screenshot uploaded", ok, "link file in Links, original in Done")

    def big_copy(self) -> bool:
        src = self.root / "big.png"
        data = big_png(BIG_BYTES)
        src.write_bytes(data)
        done = self.run(ditto_cmd(src, self.folder("Inbox") / "big.png"))
        if done.returncode != 0:
            return self.step("big file copied with ditto uploaded", False, done.stderr.strip())
        ok = self.wait(lambda: self.uploaded("big.png"))
        same = ok and _sha(self.folder("Done") / "big.png") == hashlib.sha256(data).hexdigest()
        failed = sorted(p.name for p in self.folder("Failed").iterdir())
        detail = f"{len(data) / 1e6:.1f} MB, intact" if same else f"failed/: {failed}"
        return self.step("big file copied with ditto uploaded", same and not failed, detail)

    def stop_start(self) -> bool:
        self.run(launchctl_cmd("stop", self.label, self.uid))
        stopped = self.wait(lambda: self.state()[0] != "running", 30)
        state, code = self.state()
        time.sleep(
            STAY_SECONDS
        )  # KeepAlive {SuccessfulExit: false}: a clean stop must stay stopped
        stays = self.state()[0] != "running"
        self.step(
            "launchctl stop: clean exit, stays stopped",
            stopped and code == "0" and stays,
            f"state {state}, last exit code {code}",
        )
        self.run(launchctl_cmd("start", self.label, self.uid))
        running = self.wait(lambda: self.state()[0] == "running", 30)
        (self.folder("Inbox") / "after restart.png").write_bytes(big_png(4096))
        ok = running and self.wait(lambda: self.uploaded("after restart.png"))
        return self.step("launchctl start: running again and uploading", ok)

    def cleanup(self) -> None:
        target = f"gui/{self.uid}/{self.label}"
        try:
            if self.run(["launchctl", "print", target]).returncode == 0:
                self.run(["launchctl", "bootout", target])
                managers.wait_gone(target)
        except managers.ServiceError as e:
            self.say(f"note: {e}")
        managers.plist_path(self.label).unlink(missing_ok=True)
        if self.host is not None:
            self.host.terminate()
            try:
                self.host.wait(10)
            except subprocess.TimeoutExpired:
                self.host.kill()
            if self.host.stdout is not None:
                self.host.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def run_all(self) -> Exit:
        self.say(f"note: the binary macOS privacy judges for this imgdrop: {macos.tcc_binary()}")
        try:
            if self.start_host() and self.install():
                self.screenshot()
                self.big_copy()
                self.stop_start()
        finally:
            if not all(passed for _, passed, _ in self.results):
                tail = self._log().splitlines()[-20:]
                self.say("--- last lines of the check's daemon log ---")
                for line in tail:
                    self.say(line)
            self.cleanup()
        passed = sum(p for _, p, _ in self.results)
        self.say(f"{passed}/{len(self.results)} steps passed; everything it made was removed")
        all_ok = passed == len(self.results) and bool(self.results)
        return Exit.OK if all_ok else Exit.FAILURE


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    """Run the self-check; exit 0 when every step passed."""
    if shutil.which("launchctl") is None:
        print("mac-check runs on macOS only (no launchctl here)", file=sys.stderr)
        return Exit.FAILURE
    root = Path(tempfile.mkdtemp(prefix="imgdrop-maccheck-"))  # /var/folders: not TCC-guarded
    return int(Check(root, label_for(os.getpid())).run_all())


if __name__ == "__main__":
    sys.exit(main())
