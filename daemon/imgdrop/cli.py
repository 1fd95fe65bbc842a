"""The `imgdrop` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from imgdrop import __version__, config, filing, service
from imgdrop.daemon import AlreadyRunning, Daemon, acquire_lock, lock_path
from imgdrop.exitcodes import Exit

log = logging.getLogger("imgdrop")

Command = Callable[[argparse.Namespace], Exit]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging("INFO")
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help()
        return Exit.USAGE
    try:
        return int(command(args))
    except config.ConfigError as err:
        print(f"imgdrop: {err}", file=sys.stderr)
        return Exit.CONFIG
    except OSError as err:  # a folder of the config cannot be created or read
        print(f"imgdrop: {filing.explain(err)}", file=sys.stderr)
        return Exit.CONFIG


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    logging.getLogger().setLevel(level)
    for noisy in ("urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgdrop",
        description="Upload every image saved into a folder to Imgur and leave a link file.",
    )
    parser.add_argument("--version", action="version", version=f"imgdrop {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $IMGDROP_CONFIG or the per-user config folder)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    init = commands.add_parser("init", help="write the config file and create the folders")
    init.add_argument("--client-id", metavar="ID", help="your Imgur application's Client ID")
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    init.set_defaults(command=_init)

    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument(
        "--once", action="store_true", help="process what is in the inbox now, then exit"
    )
    run.add_argument(
        "--polling",
        action="store_true",
        help="poll the inbox instead of OS events (network volumes)",
    )
    run.set_defaults(command=_run)

    svc = commands.add_parser("service", help="install or remove the login service")
    svc.add_argument("action", choices=service.ACTIONS)
    svc.add_argument(
        "--manager",
        choices=service.MANAGERS,
        help="launchd (macOS default) or systemd (Linux default)",
    )
    svc.set_defaults(command=_service)

    cfg = commands.add_parser("config", help="where the config is, its values, validate it")
    cfg_commands = cfg.add_subparsers(title="actions", metavar="ACTION", required=True)
    for name, func, text in [
        ("path", _config_path, "print the config file's path"),
        ("show", _config_show, "print the effective values (client ID masked)"),
        ("check", _config_check, "validate the config file"),
    ]:
        cfg_commands.add_parser(name, help=text).set_defaults(command=func)
    return parser


def _path(args: argparse.Namespace) -> Path:
    return config.config_path(args.config)


def _init(args: argparse.Namespace) -> Exit:
    path = _path(args)
    try:
        config.write_config(path, args.client_id, force=args.force)
    except FileExistsError:
        print(f"imgdrop: {path} already exists (use --force to overwrite it)", file=sys.stderr)
        return Exit.FAILURE
    settings = config.load(path)
    config.ensure_folders(settings)
    print(f"wrote {path}")
    print(f"drop images into {settings.inbox}; links appear in {settings.outbox}")
    if not settings.client_id:
        print(config.client_id_help(path))
    return Exit.OK


def _run(args: argparse.Namespace) -> Exit:
    path = _path(args)
    if not path.exists():
        config.write_config(path, None)
        print(f"imgdrop: created {path} with the defaults", file=sys.stderr)
    settings = config.load(path)
    config.ensure_folders(settings)
    _configure_logging(settings.log_level)
    if not settings.client_id:
        print(config.client_id_help(path), file=sys.stderr)
        return Exit.CONFIG
    if warning := config.permission_warning(settings):
        log.warning("%s", warning)
    try:
        lock = acquire_lock(lock_path(settings))
    except AlreadyRunning as err:
        print(f"imgdrop: {err}", file=sys.stderr)
        return Exit.ALREADY_RUNNING
    try:
        return Daemon(settings, polling=args.polling).run(once=args.once)
    finally:
        os.close(lock)


def _config_path(args: argparse.Namespace) -> Exit:
    print(_path(args))
    return Exit.OK


def _config_show(args: argparse.Namespace) -> Exit:
    settings = config.load(_path(args))
    print(config.describe(settings))
    if warning := config.permission_warning(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return Exit.OK


def _config_check(args: argparse.Namespace) -> Exit:
    path = _path(args)
    settings = config.load(path)
    if warning := config.permission_warning(settings):
        print(f"warning: {warning}", file=sys.stderr)
    if not settings.client_id:
        print(f"imgdrop: {path}: client_id is not set\n", file=sys.stderr)
        print(config.client_id_help(path), file=sys.stderr)
        return Exit.CONFIG
    print(f"{path}: ok")
    return Exit.OK


def _service(args: argparse.Namespace) -> Exit:
    return Exit(
        service.run_service(args.action, args.manager, _path(args), args.config is not None)
    )
