"""ShareX custom uploaders (.sxcu): a request template read by one generic host."""

from __future__ import annotations

from pathlib import Path

from imgdrop.config import ConfigError
from imgdrop.hosts.base import Host


def load_sxcu(path: Path, name: str) -> Host:
    """Return the host `path` describes; raise ConfigError naming the file and the key."""
    raise ConfigError(f"{path}: custom hosts are not supported yet")
