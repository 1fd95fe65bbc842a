"""Config: real YAML files in tmp_path — defaults, error messages, env, paths, writing, masking."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from pathlib import Path

import platformdirs
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from imgdrop import config
from imgdrop.config import ConfigError, Settings

REPO = Path(__file__).resolve().parent.parent
CLIENT_ID = "c0ffee1234abcd9"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / "conf" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(path)
    return str(info.value)


# --- schema and defaults ---------------------------------------------------------------------


def test_settings_fields_are_the_schema_keys() -> None:
    names = [field.name for field in dataclasses.fields(Settings)]
    assert names == ["path", *(key.name for key in config.KEYS)]


def test_empty_file_gives_spec_defaults(tmp_path: Path, isolated_home: Path) -> None:
    settings = config.load(write(tmp_path, ""))
    pictures = Path(platformdirs.user_pictures_dir()) / "imgdrop"
    assert pictures.is_relative_to(isolated_home)
    assert (settings.inbox, settings.outbox, settings.done, settings.failed) == (
        pictures / "Inbox",
        pictures / "Links",
        pictures / "Done",
        pictures / "Failed",
    )
    assert settings.journal == Path(platformdirs.user_data_dir("imgdrop")) / "history.sqlite3"
    assert settings.journal.is_relative_to(isolated_home)
    assert settings.client_id is None
    assert settings.link_format == "webloc"
    assert settings.workers == 2
    assert settings.settle_seconds == 1.0
    assert settings.observer == "auto"
    assert settings.retry_initial_seconds == 2.0
    assert settings.retry_max_seconds == 900.0
    assert settings.max_attempts == 8
    assert settings.videos is False
    assert settings.max_image_mb == 10.0
    assert settings.clipboard is True
    assert settings.notify is True
    assert settings.api_url == "https://api.imgur.com"
    assert settings.log_level == "INFO"


def test_defaults_follow_the_environment_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "Bilder"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = config.load(write(tmp_path, ""))
    if platformdirs.user_pictures_dir() == str(tmp_path / "Bilder"):  # Linux reads XDG_*
        assert settings.inbox == tmp_path / "Bilder" / "imgdrop" / "Inbox"
        assert settings.journal == tmp_path / "data" / "imgdrop" / "history.sqlite3"


def test_comments_and_nulls_mean_defaults(tmp_path: Path) -> None:
    defaults = config.load(write(tmp_path, "", "empty.yaml"))
    text = "# only a comment\nclient_id:\ninbox: ~\nworkers: null\nlink_format:\n"
    settings = config.load(write(tmp_path, text))
    assert dataclasses.replace(settings, path=defaults.path) == defaults


def test_values_are_read_and_normalised(tmp_path: Path) -> None:
    text = (
        "workers: 16\nsettle_seconds: 0.05\nretry_initial_seconds: 1\nmax_image_mb: 20\n"
        "videos: yes\nclipboard: false\nlink_format: URL\nlog_level: debug\nobserver: polling\n"
        "api_url: https://api.imgur.com///\n"
    )
    settings = config.load(write(tmp_path, text))
    assert settings.workers == 16
    assert settings.settle_seconds == 0.05
    assert isinstance(settings.retry_initial_seconds, float)
    assert settings.max_image_mb == 20.0
    assert (settings.videos, settings.clipboard) == (True, False)
    assert (settings.link_format, settings.log_level, settings.observer) == (
        "url",
        "DEBUG",
        "polling",
    )
    assert settings.api_url == "https://api.imgur.com"


def test_numeric_client_id_keeps_its_digits(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, "client_id: 0123456789\n"))
    assert settings.client_id == "0123456789"


# --- error messages name the file and the line ---------------------------------------------

RANGE_ERRORS = [
    ("workers: 40", "'workers' must be an integer from 1 to 16, got 40"),
    ("workers: 0", "'workers' must be an integer from 1 to 16, got 0"),
    ("workers: true", "'workers' must be an integer from 1 to 16, got true"),
    ("workers: 2.5", "'workers' must be an integer from 1 to 16, got 2.5"),
    ("workers: two", "'workers' must be an integer from 1 to 16, got 'two'"),
    ("settle_seconds: -1", "'settle_seconds' must be a number from 0 to 60, got -1"),
    ("settle_seconds: 61", "'settle_seconds' must be a number from 0 to 60, got 61"),
    ("settle_seconds: [1]", "'settle_seconds' must be a number from 0 to 60, got a list"),
    (
        "retry_initial_seconds: 0",
        "'retry_initial_seconds' must be a number greater than 0, got 0",
    ),
    ("retry_max_seconds: -5", "'retry_max_seconds' must be a number greater than 0, got -5"),
    ("max_attempts: 0", "'max_attempts' must be an integer of at least 1, got 0"),
    ("max_image_mb: 0", "'max_image_mb' must be a number greater than 0, got 0"),
    ("videos: 'yes'", "'videos' must be true or false, got 'yes'"),
    ("notify: 1", "'notify' must be true or false, got 1"),
    ("link_format: pdf", "'link_format' must be one of webloc, url, desktop, txt, got 'pdf'"),
    ("observer: inotify", "'observer' must be one of auto, polling, got 'inotify'"),
    ("log_level: TRACE", "'log_level' must be one of DEBUG, INFO, WARNING, ERROR, got 'TRACE'"),
    ("inbox: ''", "'inbox' must be a path, got ''"),
    ("inbox: {a: 1}", "'inbox' must be a path, got a mapping"),
    (
        "api_url: http://example.com",
        f"'api_url' must be {config.API_URL_NEED}, got 'http://example.com'",
    ),
    ("api_url: ftp://127.0.0.1", f"'api_url' must be {config.API_URL_NEED}, got 'ftp://127.0.0.1'"),
    ("api_url: https://", f"'api_url' must be {config.API_URL_NEED}, got 'https://'"),
]


@pytest.mark.parametrize(("line", "message"), RANGE_ERRORS)
def test_bad_value_names_file_line_key_and_rule(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"# imgdrop\nclient_id: {CLIENT_ID}\n\n{line}\n")
    assert error_of(path) == f"{path}:4: {message}"


def test_bad_client_id_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, "client_id: 'c0ffee 1234'\n")
    message = error_of(path)
    assert message == f"{path}:1: 'client_id' must be {config.CLIENT_ID_NEED}"
    assert "c0ffee" not in message


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    path = write(tmp_path, "workers: 2\ninbx: ~/In\n")
    assert error_of(path) == f"{path}:2: unknown key 'inbx' — did you mean 'inbox'?"


def test_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "colour: blue\n")
    message = error_of(path)
    assert message.startswith(f"{path}:1: unknown key 'colour' (known keys: client_id, inbox,")


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "workers: 2\nnotify: true\nworkers: 3\n")
    assert error_of(path) == f"{path}:3: 'workers' appears twice (also on line 1)"


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "inbx: a\nworkers: 99\nvideos: maybe\n")
    assert error_of(path).splitlines() == [
        f"{path}:1: unknown key 'inbx' — did you mean 'inbox'?",
        f"{path}:2: 'workers' must be an integer from 1 to 16, got 99",
        f"{path}:3: 'videos' must be true or false, got 'maybe'",
    ]


def test_retry_max_below_initial_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "retry_initial_seconds: 10\nretry_max_seconds: 5\n")
    assert error_of(path) == (
        f"{path}:2: 'retry_max_seconds' (5) must be at least 'retry_initial_seconds' (10)"
    )
    path = write(tmp_path, "\nretry_initial_seconds: 1000\n", "other.yaml")
    assert error_of(path) == (
        f"{path}:2: 'retry_max_seconds' (900) must be at least 'retry_initial_seconds' (1000)"
    )


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("workers: 2\ninbox: a: b\n", "2:9", "mapping values are not allowed here"),
        ("workers:\t2\n", "1:9", "found character '\\t' that cannot start any token"),
        ("workers: 2\ninbox: [a\n", "3:1", "expected ',' or ']', but got '<stream end>'"),
        ("inbox: 'unterminated\n", "2:1", "found unexpected end of stream"),
    ],
)
def test_yaml_syntax_error_gives_line_and_column(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}:{where}: YAML syntax error: {problem}")


def test_undecodable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"workers: \xff\xfe\xfa\n")
    assert error_of(path).startswith(f"{path}")


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "a list"), ("hello\n", "a single value")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:1: expected `key: value` lines, got {got}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert error_of(path) == f"{path}: no such config file"


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"{tmp_path}: cannot read the config file")


# --- api_url and loopback ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.3.4.5",
        "http://localhost:9",
        "http://LOCALHOST",
        "http://[::1]:9000",
    ],
)
def test_plain_http_is_accepted_for_loopback(tmp_path: Path, url: str) -> None:
    settings = config.load(write(tmp_path, f"api_url: '{url}/'\n"))
    assert settings.api_url.startswith("http://")
    assert not settings.api_url.endswith("/")


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1", "http://api.imgur.com", "http://localhost.example.com", "http://[::2]"],
)
def test_plain_http_is_refused_elsewhere(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f"api_url: '{url}'\n")
    assert error_of(path) == f"{path}:1: 'api_url' must be {config.API_URL_NEED}, got '{url}'"


def test_https_to_loopback_is_accepted(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "api_url: https://127.0.0.1:1\n")).api_url == (
        "https://127.0.0.1:1"
    )


def test_repr_never_shows_the_client_id(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, f"client_id: {CLIENT_ID}\n"))
    assert settings.client_id == CLIENT_ID
    assert CLIENT_ID not in repr(settings)
    assert "workers=2" in repr(settings)


# --- environment overrides -----------------------------------------------------------------


def test_env_overrides_client_id_and_api_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "client_id: fromthefile1\napi_url: https://example.com\n")
    monkeypatch.setenv("IMGDROP_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("IMGDROP_API_URL", "http://127.0.0.1:5000/")
    settings = config.load(path)
    assert settings.client_id == CLIENT_ID
    assert settings.api_url == "http://127.0.0.1:5000"


def test_empty_env_values_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDROP_CLIENT_ID", "")
    monkeypatch.setenv("IMGDROP_API_URL", "")
    settings = config.load(write(tmp_path, f"client_id: {CLIENT_ID}\n"))
    assert (settings.client_id, settings.api_url) == (CLIENT_ID, "https://api.imgur.com")


def test_bad_env_values_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDROP_API_URL", "http://example.com")
    monkeypatch.setenv("IMGDROP_CLIENT_ID", "sec ret id")
    assert error_of(write(tmp_path, "")).splitlines() == [
        f"environment variable IMGDROP_CLIENT_ID must be {config.CLIENT_ID_NEED}",
        f"environment variable IMGDROP_API_URL must be {config.API_URL_NEED}, "
        "got 'http://example.com'",
    ]


# --- paths ---------------------------------------------------------------------------------


def test_paths_expand_home_vars_and_resolve_relative_to_the_file(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROP_ROOT", str(tmp_path / "drop"))
    text = "inbox: ~/In\noutbox: $DROP_ROOT/Links\ndone: ${DROP_ROOT}/Done\nfailed: Failed\n"
    text += "journal: ../db/history.sqlite3\n"
    path = write(tmp_path, text)
    settings = config.load(path)
    assert settings.inbox == isolated_home / "In"
    assert settings.outbox == tmp_path / "drop" / "Links"
    assert settings.done == tmp_path / "drop" / "Done"
    assert settings.failed == path.parent / "Failed"
    assert settings.journal == path.parent / ".." / "db" / "history.sqlite3"
    assert not settings.inbox.exists()  # load() never touches folders


def test_unset_variable_in_a_path_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "workers: 2\ninbox: $IMGDROP_TEST_UNSET/In\n")
    assert error_of(path) == f"{path}:2: 'inbox' uses $IMGDROP_TEST_UNSET, which is not set"


def test_numeric_folder_name_is_a_path(tmp_path: Path) -> None:
    path = write(tmp_path, "done: 2024\n")
    assert config.load(path).done == path.parent / "2024"


def test_ensure_folders_creates_every_folder(tmp_path: Path) -> None:
    text = "inbox: a/In\noutbox: a/Links\ndone: a/Done\nfailed: a/Failed\njournal: d/h.sqlite3\n"
    settings = config.load(write(tmp_path, text))
    config.ensure_folders(settings)
    config.ensure_folders(settings)  # idempotent
    for folder in (settings.inbox, settings.outbox, settings.done, settings.failed):
        assert folder.is_dir()
    assert settings.journal.parent.is_dir()
    assert not settings.journal.exists()


# --- config_path precedence ----------------------------------------------------------------


def test_config_path_precedence(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = Path(platformdirs.user_config_dir("imgdrop")) / "config.yaml"
    assert config.config_path() == default
    assert default.is_relative_to(isolated_home)
    monkeypatch.setenv("IMGDROP_CONFIG", str(tmp_path / "env.yaml"))
    assert config.config_path() == tmp_path / "env.yaml"
    assert config.config_path(str(tmp_path / "cli.yaml")) == tmp_path / "cli.yaml"
    assert config.config_path("~/cli.yaml") == isolated_home / "cli.yaml"
    monkeypatch.chdir(tmp_path)
    assert config.config_path("rel.yaml") == tmp_path / "rel.yaml"


# --- the example file ----------------------------------------------------------------------


def test_checked_in_example_matches_example_text() -> None:
    example = REPO / "config" / "imgdrop.example.yaml"
    assert example.read_bytes() == config.example_text().encode("utf-8")


def test_example_loads_to_the_defaults(tmp_path: Path) -> None:
    example = config.load(REPO / "config" / "imgdrop.example.yaml")
    defaults = config.load(write(tmp_path, ""))
    assert dataclasses.replace(example, path=defaults.path) == defaults


def test_example_lists_every_key_once_with_a_comment_client_id_first() -> None:
    lines = [line for line in config.example_text().splitlines() if line and line[0] != "#"]
    assert [line.split(":", 1)[0] for line in lines] == [key.name for key in config.KEYS]
    assert lines[0].split("#")[0].strip() == "client_id:"
    for line, key in zip(lines, config.KEYS, strict=True):
        assert f"# {key.help}" in line
        assert len(line) <= 100


def test_example_text_with_client_id_round_trips(tmp_path: Path) -> None:
    for client_id in (CLIENT_ID, "0123456789", "abc#def:ghi"):
        path = write(tmp_path, config.example_text(client_id))
        assert config.load(path).client_id == client_id


def test_example_text_refuses_a_bad_client_id() -> None:
    with pytest.raises(ConfigError):
        config.example_text("two words")


# --- writing -------------------------------------------------------------------------------


def test_write_config_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "config.yaml"
    old = os.umask(0)
    try:
        config.write_config(path, CLIENT_ID)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == config.example_text(CLIENT_ID)
    assert config.load(path).client_id == CLIENT_ID


def test_write_config_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = write(tmp_path, "workers: 3\n")
    path.chmod(0o644)
    with pytest.raises(FileExistsError):
        config.write_config(path, CLIENT_ID)
    assert path.read_text(encoding="utf-8") == "workers: 3\n"
    config.write_config(path, None, force=True)
    assert path.read_text(encoding="utf-8") == config.example_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- masking and warnings ------------------------------------------------------------------


def test_mask_never_reveals_the_id() -> None:
    assert config.mask(CLIENT_ID) == "c0ff…"
    assert config.mask("abcdefgh") == "abcd…"
    for short in ("a", "abcd", "abcdefg"):
        assert config.mask(short) == "…"
    assert config.mask(None) == "(not set)"


def test_permission_warning_only_for_readable_file_holding_an_id(tmp_path: Path) -> None:
    path = write(tmp_path, f"client_id: {CLIENT_ID}\n")
    path.chmod(0o644)
    warning = config.permission_warning(config.load(path))
    assert warning == (
        f"{path} holds your Imgur client ID and is readable by other users; run: chmod 600 {path}"
    )
    assert CLIENT_ID not in warning
    path.chmod(0o600)
    assert config.permission_warning(config.load(path)) is None
    path.chmod(0o640)
    assert config.permission_warning(config.load(path)) is not None


def test_no_permission_warning_without_an_id_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "client_id:\n")
    path.chmod(0o644)
    monkeypatch.setenv("IMGDROP_CLIENT_ID", CLIENT_ID)
    assert config.permission_warning(config.load(path)) is None


def test_describe_shows_every_key_with_the_id_masked(tmp_path: Path, isolated_home: Path) -> None:
    settings = config.load(write(tmp_path, f"client_id: {CLIENT_ID}\ninbox: ~/In\n"))
    text = config.describe(settings)
    assert CLIENT_ID not in text
    lines = text.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [key.name for key in config.KEYS]
    assert "client_id: c0ff…" in lines
    assert f"inbox: {isolated_home / 'In'}" in lines
    assert "workers: 2" in lines
    assert "videos: false" in lines


def test_describe_without_client_id(tmp_path: Path) -> None:
    assert "client_id: (not set)" in config.describe(config.load(write(tmp_path, "")))


def test_client_id_help_gives_the_steps_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = config.client_id_help(path)
    assert "https://api.imgur.com/oauth2/addclient" in text
    assert "OAuth 2 authorization without a callback URL" in text
    assert text.endswith(f"Put it in {path} as `client_id: YOUR_ID` (or set IMGDROP_CLIENT_ID).")


# --- hosts and the other round-5 keys ------------------------------------------------------


def test_new_keys_default_to_the_spec(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, ""))
    assert settings.hosts == ("imgur",)
    assert settings.rescan_seconds == 60.0
    assert settings.blocked_retry_hours == 6.0
    assert settings.litterbox_expiry == "72h"
    assert settings.clipboard_format == "url"


def test_hosts_are_read_in_order(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, "hosts: [catbox, 0x0.st, my_zipline-2]\n"))
    assert settings.hosts == ("catbox", "0x0.st", "my_zipline-2")
    assert config.load(write(tmp_path, "hosts: litterbox\n")).hosts == ("litterbox",)
    block = config.load(write(tmp_path, "hosts:\n  - imgur\n  - catbox\n"))
    assert block.hosts == ("imgur", "catbox")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("hosts: []", f"'hosts' must be {config.HOSTS_NEED}, got a list"),
        ("hosts: [imgur, imgur]", "'hosts' lists 'imgur' twice"),
        ("hosts: [imgur, 'a/b']", f"'hosts' must be {config.HOSTS_NEED}, got 'a/b'"),
        ("hosts: [imgur, true]", f"'hosts' must be {config.HOSTS_NEED}, got true"),
        ("hosts: [[imgur]]", f"'hosts' must be {config.HOSTS_NEED}, got a list"),
        ("hosts: {imgur: 1}", f"'hosts' must be {config.HOSTS_NEED}, got a mapping"),
        ("hosts: 'two words'", f"'hosts' must be {config.HOSTS_NEED}, got 'two words'"),
        ("litterbox_expiry: 48h", "'litterbox_expiry' must be one of 1h, 12h, 24h, 72h"),
        ("rescan_seconds: 0", "'rescan_seconds' must be a number from 1 to 86400, got 0"),
        ("blocked_retry_hours: 0", "'blocked_retry_hours' must be a number greater than 0"),
        ("clipboard_format: '{link}'", f"'clipboard_format' must be {config.CLIPBOARD_NEED}"),
        ("clipboard_format: '{url!r}'", f"'clipboard_format' must be {config.CLIPBOARD_NEED}"),
        ("clipboard_format: '{url:>9}'", f"'clipboard_format' must be {config.CLIPBOARD_NEED}"),
        ("clipboard_format: '{url'", f"'clipboard_format' must be {config.CLIPBOARD_NEED}"),
        ("clipboard_format: '{}'", f"'clipboard_format' must be {config.CLIPBOARD_NEED}"),
        ("clipboard_format: markdwon", f"'clipboard_format' must be {config.CLIPBOARD_NEED}"),
        ("settle_seconds: 1e999999", "'settle_seconds' must be a number from 0 to 60"),
        ("max_image_mb: " + "9" * 400, "'max_image_mb' must be a number greater than 0"),
        ('inbox: "a\\0b"', "'inbox' must be a path without NUL characters"),
    ],
)
def test_new_key_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"workers: 2\n{line}\n")
    assert error_of(path).startswith(f"{path}:2: {message}")


@pytest.mark.parametrize(
    ("value", "template"),
    [
        ("url", "{url}"),
        ("Markdown", "![{name}]({url})"),
        ("html", '<img src="{url}" alt="{name}">'),
        ("bbcode", "[img]{url}[/img]"),
        ("'{name}: {url} (delete: {delete_url}) {{literal}}'",
         "{name}: {url} (delete: {delete_url}) {{literal}}"),
    ],
)  # fmt: skip
def test_clipboard_formats_give_their_template(tmp_path: Path, value: str, template: str) -> None:
    settings = config.load(write(tmp_path, f"clipboard_format: {value}\n"))
    assert config.clipboard_template(settings.clipboard_format) == template
    template.format(url="u", name="n", delete_url="d")  # never raises at upload time


def test_client_id_is_needed_only_for_imgur(tmp_path: Path) -> None:
    assert config.needs_client_id(config.load(write(tmp_path, "")))
    assert not config.needs_client_id(config.load(write(tmp_path, "client_id: abcdefgh1\n")))
    assert not config.needs_client_id(config.load(write(tmp_path, "hosts: [catbox]\n")))


def test_describe_shows_hosts_as_yaml(tmp_path: Path) -> None:
    shown = config.describe(config.load(write(tmp_path, "hosts: [catbox, 0x0.st]\n")))
    assert "hosts: [catbox, 0x0.st]" in shown.splitlines()


# --- the four folders must be apart (defect 1) ---------------------------------------------


def folders(tmp_path: Path, **given: str) -> str:
    """Return config text setting the four folders under tmp_path, with `given` overrides."""
    names = {"inbox": "in", "outbox": "links", "done": "done", "failed": "failed"}
    names.update(given)
    return "".join(f"{key}: {tmp_path / value}\n" for key, value in names.items())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"outbox": "in"}, "'inbox' and 'outbox' are the same folder"),
        ({"done": "in/"}, "'inbox' and 'done' are the same folder"),
        ({"failed": "x/../in/."}, "'inbox' and 'failed' are the same folder"),
        ({"done": "in/Done"}, "'done' ({t}/in/Done) is inside 'inbox' ({t}/in)"),
        ({"inbox": "done/Inbox"}, "'inbox' ({t}/done/Inbox) is inside 'done' ({t}/done)"),
        ({"failed": "links/a/b"}, "'failed' ({t}/links/a/b) is inside 'outbox' ({t}/links)"),
    ],
)
def test_overlapping_folders_are_refused_naming_both_keys(
    tmp_path: Path, given: dict[str, str], message: str
) -> None:
    path = write(tmp_path, folders(tmp_path, **given))
    error = error_of(path)
    assert f"{path}:" in error
    assert message.format(t=tmp_path).replace("/./", "/") in error.replace("/./", "/")


def test_folders_that_share_a_prefix_are_fine(tmp_path: Path) -> None:
    config.load(write(tmp_path, folders(tmp_path, outbox="in-links", done="in2")))


def test_overlap_through_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    path = write(tmp_path, folders(tmp_path, inbox="real", done="alias/Done"))
    assert "'done'" in error_of(path) and "is inside 'inbox'" in error_of(path)


def test_overlap_is_found_by_identity_where_the_spelling_differs(tmp_path: Path) -> None:
    # A bind mount (or a case-insensitive volume) gives one folder two spellings that resolve
    # differently; device+inode still sees it. A hard-linked directory is not possible, so a
    # second mount is the real thing: use one when root may, else the identity helper itself.
    (tmp_path / "in").mkdir()
    other = tmp_path / "In"
    if os.geteuid() == 0 and os.system(f"mount --bind {tmp_path / 'in'} {other} 2>/dev/null") == 0:
        pass
    else:
        other.mkdir()
    try:
        if config._identity(other) != config._identity(tmp_path / "in"):
            pytest.skip("no second spelling of one folder here (needs root for a bind mount)")
        path = write(tmp_path, folders(tmp_path, outbox="In"))
        assert "'inbox' and 'outbox' are the same folder" in error_of(path)
    finally:
        if os.path.ismount(other):
            os.system(f"umount {other}")


Lineage = list[tuple[Path, tuple[int, int] | None]]


def test_overlap_rule_compares_identities_where_spellings_differ() -> None:
    # What a case-insensitive APFS volume gives: two spellings, one (device, inode).
    inbox: Lineage = [
        (Path("/v/Pics/Inbox"), (1, 10)),
        (Path("/v/Pics"), (1, 9)),
        (Path("/v"), (1, 2)),
    ]
    same: Lineage = [
        (Path("/v/pics/inbox"), (1, 10)),
        (Path("/v/pics"), (1, 9)),
        (Path("/v"), (1, 2)),
    ]
    inside: Lineage = [(Path("/v/pics/inbox/Done"), None), *same]
    apart: Lineage = [(Path("/v/pics/Done"), None), (Path("/v/pics"), (1, 9)), (Path("/v"), (1, 2))]
    assert config._overlap(inbox, same) == "same"
    assert config._overlap(inbox, inside) == "inside"
    assert config._overlap(inside, inbox) == "inside-reversed"
    assert config._overlap(inbox, apart) is None


def test_the_default_folders_are_apart(tmp_path: Path, isolated_home: Path) -> None:
    settings = config.load(write(tmp_path, ""))
    assert settings.inbox.parent == settings.done.parent


# --- the loader only ever raises ConfigError (property) ------------------------------------


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=10).map(lambda b: b.decode("latin-1")),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
key_names = st.sampled_from([key.name for key in config.KEYS]) | st.text(max_size=12)


def _dump(mapping: dict[str, object]) -> str:
    return yaml.safe_dump(mapping, allow_unicode=True)


PROPERTY = hsettings(
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(mapping=st.dictionaries(key_names, yaml_values, max_size=6))
def test_loader_raises_only_config_error_on_any_values(
    tmp_path: Path, mapping: dict[str, object]
) -> None:
    path = tmp_path / "prop.yaml"
    path.write_text(_dump(mapping), encoding="utf-8")
    with contextlib.suppress(ConfigError):
        config.load(path)


@PROPERTY
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from(
                [k.name + ": " for k in config.KEYS]
                + ["- ", "[", "]", "{", "}", ": ", "\n", "  ", "&a ", "*a ", "!!python/object ",
                   "? ", "'", '"', "|", ">", "#", "%YAML 1.1\n", "---\n", "...\n", "!!binary ",
                   "1e999", "~", "\t", "\\0", "\x00", "\ufeff", ".inf", "0x0.st", "{url}"]
            ),
            max_size=30,
        ).map("".join),
    ),
    raw=st.binary(max_size=40),
)  # fmt: skip
def test_loader_raises_only_config_error_on_any_text(tmp_path: Path, text: str, raw: bytes) -> None:
    for data in (text.encode("utf-8", "surrogatepass"), raw):
        path = tmp_path / "prop.yaml"
        path.write_bytes(data)
        with contextlib.suppress(ConfigError):
            config.load(path)


@PROPERTY
@given(client_id=st.text(max_size=20), api_url=st.text(max_size=20))
def test_env_overrides_raise_only_config_error(
    tmp_path: Path, client_id: str, api_url: str
) -> None:
    path = tmp_path / "prop.yaml"
    path.write_text("", encoding="utf-8")
    saved = {var: os.environ.get(var) for var in config.ENV_OVERRIDES.values()}
    try:
        if "\0" not in client_id + api_url:  # the OS itself refuses NUL in the environment
            os.environ["IMGDROP_CLIENT_ID"] = client_id
            os.environ["IMGDROP_API_URL"] = api_url
        with contextlib.suppress(ConfigError):
            config.load(path)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
