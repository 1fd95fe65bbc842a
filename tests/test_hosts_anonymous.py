"""hosts.anonymous (0x0.st, catbox, litterbox), the shared HTTP layer, build() and link_exists."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from imgdrop import __version__
from imgdrop.config import ConfigError
from imgdrop.filetype import FileType
from imgdrop.hosts import (
    Blocked,
    Deleted,
    Host,
    NoDelete,
    Outcome,
    Permanent,
    RateLimited,
    Transient,
    Uploaded,
    build,
    link_exists,
)
from imgdrop.hosts.anonymous import Litterbox
from imgdrop.testserver import FakeHosts
from tests import images
from tests.conftest import CLIENT_ID

PNG = FileType("image/png", video=False)


@pytest.fixture
def fake(fake_imgur: FakeHosts, monkeypatch: pytest.MonkeyPatch) -> FakeHosts:
    for name, value in fake_imgur.env().items():
        monkeypatch.setenv(name, value)
    return fake_imgur


def settings(tmp_path: Path, hosts: list[str], **extra: object) -> SimpleNamespace:
    values = {
        "path": tmp_path / "config.yaml",
        "hosts": hosts,
        "client_id": CLIENT_ID,
        "api_url": "https://api.imgur.com",
        "litterbox_expiry": "72h",
        **extra,
    }
    return SimpleNamespace(**values)


@pytest.fixture
def hosts(fake: FakeHosts, tmp_path: Path) -> Iterator[dict[str, Host]]:
    built = build(settings(tmp_path, ["0x0.st", "catbox", "litterbox"], litterbox_expiry="12h"))
    yield {host.name: host for host in built}
    for host in built:
        host.close()


def send(host: Host, data: bytes, size: int | None = None) -> Outcome:
    return host.upload(
        io.BytesIO(data), len(data) if size is None else size, "a b.png", PNG
    ).outcome


def test_0x0_upload_keeps_the_token_and_deletes(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    data = images.png(5000)
    outcome = send(hosts["0x0.st"], data)
    assert isinstance(outcome, Uploaded)
    [sent] = fake.uploads_to("0x0.st")
    assert (sent.field, sent.filename, sent.content) == ("file", "a b.png", data)
    assert sent.headers["User-Agent"] == f"imgdrop/{__version__}"
    assert outcome.link == sent.link and outcome.link.startswith(fake.url + "/0x0/")
    assert outcome.delete_handle == sent.deletehash  # the X-Token header
    assert sent.deletehash not in repr(outcome)
    assert link_exists(outcome.link) is True
    assert hosts["0x0.st"].can_delete
    assert hosts["0x0.st"].delete("wrong-token", outcome.link) == Permanent(
        "0x0.st refused the delete token.", 401, "Unauthorized"
    )
    assert hosts["0x0.st"].delete(outcome.delete_handle, outcome.link) == Deleted()
    assert fake.file_at(outcome.link) is None
    assert link_exists(outcome.link) is False
    again = hosts["0x0.st"].delete(outcome.delete_handle, outcome.link)
    assert isinstance(again, Permanent) and "deleted already" in again.reason
    assert isinstance(hosts["0x0.st"].delete(None, outcome.link), NoDelete)


def test_catbox_sends_reqtype_and_has_no_delete(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    outcome = send(hosts["catbox"], images.png(300))
    assert isinstance(outcome, Uploaded)
    [sent] = fake.uploads_to("catbox")
    assert (sent.field, sent.form) == ("fileToUpload", {"reqtype": "fileupload"})
    assert not hosts["catbox"].can_delete
    assert hosts["catbox"].delete(None, outcome.link) == NoDelete(
        "catbox keeps anonymous uploads forever and has no delete."
    )


def test_litterbox_sends_the_configured_expiry(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    outcome = send(hosts["litterbox"], images.png(300))
    assert isinstance(outcome, Uploaded)
    [sent] = fake.uploads_to("litterbox")
    assert sent.form == {"reqtype": "fileupload", "time": "12h"}
    refused = hosts["litterbox"].delete(None, outcome.link)
    assert isinstance(refused, NoDelete) and "expires" in refused.reason


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, Permanent), (413, Permanent), (415, Permanent), (500, Transient), (503, Transient),
     (404, Transient), (403, Blocked), (451, Blocked), (429, RateLimited)],
)  # fmt: skip
def test_error_statuses(
    fake: FakeHosts, hosts: dict[str, Host], status: int, expected: type
) -> None:
    for name, host in hosts.items():
        fake.fail_host(name, 1, status, "nope", headers={"Retry-After": "1e17"})
        outcome = send(host, images.png(100))
        assert isinstance(outcome, expected), (name, outcome)
        assert not isinstance(outcome, Uploaded)
        assert outcome.reason.startswith(name) and outcome.reason.endswith(".")
        if isinstance(outcome, RateLimited):
            assert outcome.until is not None and outcome.until <= time.time() + 86400
        if isinstance(outcome, Transient):
            assert outcome.counts
        assert isinstance(send(host, images.png(100)), Uploaded)


def test_a_2xx_that_is_not_a_link_is_a_server_error(
    fake: FakeHosts, hosts: dict[str, Host]
) -> None:
    for name, host in hosts.items():
        fake.fail_host(name, 1, 200, shape="malformed")
        outcome = send(host, images.png(100))
        assert isinstance(outcome, Transient) and outcome.counts
        assert "malformed" in outcome.reason


def test_reset_and_down_are_transient(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    host = hosts["0x0.st"]
    fake.fail_host("0x0.st", 1, 0, shape="reset")
    reset = send(host, images.png(100))
    assert isinstance(reset, Transient) and reset.status is None
    fake.down()
    try:
        down = send(host, images.png(100))
    finally:
        fake.up()
    assert isinstance(down, Transient) and not down.counts
    assert down.reason == "0x0.st could not be reached; will retry."


def test_a_growing_file_sends_exactly_size_bytes(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    data = images.png(20_000)
    outcome = send(hosts["0x0.st"], data + b"appended later", size=len(data))
    assert isinstance(outcome, Uploaded)
    assert fake.uploads_to("0x0.st")[0].content == data


def test_a_shrinking_file_ends_at_once_in_a_transient(
    fake: FakeHosts, hosts: dict[str, Host], tmp_path: Path
) -> None:
    path = tmp_path / "shrinks.png"
    path.write_bytes(images.png(50_000))
    size = path.stat().st_size
    with path.open("rb") as stream:
        os.truncate(path, 1000)  # a writer cut it after it was hashed
        started = time.monotonic()
        outcome = hosts["catbox"].upload(stream, size, path.name, PNG).outcome
    assert time.monotonic() - started < 2  # not a read timeout
    assert isinstance(outcome, Transient) and not outcome.counts
    assert "changed while it was sent" in outcome.reason
    assert fake.uploads_to("catbox") == []
    assert isinstance(send(hosts["catbox"], images.png(100)), Uploaded)  # connection still usable


def test_the_upload_starts_at_offset_zero(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    data = images.png(3000)
    stream = io.BytesIO(data)
    stream.seek(500)  # e.g. the sniffer read the head
    assert isinstance(hosts["0x0.st"].upload(stream, len(data), "a.png", PNG).outcome, Uploaded)
    assert fake.uploads_to("0x0.st")[0].content == data


def test_size_limits_are_refused_before_sending(hosts: dict[str, Host]) -> None:
    assert hosts["catbox"].refuses(PNG, 201 * 1024 * 1024) is not None
    assert hosts["catbox"].refuses(PNG, 10) is None
    assert hosts["litterbox"].refuses(FileType("image/heic", False), 10) is None


def test_build_keeps_order_and_names_a_missing_sxcu(fake: FakeHosts, tmp_path: Path) -> None:
    built = build(settings(tmp_path, ["catbox", "imgur", "0x0.st"]))
    assert [h.name for h in built] == ["catbox", "imgur", "0x0.st"]
    for host in built:
        host.close()
    with pytest.raises(ConfigError) as excinfo:
        build(settings(tmp_path, ["catbox", "zipline"]))
    assert str(tmp_path / "hosts" / "zipline.sxcu") in str(excinfo.value)
    with pytest.raises(ConfigError, match="client_id"):
        build(settings(tmp_path, ["imgur"], client_id=None))
    with pytest.raises(ConfigError, match="litterbox_expiry"):
        build(settings(tmp_path, ["litterbox"], litterbox_expiry="2h"))


def test_plain_http_to_a_remote_endpoint_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGDROP_0X0_URL", "http://0x0.st")
    with pytest.raises(ConfigError, match="IMGDROP_0X0_URL"):
        build(settings(tmp_path, ["0x0.st"]))


def test_default_endpoints(tmp_path: Path) -> None:
    built = build(settings(tmp_path, ["0x0.st", "catbox", "litterbox"]))
    assert [repr(h) for h in built] == [
        "ZeroXZero('https://0x0.st')",
        "Catbox('https://catbox.moe/user/api.php')",
        "Litterbox('https://litterbox.catbox.moe/resources/internals/api.php')",
    ]
    assert isinstance(built[2], Litterbox) and built[2].expiry == "72h"
    for host in built:
        host.close()


def test_link_exists_without_a_network(fake: FakeHosts) -> None:
    assert link_exists(fake.url + "/0x0/nothing.png") is False
    assert link_exists("http://example.com/x.png") is None  # plain http to a remote host
    assert link_exists("not a url") is None
    fake.down()
    try:
        assert link_exists(fake.url + "/0x0/nothing.png") is None
    finally:
        fake.up()


def test_hosts_are_safe_to_share_between_workers(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    results: list[object] = []

    def work() -> None:
        for _ in range(3):
            results.append(send(hosts["0x0.st"], images.png(200)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 12 and all(isinstance(r, Uploaded) for r in results)


def test_a_name_that_is_not_utf8_still_uploads(fake: FakeHosts, hosts: dict[str, Host]) -> None:
    name = b"shot \xff\x01.png".decode("utf-8", "surrogateescape")
    data = images.png(100)
    outcome = hosts["0x0.st"].upload(io.BytesIO(data), len(data), name, PNG).outcome
    assert isinstance(outcome, Uploaded)
    assert fake.uploads_to("0x0.st")[0].filename == "shot \ufffd .png"


class Exploding(io.BytesIO):
    def read(self, n: int | None = -1) -> bytes:
        raise RuntimeError("a bug")


def test_an_unexpected_error_is_a_transient_not_an_exception(hosts: dict[str, Host]) -> None:
    outcome = hosts["catbox"].upload(Exploding(b"x" * 10), 10, "a.png", PNG).outcome
    assert isinstance(outcome, Transient)
    assert outcome.message == "RuntimeError"


def test_a_delete_to_an_unusable_address_is_permanent(hosts: dict[str, Host]) -> None:
    refused = hosts["0x0.st"].delete("token-123456", "http://0x0.st/abc.png")
    assert isinstance(refused, Permanent) and "https" in refused.reason
