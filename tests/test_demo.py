"""`imgdrop demo`: offline, under 15 s, tells what happened, leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_demo_runs_offline_and_leaves_nothing(isolated_home: Path, tmp_path: Path) -> None:
    own_config = isolated_home / ".config" / "imgdrop" / "config.yaml"
    own_config.parent.mkdir(parents=True)
    own_config.write_text("client_id: mine-0123456789\n", encoding="utf-8")
    before = _tree(isolated_home)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "IMGDROP_CLIENT_ID": "env-id-should-not-leak"}
    env.pop("http_proxy", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "imgdrop", "demo"],
        capture_output=True, text=True, timeout=30, check=False, env=env,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert took < 15, f"demo took {took:.1f} s"
    out = done.stdout
    for name in ("red.png", "green.png", "blue.png"):
        assert f"{name} -> http://127.0.0.1:" in out
        assert f"done/{name}" in out
    assert "<key>URL</key>" in out  # a .webloc's content
    assert "notes.txt was not uploaded" in out and "not an image" in out
    assert list(scratch.iterdir()) == [], "the sandbox must be removed"
    assert _processes_mentioning(str(scratch)) == [], "no daemon or test host left running"
    assert _tree(isolated_home) == before, "the user's home (config, journal) is untouched"


def test_make_demo_target_runs_the_demo() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "imgdrop demo" in makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
