"""hosts.manage: `hosts list`, `hosts import`, `hosts test` against the loopback fakes."""

from __future__ import annotations

import io
import json
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from imgdrop import filetype
from imgdrop.exitcodes import Exit
from imgdrop.hosts import manage
from imgdrop.hosts.manage import import_sxcu, list_hosts, png_1x1
from imgdrop.journal import Journal
from imgdrop.testserver import ZIPLINE_TOKEN, FakeHosts
from tests.conftest import CLIENT_ID


def settings(
    tmp_path: Path, hosts: list[str], api_url: str = "https://api.imgur.com"
) -> SimpleNamespace:
    return SimpleNamespace(
        path=tmp_path / "config.yaml", hosts=hosts, client_id=CLIENT_ID, api_url=api_url,
        litterbox_expiry="1h",
    )  # fmt: skip


@pytest.fixture
def fake(fake_imgur: FakeHosts, monkeypatch: pytest.MonkeyPatch) -> FakeHosts:
    for name, value in fake_imgur.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZIPLINE_TOKEN", ZIPLINE_TOKEN)
    fake_imgur.local_links = True  # link checks stay on loopback
    return fake_imgur


def run(call: object, *args: object) -> tuple[Exit, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = call(*args, out=out, err=err)  # type: ignore[operator]
    return code, out.getvalue(), err.getvalue()


def test_png_1x1_is_a_png() -> None:
    data = png_1x1()
    assert filetype.check(data[:64], len(data), False, 10).mime == "image/png"
    assert data[16:24] == b"\x00\x00\x00\x01\x00\x00\x00\x01"


def test_import_copies_private_and_validates(fake: FakeHosts, tmp_path: Path) -> None:
    source = tmp_path / "Downloads" / "my zipline.sxcu"
    source.parent.mkdir()
    doc = fake.zipline_sxcu()
    source.write_text(json.dumps(doc))
    code, out, err = run(import_sxcu, settings(tmp_path, ["imgur"]), source, "zipline")
    assert code == Exit.OK, err
    target = tmp_path / "hosts" / "zipline.sxcu"
    assert target.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "$ZIPLINE_TOKEN" in out and "Add zipline to `hosts:`" in out
    again = run(import_sxcu, settings(tmp_path, ["imgur"]), source, "zipline")
    assert again[0] == Exit.FAILURE and "exists already" in again[2]
    assert run(import_sxcu, settings(tmp_path, []), source, "catbox")[0] == Exit.USAGE
    assert run(import_sxcu, settings(tmp_path, []), source, "../evil")[0] == Exit.USAGE
    assert run(import_sxcu, settings(tmp_path, []), source, None)[0] == Exit.USAGE  # "my zipline"


def test_import_refuses_a_bad_file_naming_the_key(tmp_path: Path) -> None:
    secret = "literal-secret-token-in-file"
    source = tmp_path / "bad.sxcu"
    source.write_text(json.dumps({
        "RequestURL": "https://x.example/api/upload", "Body": "JSON",
        "Headers": {"Authorization": secret}, "FileFormName": "file",
    }))  # fmt: skip
    code, out, err = run(import_sxcu, settings(tmp_path, []), source, None)
    assert code == Exit.CONFIG
    assert str(source) in err and "Body" in err
    assert secret not in out + err
    assert not (tmp_path / "hosts" / "bad.sxcu").exists()
    missing = run(import_sxcu, settings(tmp_path, []), tmp_path / "nope.sxcu", None)
    assert missing[0] == Exit.CONFIG


def test_import_accepts_a_file_whose_vars_are_not_set_yet(
    fake: FakeHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZIPLINE_TOKEN")
    source = tmp_path / "z.sxcu"
    source.write_text(json.dumps(fake.zipline_sxcu()))
    code, out, _ = run(import_sxcu, settings(tmp_path, ["z"]), source, None)
    assert code == Exit.OK
    assert "not set now: $ZIPLINE_TOKEN" in out


@pytest.mark.parametrize("name", ["0x0.st", "catbox", "litterbox", "zipline", "imgur"])
def test_round_trip_per_host(fake: FakeHosts, tmp_path: Path, name: str) -> None:
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "zipline.sxcu").write_text(json.dumps(fake.zipline_sxcu()))
    code, out, err = run(manage.test_host, settings(tmp_path, [name], fake.url), name)
    assert code == Exit.OK, out + err
    assert "1/3 uploading" in out and "2/3 checking" in out and "3/3 deleting" in out
    uploads = fake.uploads_to(name)
    assert len(uploads) == 1 and uploads[0].content == png_1x1()
    if name in ("catbox", "litterbox"):
        assert "not possible" in out
        assert fake.file_at(uploads[0].link) == png_1x1()
    else:
        assert "ok: deleted" in out and "ok: it is there" in out
        assert fake.file_at(uploads[0].link) is None
    assert ZIPLINE_TOKEN not in out and uploads[0].deletehash not in out
    if name == "litterbox":
        assert uploads[0].form["time"] == "1h"


def test_failures_are_said_and_exit_nonzero(fake: FakeHosts, tmp_path: Path) -> None:
    fake.fail_host("0x0.st", 1, 500, "broken")
    code, out, _ = run(manage.test_host, settings(tmp_path, ["0x0.st"]), "0x0.st")
    assert code == Exit.FAILURE and "having trouble" in out and "broken" in out
    code, _, err = run(manage.test_host, settings(tmp_path, ["nothere"]), "nothere")
    assert code == Exit.CONFIG and "nothere.sxcu" in err


def test_list_shows_state_delete_and_spare_files(fake: FakeHosts, tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "zipline.sxcu").write_text(json.dumps(fake.zipline_sxcu()))
    (tmp_path / "hosts" / "spare.sxcu").write_text("{}")
    until = time.time() + 3600
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.set_meta("host:imgur", json.dumps({
            "state": "blocked", "until": until, "reason": "These actions are forbidden.",
            "limits": {"user_remaining": 480, "user_limit": 500, "user_reset": until},
        }))  # fmt: skip
        text = list_hosts(settings(tmp_path, ["imgur", "zipline", "catbox", "gone"]), journal)
    lines = text.splitlines()
    assert lines[0].startswith("1. imgur (built-in): blocked until ")
    assert "These actions are forbidden." in lines[0] and "user 480/500 left (resets " in lines[0]
    assert lines[1].startswith("2. zipline (custom: ") and "usable; delete: yes" in lines[1]
    assert lines[2].startswith("3. catbox (built-in): usable; delete: no")
    assert lines[3].startswith("4. gone (") and "not usable" in lines[3]
    assert "gone.sxcu" in lines[3]
    assert lines[4].endswith("not in hosts: spare")
    assert ZIPLINE_TOKEN not in text and CLIENT_ID not in text
