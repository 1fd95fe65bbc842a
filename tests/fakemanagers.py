"""Stateful fake `launchctl` and `systemctl` for tests: fake executables that record argv.

launchctl behaves as the real one does where it matters: `bootout` returns at once and the job
is gone only FAKE_BOOTOUT_LAG seconds later; `bootstrap` of a loaded label exits 5 with the
real message; `print` exits 113 when the label is not loaded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

LAUNCHCTL = r"""
import json, os, plistlib, sys, time
state_path, log_path = os.environ["FAKE_STATE"], os.environ["FAKE_LOG"]
with open(log_path, "a") as f:
    f.write(" ".join(["launchctl", *sys.argv[1:]]) + "\n")
try:
    with open(state_path) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {}
now = time.time()

def save():
    with open(state_path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(state_path + ".tmp", state_path)

def loaded(label):
    job = state.get(label)
    if job is None:
        return False
    if job.get("gone_at") is not None and now >= job["gone_at"]:
        del state[label]
        save()
        return False
    return True

SPAWN = bool(os.environ.get("FAKE_SPAWN"))  # really run the job, as launchd would

def exitfile(label):
    return f"{state_path}.{label}.exit"

def spawn(label):
    import subprocess
    job = state[label]["job"]
    if os.path.exists(exitfile(label)):
        os.unlink(exitfile(label))
    env = {k: os.environ[k] for k in ("HOME", "USER", "LOGNAME", "TMPDIR") if k in os.environ}
    env.update(job.get("EnvironmentVariables", {}))
    out = open(job.get("StandardOutPath", os.devnull), "ab")
    supervisor = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake-job")
    p = subprocess.Popen([sys.executable, supervisor, json.dumps(job["ProgramArguments"]),
                          exitfile(label)], env=env, cwd="/", stdin=subprocess.DEVNULL,
                         stdout=out, stderr=out, start_new_session=True)
    state[label]["pid"] = p.pid

def alive(label):
    return bool(state[label].get("pid")) and not os.path.exists(exitfile(label))

def term(label):
    if alive(label):
        try:
            os.kill(state[label]["pid"], 15)
        except ProcessLookupError:
            pass

def refresh(label):
    if SPAWN and label in state:
        job = state[label]
        job["state"] = "running" if alive(label) else "not running"
        if os.path.exists(exitfile(label)):
            with open(exitfile(label)) as f:
                job["last"] = f.read().strip() or job["last"]

cmd, rest = sys.argv[1], sys.argv[2:]
if cmd == "print":
    label = rest[0].rsplit("/", 1)[1]
    refresh(label)
    job = state.get(label, {})
    if not loaded(label) or (os.environ.get("FAKE_PRINT_LIES") and job.get("gone_at")):
        print(f'Could not find service "{label}" in domain for user gui: {os.getuid()}',
              file=sys.stderr)
        sys.exit(113)
    print(f"{rest[0]} = {{\n\tactive count = 1\n\tpath = {job['path']}\n"
          f"\tstate = {job['state']}\n\tpid = {job['pid']}\n"
          f"\tlast exit code = {job['last']}\n\tendpoints = {{\n\t\tstate = active\n\t}}\n}}")
elif cmd == "bootout":
    label = rest[0].rsplit("/", 1)[1]
    if not loaded(label) or state[label].get("gone_at"):
        print("Boot-out failed: 3: No such process", file=sys.stderr)
        sys.exit(3)
    state[label]["gone_at"] = now + float(os.environ.get("FAKE_BOOTOUT_LAG", "1.5"))
    if SPAWN:
        term(label)
    save()
elif cmd == "bootstrap":
    with open(rest[1], "rb") as f:
        job = plistlib.load(f)
    if loaded(job["Label"]):
        print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
        print("Try re-running the command as root for richer errors.", file=sys.stderr)
        sys.exit(5)
    running = bool(job.get("RunAtLoad")) and not os.environ.get("FAKE_NEVER_RUNS")
    state[job["Label"]] = {"path": rest[1], "state": "running" if running else "not running",
                           "pid": 4242 if running else None, "last": "(never exited)",
                           "job": job, "gone_at": None}
    if SPAWN and running:
        spawn(job["Label"])
    save()
elif cmd in ("stop", "start"):
    label = rest[0]
    if not loaded(label):
        sys.exit(3)
    if SPAWN:
        spawn(label) if cmd == "start" and not alive(label) else term(label)
    else:
        state[label]["state"] = "running" if cmd == "start" else "not running"
        state[label]["last"] = state[label]["last"] if cmd == "start" else "0"
    save()
elif cmd not in ("enable", "disable", "kickstart"):
    print(f"Unrecognized subcommand: {cmd}", file=sys.stderr)
    sys.exit(64)
"""

SYSTEMCTL = r"""
import json, os, sys
state_path, log_path = os.environ["FAKE_STATE"], os.environ["FAKE_LOG"]
with open(log_path, "a") as f:
    f.write(" ".join(["systemctl", *sys.argv[1:]]) + "\n")
try:
    with open(state_path) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {"active": False, "enabled": False, "starts": 0}
args = [a for a in sys.argv[1:] if a != "--user"]
if os.environ.get("FAKE_FAIL") and args[0] == os.environ["FAKE_FAIL"]:
    print("Failed to connect to bus: No medium found", file=sys.stderr)
    sys.exit(1)
if args[0] == "is-active":
    print("active" if state["active"] else "inactive")
    sys.exit(0 if state["active"] else 3)
if args[:2] == ["enable", "--now"]:
    if not state["active"]:
        state["starts"] += 1
    state.update(active=True, enabled=True)
elif args[0] == "restart":
    state.update(active=True, starts=state["starts"] + 1)
elif args[:2] == ["disable", "--now"]:
    if not state["enabled"]:
        print("Failed to disable unit: Unit file imgdrop.service does not exist.",
              file=sys.stderr)
        sys.exit(1)
    state.update(active=False, enabled=False)
with open(state_path, "w") as f:
    json.dump(state, f)
"""


FAKE_JOB = r"""
import json, signal, subprocess, sys
argv, exitfile = json.loads(sys.argv[1]), sys.argv[2]
child = subprocess.Popen(argv)
signal.signal(signal.SIGTERM, lambda *a: child.send_signal(signal.SIGTERM))
code = child.wait()
with open(exitfile + ".tmp", "w") as f:
    f.write(str(code if code >= 0 else 128 - code))
import os
os.replace(exitfile + ".tmp", exitfile)
"""


class FakeManager:
    """One fake service manager alone on PATH; `calls()` are its command lines in order."""

    def __init__(self, root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = root / "fakebin"
        self.bin.mkdir(exist_ok=True)
        self.state = root / f"{name}.state.json"
        self.log = root / f"{name}.calls.txt"
        script = self.bin / name
        body = LAUNCHCTL if name == "launchctl" else SYSTEMCTL
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(0o755)
        (self.bin / "fake-job").write_text(FAKE_JOB)
        monkeypatch.setenv("PATH", str(self.bin))  # the real ones must not be found
        monkeypatch.setenv("FAKE_STATE", str(self.state))
        monkeypatch.setenv("FAKE_LOG", str(self.log))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def reset_calls(self) -> None:
        self.log.unlink(missing_ok=True)

    def jobs(self) -> dict[str, dict[str, object]]:
        """The fake's state: launchd labels (or systemd flags)."""
        if not self.state.exists():
            return {}
        loaded: dict[str, dict[str, object]] = json.loads(self.state.read_text())
        return loaded


def env_with(**values: str) -> dict[str, str]:
    return {**os.environ, **values}
