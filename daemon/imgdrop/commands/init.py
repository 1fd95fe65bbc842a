"""`imgdrop init [--client-id ID] [--force [--reset]]`: write the config, keeping set values."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

from imgdrop import config
from imgdrop.exitcodes import Exit


def backup(path: Path) -> Path:
    """Copy `path` beside itself as `<name>.bak-<time>` (mode 0600); return the copy."""
    target = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    shutil.copy2(path, target)
    target.chmod(0o600)
    return target


def merged_text(old: dict[str, object], client_id: str | None) -> tuple[str, list[str]]:
    """Return the example text with `old`'s values kept, and the unknown keys dropped."""
    keep_id = client_id or (old.get("client_id") if isinstance(old.get("client_id"), str) else None)
    text = config.example_text(keep_id if isinstance(keep_id, str) else None)
    known = {key.name for key in config.KEYS}
    lines = text.splitlines()
    for name, value in old.items():
        if name not in known or value is None or name == "client_id":
            continue
        shown = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
        pattern = re.compile(rf"^{re.escape(name)}:.*?(\s+# .*)$")
        for i, line in enumerate(lines):
            match = pattern.match(line)
            if match:
                lines[i] = f"{f'{name}: {shown}':<31}{match.group(1)}"
    return "\n".join(lines) + "\n", sorted(str(k) for k in old if k not in known)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(text)
    tmp.replace(path)


def init(path: Path, client_id: str | None, force: bool, reset: bool) -> Exit:
    """Write the config (and folders); with --force keep what is set unless --reset."""
    if reset and not force:
        print("imgdrop: --reset goes with --force: imgdrop init --force --reset", file=sys.stderr)
        return Exit.USAGE
    if path.exists():
        if not force:
            print(f"imgdrop: {path} already exists (imgdrop init --force refreshes it, "
                  "keeping your values; --force --reset starts over)", file=sys.stderr)  # fmt: skip
            return Exit.FAILURE
        saved = backup(path)
        print(f"saved the old config as {saved}")
        if reset:
            config.write_config(path, client_id, force=True)
        else:
            with path.open(encoding="utf-8") as f:
                try:
                    old = yaml.safe_load(f) or {}
                except yaml.YAMLError as err:
                    raise config.ConfigError(
                        f"{path} is not valid YAML ({err}); use --force --reset to start over "
                        f"(the old file is kept as {saved})"
                    ) from None
            if not isinstance(old, dict):
                old = {}
            text, dropped = merged_text(old, client_id)
            _write(path, text)
            if dropped:
                print(f"dropped unknown keys: {', '.join(dropped)}")
    else:
        config.write_config(path, client_id)
    settings = config.load(path)
    config.ensure_folders(settings)
    print(f"wrote {path}")
    print(f"drop images into {settings.inbox}; links appear in {settings.outbox}")
    if config.needs_client_id(settings):
        print(config.client_id_help(path))
    return Exit.OK
