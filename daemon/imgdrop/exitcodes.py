"""Process exit statuses, part of the command-line contract."""

from enum import IntEnum


class Exit(IntEnum):
    """What `imgdrop` returns to its caller (launchd reads these too)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_RUNNING = 3
    ALREADY_RUNNING = 75  # EX_TEMPFAIL: another daemon holds this config's lock
    CONFIG = 78  # EX_CONFIG
