"""Imgur's HTTP API: the only module that speaks HTTP; every answer becomes one small outcome.

Upload outcomes (`Outcome`): `Uploaded`, `Permanent` (the file goes to failed/), `Transient`
(retry later; `counts` says whether the attempt counts toward max_attempts), `RateLimited`
(nobody sends until `until`), `AuthFailed` (the Client ID was refused; pause until fixed).
`ImgurClient.delete` answers `Deleted` on success, else one of the failure outcomes.
No `requests` exception leaves this module, and the Client ID never appears in any text.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from email.utils import parsedate_to_datetime
from html import unescape
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias
from urllib.parse import quote, urlsplit

import requests
from requests_toolbelt import MultipartEncoder

from imgdrop import __version__

logger = logging.getLogger(__name__)

DAY = 86400.0
_MESSAGE_LIMIT = 300  # characters of a server message kept for logs and .error.txt


@dataclass(frozen=True)
class Uploaded:
    """The file is on Imgur at `link`; `deletehash` deletes it."""

    id: str
    link: str
    deletehash: str


@dataclass(frozen=True)
class Permanent:
    """Imgur will never accept this file as it is; `reason` is one plain-words sentence."""

    reason: str
    status: int | None
    message: str


@dataclass(frozen=True)
class Transient:
    """Try again later; `counts` is False when Imgur was unreachable (offline never fails)."""

    reason: str
    status: int | None
    message: str
    counts: bool


@dataclass(frozen=True)
class RateLimited:
    """Imgur's rate limit is exhausted; nothing should be sent before `until` (epoch, if known)."""

    reason: str
    until: float | None
    message: str


@dataclass(frozen=True)
class AuthFailed:
    """Imgur refused the Client ID; uploads pause until the config is fixed."""

    reason: str
    status: int
    message: str


@dataclass(frozen=True)
class Deleted:
    """Imgur confirmed the deletion."""


Outcome: TypeAlias = Uploaded | Permanent | Transient | RateLimited | AuthFailed
DeleteOutcome: TypeAlias = Deleted | Permanent | Transient | RateLimited | AuthFailed

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
    lowered = _lower(headers)
    if not any(name in lowered for name in _LIMIT_HEADERS.values()):
        return None
    values = {key: _as_number(lowered.get(name)) for key, name in _LIMIT_HEADERS.items()}
    values["user_reset"] = _as_epoch(values["user_reset"], now)
    values["client_reset"] = _as_epoch(values["client_reset"], now)
    if values["post_reset"] is not None:  # documented as seconds until the reset
        values["post_reset"] = now + values["post_reset"]
    return RateLimits(**values)


def _as_epoch(value: float | None, now: float) -> float | None:
    # documented as an epoch time, but seen as a number of seconds (3600)
    if value is None or value >= now - DAY:
        return value
    return now + value


def _as_number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    text = str(value).strip()
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


def classify(
    status: int, headers: Mapping[str, str], body: bytes, loopback: bool, now: float
) -> Outcome:
    """Return what an upload answer means; never raises."""
    lowered = _lower(headers)
    doc = _json_body(lowered, body)
    if 200 <= status < 300:
        return _success(status, lowered, body, doc, loopback, now)
    return _failure(status, lowered, body, doc, now, "Imgur rejected the file")


def _success(
    status: int, headers: dict[str, str], body: bytes, doc: Any, loopback: bool, now: float
) -> Outcome:
    if not isinstance(doc, dict):
        return _malformed(status, headers, body, doc, "it is not the expected data")
    body_status = doc.get("status")
    if doc.get("success") is False and isinstance(body_status, int) and body_status >= 400:
        # an error dressed as HTTP 200: judge it by the status in the body
        return _failure(body_status, headers, body, doc, now, "Imgur rejected the file")
    data = doc.get("data")
    link = data.get("link") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(link, str) or not link.strip():
        return _malformed(status, headers, body, doc, "there is no link in it")
    link = link.strip().rstrip(".")  # a trailing "." has been seen on real links
    if not _acceptable_link(link, loopback):
        return _malformed(status, headers, body, doc, "the link is not a secure web address")
    image_id = data.get("id")
    if not isinstance(image_id, str) or not image_id:
        image_id = Path(urlsplit(link).path).stem
    deletehash = data.get("deletehash")
    return Uploaded(image_id, link, deletehash if isinstance(deletehash, str) else "")


def _acceptable_link(link: str, loopback: bool) -> bool:
    parts = urlsplit(link)
    allowed = ("https", "http") if loopback else ("https",)
    return parts.scheme in allowed and bool(parts.hostname)


def _malformed(
    status: int, headers: dict[str, str], body: bytes, doc: Any, detail: str
) -> Transient:
    message = _server_message(headers, body, doc) or body[:80].decode("utf-8", "replace")
    reason = f"Imgur's answer was malformed ({detail}); will retry."
    return Transient(reason, status, message, counts=True)


def _failure(
    status: int, headers: dict[str, str], body: bytes, doc: Any, now: float, rejected: str
) -> Permanent | Transient | RateLimited | AuthFailed:
    message = _server_message(headers, body, doc)
    lowered = message.lower()
    if status == 429 or (status == 400 and "too fast" in lowered):
        return _rate_limited(headers, message, now)
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
        _retry_after(headers.get("retry-after"), now)
        or (limits.blocked_until() if limits else None)
        or _wait_in_message(message, now)
    )
    if until is not None and until <= now:
        until = None  # a reset in the past tells nothing about when to try again
    return RateLimited(_rate_reason(until, now), until, message)


def _retry_after(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            return parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
    return now + seconds if seconds > 0 else None  # "Retry-After: 0" has been seen


def _wait_in_message(message: str, now: float) -> float | None:
    # "You are uploading too fast. Please wait 37 more minutes."
    match = re.search(r"wait (\d+) more (second|minute|hour)", message, re.IGNORECASE)
    if match is None:
        return None
    unit = {"second": 1, "minute": 60, "hour": 3600}[match.group(2).lower()]
    return now + int(match.group(1)) * unit


def _rate_reason(until: float | None, now: float) -> str:
    start = "Imgur's upload limit has been reached"
    if until is None:
        return f"{start}; will try again later."
    seconds = until - now
    if seconds < 90:
        return f"{start}; will try again in about {math.ceil(seconds)} seconds."
    return f"{start}; will try again in about {math.ceil(seconds / 60)} minutes."


# --- reading bodies -------------------------------------------------------------------------


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


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
        text = _html_text(body.decode("utf-8", "replace"))
    else:
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


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


# --- transport ------------------------------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _transport_outcome(exc: requests.RequestException, secret: str) -> Transient:
    """Return the outcome of a request that got no answer."""
    message = f"{type(exc).__name__}: {exc}".replace(secret, "…") if secret else str(exc)
    message = message[:_MESSAGE_LIMIT]
    if isinstance(exc, requests.exceptions.SSLError):
        reason = "Imgur's secure connection could not be verified; will retry."
        return Transient(reason, None, message, counts=False)
    if isinstance(exc, requests.ConnectionError):  # includes ConnectTimeout: nothing was sent
        return Transient("Imgur could not be reached; will retry.", None, message, counts=False)
    if isinstance(exc, requests.Timeout):
        return Transient("Imgur did not answer in time; will retry.", None, message, counts=True)
    reason = "The connection to Imgur failed partway; will retry."
    return Transient(reason, None, message, counts=True)


class _ClientIdAuth(requests.auth.AuthBase):
    """Sets `Authorization: Client-ID …`; being explicit auth, it also keeps ~/.netrc out."""

    def __init__(self, client_id: str) -> None:
        self._client_id = client_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Client-ID {self._client_id}"
        return request

    def __repr__(self) -> str:
        return "_ClientIdAuth(…)"


class ImgurClient:
    """Uploads and deletes through one pooled session; answers are outcomes, never exceptions."""

    def __init__(
        self, api_url: str, client_id: str, timeout: tuple[float, float] = (10.0, 60.0)
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"The API address must be an http(s) URL, got {api_url!r}.")
        self._loopback = _is_loopback(parts.hostname)
        if parts.scheme == "http" and not self._loopback:
            raise ValueError(
                f"The API address {api_url!r} must use https (plain http is allowed only for a "
                "local test server)."
            )
        if any(ch.isspace() or not ch.isprintable() for ch in client_id):
            raise ValueError("The Client ID contains spaces or control characters.")
        self._base = api_url.rstrip("/")
        self._secret = client_id
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = _ClientIdAuth(client_id)
        self._session.headers["User-Agent"] = f"imgdrop/{__version__}"
        # a proxy from the environment must not intercept a local test server
        self._session.trust_env = not self._loopback

    def __repr__(self) -> str:
        return f"ImgurClient({self._base!r})"

    def __enter__(self) -> ImgurClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def upload(
        self, stream: BinaryIO, name: str, field: str, mime: str
    ) -> tuple[Outcome, RateLimits | None]:
        """Return the outcome of uploading the open file `stream` as `field` named `name`."""
        # the caller's open file, not a path: what was hashed is what is sent, symlinks never
        url = f"{self._base}/3/image"
        encoder = MultipartEncoder(fields={field: (name, stream, mime)})
        headers = {"Content-Type": encoder.content_type}
        try:
            response = self._session.post(url, data=encoder, headers=headers, **self._options())
        except requests.RequestException as exc:
            logger.debug("POST %s failed: %s", url, type(exc).__name__)
            return _transport_outcome(exc, self._secret), None
        now = time.time()
        logger.debug("POST %s -> HTTP %s", url, response.status_code)
        body = self._scrub(response.content)
        outcome = classify(response.status_code, response.headers, body, self._loopback, now)
        return outcome, parse_rate_limits(response.headers, now)

    def delete(self, deletehash: str) -> DeleteOutcome:
        """Return Deleted once Imgur confirms deleting the upload, else the failure outcome."""
        if not deletehash:
            reason = "There is no delete code for this upload, so it cannot be deleted."
            return Permanent(reason, None, "")
        url = f"{self._base}/3/image/{quote(deletehash, safe='')}"
        try:
            response = self._session.delete(url, **self._options())
        except requests.RequestException as exc:
            return _transport_outcome(exc, self._secret)
        logger.debug("DELETE %s/3/image/… -> HTTP %s", self._base, response.status_code)
        return _classify_delete(
            response.status_code,
            _lower(response.headers),
            self._scrub(response.content),
            time.time(),
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def _options(self) -> dict[str, Any]:
        # redirects could carry the Client ID elsewhere; TLS is always verified
        return {"timeout": self._timeout, "verify": True, "allow_redirects": False}

    def _scrub(self, body: bytes) -> bytes:
        # Imgur does not echo the Client ID, but nothing may carry it into logs or files
        return body.replace(self._secret.encode(), "…".encode()) if self._secret else body


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
    return _failure(status, headers, body, doc, now, "Imgur refused to delete the upload")
