"""A config file and its folders in tmp_path, and the real `imgdrop` process to run on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imgdrop.config import Settings, load


@dataclass
class Workspace:
    """Folders and a config for one test; `settings()` loads it the way the daemon does."""

    root: Path
    config: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "links"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def journal(self) -> Path:
        return self.root / "data" / "history.sqlite3"

    def write(self, **keys: Any) -> None:
        """(Re)write the config file with the test defaults plus `keys`."""
        values: dict[str, Any] = {
            "inbox": str(self.inbox),
            "outbox": str(self.outbox),
            "done": str(self.done),
            "failed": str(self.failed),
            "journal": str(self.journal),
            "settle_seconds": 0.3,
            "retry_initial_seconds": 0.1,
            "retry_max_seconds": 0.5,
            "clipboard": False,
            "notify": False,
            "log_level": "DEBUG",
        }
        values.update(keys)
        tmp = self.config.with_name(".config.tmp")
        tmp.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.config)

    def settings(self) -> Settings:
        return load(self.config)

    def drop(self, name: str, data: bytes) -> Path:
        """Write and close a file in the inbox, as `cp` does."""
        path = self.inbox / name
        path.write_bytes(data)
        return path

    @staticmethod
    def names(folder: Path) -> list[str]:
        """Visible file names in `folder`, sorted."""
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def make_workspace(root: Path, api_url: str, client_id: str, **keys: Any) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(root=root, config=root / "config.yaml")
    ws.write(api_url=api_url, client_id=client_id, **keys)
    ws.inbox.mkdir(parents=True, exist_ok=True)
    return ws


class DaemonProcess:
    """`python -m imgdrop --config … run` as a child process, its output in a log file."""

    count = 0

    def __init__(self, ws: Workspace, *args: str) -> None:
        DaemonProcess.count += 1
        self.log_path = ws.root / f"daemon-{DaemonProcess.count}.log"
        self.argv = [sys.executable, "-m", "imgdrop", "--config", str(ws.config), "run", *args]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ),
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def started(self) -> bool:
        return "watching" in self.log

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
