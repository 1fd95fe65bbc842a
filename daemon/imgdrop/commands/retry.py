"""`imgdrop retry [FILE…]`: move failed files back into the inbox, dropping their .error.txt."""

from __future__ import annotations

import contextlib
import sys
from functools import partial
from pathlib import Path

from imgdrop import filing
from imgdrop.commands.common import shown, visible_files
from imgdrop.config import Settings
from imgdrop.exitcodes import Exit


def retry(settings: Settings, names: list[str]) -> Exit:
    """Move the named failed files (all when none named) to the inbox; 1 if one was missing."""
    failed = [p for p in visible_files(settings.failed) if not p.name.endswith(filing.ERROR_SUFFIX)]
    ok = True
    if names:
        by_name = {p.name: p for p in failed}
        chosen = []
        for name in names:
            path = by_name.get(Path(name).name)
            if path is None:
                print(f"imgdrop: {name} is not in {settings.failed}", file=sys.stderr)
                ok = False
            else:
                chosen.append(path)
    else:
        chosen = failed
        if not chosen:
            print(f"nothing to retry: {settings.failed} holds no failed files")
    settings.inbox.mkdir(parents=True, exist_ok=True)
    for src in chosen:
        dest = filing.claim(settings.inbox, src.name, partial(filing.link_at, src))
        src.unlink()
        with contextlib.suppress(FileNotFoundError):
            filing.error_path(src).unlink()
        print(f"{shown(src.name)} -> {shown(str(dest))}")
    return Exit.OK if ok else Exit.FAILURE
