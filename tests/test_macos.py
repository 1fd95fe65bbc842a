"""macOS privacy helpers: protected folders and the binary that needs the grant."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgdrop import macos


@pytest.mark.parametrize(
    ("sub", "protected"),
    [
        ("Desktop", True),
        ("Desktop/shots", True),
        ("Documents/imgdrop/Inbox", True),
        ("Downloads", True),
        ("Library/Mobile Documents/com~apple~CloudDocs/in", True),
        ("Pictures/imgdrop/Inbox", False),
        ("DesktopX", False),
        ("", False),
    ],
)
def test_privacy_protected(tmp_path: Path, sub: str, protected: bool) -> None:
    home = tmp_path / "h"
    folder = home / sub
    folder.mkdir(parents=True)
    assert macos.privacy_protected(folder, home=home) is protected


def test_symlink_into_desktop_is_protected(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / "Desktop" / "in").mkdir(parents=True)
    (home / "Pictures").mkdir()
    (home / "Pictures" / "in").symlink_to(home / "Desktop" / "in")
    assert macos.privacy_protected(home / "Pictures" / "in", home=home)


def test_defaults_to_real_home(isolated_home: Path) -> None:
    assert macos.privacy_protected(isolated_home / "Desktop")
    assert not macos.privacy_protected(isolated_home / "Pictures" / "imgdrop")


def _framework(tmp_path: Path) -> tuple[Path, Path]:
    version = tmp_path / "Library/Frameworks/Python.framework/Versions/3.12"
    stub = version / "bin" / "python3.12"
    app = version / "Resources/Python.app/Contents/MacOS/Python"
    for f in (stub, app):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("")
    (version / "bin" / "python3").symlink_to("python3.12")
    return stub, app


def test_tcc_binary_resolves_framework_stub(tmp_path: Path) -> None:
    stub, app = _framework(tmp_path)
    assert macos.tcc_binary(str(stub.parent / "python3")) == app
    # a venv's python symlinks to the stub
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(stub.parent / "python3")
    assert macos.tcc_binary(str(venv / "python")) == app


def test_tcc_binary_plain_python_is_itself(tmp_path: Path) -> None:
    exe = tmp_path / "usr/bin/python3"
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    assert macos.tcc_binary(str(exe)) == exe.resolve()


def test_hints_name_binary_and_settings_path(tmp_path: Path) -> None:
    stub, app = _framework(tmp_path)
    for text in (
        macos.grant_hint(tmp_path / "Desktop", str(stub)),
        macos.eperm_hint(tmp_path / "Desktop", str(stub)),
    ):
        assert str(app) in text
        assert "System Settings › Privacy & Security › Full Disk Access" in text
        assert "Files and Folders" in text
        assert str(tmp_path / "Desktop") in text
