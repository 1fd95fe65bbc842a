"""`imgdrop history [--limit N] [--today] [--json]`: uploads from the journal, newest first."""

from __future__ import annotations

import json
from typing import Any

from imgdrop import hosts
from imgdrop.commands.common import iso, journal_if_any, masked, midnight, shown, uploads, when
from imgdrop.config import ConfigError, Settings
from imgdrop.exitcodes import Exit
from imgdrop.journal import Entry

JSON_KEYS = (
    "file", "sha256", "host", "state", "link", "id",
    "deletehash", "delete_url", "link_file", "uploaded_at",
)  # fmt: skip


class DeleteUrls:
    """The human delete URL of an entry, from its host (built once per host name)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hosts: dict[str, hosts.Host | None] = {}

    def __call__(self, entry: Entry) -> str | None:
        if not entry.deletehash or not entry.link:
            return None
        if entry.host not in self._hosts:
            try:
                self._hosts[entry.host] = hosts.build_one(self._settings, entry.host)
            except ConfigError:
                self._hosts[entry.host] = None
        host = self._hosts[entry.host]
        if host is None:
            if entry.host == "imgur":  # known without a client ID
                return f"https://imgur.com/delete/{entry.deletehash}"
            return None
        return host.delete_url(entry.deletehash, entry.link)

    def close(self) -> None:
        for host in self._hosts.values():
            if host is not None:
                host.close()


def select(settings: Settings, limit: int | None, today: bool) -> list[Entry]:
    """Return the uploads to show, newest first."""
    with journal_if_any(settings) as journal:
        if journal is None:
            return []
        found = uploads(journal.history(since=midnight() if today else None))
    return found if limit is None else found[:limit]


def as_json(entry: Entry, delete_url: str | None) -> dict[str, Any]:
    """Return the SPEC's JSON object for one upload."""
    return {
        "file": shown(entry.name),
        "sha256": entry.sha256,
        "host": entry.host,
        "state": entry.state,
        "link": entry.link,
        "id": entry.imgur_id,
        "deletehash": entry.deletehash,
        "delete_url": delete_url,
        "link_file": entry.link_file,
        "uploaded_at": iso(entry.uploaded_at),
    }


def history(settings: Settings, limit: int | None, today: bool, as_array: bool) -> Exit:
    """Print the uploads; a JSON array with --json."""
    entries = select(settings, limit, today)
    if as_array:
        urls = DeleteUrls(settings)
        try:
            print(json.dumps([as_json(e, urls(e)) for e in entries], indent=2, ensure_ascii=False))
        finally:
            urls.close()
        return Exit.OK
    if not entries:
        print("no uploads yet" if not today else "no uploads today")
        return Exit.OK
    for e in entries:
        state = "" if e.state == "done" else f" [{e.state}]"
        print(
            f"{when(e.uploaded_at)}  {e.host:<9} {e.link}  {shown(e.name)}"
            f"  (id {e.imgur_id or '-'}, delete {masked(e.deletehash)}){state}"
        )
    return Exit.OK
