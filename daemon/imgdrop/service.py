"""Service files: render the LaunchAgent plist or systemd user unit; validate before install.

Rendering is pure (data in, bytes out); `imgdrop.managers` talks to launchctl/systemctl.
launchd/io.github.imgdrop.plist is render_plist() of the example inputs named in
tests/test_service.py, and a test keeps the two identical.
"""

from __future__ import annotations

import os
import platform
import plistlib
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from imgdrop import config, macos, managers
from imgdrop.exitcodes import Exit

LABEL = managers.LABEL
UNIT_NAME = managers.UNIT_NAME
plist_path = managers.plist_path
unit_path = managers.unit_path
ACTIONS = ("print", "install", "uninstall", "status")
MANAGERS = ("launchd", "systemd")
TOOLS = {"launchd": "launchctl", "systemd": "systemctl"}
THROTTLE_INTERVAL = 10  # launchd's minimum seconds between starts
# launchd SIGKILLs 5 s after SIGTERM by default, which KeepAlive counts as a crash. The daemon
# gives uploads STOP_GRACE (10 s) after SIGTERM; this leaves a wide margin on top.
EXIT_TIMEOUT = 30
# launchd starts jobs with only /usr/bin:/bin:/usr/sbin:/sbin; Homebrew's tools live elsewhere.
SANE_PATH = {
    "launchd": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "systemd": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
}
# The service manager does not pass the shell's XDG_* on: without them platformdirs would pick
# another journal and lock than the CLI does (Linux). Absolute values only, as XDG says.
XDG_VARS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")
PRIVACY_OVERRIDE = "IMGDROP_PRIVACY_GRANTED"  # set to 1 once the grant has been made

_UNIT_TEMPLATE = """\
[Unit]
Description=imgdrop: upload images dropped into a folder and leave a link file

[Service]
Type=simple
ExecStart={exec_start}
# Like launchd's KeepAlive {{SuccessfulExit: false}}: a clean exit (after SIGTERM) stays down.
Restart=on-failure
RestartSec={throttle}
TimeoutStopSec={timeout}
{environment}

[Install]
WantedBy=default.target
"""


def arguments(program: list[str], config_file: Path) -> list[str]:
    """Return the service's command line: --config (a global option) goes before `run`."""
    return [*program, "--config", str(config_file), "run", "--service"]


def service_environment(path_env: str, env: Mapping[str, str]) -> dict[str, str]:
    """Return the variables the service gets: a sane PATH and the installer's XDG_* dirs."""
    out = {"PATH": path_env}
    out.update({k: env[k] for k in XDG_VARS if k in env and Path(env[k]).is_absolute()})
    return out


def render_plist(
    program: list[str],
    config_file: Path,
    log_dir: Path,
    environment: dict[str, str],
    label: str = LABEL,
) -> bytes:
    """Return the LaunchAgent plist (XML) that runs `program ... run --service`."""
    # The daemon writes and rotates imgdrop.log itself; launchd's own file catches only what
    # escapes logging (a crash before it is set up), so it must not be the rotated file.
    escaped = str(log_dir / "imgdrop.out.log")
    job = {
        "Label": label,
        "ProgramArguments": arguments(program, config_file),
        "RunAtLoad": True,
        # exit 0 (SIGTERM, `launchctl stop`) stays stopped; a crash is restarted
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_INTERVAL,
        "ExitTimeOut": EXIT_TIMEOUT,
        "ProcessType": "Background",
        "StandardOutPath": escaped,
        "StandardErrorPath": escaped,
        "EnvironmentVariables": environment,
    }
    return plistlib.dumps(job)


def systemd_word(word: str, expand_variables: bool = True) -> str:
    """Return `word` quoted and escaped so systemd reads it back as one unchanged word."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 else c for c in escaped)
    if expand_variables:  # ExecStart= expands $VAR; Environment= does not
        escaped = escaped.replace("$", "$$")
    if word and not any(c.isspace() or c in "\"'\\" for c in word):
        return escaped
    return f'"{escaped}"'


def render_unit(program: list[str], config_file: Path, environment: dict[str, str]) -> str:
    """Return the systemd user unit that runs `program ... run --service`."""
    return _UNIT_TEMPLATE.format(
        exec_start=" ".join(systemd_word(arg) for arg in arguments(program, config_file)),
        throttle=THROTTLE_INTERVAL,
        timeout=EXIT_TIMEOUT,
        environment="\n".join(
            "Environment=" + systemd_word(f"{k}={v}", expand_variables=False)
            for k, v in environment.items()
        ),
    )


def program_path() -> list[str]:
    """Return the absolute command that starts imgdrop: its console script, else python -m."""
    # Absolute but not resolved: a venv's python is a symlink whose target lacks the venv.
    python = Path(sys.executable).absolute()
    script = python.parent / "imgdrop"
    if script.is_file():
        return [str(script)]
    return [str(python), "-m", "imgdrop"]


def default_manager() -> str:
    """Return "launchd" on macOS, else "systemd"."""
    return "launchd" if platform.system() == "Darwin" else "systemd"


def log_dir() -> Path:
    """Return the folder the service's logs go into."""
    return Path(platformdirs.user_log_dir(config.APP))


@contextmanager
def _without(var: str) -> Iterator[None]:
    saved = os.environ.pop(var, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[var] = saved


def refusal(config_file: Path, manager: str, program: list[str]) -> str | None:
    """Return why the service could not run this config (with the fix), or None when it can."""
    env_id = config.ENV_OVERRIDES["client_id"]
    if not config_file.exists():
        return f"{config_file} does not exist; create it first: imgdrop --config {config_file} init"
    try:
        with _without(env_id):  # the service will not inherit this shell's environment
            settings = config.load(config_file)
    except config.ConfigError as err:
        return f"the service could not start with this config: {err}"
    if config.needs_client_id(settings):
        if os.environ.get(env_id):
            return (
                f"the Client ID is set only in the environment ({env_id}); the service does "
                f"not see it. Put it in the file: client_id: <your id> in {config_file} "
                f'(or: imgdrop --config {config_file} init --force --client-id "${env_id}")'
            )
        return f"{config_file}: client_id is not set\n{config.client_id_help(config_file)}"
    if manager != "launchd" or os.environ.get(PRIVACY_OVERRIDE) == "1":
        return None
    return _privacy_refusal(settings, config_file, program)


def _privacy_refusal(
    settings: config.Settings, config_file: Path, program: list[str]
) -> str | None:
    """Return which folders macOS privacy (TCC) would keep from a launchd agent, with the grant."""
    places = [
        ("inbox", settings.inbox),
        ("outbox", settings.outbox),
        ("done", settings.done),
        ("failed", settings.failed),
        ("journal", settings.journal.parent),
        ("config", config_file.parent),
        ("program", Path(program[0]).parent),
    ]
    blocked = [(key, path) for key, path in places if macos.privacy_protected(path)]
    if not blocked:
        return None
    names = ", ".join(f"{key} {path}" for key, path in blocked)
    return (
        f"macOS privacy would block the service from {names}. Either use a folder under "
        f"~/Pictures, or grant access: {macos.grant_hint(blocked[0][1])}; then run again "
        f"with {PRIVACY_OVERRIDE}=1"
    )


def render(manager: str, config_file: Path, label: str = LABEL) -> bytes:
    """Return the service file for `manager` running this imgdrop with `config_file`."""
    program = program_path()
    env = service_environment(SANE_PATH[manager], os.environ)
    if manager == "launchd":
        return render_plist(program, config_file, log_dir(), env, label)
    return render_unit(program, config_file, env).encode()


def run_service(action: str, manager: str | None, config_file: Path, config_given: bool) -> int:
    """Do `imgdrop service ACTION`; return 0, 1 on failure, 3 when stopped, 78 when refused."""
    if action not in ACTIONS or manager not in (*MANAGERS, None):
        raise ValueError(f"unknown service action {action!r} or manager {manager!r}")
    manager = manager or default_manager()
    # Always named: the job inherits neither IMGDROP_CONFIG nor the shell's working directory.
    config_file = config_file.absolute()
    data = render(manager, config_file)
    if action == "print":
        sys.stdout.write(data.decode())
        return Exit.OK
    if shutil.which(TOOLS[manager]) is None:  # before touching any file
        print(f"imgdrop: {managers.missing(TOOLS[manager])}", file=sys.stderr)
        return Exit.FAILURE
    if action == "install" and (why := refusal(config_file, manager, program_path())):
        print(f"imgdrop: not installing the service: {why}", file=sys.stderr)
        return Exit.CONFIG
    try:
        if manager == "launchd":
            return managers.launchd(action, data, log_dir())
        return managers.systemd(action, data)
    except (managers.ServiceError, OSError) as e:
        print(f"imgdrop: {e}", file=sys.stderr)
        return Exit.FAILURE
