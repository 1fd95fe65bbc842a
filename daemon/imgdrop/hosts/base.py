"""What every host answers (outcomes), the `Host` interface, and the one HTTP layer they share.

Every request of every host goes through `Http.send`: one pooled `requests.Session` per host,
timeouts always, TLS always verified, no redirects (they could carry a token elsewhere), plain
http only to loopback, and every transport error translated into a `Transient` right there —
no `requests` exception leaves this package. Secrets given to `Http` are scrubbed from every
answer body and message it hands back.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, ParamSpec, TypeAlias, TypeVar
from urllib.parse import urlsplit

import requests

from imgdrop import __version__
from imgdrop.filetype import FileType

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

DAY = 86400.0
MB = 1024 * 1024
MESSAGE_LIMIT = 300  # characters of a server message kept for logs and .error.txt
USER_AGENT = f"imgdrop/{__version__}"
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds


# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uploaded:
    """The file is at `link`; `id` is the host's name for it, `delete_handle` deletes it."""

    link: str
    id: str
    delete_handle: str | None = field(default=None, repr=False)  # a secret of sorts: keep out


@dataclass(frozen=True)
class Permanent:
    """This host will never take this file as it is; `reason` is one plain-words sentence."""

    reason: str
    status: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Transient:
    """Try again later; `counts` is False when the host was unreachable (offline never fails)."""

    reason: str
    status: int | None = None
    message: str = ""
    counts: bool = True


@dataclass(frozen=True)
class RateLimited:
    """The host's limit is used up; nothing should be sent before `until` (epoch, if known)."""

    reason: str
    until: float | None = None
    message: str = ""


@dataclass(frozen=True)
class AuthFailed:
    """The host refused our credentials; that host pauses until the config is fixed."""

    reason: str
    status: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Blocked:
    """The host refuses this network or country; skip it for `blocked_retry_hours`."""

    reason: str
    status: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Deleted:
    """The host confirmed the deletion."""


@dataclass(frozen=True)
class NoDelete:
    """The host has no way to delete this upload; `reason` says so plainly."""

    reason: str


Outcome: TypeAlias = Uploaded | Permanent | Transient | RateLimited | AuthFailed | Blocked
DeleteOutcome: TypeAlias = Deleted | NoDelete | Permanent | Transient | AuthFailed
Failure: TypeAlias = Permanent | Transient | RateLimited | AuthFailed | Blocked


@dataclass(frozen=True)
class Reply:
    """An upload's outcome plus what the host said about its limits.

    `limits`: the latest rate-limit figures (for `status`), or None when the answer had none;
    `blocked_until`: epoch when a used-up limit resets (at most 24 h away), else None.
    """

    outcome: Outcome
    limits: dict[str, float | None] | None = None
    blocked_until: float | None = None


# --- the interface ----------------------------------------------------------------------------


def wire_name(name: str) -> str:
    """Return `name` as text a request can carry: a non-UTF-8 name (surrogate-escaped bytes)
    gets U+FFFD for its bad bytes, control characters become spaces."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text) or "file"


def guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Turn an unexpected exception in a host's upload/delete into a Transient (logged once)
    instead of letting it reach the pipeline; a bug here must not look like a crash there."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            logger.exception("unexpected error in %s", method.__qualname__)
            outcome = Transient(
                "An unexpected error happened while talking to the host; will retry.",
                None,
                type(exc).__name__,
            )
            if method.__name__ == "upload":
                return Reply(outcome)  # type: ignore[return-value]
            return outcome  # type: ignore[return-value]

    return wrapper


class Host:
    """One upload destination: upload/delete answer outcomes, never exceptions."""

    name: str = ""
    can_delete: bool = False

    def refuses(self, kind: FileType, size: int) -> str | None:
        """Return why this host will not take a file of this type and size, else None."""
        return None

    def upload(self, stream: BinaryIO, size: int, name: str, kind: FileType) -> Reply:
        """Return the outcome of sending exactly `size` bytes from offset 0 of `stream`."""
        raise NotImplementedError

    def delete(self, delete_handle: str | None, link: str) -> DeleteOutcome:
        """Return Deleted once the host confirms, else why not."""
        return NoDelete(f"{self.name} has no way to delete an upload.")

    def delete_url(self, delete_handle: str | None, link: str) -> str | None:
        """Return a URL a person can open to delete the upload, if the host has one."""
        return None

    def close(self) -> None:
        """Close pooled connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


# --- time and numbers -------------------------------------------------------------------------


def clamp_until(until: float | None, now: float) -> float | None:
    """Return `until` limited to at most 24 h from `now`; None for no usable value."""
    if until is None or isinstance(until, bool):
        return None
    try:
        value = float(until)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isnan(value):
        return None
    return min(value, now + DAY)


def retry_after(value: str | None, now: float) -> float | None:
    """Return the epoch a Retry-After header (seconds or HTTP date) names, at most 24 h away."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            return clamp_until(parsedate_to_datetime(value).timestamp(), now)
        except Exception:  # any odd date is no date
            return None
    if not math.isfinite(seconds) or seconds <= 0:  # "Retry-After: 0" has been seen
        return None
    return now + min(seconds, DAY)


def clip(text: str) -> str:
    """Return `text` with whitespace collapsed and cut to MESSAGE_LIMIT characters."""
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


# --- the body ---------------------------------------------------------------------------------


class BodyChanged(Exception):
    """The file ended before `size` bytes (it shrank) or could not be read; nothing was uploaded.

    Deliberately not an OSError: urllib3 would wrap that into a connection error.
    """


class BoundedReader:
    """Reads exactly `size` bytes from offset 0 of `stream`: never more, and raises BodyChanged
    (instead of waiting for a timeout) when the file ends early."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = max(0, int(size))
        self._pos = 0
        self._started = False

    def __len__(self) -> int:
        # bytes still to send: requests-toolbelt loops while it is > 0, and requests'
        # super_len (len minus tell) sees `size` before the first read
        return self._size - self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if not self._started:
            self._started = True
            try:
                self._stream.seek(0)
            except (OSError, ValueError) as exc:
                raise BodyChanged(f"the file could not be read ({exc})") from exc
        left = self._size - self._pos
        if left <= 0:
            return b""
        want = left if n is None or n < 0 else min(n, left)
        chunks: list[bytes] = []
        while want > 0:
            try:
                chunk = self._stream.read(want)
            except (OSError, ValueError) as exc:
                raise BodyChanged(f"the file could not be read ({exc})") from exc
            if not chunk:
                raise BodyChanged(
                    f"the file shrank while it was sent ({self._pos} of {self._size} bytes)"
                )
            chunks.append(chunk)
            self._pos += len(chunk)
            want -= len(chunk)
        return b"".join(chunks)


# --- transport --------------------------------------------------------------------------------


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Return why `url` may not be used (not http(s), plain http to a remote host), else None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "it is not a valid web address"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http(s) address"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return "it must use https (plain http is allowed only for a local test server)"
    return None


def acceptable_link(link: str, loopback: bool) -> bool:
    """True when `link` is an absolute https URL (or http while talking to a loopback host)."""
    try:
        parts = urlsplit(link)
    except ValueError:
        return False
    allowed = ("https", "http") if loopback else ("https",)
    return parts.scheme in allowed and bool(parts.hostname) and not any(c.isspace() for c in link)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, lower-cased headers, the body (secrets scrubbed)."""

    status: int
    headers: dict[str, str]
    body: bytes


BODY_LIMIT = 1024 * 1024  # no answer we read is longer; a huge one must not fill memory


def _read_capped(response: requests.Response) -> bytes:
    chunks, total = [], 0
    for chunk in response.iter_content(65536):
        chunks.append(chunk)
        total += len(chunk)
        if total >= BODY_LIMIT:
            break
    return b"".join(chunks)[:BODY_LIMIT]


class _NoAuth(requests.auth.AuthBase):
    """Explicit (empty) auth keeps ~/.netrc credentials out of our requests."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class _Redactor(logging.Filter):
    """Keeps secrets out of urllib3's DEBUG lines (they carry request paths: delete URLs)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self.lock:
            secrets = list(self.secrets)
        if secrets:
            text = record.getMessage()
            if any(secret in text for secret in secrets):
                for secret in secrets:
                    text = text.replace(secret, "…")
                record.msg, record.args = text, None
        return True


_REDACTOR = _Redactor()


def _redact(secrets: tuple[str, ...]) -> None:
    with _REDACTOR.lock:
        _REDACTOR.secrets.update(secrets)
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if _REDACTOR not in pool_logger.filters:
        pool_logger.addFilter(_REDACTOR)


class Http:
    """One host's pooled session; `send` returns an Answer or a Transient, never raises."""

    def __init__(
        self,
        label: str,
        base_url: str,
        secrets: tuple[str, ...] = (),
        timeout: tuple[float, float] = TIMEOUT,
        auth: requests.auth.AuthBase | None = None,
    ) -> None:
        problem = url_problem(base_url)
        if problem is not None:
            raise ValueError(f"The address for {label} cannot be used: {problem}.")
        self.label = label
        self.loopback = is_loopback(urlsplit(base_url).hostname)
        self._secrets = tuple(s for s in secrets if s)
        _redact(self._secrets)
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = auth or _NoAuth()
        self._session.headers["User-Agent"] = USER_AGENT
        # a proxy from the environment must not intercept a local test server
        self._session.trust_env = not self.loopback

    def __repr__(self) -> str:
        return f"Http({self.label!r})"

    def add_secret(self, secret: str) -> None:
        """Scrub `secret` from every later answer and message too."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)
            _redact((secret,))

    def scrub(self, text: str) -> str:
        """Return `text` with every secret replaced by an ellipsis."""
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text

    def scrub_bytes(self, body: bytes) -> bytes:
        for secret in self._secrets:
            body = body.replace(secret.encode("utf-8", "surrogateescape"), "…".encode())
        return body

    def send(self, method: str, url: str, **kwargs: Any) -> Answer | Transient:
        """Return the answer to one request, or a Transient when none came (never raises)."""
        problem = url_problem(url)
        if problem is not None:
            return Transient(
                f"{self.label}'s address cannot be used: {problem}.", None, "", counts=True
            )
        try:
            response = self._session.request(
                method,
                url,
                timeout=self._timeout,
                verify=True,
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            with response:
                body = _read_capped(response)
        except BodyChanged as exc:
            return Transient(
                f"The file changed while it was sent to {self.label}; will retry.",
                None,
                clip(str(exc)),
                counts=False,
            )
        except requests.RequestException as exc:
            logger.debug("%s %s failed: %s", method, self.label, type(exc).__name__)
            return self._translate(exc)
        except (OSError, ValueError) as exc:  # e.g. a header with a bad value
            message = clip(self.scrub(f"{type(exc).__name__}: {exc}"))
            return Transient(f"The request to {self.label} failed; will retry.", None, message)
        logger.debug("%s %s -> HTTP %s", method, self.label, response.status_code)
        headers = {k.lower(): self.scrub(v) for k, v in response.headers.items()}
        return Answer(response.status_code, headers, self.scrub_bytes(body))

    def _translate(self, exc: requests.RequestException) -> Transient:
        """Return the outcome of a request that got no answer."""
        message = clip(self.scrub(f"{type(exc).__name__}: {exc}"))
        label = self.label
        if isinstance(exc, requests.exceptions.SSLError):
            reason = f"{label}'s secure connection could not be verified; will retry."
            return Transient(reason, None, message, counts=False)
        if isinstance(exc, requests.ConnectionError):  # includes ConnectTimeout: nothing sent
            return Transient(f"{label} could not be reached; will retry.", None, message, False)
        if isinstance(exc, requests.Timeout):
            return Transient(f"{label} did not answer in time; will retry.", None, message, True)
        reason = f"The connection to {label} failed partway; will retry."
        return Transient(reason, None, message, counts=True)

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    """Return `headers` with lower-cased names."""
    return {str(name).lower(): str(value) for name, value in headers.items()}


# --- is a link still there? -------------------------------------------------------------------

_link_lock = threading.Lock()
_link_http: dict[bool, Http] = {}


def link_exists(link: str) -> bool | None:
    """Return False when the link itself answers 404 (or Imgur's "removed" redirect), True on
    2xx, None when it cannot be told (offline, odd answer, unusable address)."""
    if url_problem(link) is not None:
        return None
    loopback = is_loopback(urlsplit(link).hostname)
    with _link_lock:
        http = _link_http.get(loopback)
        if http is None:
            base = "http://127.0.0.1" if loopback else "https://localhost.invalid"
            http = _link_http[loopback] = Http("the link", base, timeout=(10.0, 20.0))
    answer = http.send("HEAD", link)
    if isinstance(answer, Transient):
        return None
    if answer.status in (404, 410):
        return False
    if 300 <= answer.status < 400:
        # a deleted Imgur image redirects to https://i.imgur.com/removed.png
        return False if "removed" in answer.headers.get("location", "") else None
    if 200 <= answer.status < 300:
        return True
    return None


def now() -> float:
    """The wall clock (one place, so it is clear every reset is in epoch seconds)."""
    return time.time()
