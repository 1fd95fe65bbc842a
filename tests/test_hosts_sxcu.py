"""hosts.sxcu: ShareX custom uploaders against the Zipline-like and PUT fakes; bad files refused."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imgdrop.config import ConfigError
from imgdrop.filetype import FileType
from imgdrop.hosts import (
    AuthFailed,
    Deleted,
    Host,
    NoDelete,
    Outcome,
    Permanent,
    Transient,
    Uploaded,
    build,
)
from imgdrop.hosts.sxcu import _Context, json_path, parse_template, render
from imgdrop.testserver import PUT_TOKEN, ZIPLINE_TOKEN, FakeHosts
from tests import images

PNG = FileType("image/png", video=False)


def settings(tmp_path: Path, hosts: list[str]) -> SimpleNamespace:
    return SimpleNamespace(path=tmp_path / "config.yaml", hosts=hosts, client_id=None)


def write_sxcu(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / "hosts" / f"{name}.sxcu"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZIPLINE_TOKEN", ZIPLINE_TOKEN)
    monkeypatch.setenv("PUT_TOKEN", PUT_TOKEN)


@pytest.fixture
def custom(fake_imgur: FakeHosts, tmp_path: Path, tokens: None) -> Iterator[dict[str, Host]]:
    write_sxcu(tmp_path, "zipline", fake_imgur.zipline_sxcu())
    write_sxcu(tmp_path, "put", fake_imgur.put_sxcu())
    built = build(settings(tmp_path, ["zipline", "put"]))
    yield {host.name: host for host in built}
    for host in built:
        host.close()


def send(host: Host, data: bytes, size: int | None = None, name: str = "shot 1.png") -> Outcome:
    return host.upload(io.BytesIO(data), len(data) if size is None else size, name, PNG).outcome


def test_zipline_like_upload_and_delete(fake_imgur: FakeHosts, custom: dict[str, Host]) -> None:
    host = custom["zipline"]
    data = images.png(4000)
    outcome = send(host, data)
    assert isinstance(outcome, Uploaded)
    [sent] = fake_imgur.uploads_to("zipline")
    assert (sent.field, sent.filename, sent.content) == ("file", "shot 1.png", data)
    assert sent.headers["authorization"] == ZIPLINE_TOKEN
    assert outcome.link == sent.link
    assert outcome.delete_handle == f"{fake_imgur.url}/api/user/files/{sent.id}"
    assert host.can_delete
    assert host.delete_url(outcome.delete_handle, outcome.link) is None  # an API call, no page
    assert host.delete(outcome.delete_handle, outcome.link) == Deleted()
    deletes = [r for r in fake_imgur.requests if r.method == "DELETE"]
    assert deletes[-1].headers["authorization"] == ZIPLINE_TOKEN
    assert fake_imgur.file_at(outcome.link) is None
    again = host.delete(outcome.delete_handle, outcome.link)
    assert isinstance(again, Permanent) and again.status == 404


def test_raw_put_upload_and_delete(fake_imgur: FakeHosts, custom: dict[str, Host]) -> None:
    host = custom["put"]
    data = images.png(9000)
    outcome = send(host, data + b"grown since", size=len(data), name="a b/c.png")
    assert isinstance(outcome, Uploaded)
    [sent] = fake_imgur.uploads_to("put")
    assert sent.content == data  # exactly the hashed size
    assert sent.filename == "a b/c.png"  # {filename} is URL-quoted in RequestURL
    assert sent.headers["X-Api-Key"] == PUT_TOKEN
    assert sent.headers["Content-Type"] == "image/png"
    assert outcome.delete_handle is not None
    assert host.delete_url(outcome.delete_handle, outcome.link) == outcome.delete_handle
    assert host.delete(outcome.delete_handle, outcome.link) == Deleted()
    assert fake_imgur.file_at(outcome.link) is None


def test_wrong_token_is_auth_failed_and_the_token_never_shows(
    fake_imgur: FakeHosts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-but-secret-token-42"
    monkeypatch.setenv("ZIPLINE_TOKEN", secret)
    path = write_sxcu(tmp_path, "zipline", fake_imgur.zipline_sxcu())
    [host] = build(settings(tmp_path, ["zipline"]))
    try:
        outcome = send(host, images.png(100))
        assert isinstance(outcome, AuthFailed)
        assert str(path) in outcome.reason
        gone = host.delete(f"{fake_imgur.url}/api/user/files/nothing", "")
        fake_imgur.fail_host("zipline", 1, 500, f"boom {secret}")
        failed = send(host, images.png(100))
        assert isinstance(failed, Transient)
        texts = [repr(host), repr(outcome), repr(gone), repr(failed), caplog.text, str(vars(host))]
        assert all(secret not in text for text in texts)
        assert "boom …" in failed.message  # the server echoed it: scrubbed
    finally:
        host.close()


def test_error_message_template_and_server_errors(
    fake_imgur: FakeHosts, tmp_path: Path, tokens: None
) -> None:
    doc = fake_imgur.zipline_sxcu()
    doc["ErrorMessage"] = "{regex:said (\\w+)|1}"
    write_sxcu(tmp_path, "z", doc)
    [host] = build(settings(tmp_path, ["z"]))
    try:
        fake_imgur.fail_host("zipline", 1, 413, "server said huge")
        outcome = send(host, images.png(100))
        assert outcome == Permanent("z rejected the file because it is too large.", 413, "huge")
        fake_imgur.fail_host("zipline", 1, 503, "down")
        assert isinstance(send(host, images.png(100)), Transient)
        fake_imgur.fail_host("zipline", 1, 200, shape="malformed")
        malformed = send(host, images.png(100))
        assert isinstance(malformed, Transient) and "malformed" in malformed.reason
        assert isinstance(send(host, images.png(100)), Uploaded)
    finally:
        host.close()


def test_no_deletion_url_means_no_delete(
    fake_imgur: FakeHosts, tmp_path: Path, tokens: None
) -> None:
    doc = fake_imgur.put_sxcu()
    del doc["DeletionURL"]
    doc["URL"] = "{regex:(http\\S+)|1}"
    write_sxcu(tmp_path, "p", doc)
    [host] = build(settings(tmp_path, ["p"]))
    try:
        outcome = send(host, images.png(100))
        assert isinstance(outcome, Uploaded) and outcome.delete_handle is None
        assert not host.can_delete
        refused = host.delete(None, outcome.link)
        assert isinstance(refused, NoDelete) and "no DeletionURL" in refused.reason
    finally:
        host.close()


GOOD: dict[str, Any] = {
    "RequestMethod": "POST",
    "RequestURL": "https://files.example.com/api/upload",
    "Headers": {"authorization": "$ZIPLINE_TOKEN"},
    "Body": "MultipartFormData",
    "FileFormName": "file",
    "URL": "{json:files[0].url}",
}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"Body": "JSON"}, "Body"),
        ({"Body": "XML"}, "Body"),
        ({"Body": "None"}, "Body"),
        ({"URL": "{xml:/files/url}"}, "URL"),
        ({"URL": "{random:a|b}"}, "URL"),
        ({"DeletionURL": "{inputbox:Token?}"}, "DeletionURL"),
        ({"ThumbnailURL": "{select:a|b}"}, "ThumbnailURL"),
        ({"ErrorMessage": "{outputbox:x}"}, "ErrorMessage"),
        ({"Arguments": {"text": "{input}"}}, "Arguments"),
        ({"Arguments": {"text": "{json:x}"}}, "Arguments"),
        ({"URL": "{json:files[0].url"}, "URL"),
        ({"URL": "{regex:(unclosed|1}"}, "URL"),
        ({"Foo": "bar"}, "Foo"),
        ({"Data": "{}"}, "Data"),
        ({"Headers": {"authorization": "$NOT_SET_ANYWHERE"}}, "NOT_SET_ANYWHERE"),
        ({"Headers": ["x"]}, "Headers"),
        ({"RequestURL": "http://files.example.com/upload"}, "RequestURL"),
        ({"RequestURL": "ftp://files.example.com/upload"}, "RequestURL"),
        ({"RequestURL": ""}, "RequestURL"),
        ({"RequestMethod": "GET"}, "RequestMethod"),
        ({"FileFormName": ""}, "FileFormName"),
        ({"ResponseType": "RedirectionURL"}, "ResponseType"),
        ({"URL": 42}, "URL"),
    ],
)
def test_bad_sxcu_is_refused_naming_file_and_key(
    tmp_path: Path, tokens: None, change: dict[str, Any], key: str
) -> None:
    path = write_sxcu(tmp_path, "bad", {**GOOD, **change})
    with pytest.raises(ConfigError) as excinfo:
        build(settings(tmp_path, ["bad"]))
    message = str(excinfo.value)
    assert str(path) in message and key in message
    assert ZIPLINE_TOKEN not in message


@pytest.mark.parametrize(
    ("text", "needle"), [("{not json", ":1:"), ("[1, 2]", "one JSON object"), ("", "JSON")]
)
def test_unreadable_sxcu(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "hosts" / "bad.sxcu"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        build(settings(tmp_path, ["bad"]))
    assert str(path) in str(excinfo.value) and needle in str(excinfo.value)


def test_good_sxcu_with_generated_extras_loads(tmp_path: Path, tokens: None) -> None:
    doc = {**GOOD, "Version": "15.0.0", "Name": "x", "DestinationType": "ImageUploader",
           "Parameters": {"name": "{filename}"}, "RequestType": "POST"}  # fmt: skip
    write_sxcu(tmp_path, "ok", doc)
    [host] = build(settings(tmp_path, ["ok"]))
    assert repr(host) == "SxcuHost('ok', 'https://files.example.com')"
    host.close()


def test_templates() -> None:
    ctx = _Context(
        "a.png",
        body='{"files": [{"url": "https://x/1.png", "n": 3, "ok": true}], "id": "z"}',
        doc={"files": [{"url": "https://x/1.png", "n": 3, "ok": True}], "id": "z"},
        headers={"X-Delete": "https://x/del/9"},
        url="https://x/api",
    )

    def show(text: str) -> str:
        return render(parse_template(text), ctx)

    assert show("{json:files[0].url}") == "https://x/1.png"
    assert show("{json:files[0].n}/{json:files[0].ok}/{json:missing.x}") == "3/true/"
    assert show("{header:x-delete}") == "https://x/del/9"
    assert show('{regex:"id": "(\\w+)"|1}') == "z"
    assert show("{regex:nothing(here)|1}") == ""
    assert show("\\{literal\\} \\| \\\\ {filename}") == "{literal} | \\ a.png"
    assert show("{responseurl}") == "https://x/api"
    assert json_path([{"a": [1, 2]}], "[0].a[1]") == 2
    assert json_path({"a": 1}, "a[3]") is None


def test_a_key_in_parameters_stays_out_of_errors_and_logs(
    fake_imgur: FakeHosts, tmp_path: Path, tokens: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "param-secret-0123456789"
    doc = {**fake_imgur.zipline_sxcu(), "Parameters": {"key": secret}}
    write_sxcu(tmp_path, "z", doc)
    [host] = build(settings(tmp_path, ["z"]))
    try:
        assert isinstance(send(host, images.png(100)), Uploaded)
        assert fake_imgur.requests[-1].path == "/api/upload"
        fake_imgur.down()
        outcome = send(host, images.png(100))
        assert isinstance(outcome, Transient) and not outcome.counts
        assert secret not in repr(outcome) and secret not in caplog.text
        assert secret not in repr(host) and secret not in str(vars(host))
    finally:
        host.close()
