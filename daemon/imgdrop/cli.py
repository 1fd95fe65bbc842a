"""The `imgdrop` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from imgdrop import __version__, config, filing, hosts, service
from imgdrop.commands import common, delete, doctor, history, init, reload, retry, status
from imgdrop.commands import demo as demo_command
from imgdrop.daemon import AlreadyRunning, Daemon, acquire_lock, lock_path, run_service
from imgdrop.exitcodes import Exit
from imgdrop.hosts import manage
from imgdrop.journal import JournalError

try:
    from imgdrop.commands.upload import upload as upload_files
except ImportError:  # pragma: no cover - written by the lead; the rest of the CLI works without
    upload_files = None  # type: ignore[assignment]

log = logging.getLogger("imgdrop")

Command = Callable[[argparse.Namespace], Exit]

COMMANDS = (
    "init", "run", "upload", "status", "history", "delete", "retry", "reload", "doctor",
    "hosts", "config", "service", "demo",
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        try:
            code = _main(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # a closed pipe shows here (also after --help), not at exit
    except BrokenPipeError:
        # Python's advice (signal docs): point stdout at devnull so the final flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.OK
    return code


def _main(argv: list[str]) -> int:
    parser = _parser()
    _config_after_command(parser, argv)
    args = parser.parse_args(argv)
    _configure_logging("INFO")
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help()
        return Exit.USAGE
    try:
        return int(command(args))
    except (config.ConfigError, JournalError) as err:
        print(f"imgdrop: {err}", file=sys.stderr)
        return Exit.CONFIG
    except OSError as err:
        if isinstance(err, BrokenPipeError):
            raise
        print(f"imgdrop: {filing.explain(err)}", file=sys.stderr)  # a folder cannot be used
        return Exit.CONFIG


def _config_after_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Exit 2 saying where --config goes when it follows the command."""
    names = set(COMMANDS)
    for i, token in enumerate(argv):
        if token in names:
            if any(t == "--config" or t.startswith("--config=") for t in argv[i + 1 :]):
                parser.error(f"--config goes before the command: imgdrop --config PATH {token} ...")
            return


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
        description="Upload every image saved into a folder and leave a link file beside it.",
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
    init.add_argument(
        "--force",
        action="store_true",
        help="refresh an existing config: keep its values, rewrite comments, add missing keys",
    )
    init.add_argument(
        "--reset", action="store_true", help="with --force: start over from the defaults"
    )
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
    run.add_argument("--service", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(command=_run)
    _everyday(commands)
    _hosts_and_demo(commands)

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


def _everyday(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("upload", help="upload the given files now, print their links")
    up.add_argument("files", nargs="+", metavar="FILE", type=Path)
    up.set_defaults(command=_upload)

    st = commands.add_parser("status", help="is the daemon running, what waits and why")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.set_defaults(command=_status)

    hist = commands.add_parser("history", help="uploads from the journal, newest first")
    hist.add_argument("--limit", type=_positive, metavar="N", help="at most N uploads")
    hist.add_argument("--today", action="store_true", help="only today's uploads")
    hist.add_argument("--json", action="store_true", help="one JSON array")
    hist.set_defaults(command=_history)

    dele = commands.add_parser("delete", help="delete uploads from their host")
    dele.add_argument("refs", nargs="+", metavar="REF", help="id, link, original name, or last")
    dele.set_defaults(command=_delete)

    ret = commands.add_parser("retry", help="move failed files back into the inbox")
    ret.add_argument("files", nargs="*", metavar="FILE", help="names in failed/ (default: all)")
    ret.set_defaults(command=_retry)

    commands.add_parser(
        "reload", help="make the running daemon reload its config and retry waiting files now"
    ).set_defaults(command=_reload)
    commands.add_parser(
        "doctor", help="check everything a working setup needs, with the fix"
    ).set_defaults(command=_doctor)


def _hosts_and_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts_cmd = commands.add_parser("hosts", help="the upload hosts: list, import, test")
    hosts_actions = hosts_cmd.add_subparsers(title="actions", metavar="ACTION", required=True)
    hosts_actions.add_parser("list", help="the hosts and their state").set_defaults(
        command=_hosts_list
    )
    imp = hosts_actions.add_parser("import", help="add a ShareX custom uploader (.sxcu)")
    imp.add_argument("file", metavar="FILE", type=Path)
    imp.add_argument("--name", metavar="N", help="host name (default: the file's stem)")
    imp.set_defaults(command=_hosts_import)
    test = hosts_actions.add_parser("test", help="upload a 1x1 PNG to a host and delete it")
    test.add_argument("name", metavar="NAME")
    test.set_defaults(command=_hosts_test)

    commands.add_parser(
        "demo", help="offline sandbox: a local test host and a daemon in a temp folder"
    ).set_defaults(command=_demo)


def _path(args: argparse.Namespace) -> Path:
    return config.config_path(args.config)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _init(args: argparse.Namespace) -> Exit:
    return init.init(_path(args), args.client_id, args.force, args.reset)


def _run(args: argparse.Namespace) -> Exit:
    path = _path(args)
    if args.service:
        return Exit(run_service(path))
    if not path.exists():
        config.write_config(path, None)
        print(f"imgdrop: created {path} with the defaults", file=sys.stderr)
    settings = config.load(path)
    config.ensure_folders(settings)
    _configure_logging(settings.log_level)
    if config.needs_client_id(settings):
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


def _settings(args: argparse.Namespace) -> config.Settings:
    path = _path(args)
    if not path.exists():
        raise config.ConfigError(f"{path} does not exist; create it with: imgdrop init")
    return config.load(path)


def _upload(args: argparse.Namespace) -> Exit:
    if upload_files is None:  # pragma: no cover - the lead's module not there yet
        print("imgdrop: upload is not available in this build", file=sys.stderr)
        return Exit.FAILURE
    settings = _settings(args)
    config.ensure_folders(settings)
    return Exit(upload_files(settings, list(args.files)))


def _status(args: argparse.Namespace) -> Exit:
    return status.status(_settings(args), args.json)


def _history(args: argparse.Namespace) -> Exit:
    return history.history(_settings(args), args.limit, args.today, args.json)


def _delete(args: argparse.Namespace) -> Exit:
    return delete.delete(_settings(args), list(args.refs))


def _retry(args: argparse.Namespace) -> Exit:
    return retry.retry(_settings(args), list(args.files))


def _reload(args: argparse.Namespace) -> Exit:
    return reload.reload(_settings(args))


def _doctor(args: argparse.Namespace) -> Exit:
    return doctor.doctor(_path(args))


def _hosts_list(args: argparse.Namespace) -> Exit:
    settings = _settings(args)
    with common.journal_if_any(settings) as journal:
        print(manage.list_hosts(settings, journal))
    return Exit.OK


def _hosts_import(args: argparse.Namespace) -> Exit:
    return Exit(manage.import_sxcu(_settings(args), args.file, args.name))


def _hosts_test(args: argparse.Namespace) -> Exit:
    return Exit(manage.test_host(_settings(args), args.name))


def _demo(args: argparse.Namespace) -> Exit:
    return demo_command.demo()


def _config_path(args: argparse.Namespace) -> Exit:
    print(_path(args))
    return Exit.OK


def _config_show(args: argparse.Namespace) -> Exit:
    settings = _settings(args)
    print(config.describe(settings))
    if warning := config.permission_warning(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return Exit.OK


def _config_check(args: argparse.Namespace) -> Exit:
    path = _path(args)
    if not path.exists():
        print(f"imgdrop: {path} does not exist; create it with: imgdrop init", file=sys.stderr)
        return Exit.CONFIG
    settings = config.load(path)
    if warning := config.permission_warning(settings):
        print(f"warning: {warning}", file=sys.stderr)
    if config.needs_client_id(settings):
        print(f"imgdrop: {path}: client_id is not set\n", file=sys.stderr)
        print(config.client_id_help(path), file=sys.stderr)
        return Exit.CONFIG

    for host in hosts.build(settings):  # a bad .sxcu is a config error too
        host.close()
    print(f"{path}: ok")
    return Exit.OK


def _service(args: argparse.Namespace) -> Exit:
    return Exit(
        service.run_service(args.action, args.manager, _path(args), args.config is not None)
    )
