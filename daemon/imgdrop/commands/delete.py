"""`imgdrop delete REF…`: remove uploads from their host and mark them deleted in the journal."""

from __future__ import annotations

import sys

from imgdrop import hosts
from imgdrop.commands.common import shown
from imgdrop.config import ConfigError, Settings
from imgdrop.exitcodes import Exit
from imgdrop.journal import Entry, Journal


def delete(settings: Settings, refs: list[str]) -> Exit:
    """Delete each upload `refs` names (id, link, original name or `last`); 1 if any failed."""
    ok = True
    built: dict[str, hosts.Host] = {}
    seen: set[tuple[str, str]] = set()
    if not settings.journal.exists():
        print("imgdrop: nothing uploaded yet (see: imgdrop history)", file=sys.stderr)
        return Exit.FAILURE
    with Journal(settings.journal) as journal:
        try:
            for ref in refs:
                ok = _one(settings, journal, built, seen, ref) and ok
        finally:
            for host in built.values():
                host.close()
    return Exit.OK if ok else Exit.FAILURE


def _one(  # noqa: PLR0911 - one plain answer per case
    settings: Settings,
    journal: Journal,
    built: dict[str, hosts.Host],
    seen: set[tuple[str, str]],
    ref: str,
) -> bool:
    rows = journal.find_ref(ref)
    if not rows:
        what = "nothing uploaded yet" if ref == "last" else f"no upload matches {ref!r}"
        print(f"imgdrop: {what} (see: imgdrop history)", file=sys.stderr)
        return False
    entry = next((row for row in rows if row.state != "deleted"), rows[0])
    label = f"{entry.link} ({shown(entry.name)})"
    key = (entry.host, entry.link or "")
    if key in seen:
        return True  # named twice on one command line: done above
    seen.add(key)
    if entry.state == "deleted":
        print(f"{label} was already deleted; nothing sent to {entry.host}")
        return True
    host = _host(settings, built, entry)
    if host is None:
        return False
    if not host.can_delete:
        print(f"imgdrop: {label}: {entry.host} has no delete, so imgdrop cannot remove it",
              file=sys.stderr)  # fmt: skip
        return False
    outcome = host.delete(entry.deletehash, entry.link or "")
    if isinstance(outcome, hosts.Deleted):
        journal.mark_deleted(entry.id)
        print(f"deleted {label} from {entry.host}")
        return True
    if isinstance(outcome, hosts.Permanent) and outcome.status == 404:
        journal.mark_deleted(entry.id)  # deleted on the web already: the bytes may go again
        print(f"{label} was already gone from {entry.host}; marked deleted")
        return True
    reason = getattr(outcome, "reason", "") or "the host did not confirm the delete"
    print(f"imgdrop: {label}: not deleted: {reason}", file=sys.stderr)
    return False


def _host(settings: Settings, built: dict[str, hosts.Host], entry: Entry) -> hosts.Host | None:
    if entry.host not in built:
        try:
            built[entry.host] = hosts.build_one(settings, entry.host)
        except ConfigError as err:
            print(f"imgdrop: cannot delete {entry.link}: {err}", file=sys.stderr)
            return None
    return built[entry.host]
