"""`imgdrop hosts list|import|test`: the hosts and their state, adding a .sxcu, a round trip.

Nothing here prints a token, a delete handle or a Client ID.
"""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from imgdrop.config import ConfigError
from imgdrop.exitcodes import Exit
from imgdrop.filetype import FileType
from imgdrop.hosts import BUILT_IN, build_one, host_names, link_exists, sxcu_path
from imgdrop.hosts.base import Deleted, NoDelete, Uploaded
from imgdrop.hosts.sxcu import parse_sxcu, variables
from imgdrop.hoststate import read_states, when

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_KEEPS = {
    "imgur": "keeps anonymous uploads until deleted (Imgur may remove old ones)",
    "0x0.st": "keeps files 30 days to 1 year (shorter for big files)",
    "catbox": "keeps anonymous uploads forever; no delete",
    "litterbox": "deletes uploads after litterbox_expiry",
}


def png_1x1() -> bytes:
    """A valid 1x1 transparent PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _when(epoch: object) -> str:
    return when(float(epoch)) if isinstance(epoch, (int, float)) else ""


def _states(journal: Any, names: list[str]) -> dict[str, dict[str, object]]:
    try:
        return read_states(journal, names)
    except Exception:  # a journal that cannot be read: show the hosts without state
        return {}


def _limits(limits: object) -> str:
    if not isinstance(limits, dict):
        return ""
    shown = []
    for family in ("user", "client", "post"):
        left = limits.get(f"{family}_remaining")
        if isinstance(left, (int, float)):
            total = limits.get(f"{family}_limit")
            of = f"/{total:g}" if isinstance(total, (int, float)) else ""
            reset = _when(limits.get(f"{family}_reset"))
            shown.append(f"{family} {left:g}{of} left" + (f" (resets {reset})" if reset else ""))
    return ", ".join(shown)


def list_hosts(settings: Any, journal: Any) -> str:
    """Return one line per configured host (state, delete, what it keeps), then unused .sxcu."""
    names = host_names(settings)
    states = _states(journal, names) if journal is not None else {}
    lines = []
    for position, name in enumerate(names, 1):
        where = "built-in" if name in BUILT_IN else f"custom: {sxcu_path(settings, name)}"
        try:
            host = build_one(settings, name)
        except ConfigError as exc:
            lines.append(f"{position}. {name} ({where}): not usable: {exc}")
            continue
        try:
            delete = "delete: yes" if host.can_delete else "delete: no"
        finally:
            host.close()
        state = states.get(name) or {"state": "usable"}
        text = str(state.get("state") or "usable")
        until = _when(state.get("until"))
        if until and text != "usable":
            text += f" until {until}"
        reason = state.get("reason")
        if reason and text != "usable":
            text += f" ({reason})"
        limits = _limits(state.get("limits"))
        extra = "; ".join(x for x in (delete, limits, _KEEPS.get(name, "")) if x)
        lines.append(f"{position}. {name} ({where}): {text}; {extra}")
    folder = Path(settings.path).parent / "hosts"
    try:
        spare = sorted(p.stem for p in folder.glob("*.sxcu") if p.stem not in names)
    except OSError:
        spare = []
    if spare:
        lines.append(f"Also in {folder}, not in hosts: {', '.join(spare)}")
    return "\n".join(lines)


def _write_private(target: Path, data: bytes) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if fd >= 0:
            os.close(fd)


def _name_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name) or name in (".", ".."):
        return f"a host name may use letters, digits, '.', '_', '-': {name!r}"
    if name in BUILT_IN:
        return f"{name} is a built-in host; choose another name with --name"
    return None


def import_sxcu(
    settings: Any,
    file: Path | str,
    name: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> Exit:
    """Validate a .sxcu file and copy it, mode 0600, to <config dir>/hosts/<name>.sxcu."""
    out, err = out or sys.stdout, err or sys.stderr
    source = Path(file).expanduser()
    name = name or source.stem
    problem = _name_problem(name)
    if problem is not None:
        print(f"imgdrop: {problem}", file=err)
        return Exit.USAGE
    try:
        parse_sxcu(source, env=False)
        needed = variables(source)
        data = source.read_bytes()
    except ConfigError as exc:
        print(f"imgdrop: {exc}", file=err)
        return Exit.CONFIG
    except OSError as exc:
        print(f"imgdrop: cannot read {source}: {exc.strerror}", file=err)
        return Exit.CONFIG
    target = sxcu_path(settings, name)
    try:
        _write_private(target, data)
    except FileExistsError:
        print(f"imgdrop: {target} exists already; remove it first or pick --name", file=err)
        return Exit.FAILURE
    except OSError as exc:
        print(f"imgdrop: cannot write {target}: {exc.strerror}", file=err)
        return Exit.CONFIG
    print(f"Imported {source} as host {name!r}: {target} (mode 0600).", file=out)
    missing = [v for v in needed if v not in os.environ]
    if needed:
        state = f" (not set now: {', '.join('$' + v for v in missing)})" if missing else ""
        names = ", ".join("$" + v for v in needed)
        print(f"It reads {names} from the environment{state}.", file=out)
    if name not in host_names(settings):
        print(f"Add {name} to `hosts:` in {settings.path} to use it.", file=out)
    return Exit.OK


def test_host(
    settings: Any, name: str, out: TextIO | None = None, err: TextIO | None = None
) -> Exit:
    """Upload a generated 1x1 PNG to host `name`, check its link, delete it; print each step."""
    out, err = out or sys.stdout, err or sys.stderr
    say: Callable[[str], None] = lambda text: print(text, file=out, flush=True)  # noqa: E731
    try:
        host = build_one(settings, name)
    except ConfigError as exc:
        print(f"imgdrop: {exc}", file=err)
        return Exit.CONFIG
    try:
        data = png_1x1()
        kind = FileType("image/png", video=False)
        say(f"1/3 uploading a 1x1 PNG ({len(data)} bytes) to {name} …")
        reply = host.upload(io.BytesIO(data), len(data), "imgdrop-test.png", kind)
        outcome = reply.outcome
        if not isinstance(outcome, Uploaded):
            say(f"    failed: {outcome.reason}")
            if getattr(outcome, "message", ""):
                say(f"    {name} said: {outcome.message}")
            return Exit.FAILURE
        say(f"    ok: {outcome.link}")
        say("2/3 checking the link …")
        exists = link_exists(outcome.link)
        say({True: "    ok: it is there", False: "    the link answers 404 (not there)",
             None: "    could not tell (the link did not answer plainly)"}[exists])  # fmt: skip
        say("3/3 deleting it …")
        gone = host.delete(outcome.delete_handle, outcome.link)
        if isinstance(gone, Deleted):
            say("    ok: deleted")
            return Exit.OK if exists is not False else Exit.FAILURE
        if isinstance(gone, NoDelete):
            say(f"    not possible: {gone.reason}")
            return Exit.OK if exists is not False else Exit.FAILURE
        say(f"    failed: {gone.reason} (the 1x1 test image stays at {outcome.link})")
        return Exit.FAILURE
    finally:
        host.close()


test_host.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite its name
