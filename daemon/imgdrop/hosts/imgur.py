"""Imgur: the upload/delete API, its four error shapes, rate-limit headers and the 2025 edge block.

`classify` turns any answer into one outcome and never raises; every reset it derives is at
most 24 h away. The Client ID never appears in any text this module produces.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from html import unescape
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import requests
from requests_toolbelt import MultipartEncoder

from imgdrop.filetype import FileType
from imgdrop.hosts.base import (
    DAY,
    MESSAGE_LIMIT,
    Answer,
    AuthFailed,
    Blocked,
    BoundedReader,
    Deleted,
    DeleteOutcome,
    Failure,
    Host,
    Http,
    NoDelete,
    Outcome,
    Permanent,
    RateLimited,
    Reply,
    Transient,
    Uploaded,
    acceptable_link,
    clamp_until,
    guarded,
    lower,
    retry_after,
    wire_name,
)

# --- rate limits ------------------------------------------------------------------------------

_LIMIT_HEADERS = {
    "user_limit": "x-ratelimit-userlimit",
    "user_remaining": "x-ratelimit-userremaining",
    "user_reset": "x-ratelimit-userreset",
    "client_limit": "x-ratelimit-clientlimit",
    "client_remaining": "x-ratelimit-clientremaining",
    "client_reset": "x-ratelimit-clientreset",
    "post_limit": "x-post-rate-limit-limit",
    "post_remaining": "x-post-rate-limit-remaining",
    "post_reset": "x-post-rate-limit-reset",
}
_MS_EPOCH = 1e11  # a "seconds" epoch this large is year 5138: it must be milliseconds


@dataclass(frozen=True)
class RateLimits:
    """The latest X-RateLimit-* / X-Post-Rate-Limit-* figures; resets are epoch seconds."""

    user_limit: float | None = None
    user_remaining: float | None = None
    user_reset: float | None = None
    client_limit: float | None = None
    client_remaining: float | None = None
    client_reset: float | None = None
    post_limit: float | None = None
    post_remaining: float | None = None
    post_reset: float | None = None

    def blocked_until(self) -> float | None:
        """Return the latest reset among the limits whose remaining count is 0, else None."""
        pairs = [
            (self.user_remaining, self.user_reset),
            (self.client_remaining, self.client_reset),
            (self.post_remaining, self.post_reset),
        ]
        resets = [reset for left, reset in pairs if left is not None and left <= 0 and reset]
        return max(resets, default=None)

    def to_json(self) -> dict[str, float | None]:
        """Return the figures as a JSON-ready dict (for the journal's meta table)."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: object) -> RateLimits:
        """Return the figures saved by to_json; raises ValueError when doc is not a dict."""
        if not isinstance(doc, Mapping):
            raise ValueError("rate limits must be a JSON object")
        return cls(**{f.name: _as_number(doc.get(f.name)) for f in fields(cls)})


def parse_rate_limits(headers: Mapping[str, str], now: float) -> RateLimits | None:
    """Return the rate-limit figures in `headers`, or None when there are none."""
    lowered = lower(headers)
    if not any(name in lowered for name in _LIMIT_HEADERS.values()):
        return None
    values = {key: _as_number(lowered.get(name)) for key, name in _LIMIT_HEADERS.items()}
    values["user_reset"] = _as_epoch(values["user_reset"], now)
    values["client_reset"] = _as_epoch(values["client_reset"], now)
    post = values["post_reset"]
    # documented as seconds until the reset
    values["post_reset"] = None if post is None else clamp_until(now + min(post, DAY), now)
    return RateLimits(**values)


def _as_epoch(value: float | None, now: float) -> float | None:
    # documented as an epoch time, but seen as a number of seconds (3600); never past now+24 h
    if value is None:
        return None
    if value >= _MS_EPOCH:
        value = value / 1000.0
    if value < now - DAY:
        value = now + min(value, DAY)
    return clamp_until(value, now)


def _as_number(value: object) -> float | None:  # noqa: PLR0911 - one return per shape
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
        return value if math.isfinite(number) else None
    text = str(value).strip()
    if len(text) > 40:  # no real figure is this long; int() of a huge string is slow
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --- classifying an answer ------------------------------------------------------------------

_BLOCKED_WORDS = (
    "these actions are forbidden",
    "banned country",
    "anonymous uploading in your country has been disabled",
    "not available in your region",
    "not available in your country",
)


def classify(
    status: int, headers: Mapping[str, str], body: bytes, loopback: bool, now: float
) -> Outcome:
    """Return what an upload answer means; never raises."""
    try:
        lowered = lower(headers)
        doc = _json_body(lowered, body)
        if 200 <= status < 300:
            return _success(status, lowered, body, doc, loopback, now)
        return _failure(status, lowered, body, doc, now, "Imgur rejected the file")
    except Exception as exc:  # an answer must never crash a worker
        message = f"{type(exc).__name__} while reading the answer"
        return Transient("Imgur's answer could not be read; will retry.", status, message)


def _success(
    status: int, headers: dict[str, str], body: bytes, doc: Any, loopback: bool, now: float
) -> Outcome:
    if not isinstance(doc, dict):
        return _malformed(status, headers, body, doc, "it is not the expected data")
    body_status = doc.get("status")
    if (
        doc.get("success") is False
        and isinstance(body_status, int)
        and not isinstance(body_status, bool)
        and body_status >= 400
    ):
        # an error dressed as HTTP 200: judge it by the status in the body
        return _failure(body_status, headers, body, doc, now, "Imgur rejected the file")
    data = doc.get("data")
    link = data.get("link") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(link, str) or not link.strip():
        return _malformed(status, headers, body, doc, "there is no link in it")
    link = link.strip().rstrip(".")  # a trailing "." has been seen on real links
    if not acceptable_link(link, loopback):
        return _malformed(status, headers, body, doc, "the link is not a secure web address")
    image_id = data.get("id")
    if not isinstance(image_id, str) or not image_id:
        image_id = Path(urlsplit(link).path).stem
    deletehash = data.get("deletehash")
    return Uploaded(link, image_id, deletehash if isinstance(deletehash, str) else None)


def _malformed(
    status: int, headers: dict[str, str], body: bytes, doc: Any, detail: str
) -> Transient:
    message = _server_message(headers, body, doc) or body[:80].decode("utf-8", "replace")
    reason = f"Imgur's answer was malformed ({detail}); will retry."
    return Transient(reason, status, message, counts=True)


def _error_code(doc: Any) -> object:
    data = doc.get("data") if isinstance(doc, dict) else None
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _is_blocked(status: int, headers: dict[str, str], lowered: str, code: object) -> bool:
    if status == 451 or str(code) == "1016" or any(words in lowered for words in _BLOCKED_WORDS):
        return True
    # the 2025 CDN edge block: CDN-Error: yes and none of the rate-limit headers
    edge = headers.get("cdn-error", "").strip().lower() == "yes"
    limited = any(name in headers for name in _LIMIT_HEADERS.values())
    return edge and not limited and 400 <= status < 500 and status != 429


def _failure(
    status: int, headers: dict[str, str], body: bytes, doc: Any, now: float, rejected: str
) -> Failure:
    message = _server_message(headers, body, doc)
    lowered = message.lower()
    code = _error_code(doc)
    if _is_blocked(status, headers, lowered, code):
        detail = message.rstrip(".") or f"HTTP {status}"
        reason = f"Imgur refuses uploads from this network or country ({detail})."
        return Blocked(reason, status, message)
    if status == 429 or (status == 400 and "too fast" in lowered):
        return _rate_limited(headers, message, now)
    if str(code) == "1003" or "file type invalid" in lowered:
        reason = f"{rejected} because it does not take this type of file."
        return Permanent(reason, status, message)
    if status in (400, 413, 415):
        return Permanent(_rejection(rejected, status, message), status, message)
    if status in (401, 403) and "over capacity" not in lowered:  # 403 has also meant overload
        detail = message or f"HTTP {status}"
        reason = f"Imgur refused the Client ID ({detail}); check client_id in the config file."
        return AuthFailed(reason, status, message)
    return Transient(_trouble(status, headers, body, lowered), status, message, counts=True)


def _rejection(rejected: str, status: int, message: str) -> str:
    if status == 413:
        return f"{rejected} because it is too large."
    if status == 415:
        return f"{rejected} because it is not a type Imgur accepts."
    return f"{rejected}: {_sentence(message)}" if message else f"{rejected} (HTTP {status})."


def _trouble(status: int, headers: dict[str, str], body: bytes, lowered: str) -> str:
    if status >= 500:
        return f"Imgur is having trouble (HTTP {status}); will retry."
    if "over capacity" in lowered:
        return f"Imgur is over capacity (HTTP {status}); will retry."
    what = "an error page" if _is_html(headers, body) else "an unexpected answer"
    return f"Imgur sent {what} (HTTP {status}); will retry."


def _rate_limited(headers: dict[str, str], message: str, now: float) -> RateLimited:
    limits = parse_rate_limits(headers, now)
    until = (
        retry_after(headers.get("retry-after"), now)
        or (limits.blocked_until() if limits else None)
        or _wait_in_message(message, now)
    )
    until = clamp_until(until, now)
    if until is not None and until <= now:
        until = None  # a reset in the past tells nothing about when to try again
    return RateLimited(_rate_reason(until, now), until, message)


def _wait_in_message(message: str, now: float) -> float | None:
    # "You are uploading too fast. Please wait 37 more minutes."
    match = re.search(r"wait (\d+) more (second|minute|hour)", message, re.IGNORECASE)
    if match is None:
        return None
    unit = {"second": 1, "minute": 60, "hour": 3600}[match.group(2).lower()]
    digits = match.group(1) if len(match.group(1)) <= 12 else "9" * 12  # a huge count: a day
    return now + min(int(digits) * unit, DAY)


def _rate_reason(until: float | None, now: float) -> str:
    start = "Imgur's upload limit has been reached"
    if until is None:
        return f"{start}; will try again later."
    seconds = until - now
    if seconds < 90:
        return f"{start}; will try again in about {math.ceil(seconds)} seconds."
    return f"{start}; will try again in about {math.ceil(seconds / 60)} minutes."


# --- reading bodies -------------------------------------------------------------------------


def _is_html(headers: dict[str, str], body: bytes) -> bool:
    start = body.lstrip()[:15].lower()
    return "html" in headers.get("content-type", "") or start.startswith((b"<!doctype", b"<html"))


def _json_body(headers: dict[str, str], body: bytes) -> Any:
    """Return the parsed JSON body, or None when it is not JSON (checked before parsing)."""
    declared = "json" in headers.get("content-type", "").lower()
    if not declared and not body.lstrip().startswith((b"{", b"[")):
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _server_message(headers: dict[str, str], body: bytes, doc: Any) -> str:
    """Return the server's own words from any of the error shapes, an HTML page or plain text."""
    if isinstance(doc, dict):
        text = _json_message(doc)
    elif _is_html(headers, body):
        text = _html_text(body[:65536].decode("utf-8", "replace"))
    else:
        text = body[:4096].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _json_message(doc: dict[str, Any]) -> str:
    data = doc.get("data")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):  # shape 2: {"code": 429, "message": "...", "type": ...}
        error = error.get("message")
    if isinstance(error, str):  # shape 1
        return error
    errors = doc.get("errors")  # shape 3
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        for key in ("detail", "status", "code"):
            value = errors[0].get(key)
            if isinstance(value, str) and value:
                return value
    return data if isinstance(data, str) else ""


def _html_text(page: str) -> str:
    for tag in ("title", "h1"):
        match = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", page, re.IGNORECASE | re.DOTALL)
        if match and match.group(1).strip():
            return unescape(re.sub(r"<[^>]+>", " ", match.group(1)))
    return unescape(re.sub(r"<[^>]+>", " ", page))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _classify_delete(
    status: int, headers: dict[str, str], body: bytes, now: float
) -> DeleteOutcome:
    doc = _json_body(headers, body)
    if 200 <= status < 300:
        if isinstance(doc, dict) and (doc.get("data") is True or doc.get("success") is True):
            return Deleted()
        return _malformed(status, headers, body, doc, "it did not confirm the deletion")
    if status == 404:
        message = _server_message(headers, body, doc)
        reason = "Imgur has no upload with that delete code; it may be deleted already."
        return Permanent(reason, status, message)
    outcome = _failure(status, headers, body, doc, now, "Imgur refused to delete the upload")
    if isinstance(outcome, (RateLimited, Blocked)):
        return Transient(outcome.reason, status, outcome.message, counts=False)
    return outcome


# --- the host -------------------------------------------------------------------------------


class _ClientIdAuth(requests.auth.AuthBase):
    """Sets `Authorization: Client-ID …`; being explicit auth, it also keeps ~/.netrc out."""

    def __init__(self, client_id: str) -> None:
        self._client_id = client_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Client-ID {self._client_id}"
        return request

    def __repr__(self) -> str:
        return "_ClientIdAuth(…)"


class ImgurHost(Host):
    """Imgur through one pooled session; answers are outcomes, never exceptions."""

    name = "imgur"
    can_delete = True

    def __init__(
        self, api_url: str, client_id: str, timeout: tuple[float, float] = (10.0, 60.0)
    ) -> None:
        if any(ch.isspace() or not ch.isprintable() for ch in client_id):
            raise ValueError("The Client ID contains spaces or control characters.")
        self._base = api_url.rstrip("/")
        self._http = Http("Imgur", self._base, (client_id,), timeout, _ClientIdAuth(client_id))

    def __repr__(self) -> str:
        return f"ImgurHost({self._base!r})"

    def __enter__(self) -> ImgurHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def refuses(self, kind: FileType, size: int) -> str | None:
        """Imgur answers "File type invalid" for HEIC/HEIF (iPhone photos)."""
        if kind.mime in ("image/heic", "image/heif"):
            return "Imgur does not take HEIC/HEIF photos."
        return None

    @guarded
    def upload(self, stream: BinaryIO, size: int, name: str, kind: FileType) -> Reply:
        """Return the outcome of uploading exactly `size` bytes of `stream` as `name`."""
        name = wire_name(name)
        # video sent to /3/image hangs for a minute and fails; /3/image keeps APNG animated
        path, field = ("/3/upload", "video") if kind.video else ("/3/image", "image")
        body = BoundedReader(stream, size)
        encoder = MultipartEncoder(fields={field: (name, body, kind.mime)})
        headers = {"Content-Type": encoder.content_type}
        answer = self._http.send("POST", self._base + path, data=encoder, headers=headers)
        return self.reply(answer)

    def reply(self, answer: Answer | Transient) -> Reply:
        """Return the Reply for an upload answer (exposed for tests of odd answers)."""
        if isinstance(answer, Transient):
            return Reply(answer)
        now = time.time()
        outcome = classify(answer.status, answer.headers, answer.body, self._http.loopback, now)
        limits = parse_rate_limits(answer.headers, now)
        blocked = limits.blocked_until() if limits else None
        if isinstance(outcome, RateLimited) and outcome.until is not None:
            blocked = max(blocked or 0.0, outcome.until)
        blocked = clamp_until(blocked, now)
        if blocked is not None and blocked <= now:
            blocked = None
        return Reply(outcome, limits.to_json() if limits else None, blocked)

    @guarded
    def delete(self, delete_handle: str | None, link: str = "") -> DeleteOutcome:
        """Return Deleted once Imgur confirms deleting the upload, else the failure outcome."""
        if not delete_handle:
            return NoDelete("There is no delete code for this upload, so it cannot be deleted.")
        self._http.add_secret(delete_handle)
        url = f"{self._base}/3/image/{quote(delete_handle, safe='')}"
        answer = self._http.send("DELETE", url)
        if isinstance(answer, Transient):
            return answer
        return _classify_delete(answer.status, answer.headers, answer.body, time.time())

    def check_client_id(self) -> Failure | None:
        """Ask `GET /3/credits` (costs no upload credits): None when the Client ID is accepted,
        else the failure (Transient: Imgur could not be asked)."""
        answer = self._http.send("GET", f"{self._base}/3/credits")
        if isinstance(answer, Transient) or 200 <= answer.status < 300:
            return answer if isinstance(answer, Transient) else None
        outcome = classify(answer.status, answer.headers, answer.body, self._http.loopback,
                           time.time())  # fmt: skip
        return None if isinstance(outcome, Uploaded) else outcome

    def delete_url(self, delete_handle: str | None, link: str) -> str | None:
        """The human delete page."""
        return f"https://imgur.com/delete/{delete_handle}" if delete_handle else None

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()
