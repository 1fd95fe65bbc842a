"""Benchmark reporting: each figure printed as it is measured and again in the summary."""

from __future__ import annotations

from collections.abc import Callable

import pytest

Report = Callable[[str, str, str, str], None]

_LINES: list[str] = []


@pytest.fixture
def report() -> Report:
    """Print one `BENCH <name>: <value> <unit> (<details>)` line and keep it for the summary."""

    def _report(name: str, value: str, unit: str, details: str) -> None:
        line = f"BENCH {name}: {value} {unit} ({details})"
        _LINES.append(line)
        print(f"\n{line}", flush=True)

    return _report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat every figure in one block, ready to paste."""
    if _LINES:
        terminalreporter.section("benchmark figures")
        for line in _LINES:
            terminalreporter.write_line(line)
