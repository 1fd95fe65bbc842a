"""The README cannot drift: its YAML loads, its config table is the schema, its commands parse.

`python -m tests.test_docs` prints the config table generated from `imgdrop.config.KEYS`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imgdrop import config
from imgdrop.cli import _parser

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE_HEADER = "| key | default | meaning |"
NO_DEFAULT = "(none)"
KEYS = config.KEYS
SHELL_FENCES = ("sh", "bash", "shell", "console")
# Where a command line shown in a code block ends.
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def fences(text: str) -> Iterator[tuple[str, str]]:
    """Yield (language, body) for every fenced code block."""
    for match in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        yield match.group(1).lower(), match.group(2)


def default_cell(key: config.Key) -> str:
    """Return how the README shows a key's default."""
    if key.default is None:
        return NO_DEFAULT
    return f"`{key.default}`" if key.kind is Path else f"`{config._scalar(key.default)}`"


def config_table() -> str:
    """Return the README's config table, generated from the schema."""
    rows = [TABLE_HEADER, "| --- | --- | --- |"]
    rows += [f"| `{key.name}` | {default_cell(key)} | {key.help} |" for key in KEYS]
    return "\n".join(rows)


def table_rows(text: str) -> list[list[str]]:
    """Return the cells of each row of the table under TABLE_HEADER."""
    lines = text.splitlines()
    assert TABLE_HEADER in lines, f"README.md has no table starting {TABLE_HEADER!r}"
    start = lines.index(TABLE_HEADER) + 2  # skip the header and the --- row
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def parse_default(cell: str) -> object:
    """Return the default a table cell shows (None for NO_DEFAULT)."""
    if cell == NO_DEFAULT:
        return None
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"a default is one `code` value or {NO_DEFAULT}, got {cell!r}"
    return yaml.safe_load(match.group(1))


def same_value(shown: object, default: object) -> bool:
    # True == 1 in Python; a bool must stay a bool
    return shown == default and isinstance(shown, bool) == isinstance(default, bool)


def shell_lines(text: str) -> Iterator[str]:
    """Yield the command lines the README shows: shell code blocks and inline code spans."""
    for language, body in fences(text):
        if language not in SHELL_FENCES:
            continue
        for line in body.splitlines():
            if language == "console":
                if line.startswith("$ "):
                    yield line[2:]
            else:
                yield line
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    yield from re.findall(r"`([^`\n]+)`", prose)


def imgdrop_invocations(text: str) -> list[list[str]]:
    """Return the arguments of every `imgdrop ...` (or `.venv/bin/imgdrop ...`) shown."""
    found = []
    for shown in shell_lines(text):
        line = re.sub(r"<[^<>`]*>", "PLACEHOLDER", shown)  # `--config <absolute path>`
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = line.split()
        for i, token in enumerate(tokens):
            if token != "imgdrop" and not token.endswith("/bin/imgdrop"):
                continue
            if i > 0 and tokens[i - 1] == "-m":
                continue  # `python -m imgdrop --help` is checked like the others below
            args = []
            for arg in tokens[i + 1 :]:
                if arg in SHELL_OPERATORS or arg.startswith((">", "2>")):
                    break
                args.append(arg)
            if args:
                found.append(args)
    return found


def concrete(args: list[str]) -> list[list[str]]:
    """Return the invocations a synopsis stands for (`[--opt X]` left out, `a|b` each, `FILE…`
    as FILE); plain invocations come back as they are."""
    plain: list[str] = []
    depth = 0
    for arg in args:
        if depth or arg.startswith("["):
            depth += arg.count("[") - arg.count("]")
            continue
        plain.append(arg.rstrip("…").removesuffix("..."))
    forms = [plain]
    for i, arg in enumerate(plain):
        if "|" in arg and not arg.startswith("-"):
            forms = [[*form[:i], alt, *form[i + 1 :]] for form in forms for alt in arg.split("|")]
    return forms


def parses(args: list[str]) -> bool:
    """Return True when the real parser accepts `args` (--help and --version count)."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        try:
            _parser().parse_args(args)
        except SystemExit as exit_:
            return exit_.code == 0
    return True


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Yield every command and subcommand path with its parser, e.g. ('config', 'check').

    A positional argument with choices (`service install`) counts as a subcommand too.
    """
    for name, sub in subparsers(parser).items():
        yield (*prefix, name), sub
        yield from command_paths(sub, (*prefix, name))
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        for choice in action.choices or ():
            yield (*prefix, str(choice)), parser


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        opt
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }


# --- tests ---------------------------------------------------------------------------------


def test_every_yaml_block_is_a_valid_config(tmp_path: Path) -> None:
    blocks = [body for language, body in fences(readme()) if language in ("yaml", "yml")]
    assert blocks, "README.md shows at least one YAML example"
    for n, body in enumerate(blocks, 1):
        path = tmp_path / f"block{n}.yaml"
        path.write_text(body, encoding="utf-8")
        try:
            config.load(path)
        except config.ConfigError as err:
            pytest.fail(f"YAML block {n} of README.md does not load:\n{body}\n{err}")


def test_config_table_is_the_schema() -> None:
    rows = table_rows(readme())
    shown = [row[0].strip("`") for row in rows]
    expected = [key.name for key in KEYS]
    assert shown == expected, f"README config table out of date; regenerate:\n{config_table()}"
    for row, key in zip(rows, KEYS, strict=True):
        assert len(row) == 3, f"row for {key.name} needs 3 cells: {row}"
        assert same_value(parse_default(row[1]), key.default), (
            f"README default of {key.name} is {row[1]}, the schema says {default_cell(key)}"
        )
        assert row[2].startswith(key.help), (
            f"README meaning of {key.name} must start with the schema's help: {key.help!r}"
        )


def test_the_generated_table_passes_its_own_check() -> None:
    assert table_rows(config_table() + "\n") == [
        [f"`{key.name}`", default_cell(key), key.help] for key in KEYS
    ]


def test_every_command_and_option_is_documented() -> None:
    text = readme()
    shown = {
        tuple(a for a in form if not a.startswith("-"))
        for args in imgdrop_invocations(text)
        for form in concrete(args)
    }
    missing = [
        " ".join(path)
        for path, _ in command_paths(_parser())
        if not any(cmd[: len(path)] == path for cmd in shown)
    ]
    assert not missing, f"commands never shown as `imgdrop ...` in README.md: {missing}"
    parsers = [_parser(), *(sub for _, sub in command_paths(_parser()))]
    mentioned = set(re.findall(r"--[\w-]+", text))
    flags = sorted({opt for p in parsers for opt in options(p)} - mentioned)
    assert not flags, f"options not mentioned in README.md: {flags}"


def test_every_command_shown_exists() -> None:
    invocations = imgdrop_invocations(readme())
    assert len(invocations) > 5, "the command extraction found the README's commands"
    wrong = [" ".join(args) for args in invocations if not all(map(parses, concrete(args)))]
    assert not wrong, f"README.md shows commands the parser rejects: {wrong}"


def test_python_m_form_works_the_same() -> None:
    for line in shell_lines(readme()):
        if re.search(r"-m imgdrop(\s|$)", line):
            args = shlex.split(re.split(r"-m imgdrop(?:\s|$)", line, maxsplit=1)[1], comments=True)
            assert parses(args), f"README.md shows a command the parser rejects: {line}"


def test_example_config_is_mentioned() -> None:
    assert "config/imgdrop.example.yaml" in readme()


def test_a_synopsis_stands_for_its_concrete_forms() -> None:
    assert concrete(["history", "[--limit", "N]", "[--today]", "[--json]"]) == [["history"]]
    assert concrete(["hosts", "list|import"]) == [["hosts", "list"], ["hosts", "import"]]
    assert concrete(["delete", "REF…"]) == [["delete", "REF"]]
    assert not parses(concrete(["nosuch", "[--x]"])[0])


def test_extraction_sees_through_paths_and_skips_output() -> None:
    text = (
        "Run `.venv/bin/imgdrop config check` or `imgdrop`.\n"
        "```sh\nIMGDROP_CLIENT_ID=x imgdrop --config PATH run --once | tee log\n```\n"
        "```text\nimgdrop 0.1.0 watching /inbox\n```\n"
        "```console\n$ imgdrop init\nimgdrop: output\n```\n"
    )
    assert imgdrop_invocations(text) == [
        ["--config", "PATH", "run", "--once"],
        ["init"],
        ["config", "check"],
    ]
    assert not parses(["service", "restart"])
    assert not parses(["config"])
    assert parses(["--config", "PATH", "run", "--once"])


if __name__ == "__main__":
    print(config_table())
