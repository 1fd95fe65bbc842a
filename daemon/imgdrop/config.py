"""Configuration: one schema (`KEYS`) drives validation, the example YAML and `config show`."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
import yaml

APP = "imgdrop"


class ConfigError(Exception):
    """A bad or unreadable config; str(e) is the whole message shown to the user."""


@dataclass(frozen=True)
class Key:
    """One config key: its type, default, one-line help and allowed values."""

    name: str
    kind: type  # str, int, float, bool, Path or list (of names)
    default: Any  # path keys: a "<pictures>/..." or "<data>/..." template, resolved at call time
    help: str
    low: float | None = None
    high: float | None = None
    above: bool = False  # low is exclusive: the value must be greater than it
    choices: tuple[str, ...] = ()
    need: str = ""  # overrides the generated "must be ..." phrase
    check: Callable[[str], str | None] | None = None  # cleaned value, or None when invalid


def _clean_client_id(value: str) -> str | None:
    # It goes into an HTTP header: printable ASCII, no spaces.
    return value if re.fullmatch(r"[!-~]+", value) else None


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _clean_api_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        # .port raises ValueError when the port is not a number from 0 to 65535
        ok = bool(parts.hostname) and (parts.port or 0) >= 0 and not (parts.query or parts.fragment)
    except ValueError:
        return None
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(value))
    return value.rstrip("/") if ok and secure else None


HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")
HOSTS_NEED = (
    "a list of host names such as [imgur, catbox] (letters, digits, '.', '_', '-'), each once"
)

# What the clipboard presets stand for; anything else must be a template of these fields.
CLIPBOARD_PRESETS = {
    "url": "{url}",
    "markdown": "![{name}]({url})",
    "html": '<img src="{url}" alt="{name}">',
    "bbcode": "[img]{url}[/img]",
}
CLIPBOARD_FIELDS = ("url", "name", "delete_url")
CLIPBOARD_NEED = (
    "url, markdown, html, bbcode, or a template using only {url}, {name} and {delete_url}"
)


def _clean_clipboard_format(value: str) -> str | None:
    if value.lower() in CLIPBOARD_PRESETS:
        return value.lower()
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)]
    except ValueError:  # a lone { or }
        return None
    used = [name for name, _, _ in fields if name is not None]
    # No field at all is most likely a misspelt preset; format specs could raise at upload time.
    plain = all(
        name in CLIPBOARD_FIELDS and not spec and not conv
        for name, spec, conv in fields
        if name is not None
    )
    return value if used and plain else None


def clipboard_template(clipboard_format: str) -> str:
    """Return the str.format template for a validated `clipboard_format`."""
    return CLIPBOARD_PRESETS.get(clipboard_format, clipboard_format)


def needs_client_id(settings: Settings) -> bool:
    """Return whether the settings lack a client ID that the listed hosts need (imgur)."""
    return "imgur" in settings.hosts and not settings.client_id


CLIENT_ID_NEED = "the Client ID Imgur showed you (letters and digits, no spaces)"
API_URL_NEED = "an https:// URL (plain http:// only for a loopback host: localhost, 127.0.0.1, ::1)"

KEYS: tuple[Key, ...] = (
    Key("client_id", str, None, "Imgur Client ID from api.imgur.com/oauth2/addclient",
        need=CLIENT_ID_NEED, check=_clean_client_id),
    Key("inbox", Path, "<pictures>/imgdrop/Inbox", "watched folder"),
    Key("outbox", Path, "<pictures>/imgdrop/Links", "link files"),
    Key("done", Path, "<pictures>/imgdrop/Done", "uploaded originals"),
    Key("failed", Path, "<pictures>/imgdrop/Failed", "rejected originals + reasons"),
    Key("hosts", list, ["imgur"], "where to upload, in order of preference", need=HOSTS_NEED),
    Key("link_format", str, "webloc", "webloc, url, desktop or txt",
        choices=("webloc", "url", "desktop", "txt")),
    Key("clipboard_format", str, "url",
        "url, markdown, html, bbcode or template: {url} {name} {delete_url}",
        need=CLIPBOARD_NEED, check=_clean_clipboard_format),
    Key("workers", int, 2, "parallel uploads (1-16)", low=1, high=16),
    Key("settle_seconds", float, 1.0, "quiet time before a file without a close event is ready",
        low=0, high=60),
    Key("rescan_seconds", float, 60, "how often the inbox is listed again to catch missed events",
        low=1, high=86400),
    Key("observer", str, "auto", "auto (inotify / FSEvents) or polling (network volumes)",
        choices=("auto", "polling")),
    Key("retry_initial_seconds", float, 2, "first backoff after a transient error; doubles",
        low=0, above=True),
    Key("retry_max_seconds", float, 900, "backoff cap", low=0, above=True),
    Key("max_attempts", int, 8, "tries for HTTP 5xx/timeouts before failed/", low=1),
    Key("blocked_retry_hours", float, 6, "how long a host that refuses this network is skipped",
        low=0, above=True, high=720),
    Key("litterbox_expiry", str, "72h", "lifetime of litterbox uploads: 1h, 12h, 24h or 72h",
        choices=("1h", "12h", "24h", "72h")),
    Key("videos", bool, False, "also upload videos"),
    Key("max_image_mb", float, 10, "larger stills go to failed/ without an upload",
        low=0, above=True),
    Key("clipboard", bool, True, "copy each link to the clipboard"),
    Key("notify", bool, True, "desktop notification per upload / failure"),
    Key("api_url", str, "https://api.imgur.com", "API base (IMGDROP_API_URL overrides)",
        need=API_URL_NEED, check=_clean_api_url),
    Key("journal", Path, "<data>/history.sqlite3", "upload history, SQLite"),
    Key("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR",
        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)  # fmt: skip
_BY_NAME = {key.name: key for key in KEYS}
ENV_OVERRIDES = {"client_id": "IMGDROP_CLIENT_ID", "api_url": "IMGDROP_API_URL"}


@dataclass(frozen=True)
class Settings:
    """The validated configuration; field names are the config keys."""

    path: Path
    client_id: str | None = field(repr=False)  # a secret: keep it out of logs and tracebacks
    inbox: Path
    outbox: Path
    done: Path
    failed: Path
    hosts: tuple[str, ...]
    link_format: str
    clipboard_format: str
    workers: int
    settle_seconds: float
    rescan_seconds: float
    observer: str
    retry_initial_seconds: float
    retry_max_seconds: float
    max_attempts: int
    blocked_retry_hours: float
    litterbox_expiry: str
    videos: bool
    max_image_mb: float
    clipboard: bool
    notify: bool
    api_url: str
    journal: Path
    log_level: str


def config_path(cli_value: str | None = None) -> Path:
    """Return the config file path: --config, else $IMGDROP_CONFIG, else the platform default."""
    chosen = cli_value or os.environ.get("IMGDROP_CONFIG")
    if chosen:
        return Path(chosen).expanduser().absolute()
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


def _default_path(template: str) -> Path:
    places = {
        "<pictures>": platformdirs.user_pictures_dir,
        "<data>": lambda: platformdirs.user_data_dir(APP),
    }
    token, _, rest = template.partition("/")
    return Path(places[token]()) / rest


class _BadValueError(Exception):
    """A value that breaks its key's rule; the message lacks only the location."""


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a mapping"
    return repr(value) if isinstance(value, str) else str(value)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _need(key: Key) -> str:
    """Return what the key accepts, e.g. 'an integer from 1 to 16'."""
    if key.need:
        return key.need
    if key.choices:
        return "one of " + ", ".join(key.choices)
    what = {int: "an integer", float: "a number", bool: "true or false", Path: "a path"}
    text = what.get(key.kind, "text")
    if key.low is not None and key.high is not None and key.above:
        return f"{text} greater than {_number(key.low)} and at most {_number(key.high)}"
    if key.low is not None and key.high is not None:
        return f"{text} from {_number(key.low)} to {_number(key.high)}"
    if key.low is not None:
        return f"{text} {'greater than' if key.above else 'of at least'} {_number(key.low)}"
    return text


_ACCEPTS: dict[type, type | tuple[type, ...]] = {
    bool: bool,
    int: int,
    float: (int, float),  # an int is a fine float
    str: str,
    Path: str,
    list: (list, str),  # a single name is a one-item list
}


def _names(value: object, subject: str, bad: _BadValueError) -> tuple[str, ...]:
    """Return `value` as a tuple of unique host names; raise _BadValueError."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise bad
    names: list[str] = []
    for raw in items:
        item = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if not isinstance(item, str) or not HOST_NAME.fullmatch(item):
            raise _BadValueError(f"{subject} must be {HOSTS_NEED}, got {_show(item)}")
        if item in names:
            raise _BadValueError(f"{subject} lists {item!r} twice")
        names.append(item)
    return tuple(names)


def _convert(key: Key, value: object, base: Path, subject: str) -> Any:
    """Return `value` checked and converted for `key`; raise _BadValueError naming `subject`."""
    got = "" if key.name == "client_id" else f", got {_show(value)}"  # never echo the ID
    bad = _BadValueError(f"{subject} must be {_need(key)}{got}")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key.kind in (str, Path) and is_number:
        value = str(value)  # e.g. a folder named 2024 (client IDs arrive as raw text: see _read)
    # bool is an int subclass in Python but never a number here
    wrong_bool = isinstance(value, bool) and key.kind is not bool
    if wrong_bool or not isinstance(value, _ACCEPTS[key.kind]) or value == "":
        raise bad
    if key.kind is list:
        return _names(value, subject, bad)
    if key.kind in (int, float) and isinstance(value, (int, float)):
        try:
            number = float(value) if key.kind is float else int(value)
        except OverflowError:  # an integer too big for a float
            raise bad from None
        low_ok = key.low is None or (number > key.low if key.above else number >= key.low)
        if not low_ok or (key.high is not None and number > key.high):
            raise bad
        return number
    if key.choices:
        by_lower = {choice.lower(): choice for choice in key.choices}
        if str(value).lower() not in by_lower:
            raise bad
        return by_lower[str(value).lower()]
    if key.kind is Path:
        return _expand(str(value), base, subject)
    cleaned = key.check(str(value)) if key.check else value
    if cleaned is None:
        raise bad
    return cleaned


def _expand(value: str, base: Path, subject: str) -> Path:
    if "\0" in value:  # the OS refuses such paths with ValueError, not OSError
        raise _BadValueError(f"{subject} must be a path without NUL characters")
    expanded = os.path.expandvars(value)
    # expandvars leaves unknown variables as they are; launchd jobs see few of the shell's.
    unset = re.search(r"\$(\w+|\{[^}]*\})", expanded)
    if unset:
        raise _BadValueError(f"{subject} uses ${unset.group(1).strip('{}')}, which is not set")
    return base / Path(expanded).expanduser()  # an absolute path replaces base


def _read(path: Path) -> list[tuple[str, int, object, int]]:
    """Return (key, key line, value, value line) for each top-level entry of the YAML file."""
    try:
        with path.open("rb") as f:  # bytes: PyYAML decodes, marks carry the file name
            loader = yaml.SafeLoader(f)
            try:
                root = loader.get_single_node()
                if root is None:
                    return []
                if not isinstance(root, yaml.MappingNode):
                    got = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
                    line = root.start_mark.line + 1
                    raise ConfigError(f"{path}:{line}: expected `key: value` lines, got {got}")
                entries = []
                for key_node, value_node in root.value:
                    key = loader.construct_object(key_node, deep=True)
                    value = loader.construct_object(value_node, deep=True)
                    if key == "client_id" and value_node.tag == "tag:yaml.org,2002:int":
                        value = value_node.value  # keep the digits as written (no octal, no 0 loss)
                    line = key_node.start_mark.line + 1
                    entries.append((str(key), line, value, value_node.start_mark.line + 1))
                return entries
            finally:
                loader.dispose()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror}") from None
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_syntax_message(path, e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML syntax error: {e}") from None


def _syntax_message(path: Path, e: yaml.MarkedYAMLError) -> str:
    mark = e.problem_mark or e.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = e.problem or e.context or "invalid YAML"
    if e.problem and e.context and e.context_mark:
        problem += f" ({e.context} at line {e.context_mark.line + 1})"
    return f"{where}: YAML syntax error: {problem}"


def load(path: Path) -> Settings:
    """Return the validated settings in `path` plus env overrides; raise ConfigError."""
    path = path.absolute()
    values, lines, errors = _from_file(path)
    for name, var in ENV_OVERRIDES.items():
        if os.environ.get(var):
            try:
                subject = f"environment variable {var}"
                values[name] = _convert(_BY_NAME[name], os.environ[var], path.parent, subject)
            except _BadValueError as e:
                errors.append(str(e))
    if errors:
        raise ConfigError("\n".join(errors))
    for key in KEYS:
        if values.get(key.name) is None and key.default is not None:
            is_path = key.kind is Path
            default = _default_path(key.default) if is_path else key.default
            values[key.name] = default if is_path else _convert(key, default, path.parent, key.name)
    final: dict[str, Any] = {key.name: values.get(key.name) for key in KEYS}
    settings = Settings(path=path, **final)
    if settings.retry_max_seconds < settings.retry_initial_seconds:
        line = lines.get("retry_max_seconds") or lines.get("retry_initial_seconds")
        raise ConfigError(
            f"{path}:{line}: 'retry_max_seconds' ({_number(settings.retry_max_seconds)}) "
            f"must be at least 'retry_initial_seconds' ({_number(settings.retry_initial_seconds)})"
        )
    _check_folders(settings, lines)
    return settings


FOLDER_KEYS = ("inbox", "outbox", "done", "failed")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _lineage(path: Path) -> list[tuple[Path, tuple[int, int] | None]]:
    """Return the folder and its parents, resolved, each with its (dev, inode) if it exists."""
    real = Path(os.path.realpath(path))
    return [(p, _identity(p)) for p in (real, *real.parents)]


def _check_folders(settings: Settings, lines: dict[str, int]) -> None:
    """Raise ConfigError when two of the four folders are the same or one is inside another."""
    # Resolved strings catch what does not exist yet; inodes catch case-insensitive or
    # differently normalised spellings and bind mounts of what does.
    lineages = {name: _lineage(getattr(settings, name)) for name in FOLDER_KEYS}
    for i, outer in enumerate(FOLDER_KEYS):
        for inner in FOLDER_KEYS[i + 1 :]:
            problem = _overlap(lineages[outer], lineages[inner])
            if problem is None:
                continue
            a, b = (outer, inner) if problem != "inside-reversed" else (inner, outer)
            line = max(lines.get(outer, 0), lines.get(inner, 0))
            where = f"{settings.path}:{line}" if line else str(settings.path)
            pa, pb = getattr(settings, a), getattr(settings, b)
            if problem == "same":
                raise ConfigError(
                    f"{where}: '{a}' and '{b}' are the same folder ({pa}); "
                    "inbox, outbox, done and failed must be four different folders"
                )
            raise ConfigError(
                f"{where}: '{b}' ({pb}) is inside '{a}' ({pa}); "
                "inbox, outbox, done and failed must not be inside one another"
            )


_Place = tuple[Path, tuple[int, int] | None]  # a resolved folder and its (dev, inode) if any


def _same(x: _Place, y: _Place) -> bool:
    return x[0] == y[0] or (x[1] is not None and x[1] == y[1])


def _overlap(a: Sequence[_Place], b: Sequence[_Place]) -> str | None:
    """Return "same", "inside" (b in a), "inside-reversed" (a in b) or None."""
    if _same(a[0], b[0]):
        return "same"
    if any(_same(a[0], parent) for parent in b[1:]):
        return "inside"
    if any(_same(b[0], parent) for parent in a[1:]):
        return "inside-reversed"
    return None


def _from_file(path: Path) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """Return the file's converted values, the line of each key, and the errors found."""
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    errors: list[str] = []
    for name, key_line, value, value_line in _read(path):
        key = _BY_NAME.get(name)
        if key is None:
            errors.append(f"{path}:{key_line}: {_unknown(name)}")
        elif name in lines:
            errors.append(f"{path}:{key_line}: '{name}' appears twice (also on line {lines[name]})")
        else:
            lines[name] = key_line
            try:
                if value is not None:  # null means the default
                    values[name] = _convert(key, value, path.parent, f"'{name}'")
            except _BadValueError as e:
                errors.append(f"{path}:{value_line}: {e}")
    return values, lines, errors


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
    if close:
        return f"unknown key '{name}' — did you mean '{close[0]}'?"
    return f"unknown key '{name}' (known keys: {', '.join(_BY_NAME)})"


def ensure_folders(settings: Settings) -> None:
    """Create inbox, outbox, done, failed and the journal's folder; raise OSError on failure."""
    for folder in (settings.inbox, settings.outbox, settings.done, settings.failed):
        folder.mkdir(parents=True, exist_ok=True)
    # The journal holds deletehashes: keep its folder private.
    settings.journal.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def _scalar(value: object) -> str:
    """Return `value` as a YAML scalar that loads back to the same value."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    text = str(value)
    if isinstance(value, str) and yaml.safe_load(text) != value:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def example_text(client_id: str | None = None) -> str:
    """Return the example config YAML: every key, its default and one comment."""
    if client_id is not None and _clean_client_id(client_id) is None:
        raise ConfigError(f"the client ID must be {CLIENT_ID_NEED}")
    out = [
        "# imgdrop configuration. Every key is shown with its default; an empty value means the",
        "# default. <pictures> is your Pictures folder, <data> is imgdrop's data folder:",
        "# `imgdrop config show` prints the values in effect. Paths may use ~ and $VARS;",
        "# relative paths start at this file's folder. The daemon picks up edits within 2 s.",
        "",
    ]
    for key in KEYS:
        if key.name == "client_id":
            entry, note = f"client_id: {_scalar(client_id) if client_id else ''}".rstrip(), key.help
        elif key.kind is Path:
            entry, note = f"{key.name}:", f"{key.help} (default: {key.default})"
        else:
            entry, note = f"{key.name}: {_scalar(key.default)}", key.help
        out.append(f"{entry:<31} # {note}")  # the space keeps a long value off the comment
    return "\n".join(out) + "\n"


def write_config(path: Path, client_id: str | None, force: bool = False) -> None:
    """Write example_text(client_id) to `path`, mode 0600; raise FileExistsError unless force."""
    text = example_text(client_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)  # an existing file (force) keeps its old mode otherwise
        f.write(text)


def mask(client_id: str | None) -> str:
    """Return a client ID safe to show: its first 4 characters and '…'."""
    if client_id is None:
        return "(not set)"
    return client_id[:4] + "…" if len(client_id) >= 8 else "…"


def permission_warning(settings: Settings) -> str | None:
    """Return a chmod warning when the config holds a client ID others can read, else None."""
    try:
        mode = settings.path.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    try:  # the ID may come from IMGDROP_CLIENT_ID instead of the file
        entries = _read(settings.path)
    except ConfigError:
        return None
    if not any(name == "client_id" and value for name, _, value, _ in entries):
        return None
    return (
        f"{settings.path} holds your Imgur client ID and is readable by other users; "
        f"run: chmod 600 {settings.path}"
    )


def describe(settings: Settings) -> str:
    """Return `key: value` lines of the settings in effect, the client ID masked."""
    lines = []
    for key in KEYS:
        value = getattr(settings, key.name)
        shown = mask(value) if key.name == "client_id" else _scalar(value)
        lines.append(f"{key.name}: {shown}")
    return "\n".join(lines)


def client_id_help(path: Path) -> str:
    """Return plain-words steps for getting an Imgur Client ID and where to put it."""
    return (
        "imgdrop needs an Imgur Client ID to upload. To get one:\n"
        "  1. Create an account at imgur.com and log in.\n"
        "  2. Open https://api.imgur.com/oauth2/addclient, enter any application name (e.g.\n"
        '     "imgdrop"), choose "OAuth 2 authorization without a callback URL", enter your\n'
        "     email and submit.\n"
        "  3. Copy the Client ID from the next page (the Client secret is not needed). It stays\n"
        "     visible at https://imgur.com/account/settings/apps.\n"
        "Uploads are anonymous: anyone with a link can see the image.\n"
        f"Put it in {path} as `client_id: YOUR_ID` (or set IMGDROP_CLIENT_ID)."
    )
