"""`imgdrop status [--json]`: is the daemon running, what waits and why, recent uploads, hosts.

Reads the lock and the journal only; it never signals or blocks the daemon.
"""

from __future__ import annotations

import json
from typing import Any

from imgdrop import daemon, hoststate, watcher
from imgdrop.commands.common import (
    iso,
    journal_if_any,
    midnight,
    running_pid,
    shown,
    visible_files,
    when,
)
from imgdrop.config import Settings
from imgdrop.exitcodes import Exit
from imgdrop.journal import Journal


def collect(settings: Settings) -> dict[str, Any]:
    """Return everything `status` shows, as plain data (the --json document)."""
    pid = running_pid(settings)
    report: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid or None,
        "config": str(settings.path),
        "inbox": str(settings.inbox),
        "waiting": [],
        "uploads_today": 0,
        "last_upload": None,
        "hosts": {},
        "log_file": str(daemon.service_log_file()),
    }
    with journal_if_any(settings) as journal:
        states = (
            hoststate.read_states(journal, settings.hosts)
            if journal is not None
            else {name: {"state": "usable", "until": None, "reason": "", "limits": None}
                  for name in settings.hosts}
        )  # fmt: skip
        report["hosts"] = states
        report["waiting"] = _waiting(settings, journal, states)
        if journal is not None:
            report["uploads_today"] = journal.uploads_since(midnight())
            last = journal.last_upload()
            if last is not None:
                report["last_upload"] = {
                    "file": shown(last.name), "host": last.host, "link": last.link,
                    "uploaded_at": iso(last.uploaded_at),
                }  # fmt: skip
    return report


def _waiting(
    settings: Settings, journal: Journal | None, states: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    files = [p for p in visible_files(settings.inbox) if not watcher.is_ignored(p.name)]
    if not files:
        return []
    errors: dict[str, tuple[str, int]] = {}
    if journal is not None:
        for entry in reversed(journal.history(limit=500)):  # oldest first: newest row wins
            if entry.state == "uploading":
                errors[entry.name] = (entry.error or "", entry.attempts)
    blocked = [
        f"{name} {doc.get('state')}" + (f" until {when(doc['until'])}" if doc.get("until") else "")
        + (f" ({doc['reason']})" if doc.get("reason") else "")
        for name, doc in states.items()
        if doc.get("state") not in (None, "usable")
    ]  # fmt: skip
    usable = any(doc.get("state") in (None, "usable") for doc in states.values())
    out = []
    for path in files:
        error, attempts = errors.get(path.name, ("", 0))
        if error:
            why = f"{error} (try {attempts})" if attempts else error
        elif not usable and blocked:
            why = "no host is usable now: " + "; ".join(blocked)
        else:
            why = "not tried yet"
        out.append({"file": shown(path.name), "why": why})
    return out


def _host_line(name: str, doc: dict[str, Any]) -> str:
    state = str(doc.get("state") or "usable")
    text = f"  {name}: {state}"
    if doc.get("until") and state != "usable":
        text += f" until {when(doc['until'])}"
    if doc.get("reason") and state != "usable":
        text += f" ({doc['reason']})"
    limits = doc.get("limits")
    if isinstance(limits, dict):
        parts = []
        for family in ("user", "client", "post"):
            left = limits.get(f"{family}_remaining")
            if isinstance(left, int | float):
                reset = limits.get(f"{family}_reset")
                at = f", resets {when(reset)}" if isinstance(reset, int | float) else ""
                parts.append(f"{family} {left:g} left{at}")
        if parts:
            text += "; rate limit: " + "; ".join(parts)
    return text


def status(settings: Settings, as_json: bool) -> Exit:
    """Print the report; 0 when the daemon runs, 3 when it does not."""
    report = collect(settings)
    code = Exit.OK if report["running"] else Exit.NOT_RUNNING
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return code
    if report["running"]:
        print(f"running (pid {report['pid'] or 'unknown'}) for {report['config']}")
    else:
        print(f"not running for {report['config']}"
              " (start it: imgdrop run, or imgdrop service install)")  # fmt: skip
    waiting = report["waiting"]
    print(f"waiting in {report['inbox']}: {len(waiting) or 'nothing'}")
    for item in waiting:
        print(f"  {item['file']}: {item['why']}")
    print(f"uploads today: {report['uploads_today']}")
    last = report["last_upload"]
    if last:
        at = f"{last['file']}, {last['host']}, {last['uploaded_at']}"
        print(f"last upload: {last['link']} ({at})")
    else:
        print("last upload: none yet")
    print("hosts:")
    for name, doc in report["hosts"].items():
        print(_host_line(name, doc))
    print(f"log file (service): {report['log_file']}; `imgdrop run` logs to its terminal")
    return code
