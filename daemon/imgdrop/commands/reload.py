"""`imgdrop reload`: SIGHUP to the daemon holding this config's lock (reload, retry waiting now)."""

from __future__ import annotations

import os
import signal
import sys

from imgdrop.commands.common import running_pid
from imgdrop.config import Settings
from imgdrop.exitcodes import Exit


def reload(settings: Settings) -> Exit:
    """Signal the running daemon; 3 when none holds the lock."""
    pid = running_pid(settings)
    if pid == 0:  # holds the lock, pid not written yet: it is starting and reads the config anyway
        print("the daemon is just starting; it reads the config as it starts")
        return Exit.OK
    if pid is None:
        print(f"imgdrop: no daemon is running for {settings.path}", file=sys.stderr)
        return Exit.NOT_RUNNING
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:  # it exited between the look and the signal
        print(f"imgdrop: no daemon is running for {settings.path}", file=sys.stderr)
        return Exit.NOT_RUNNING
    print(f"asked the daemon (pid {pid}) to reload its config and retry waiting files now")
    return Exit.OK
