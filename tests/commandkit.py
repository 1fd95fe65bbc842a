"""Helpers for the command tests: real uploads into a real journal through `imgdrop run --once`."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

from imgdrop.commands.demo import png
from tests.workspace import Workspace


def image(seed: int) -> bytes:
    """A small PNG whose bytes differ for every seed."""
    return png((seed % 256, (seed * 7) % 256, zlib.crc32(str(seed).encode()) % 256))


def imgdrop(
    ws: Workspace, *args: str, timeout: float = 30, env_path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m imgdrop --config <ws> ARGS` as a real process (PATH=env_path if given)."""
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run(
        [sys.executable, "-m", "imgdrop", "--config", str(ws.config), *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def upload_once(ws: Workspace, files: dict[str, bytes]) -> None:
    """Drop `files` into the inbox and let `imgdrop run --once` upload them."""
    for name, data in files.items():
        ws.drop(name, data)
    done = imgdrop(ws, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr


def names_in(folder: Path) -> list[str]:
    return Workspace.names(folder)
