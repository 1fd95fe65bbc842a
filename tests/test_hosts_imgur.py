"""hosts.imgur: answer classification, rate limits, edge blocks, the host against the fake."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from imgdrop import __version__
from imgdrop.filetype import FileType
from imgdrop.hosts.base import (
    AuthFailed,
    Blocked,
    Deleted,
    NoDelete,
    Outcome,
    Permanent,
    RateLimited,
    Transient,
    Uploaded,
)
from imgdrop.hosts.imgur import ImgurHost, RateLimits, classify, parse_rate_limits
from tests import images
from tests.conftest import CLIENT_ID, wait_until
from tests.fakeimgur import FakeImgur

NOW = 1_780_000_000.0  # a fixed "now" in 2026
JSON = {"Content-Type": "application/json"}
HTML_503 = (
    b"<!DOCTYPE html>\n<html><head><title>Imgur is over capacity!</title></head>"
    b"<body><h1>Imgur is over capacity!</h1><p>Please try again.</p></body></html>"
)


def upload_file(
    client: ImgurHost, path: Path, field: str, mime: str
) -> tuple[Outcome, RateLimits | None]:
    """Upload `path` the way the pipeline does: from an open file."""
    kind = FileType(mime, video=field == "video")
    with path.open("rb") as stream:
        reply = client.upload(stream, path.stat().st_size, path.name, kind)
    limits = None if reply.limits is None else RateLimits.from_json(reply.limits)
    return reply.outcome, limits


def shape1(status: int, message: str) -> bytes:
    data = {"error": message, "request": "/3/image", "method": "POST"}
    return json.dumps({"data": data, "success": False, "status": status}).encode()


def shape2(status: int, message: str) -> bytes:
    error = {"code": status, "message": message, "type": "ImgurException"}
    data = {"error": error, "request": "/3/image", "method": "POST"}
    return json.dumps({"data": data, "success": False, "status": status}).encode()


def shape3(status: int, detail: str) -> bytes:
    error = {"code": str(status), "status": "Too Many Requests", "detail": detail}
    return json.dumps({"errors": [error]}).encode()


def success(link: object = "https://i.imgur.com/abc1234.png", **extra: object) -> bytes:
    data = {"id": "abc1234", "deletehash": "dh123", "type": "image/png", **extra}
    if link is not None:
        data["link"] = link
    return json.dumps({"data": data, "success": True, "status": 200}).encode()


def judge(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    loopback: bool = False,
) -> Outcome:
    return classify(status, JSON if headers is None else headers, body, loopback, NOW)


# --- classify --------------------------------------------------------------------------------


def test_success_gives_link_id_and_deletehash() -> None:
    assert judge(200, success()) == Uploaded("https://i.imgur.com/abc1234.png", "abc1234", "dh123")


def test_trailing_dot_is_stripped_from_the_link() -> None:
    outcome = judge(200, success("https://i.imgur.com/abc1234.jpg."))
    assert isinstance(outcome, Uploaded)
    assert outcome.link == "https://i.imgur.com/abc1234.jpg"


@pytest.mark.parametrize(
    ("body", "loopback"),
    [
        (success(link=None), False),
        (success(link=""), False),
        (success(link=42), False),
        (success("http://i.imgur.com/abc1234.png"), False),
        (success("/abc1234.png"), True),
        (success("ftp://i.imgur.com/abc1234.png"), True),
        (b'{"data": [], "success": true, "status": 200}', False),
        (b'{"success": true}', False),
        (b"OK", False),
        (b"", False),
    ],
)
def test_success_without_a_usable_link_is_a_counted_malformed_answer(
    body: bytes, loopback: bool
) -> None:
    outcome = judge(200, body, loopback=loopback)
    assert isinstance(outcome, Transient)
    assert outcome.counts
    assert outcome.status == 200
    assert "malformed" in outcome.reason


def test_http_link_is_accepted_only_for_a_loopback_api() -> None:
    body = success("http://127.0.0.1:8080/abc1234.png")
    assert isinstance(judge(200, body, loopback=True), Uploaded)
    assert isinstance(judge(200, body, loopback=False), Transient)


def test_error_in_a_200_body_is_judged_by_the_body_status() -> None:
    outcome = judge(200, shape1(400, "File is over the size limit"))
    assert isinstance(outcome, Permanent)
    assert outcome.status == 400


def test_shape1_400_is_permanent_with_the_server_message() -> None:
    outcome = judge(400, shape1(400, "File is over the size limit"))
    assert outcome == Permanent(
        "Imgur rejected the file: File is over the size limit.", 400, "File is over the size limit"
    )


@pytest.mark.parametrize("status", [413, 415])
def test_413_and_415_are_permanent_even_as_html(status: int) -> None:
    page = b"<html><head><title>Request Entity Too Large</title></head></html>"
    for headers, body in [
        (JSON, shape1(status, "Bad file")),
        ({"Content-Type": "text/html"}, page),
    ]:
        outcome = judge(status, body, headers)
        assert isinstance(outcome, Permanent)
        assert outcome.reason.startswith("Imgur rejected the file because")


@pytest.mark.parametrize("status", [401, 403])
def test_bad_client_id_is_auth_failed(status: int) -> None:
    outcome = judge(status, shape1(status, "Invalid client_id"))
    assert isinstance(outcome, AuthFailed)
    assert outcome.status == status
    assert outcome.message == "Invalid client_id"
    assert "client_id" in outcome.reason


def test_403_over_capacity_is_transient_not_auth() -> None:
    outcome = judge(403, shape1(403, "Imgur is temporarily over capacity. Please try again later."))
    assert isinstance(outcome, Transient)
    assert outcome.counts
    assert outcome.reason == "Imgur is over capacity (HTTP 403); will retry."
    html = judge(403, HTML_503, {"Content-Type": "text/html"})
    assert isinstance(html, Transient)


def test_html_503_page_is_transient_with_its_title_as_message() -> None:
    outcome = judge(503, HTML_503, {"Content-Type": "text/html; charset=utf-8"})
    assert outcome == Transient(
        "Imgur is having trouble (HTTP 503); will retry.", 503, "Imgur is over capacity!", True
    )


def test_html_without_content_type_is_recognised() -> None:
    outcome = judge(503, HTML_503, {})
    assert isinstance(outcome, Transient)
    assert outcome.message == "Imgur is over capacity!"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_nine_byte_502_is_transient(content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    outcome = judge(502, b"<error>\r\n", headers)
    assert isinstance(outcome, Transient)
    assert (outcome.status, outcome.counts) == (502, True)
    assert outcome.reason == "Imgur is having trouble (HTTP 502); will retry."


def test_json_500_is_transient() -> None:
    outcome = judge(500, shape1(500, "Internal error"))
    assert isinstance(outcome, Transient)
    assert outcome.message == "Internal error"


def test_nginx_405_page_is_a_counted_transient() -> None:
    page = b"<html><head><title>405 Not Allowed</title></head><body>nginx</body></html>"
    outcome = judge(405, page, {"Content-Type": "text/html"})
    assert isinstance(outcome, Transient)
    assert outcome.counts
    assert "error page" in outcome.reason
    assert outcome.message == "405 Not Allowed"


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (429, shape1(429, "Rate limit exceeded"), "application/json"),
        (429, shape2(429, "You are uploading too fast."), "application/json"),
        (429, shape3(429, "Too many uploads"), "application/vnd.imgur.v1+json"),
        (429, b"<html><title>429 Too Many Requests</title></html>", "text/html"),
        (400, shape1(400, "You are uploading too fast. Please wait."), "application/json"),
        (400, shape2(400, "You are uploading too fast."), "application/json"),
    ],
)
def test_rate_limit_shapes(status: int, body: bytes, content_type: str) -> None:
    outcome = judge(status, body, {"Content-Type": content_type})
    assert isinstance(outcome, RateLimited)
    assert outcome.until is None
    assert outcome.message
    assert outcome.reason == "Imgur's upload limit has been reached; will try again later."


def test_shape3_message_is_the_detail() -> None:
    headers = {"Content-Type": "application/vnd.imgur.v1+json"}
    outcome = judge(429, shape3(429, "Slow down"), headers)
    assert isinstance(outcome, RateLimited)
    assert outcome.message == "Slow down"


def test_retry_after_seconds_sets_until() -> None:
    outcome = judge(429, shape1(429, "slow"), {**JSON, "Retry-After": "120"})
    assert isinstance(outcome, RateLimited)
    assert outcome.until == NOW + 120
    assert "2 minutes" in outcome.reason


def test_retry_after_http_date_sets_until() -> None:
    when = datetime.fromtimestamp(NOW + 600, tz=timezone.utc)
    outcome = judge(429, shape1(429, "slow"), {**JSON, "Retry-After": format_datetime(when, True)})
    assert isinstance(outcome, RateLimited)
    assert outcome.until == NOW + 600


def test_retry_after_zero_falls_back_to_rate_limit_headers() -> None:
    headers = {
        **JSON,
        "Retry-After": "0",
        "X-RateLimit-UserRemaining": "0",
        "X-RateLimit-UserReset": str(int(NOW + 900)),
    }
    outcome = judge(429, shape1(429, "slow"), headers)
    assert isinstance(outcome, RateLimited)
    assert outcome.until == NOW + 900


def test_retry_after_zero_alone_gives_no_until() -> None:
    outcome = judge(429, shape1(429, "slow"), {**JSON, "Retry-After": "0"})
    assert isinstance(outcome, RateLimited)
    assert outcome.until is None


def test_user_reset_as_seconds_in_a_429() -> None:
    headers = {**JSON, "X-RateLimit-UserRemaining": "0", "X-RateLimit-UserReset": "3600"}
    outcome = judge(429, shape1(429, "slow"), headers)
    assert isinstance(outcome, RateLimited)
    assert outcome.until == NOW + 3600


def test_wait_minutes_in_the_message_is_used_last() -> None:
    message = "You are uploading too fast. Please wait 37 more minutes."
    outcome = judge(429, shape2(429, message))
    assert isinstance(outcome, RateLimited)
    assert outcome.until == NOW + 37 * 60
    assert (
        outcome.reason
        == "Imgur's upload limit has been reached; will try again in about 37 minutes."
    )


def test_unexpected_status_is_a_counted_transient() -> None:
    outcome = judge(404, shape1(404, "Not found"))
    assert isinstance(outcome, Transient)
    assert outcome.counts
    assert outcome.reason == "Imgur sent an unexpected answer (HTTP 404); will retry."


def test_long_messages_are_clipped_and_whitespace_collapsed() -> None:
    outcome = judge(400, shape1(400, "bad\n\n  " + "x" * 1000))
    assert isinstance(outcome, Permanent)
    assert len(outcome.message) <= 300
    assert outcome.message.startswith("bad x")


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (400, shape1(400, "File is over the size limit"), JSON),
        (400, b"{}", JSON),
        (403, shape1(403, "Invalid client_id"), JSON),
        (403, b"", {}),
        (429, b"", {"Retry-After": "45"}),
        (503, HTML_503, {"Content-Type": "text/html"}),
        (200, b"{", JSON),
        (302, b"", {}),
    ],
)
def test_reasons_are_one_plain_sentence(status: int, body: bytes, headers: dict[str, str]) -> None:
    outcome = judge(status, body, headers)
    assert not isinstance(outcome, Uploaded)
    assert outcome.reason.startswith("Imgur")
    assert outcome.reason.endswith(".")
    assert "\n" not in outcome.reason
    assert "{" not in outcome.reason


# --- rate limits ------------------------------------------------------------------------------


def test_no_rate_limit_headers_gives_none() -> None:
    assert parse_rate_limits({"Content-Type": "application/json"}, NOW) is None


def test_rate_limit_headers_parse_case_insensitively() -> None:
    limits = parse_rate_limits(
        {
            "x-ratelimit-userlimit": "500",
            "X-RATELIMIT-USERREMAINING": "490",
            "X-RateLimit-UserReset": str(int(NOW + 1800)),
            "X-RateLimit-ClientLimit": "12500",
            "X-RateLimit-ClientRemaining": "12000",
            "X-Post-Rate-Limit-Limit": "1250",
            "X-Post-Rate-Limit-Remaining": "1249",
            "X-Post-Rate-Limit-Reset": "3000",
        },
        NOW,
    )
    assert limits == RateLimits(
        user_limit=500,
        user_remaining=490,
        user_reset=NOW + 1800,
        client_limit=12500,
        client_remaining=12000,
        client_reset=None,
        post_limit=1250,
        post_remaining=1249,
        post_reset=NOW + 3000,
    )
    assert limits.blocked_until() is None


def test_user_reset_accepts_epoch_and_seconds() -> None:
    epoch = parse_rate_limits({"X-RateLimit-UserReset": str(int(NOW + 60))}, NOW)
    seconds = parse_rate_limits({"X-RateLimit-UserReset": "3600"}, NOW)
    slightly_past = parse_rate_limits({"X-RateLimit-UserReset": str(int(NOW - 60))}, NOW)
    client = parse_rate_limits({"X-RateLimit-ClientReset": "7200"}, NOW)
    assert epoch is not None and epoch.user_reset == NOW + 60
    assert seconds is not None and seconds.user_reset == NOW + 3600
    assert slightly_past is not None and slightly_past.user_reset == NOW - 60
    assert client is not None and client.client_reset == NOW + 7200


def test_garbage_values_become_none() -> None:
    limits = parse_rate_limits(
        {"X-RateLimit-UserRemaining": "lots", "X-Post-Rate-Limit-Reset": "nan"}, NOW
    )
    assert limits == RateLimits()


def test_blocked_until_is_the_latest_exhausted_reset() -> None:
    limits = RateLimits(
        user_remaining=0,
        user_reset=NOW + 100,
        client_remaining=5,
        client_reset=NOW + 9999,
        post_remaining=0,
        post_reset=NOW + 300,
    )
    assert limits.blocked_until() == NOW + 300
    assert RateLimits(user_remaining=0).blocked_until() is None  # no reset known


def test_rate_limits_round_trip_through_json() -> None:
    limits = RateLimits(user_limit=500, user_remaining=0, user_reset=NOW + 1.5, post_reset=None)
    assert RateLimits.from_json(json.loads(json.dumps(limits.to_json()))) == limits
    assert RateLimits.from_json({"user_remaining": "7", "junk": 1}) == RateLimits(user_remaining=7)
    with pytest.raises(ValueError):
        RateLimits.from_json([1])
    with pytest.raises(ValueError):
        RateLimits.from_json("not a dict")


# --- the client against FakeImgur --------------------------------------------------------------


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "Screenshot 2026-05-12 at 4.42.48\u202fPM.png"
    path.write_bytes(images.png(40_000) + b"\r\n--\r\n\x00\xff")  # line endings and high bytes
    return path


@pytest.fixture
def client(fake_imgur: FakeImgur) -> Iterator[ImgurHost]:
    with ImgurHost(fake_imgur.url, CLIENT_ID, timeout=(2.0, 5.0)) as imgur:
        yield imgur


def upload(client: ImgurHost, path: Path) -> Outcome:
    return upload_file(client, path, "image", "image/png")[0]


def test_upload_sends_the_raw_bytes_as_multipart(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    outcome, limits = upload_file(client, picture, "image", "image/png")
    [sent] = fake_imgur.uploads
    assert outcome == Uploaded(sent.link, sent.id, sent.deletehash)
    assert sent.link.startswith("https://i.imgur.com/")
    assert sent.content == picture.read_bytes()
    assert (sent.field, sent.filename, sent.mime, sent.path) == (
        "image",
        picture.name,
        "image/png",
        "/3/image",
    )
    assert sent.headers["Authorization"] == f"Client-ID {CLIENT_ID}"
    assert sent.headers["User-Agent"] == f"imgdrop/{__version__}"
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    [request] = fake_imgur.requests
    size = picture.stat().st_size
    assert size < request.body_length < size + 500  # binary, not base64 (a third larger)
    assert request.status == 200
    assert request.time <= time.time()
    assert limits is not None
    assert limits.user_remaining == 490
    assert limits.post_remaining == 1249


def test_remaining_counts_fall_with_each_upload(client: ImgurHost, picture: Path) -> None:
    first = upload_file(client, picture, "image", "image/png")[1]
    second = upload_file(client, picture, "image", "image/png")[1]
    assert first is not None and second is not None
    assert first.user_remaining is not None and second.user_remaining is not None
    assert second.user_remaining < first.user_remaining
    assert second.blocked_until() is None


def test_video_uses_the_video_field(
    client: ImgurHost, fake_imgur: FakeImgur, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 10)
    outcome, _ = upload_file(client, clip, "video", "video/mp4")
    assert isinstance(outcome, Uploaded)
    assert outcome.link.endswith(".mp4")
    assert fake_imgur.uploads[0].field == "video"
    assert fake_imgur.uploads[0].path == "/3/upload"  # video sent to /3/image hangs
    assert fake_imgur.uploads[0].content == clip.read_bytes()


def test_keep_alive_reuses_one_connection(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    for _ in range(3):
        assert isinstance(upload(client, picture), Uploaded)
    assert all(r.headers.get("Connection") == "keep-alive" for r in fake_imgur.requests)


def test_wrong_client_id_is_auth_failed_and_recovers(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.client_id = "someone-else"
    outcome = upload(client, picture)
    assert isinstance(outcome, AuthFailed)
    assert (outcome.status, outcome.message) == (403, "Invalid client_id")
    assert CLIENT_ID not in repr(outcome)
    fake_imgur.client_id = CLIENT_ID
    assert isinstance(upload(client, picture), Uploaded)


@pytest.mark.parametrize(
    ("status", "shape", "message", "expected"),
    [
        (400, "json", "File is over the size limit", Permanent),
        (400, "object", "You are uploading too fast. Please wait 2 more minutes.", RateLimited),
        (429, "errors", "Too many uploads", RateLimited),
        (429, "html", "429 Too Many Requests", RateLimited),
        (503, "html", "", Transient),
        (502, "bytes", "", Transient),
        (500, "json", "Internal error", Transient),
        (403, "json", "Imgur is temporarily over capacity. Please try again later.", Transient),
        (401, "object", "Invalid client_id", AuthFailed),
        (413, "html", "413 Request Entity Too Large", Permanent),
        (415, "json", "Unsupported", Permanent),
    ],
)
def test_faults_map_to_outcomes(
    client: ImgurHost,
    fake_imgur: FakeImgur,
    picture: Path,
    status: int,
    shape: str,
    message: str,
    expected: type,
) -> None:
    fake_imgur.fail_next(2, status, shape, message)
    for _ in range(2):
        outcome = upload(client, picture)
        assert isinstance(outcome, expected), outcome
        assert not isinstance(outcome, Uploaded)
        assert getattr(outcome, "status", status) == status
        assert message in outcome.message
    assert isinstance(upload(client, picture), Uploaded)
    assert len(fake_imgur.uploads) == 1
    assert [r.status for r in fake_imgur.requests] == [status, status, 200]


def test_html_503_through_the_client(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.fail_next(1, 503, "html")
    outcome = upload(client, picture)
    assert outcome == Transient(
        "Imgur is having trouble (HTTP 503); will retry.", 503, "Imgur is over capacity!", True
    )


def test_retry_after_header_through_the_client(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.fail_next(1, 429, "json", "slow down", headers={"Retry-After": "30"})
    before = time.time()
    outcome = upload(client, picture)
    assert isinstance(outcome, RateLimited)
    assert outcome.until is not None
    assert before + 30 <= outcome.until <= time.time() + 30


def test_malformed_success_is_a_counted_transient(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.malformed_next(1)
    fake_imgur.malformed_next(1, link="ftp://i.imgur.com/x.png")
    for _ in range(2):
        outcome = upload(client, picture)
        assert isinstance(outcome, Transient)
        assert outcome.counts
        assert "malformed" in outcome.reason
    assert isinstance(upload(client, picture), Uploaded)


@pytest.mark.parametrize("header", ["user", "post", "client"])
def test_rate_limited_until_reset_then_uploads_again(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path, header: str
) -> None:
    fake_imgur.rate_limited(0.3, header=header)
    outcome, limits = upload_file(client, picture, "image", "image/png")
    assert isinstance(outcome, RateLimited)
    assert "too fast" in outcome.message
    assert outcome.until is not None
    assert time.time() < outcome.until <= time.time() + 2
    assert limits is not None and limits.blocked_until() == outcome.until
    wait_until(lambda: isinstance(upload(client, picture), Uploaded), 5, "the rate limit to reset")


def test_reset_mid_request_is_transient(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.reset_next(1)
    outcome = upload(client, picture)
    assert isinstance(outcome, Transient)
    assert outcome.status is None
    assert fake_imgur.requests[0].status is None
    assert isinstance(upload(client, picture), Uploaded)


def test_server_down_is_transient_and_does_not_count(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    assert isinstance(upload(client, picture), Uploaded)  # a pooled keep-alive connection
    url = fake_imgur.url
    fake_imgur.down()
    outcome = upload(client, picture)
    assert isinstance(outcome, Transient)
    assert (outcome.status, outcome.counts) == (None, False)
    assert outcome.reason == "Imgur could not be reached; will retry."
    assert CLIENT_ID not in outcome.message
    fake_imgur.up()
    assert fake_imgur.url == url
    assert isinstance(upload(client, picture), Uploaded)


def test_timeout_is_a_counted_transient_and_stop_stays_fast(
    fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.latency = 30
    with ImgurHost(fake_imgur.url, CLIENT_ID, timeout=(2.0, 0.2)) as impatient:
        outcome = upload(impatient, picture)
    assert isinstance(outcome, Transient)
    assert (outcome.status, outcome.counts) == (None, True)
    assert outcome.reason == "Imgur did not answer in time; will retry."
    started = time.monotonic()
    fake_imgur.stop()  # wakes the handler still waiting out the latency
    assert time.monotonic() - started < 2


def test_delete_removes_the_image(client: ImgurHost, fake_imgur: FakeImgur, picture: Path) -> None:
    outcome = upload(client, picture)
    assert isinstance(outcome, Uploaded)
    auth = {"Authorization": f"Client-ID {CLIENT_ID}"}
    info_url = f"{fake_imgur.url}/3/image/{outcome.id}"
    info = requests.get(info_url, headers=auth, timeout=5)
    assert info.json()["data"]["link"] == outcome.link
    assert client.delete(outcome.delete_handle) == Deleted()
    assert requests.get(info_url, headers=auth, timeout=5).status_code == 404
    gone = client.delete(outcome.delete_handle)
    assert isinstance(gone, Permanent)
    assert gone.status == 404
    fake_imgur.client_id = "someone-else"
    assert isinstance(client.delete("anything"), AuthFailed)
    assert isinstance(client.delete(""), NoDelete)
    fake_imgur.down()
    refused = client.delete("anything")
    assert isinstance(refused, Transient)
    assert not refused.counts


@pytest.mark.parametrize(
    ("auth", "message"),
    [(None, "Malformed auth header"), (CLIENT_ID, "Malformed auth header")],
)
def test_fake_requires_the_client_id_prefix(
    fake_imgur: FakeImgur, auth: str | None, message: str
) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    answer = requests.post(
        f"{fake_imgur.url}/3/upload", files={"image": ("a.png", b"x")}, headers=headers, timeout=5
    )
    assert answer.status_code == 403
    assert answer.json()["data"]["error"] == message


def test_fake_upload_endpoint_records_form_fields(fake_imgur: FakeImgur) -> None:
    answer = requests.post(
        f"{fake_imgur.url}/3/upload",
        files={"image": ("a.gif", images.gif(100), "image/gif")},
        data={"title": "Hello", "name": "a.gif"},
        headers={"Authorization": f"Client-ID {CLIENT_ID}"},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.headers["X-RateLimit-UserRemaining"] == "490"
    data = answer.json()["data"]
    assert data["type"] == "image/gif"
    assert data["link"].endswith(".gif")
    [sent] = fake_imgur.uploads
    assert (sent.path, sent.title, sent.name) == ("/3/upload", "Hello", "a.gif")


def test_fake_answers_an_upload_without_a_file_with_400(fake_imgur: FakeImgur) -> None:
    answer = requests.post(
        f"{fake_imgur.url}/3/image",
        data={"title": "no file"},
        headers={"Authorization": f"Client-ID {CLIENT_ID}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert fake_imgur.uploads == []


def test_fake_never_accepts_a_body_cut_short(fake_imgur: FakeImgur) -> None:
    head = (
        "POST /3/image HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Client-ID {CLIENT_ID}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    sent = head.encode() + part + b"\x89PNG" + bytes(20)
    address = urlsplit(fake_imgur.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as conn:
        conn.sendall(sent)
    wait_until(lambda: fake_imgur.requests, 5, "the request to arrive")
    fake_imgur.stop()  # joins the handler, so its decision is final
    assert fake_imgur.requests[0].status is None
    assert fake_imgur.uploads == []


def test_fake_rejects_an_unknown_fault_shape(fake_imgur: FakeImgur) -> None:
    with pytest.raises(ValueError):
        fake_imgur.fail_next(1, 500, "xml")
    with pytest.raises(ValueError):
        fake_imgur.rate_limited(1, header="ip")


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.imgur.com", "http://10.0.0.1:8080", "ftp://api.imgur.com", "api.imgur.com"]
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        ImgurHost(url, CLIENT_ID)
    assert CLIENT_ID not in str(excinfo.value)


@pytest.mark.parametrize(
    "url",
    ["https://api.imgur.com", "http://127.0.0.1:9", "http://localhost:9/", "http://[::1]:9"],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    ImgurHost(url, CLIENT_ID).close()


def test_client_id_never_shows_in_text() -> None:
    with ImgurHost("https://api.imgur.com", CLIENT_ID) as imgur:
        assert CLIENT_ID not in repr(imgur)
        assert CLIENT_ID not in repr(vars(vars(imgur)["_http"])["_session"].auth)
    with pytest.raises(ValueError) as excinfo:
        ImgurHost("https://api.imgur.com", "bad id\n")
    assert "bad id" not in str(excinfo.value)


# --- 2025 blocks, refused types, clamped resets ------------------------------------------------

EDGE = {"Content-Type": "application/json", "CDN-Error": "yes", "Retry-After": "0",
        "Connection": "close", "X-Served-By": "cache-fra-etou8220141-FRA"}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (400, shape1(400, "These actions are forbidden."), EDGE),
        (403, b"", {"CDN-Error": "yes"}),
        (400, shape2(400, "Banned country attempt (EG)") .replace(b'"code": 400', b'"code": 1016'),
         JSON),
        (400, shape1(400, "Banned Country Attempt (IN)"), JSON),
        (400, b"We're really sorry, but anonymous uploading in your country has been disabled.",
         {"Content-Type": "text/plain"}),
        (451, b"<html><title>Unavailable For Legal Reasons</title></html>", {}),
        (403, shape1(403, "Content not available in your region"), JSON),
    ],
)  # fmt: skip
def test_blocked_here_answers(status: int, body: bytes, headers: dict[str, str]) -> None:
    outcome = judge(status, body, headers)
    assert isinstance(outcome, Blocked), outcome
    assert outcome.reason.startswith("Imgur refuses uploads from this network")


def test_cdn_error_with_rate_limit_headers_is_not_a_block() -> None:
    headers = {**EDGE, "X-RateLimit-UserRemaining": "0", "X-RateLimit-UserReset": "600"}
    assert isinstance(judge(429, shape1(429, "slow"), headers), RateLimited)
    assert isinstance(judge(503, HTML_503, {"CDN-Error": "yes"}), Transient)


def test_file_type_invalid_is_permanent() -> None:
    error = {"code": 1003, "message": "File type invalid (1)", "type": "ImgurException"}
    body = json.dumps({"data": {"error": error}, "success": False, "status": 400}).encode()
    outcome = judge(400, body)
    assert isinstance(outcome, Permanent)
    assert "type of file" in outcome.reason


def test_heic_and_heif_are_refused_before_sending() -> None:
    with ImgurHost("https://api.imgur.com", CLIENT_ID) as host:
        assert host.refuses(FileType("image/heic", False), 10) is not None
        assert host.refuses(FileType("image/heif", False), 10) is not None
        assert host.refuses(FileType("image/png", False), 10) is None
        assert host.delete_url("dh", "") == "https://imgur.com/delete/dh"


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "1e17"},
        {"Retry-After": "inf"},
        {"Retry-After": "99999999999999999999999999"},
        {"X-RateLimit-UserRemaining": "0", "X-RateLimit-UserReset": str(int(NOW * 1000) + 5)},
        {"X-RateLimit-UserRemaining": "0", "X-RateLimit-UserReset": "1" + "0" * 30},
        {"X-Post-Rate-Limit-Remaining": "0", "X-Post-Rate-Limit-Reset": "1e300"},
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
    ],
)
def test_resets_are_clamped_to_a_day(headers: dict[str, str]) -> None:
    outcome = judge(429, shape2(429, "Please wait 99999999999 more hours."), {**JSON, **headers})
    assert isinstance(outcome, RateLimited)
    assert outcome.until is not None and NOW < outcome.until <= NOW + 86400
    time.localtime(outcome.until)  # formatting it never raises
    limits = parse_rate_limits(headers, NOW)
    if limits is not None:
        for value in limits.to_json().values():
            assert value is None or value <= NOW + 86400


def test_epoch_milliseconds_are_read_as_milliseconds() -> None:
    limits = parse_rate_limits({"X-RateLimit-UserReset": str(int((NOW + 600) * 1000))}, NOW)
    assert limits is not None and limits.user_reset == pytest.approx(NOW + 600)


def test_edge_block_through_the_fake(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.edge_block()
    with picture.open("rb") as stream:
        reply = client.upload(
            stream, picture.stat().st_size, picture.name, FileType("image/png", False)
        )
    assert isinstance(reply.outcome, Blocked)
    assert reply.limits is None and reply.blocked_until is None
    fake_imgur.edge_block(False)
    assert isinstance(upload(client, picture), Uploaded)


def test_a_used_up_limit_sets_blocked_until(
    client: ImgurHost, fake_imgur: FakeImgur, picture: Path
) -> None:
    fake_imgur.exhaust_after(1, 120)
    with picture.open("rb") as stream:
        reply = client.upload(
            stream, picture.stat().st_size, picture.name, FileType("image/png", False)
        )
    assert isinstance(reply.outcome, Uploaded)
    assert (
        reply.blocked_until is not None and time.time() < reply.blocked_until <= time.time() + 121
    )
    assert reply.limits is not None and reply.limits["post_remaining"] == 0


def test_check_client_id_asks_credits_and_says_why_not(fake_imgur: FakeImgur) -> None:
    with ImgurHost(fake_imgur.url, CLIENT_ID) as good:
        assert good.check_client_id() is None
    with ImgurHost(fake_imgur.url, "wrong-client-id-00000") as bad:
        refused = bad.check_client_id()
    assert isinstance(refused, AuthFailed)
    assert "wrong-client-id" not in refused.reason
    assert [r.path for r in fake_imgur.requests] == ["/3/credits", "/3/credits"]
    assert fake_imgur.uploads == []
