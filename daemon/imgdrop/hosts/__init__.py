"""Upload destinations: each host answers upload/delete with the same small set of outcomes.

`build(settings)` returns the hosts of `settings.hosts` in order: the built-ins by name, any
other name from `<config dir>/hosts/<name>.sxcu`. Nothing outside this package speaks HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgdrop.config import ConfigError
from imgdrop.hosts.anonymous import anonymous_host
from imgdrop.hosts.base import (
    AuthFailed,
    Blocked,
    Deleted,
    DeleteOutcome,
    Host,
    NoDelete,
    Outcome,
    Permanent,
    RateLimited,
    Reply,
    Transient,
    Uploaded,
    link_exists,
)
from imgdrop.hosts.imgur import ImgurHost
from imgdrop.hosts.sxcu import load_sxcu

__all__ = [
    "BUILT_IN",
    "AuthFailed",
    "Blocked",
    "DeleteOutcome",
    "Deleted",
    "Host",
    "NoDelete",
    "Outcome",
    "Permanent",
    "RateLimited",
    "Reply",
    "Transient",
    "Uploaded",
    "build",
    "build_one",
    "host_names",
    "link_exists",
    "sxcu_path",
]

BUILT_IN = ("imgur", "0x0.st", "catbox", "litterbox")


def sxcu_path(settings: Any, name: str) -> Path:
    """Where the custom host `name` is described."""
    return Path(settings.path).parent / "hosts" / f"{name}.sxcu"


def host_names(settings: Any) -> list[str]:
    """The configured host names, in order."""
    return list(settings.hosts)


def build_one(settings: Any, name: str) -> Host:
    """Return the host called `name`; raise ConfigError naming the file and key when it is bad."""
    if name == "imgur":
        if not settings.client_id:
            raise ConfigError(
                f"{settings.path}: client_id is not set, and the imgur host needs it "
                "(set client_id or IMGDROP_CLIENT_ID, or remove imgur from hosts)"
            )
        try:
            return ImgurHost(settings.api_url, settings.client_id)
        except ValueError as exc:
            raise ConfigError(f"{settings.path}: api_url: {exc}") from None
    if name in BUILT_IN:
        return anonymous_host(name, settings)
    path = sxcu_path(settings, name)
    if not path.is_file():
        raise ConfigError(
            f"{settings.path}: hosts: {name!r} is not a built-in host "
            f"({', '.join(BUILT_IN)}) and there is no {path}"
        )
    return load_sxcu(path, name)


def build(settings: Any) -> list[Host]:
    """Return the hosts of settings.hosts in order; raise ConfigError naming file and key."""
    built: list[Host] = []
    try:
        for name in host_names(settings):
            built.append(build_one(settings, name))
    except BaseException:
        for host in built:
            host.close()
        raise
    return built
