"""Property-based: the classifiers never raise on any answer, resets stay within a day, and
a .sxcu file is either a host or a ConfigError."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgdrop.config import ConfigError
from imgdrop.hosts.base import (
    Answer,
    AuthFailed,
    Blocked,
    Permanent,
    RateLimited,
    Reply,
    Transient,
    Uploaded,
)
from imgdrop.hosts.imgur import ImgurHost, classify, parse_rate_limits
from imgdrop.hosts.sxcu import SxcuHost, parse_sxcu

NOW = 1_780_000_000.0
DAY = 86400.0
OUTCOMES = (Uploaded, Permanent, Transient, RateLimited, AuthFailed, Blocked)
LIMIT_NAMES = [
    "X-RateLimit-UserLimit", "X-RateLimit-UserRemaining", "X-RateLimit-UserReset",
    "X-RateLimit-ClientLimit", "X-RateLimit-ClientRemaining", "X-RateLimit-ClientReset",
    "X-Post-Rate-Limit-Limit", "X-Post-Rate-Limit-Remaining", "X-Post-Rate-Limit-Reset",
    "Retry-After", "Content-Type", "CDN-Error",
]  # fmt: skip

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1e17", "inf", "-inf", "nan", "", "  7 ", "3600", str(int(NOW * 1000))]),
    st.text(max_size=30),
)
header_values = st.one_of(
    numbers,
    st.sampled_from(["yes", "application/json", "text/html", "application/vnd.imgur.v1+json",
                     "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT"]),
)  # fmt: skip
headers = st.dictionaries(
    st.one_of(st.sampled_from(LIMIT_NAMES), st.text(min_size=1, max_size=20)),
    header_values,
    max_size=8,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "error",
                    "errors",
                    "link",
                    "id",
                    "deletehash",
                    "success",
                    "status",
                    "code",
                    "message",
                    "detail",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def _dump(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    json_values.map(_dump),
    st.binary(max_size=200),
    st.just(b""),
    st.text(max_size=200).map(lambda t: f"<html><title>{t}</title></html>".encode()),
    st.sampled_from([
        b'{"data": {"error": "These actions are forbidden."}, "success": false, "status": 400}',
        b'{"data": {"error": {"code": 1016, "message": "Banned country attempt (EG)"}}}',
        b'{"data": {"error": {"code": 429, "message": "Please wait 99999999999999 more hours"}}}',
        b'{"data": {"link": "https://i.imgur.com/x.png"}, "success": true, "status": 200}',
        b'{"success": false, "status": 99999999999999999999}',
        b"[" * 5000,
    ]),
)  # fmt: skip
statuses = st.one_of(
    st.integers(min_value=100, max_value=599), st.sampled_from([200, 400, 403, 429, 451, 503])
)


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(status=statuses, heads=headers, body=bodies, loopback=st.booleans())
def test_classify_never_raises_and_resets_stay_within_a_day(
    status: int, heads: dict[str, str], body: bytes, loopback: bool
) -> None:
    outcome = classify(status, heads, body, loopback, NOW)
    assert isinstance(outcome, OUTCOMES)
    if isinstance(outcome, RateLimited) and outcome.until is not None:
        assert NOW < outcome.until <= NOW + DAY
        time.localtime(outcome.until)
    if not isinstance(outcome, Uploaded):
        assert outcome.reason and "\n" not in outcome.reason
    limits = parse_rate_limits(heads, NOW)
    if limits is not None:
        for key, value in limits.to_json().items():
            assert not key.endswith("_reset") or value is None or value <= NOW + DAY


@settings(max_examples=200, derandomize=True, deadline=None)
@given(status=statuses, heads=headers, body=bodies)
def test_the_host_reply_is_always_usable(status: int, heads: dict[str, str], body: bytes) -> None:
    host = ImgurHost("http://127.0.0.1:9", "cid-1234567")
    try:
        lowered = {k.lower(): v for k, v in heads.items()}
        reply = host.reply(Answer(status, lowered, body))
    finally:
        host.close()
    assert isinstance(reply, Reply)
    assert isinstance(reply.outcome, OUTCOMES)
    now = time.time()
    if reply.blocked_until is not None:
        assert now - 5 < reply.blocked_until <= now + DAY + 5
    if reply.limits is not None:
        json.dumps(reply.limits)


SXCU_KEYS = ["Version", "Name", "DestinationType", "RequestMethod", "RequestURL", "Parameters",
             "Headers", "Body", "Arguments", "FileFormName", "URL", "ThumbnailURL", "DeletionURL",
             "ErrorMessage", "Data", "RequestType", "ResponseType"]  # fmt: skip
template_text = st.text(
    alphabet="{}|\\:$ab.[0]json regex header response filename xml", max_size=30
)
sxcu_values = st.one_of(
    template_text,
    st.sampled_from(["POST", "PUT", "GET", "MultipartFormData", "Binary", "JSON",
                     "https://h.example/up", "http://127.0.0.1:9/{filename}", "$HOME", "$NOPE_X"]),
    st.dictionaries(st.text(max_size=5), template_text | st.integers(), max_size=3),
    json_values,
)  # fmt: skip


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(doc=st.dictionaries(st.sampled_from(SXCU_KEYS) | st.text(max_size=6), sxcu_values))
def test_sxcu_parsing_raises_only_config_errors(tmp_path: Path, doc: dict[str, object]) -> None:
    path = tmp_path / "x.sxcu"
    path.write_text(json.dumps(doc))
    try:
        spec = parse_sxcu(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    host = SxcuHost("x", path, spec)
    try:
        answer = Answer(200, {"x-delete-url": "https://h.example/d"}, json.dumps(doc).encode())
        reply = host._judge(answer, "a.png", "https://h.example/up")
        assert isinstance(reply.outcome, OUTCOMES)
    finally:
        host.close()
