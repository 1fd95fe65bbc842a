"""The anonymous built-in hosts: 0x0.st, catbox and litterbox (multipart up, the link as text).

Endpoints come from IMGDROP_0X0_URL / IMGDROP_CATBOX_URL / IMGDROP_LITTERBOX_URL (for tests and
self-hosted 0x0 instances), read when the host is built, never at import.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from requests_toolbelt import MultipartEncoder

from imgdrop.config import ConfigError
from imgdrop.filetype import FileType
from imgdrop.hosts.base import (
    MB,
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
    clip,
    guarded,
    retry_after,
    url_problem,
    wire_name,
)

DEFAULTS = {
    "0x0.st": ("IMGDROP_0X0_URL", "https://0x0.st"),
    "catbox": ("IMGDROP_CATBOX_URL", "https://catbox.moe/user/api.php"),
    "litterbox": (
        "IMGDROP_LITTERBOX_URL",
        "https://litterbox.catbox.moe/resources/internals/api.php",
    ),
}
LITTERBOX_EXPIRY = ("1h", "12h", "24h", "72h")


def text_failure(
    label: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    message: str | None = None,
    auth: bool = False,
) -> Failure:
    """Return what a non-2xx answer with a short text body means; `auth`: the host takes
    credentials, so 401/403 mean they were refused (for an anonymous host 403 is a block)."""
    if not message:
        message = clip(body[:2048].decode("utf-8", "replace"))
    detail = f" ({message})" if message and not message.lstrip().startswith("<") else ""
    if status == 429:
        until = retry_after(headers.get("retry-after"), time.time())
        when = "later" if until is None else "when its limit resets"
        reason = f"{label}'s upload limit has been reached; will try {when}."
        return RateLimited(reason, until, message)
    if status == 451 or (status == 403 and not auth and "auth" not in message.lower()):
        return Blocked(f"{label} refuses uploads from this network{detail}.", status, message)
    if status in (401, 403):
        return AuthFailed(f"{label} refused the credentials{detail}.", status, message)
    rejected = {
        400: f"{label} rejected the file{detail}.",
        413: f"{label} rejected the file because it is too large.",
        415: f"{label} does not take this type of file.",
    }
    if status in rejected:
        return Permanent(rejected[status], status, message)
    what = "is having trouble" if status >= 500 else "sent an unexpected answer"
    return Transient(f"{label} {what} (HTTP {status}); will retry.", status, message)


def text_link(label: str, answer: Answer, loopback: bool) -> Outcome:
    """Return Uploaded when a 2xx body is one absolute URL, else a counted Transient."""
    text = answer.body[:4096].decode("utf-8", "replace").strip()
    if not acceptable_link(text, loopback):
        reason = f"{label}'s answer was malformed (it is not a secure web address); will retry."
        return Transient(reason, answer.status, clip(text[:80]))
    return Uploaded(text, PurePosixPath(urlsplit(text).path).name or text)


class AnonymousHost(Host):
    """One multipart POST; the answer body is the link."""

    field = "file"
    limit_mb = 512.0

    def __init__(self, name: str, url: str, extra: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._url = url
        self._extra = dict(extra or {})
        self._http = Http(name, url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    def refuses(self, kind: FileType, size: int) -> str | None:
        if size > self.limit_mb * MB:
            return f"{self.name} takes files up to {self.limit_mb:g} MB."
        return None

    @guarded
    def upload(self, stream: BinaryIO, size: int, name: str, kind: FileType) -> Reply:
        name = wire_name(name)
        fields: dict[str, Any] = dict(self._extra)
        fields[self.field] = (name, BoundedReader(stream, size), kind.mime)
        encoder = MultipartEncoder(fields=fields)
        answer = self._http.send(
            "POST", self._url, data=encoder, headers={"Content-Type": encoder.content_type}
        )
        if isinstance(answer, Transient):
            return Reply(answer)
        if 200 <= answer.status < 300:
            return Reply(self._uploaded(answer))
        outcome = text_failure(self.name, answer.status, answer.headers, answer.body)
        until = outcome.until if isinstance(outcome, RateLimited) else None
        return Reply(outcome, None, until)

    def _uploaded(self, answer: Answer) -> Outcome:
        return text_link(self.name, answer, self._http.loopback)

    def close(self) -> None:
        self._http.close()


class ZeroXZero(AnonymousHost):
    """0x0.st: field `file`; the `X-Token` answer header deletes (POST <link> token=&delete=)."""

    can_delete = True
    limit_mb = 512.0

    def _uploaded(self, answer: Answer) -> Outcome:
        outcome = super()._uploaded(answer)
        token = answer.headers.get("x-token", "").strip()
        if isinstance(outcome, Uploaded) and token:
            return Uploaded(outcome.link, outcome.id, token)
        return outcome

    @guarded
    def delete(self, delete_handle: str | None, link: str) -> DeleteOutcome:
        if not delete_handle:
            return NoDelete("0x0.st gave no delete token for this upload, so it cannot be deleted.")
        self._http.add_secret(delete_handle)
        problem = url_problem(link)
        if problem is not None:
            return Permanent(f"The 0x0.st link cannot be used to delete: {problem}.", None, "")
        answer = self._http.send("POST", link, data={"token": delete_handle, "delete": ""})
        if isinstance(answer, Transient):
            return answer
        if 200 <= answer.status < 300:
            return Deleted()
        message = clip(answer.body[:2048].decode("utf-8", "replace"))
        gone = {
            404: "0x0.st has no such file; it may be deleted already.",
            410: "0x0.st has no such file; it may be deleted already.",
            401: "0x0.st refused the delete token.",
            403: "0x0.st refused the delete token.",
        }
        if answer.status in gone:
            return Permanent(gone[answer.status], answer.status, message)
        what = "is having trouble" if answer.status >= 500 else "sent an unexpected answer"
        return Transient(
            f"0x0.st {what} (HTTP {answer.status}); will retry.", answer.status, message
        )


class Catbox(AnonymousHost):
    """catbox.moe: reqtype=fileupload + fileToUpload; anonymous uploads are permanent."""

    field = "fileToUpload"
    limit_mb = 200.0

    @guarded
    def delete(self, delete_handle: str | None, link: str) -> DeleteOutcome:
        return NoDelete("catbox keeps anonymous uploads forever and has no delete.")


class Litterbox(AnonymousHost):
    """litterbox.catbox.moe: like catbox plus `time`; uploads expire, there is no delete."""

    field = "fileToUpload"
    limit_mb = 1024.0

    def __init__(self, url: str, expiry: str) -> None:
        super().__init__("litterbox", url, {"reqtype": "fileupload", "time": expiry})
        self.expiry = expiry

    @guarded
    def delete(self, delete_handle: str | None, link: str) -> DeleteOutcome:
        return NoDelete(
            f"litterbox has no delete; the upload expires by itself ({self.expiry} after upload)."
        )


def anonymous_host(name: str, settings: Any) -> Host:
    """Return the built-in anonymous host `name`; raise ConfigError for an unusable endpoint."""
    variable, default = DEFAULTS[name]
    url = os.environ.get(variable) or default
    try:
        if name == "0x0.st":
            return ZeroXZero(name, url)
        if name == "catbox":
            return Catbox(name, url, {"reqtype": "fileupload"})
        expiry = str(settings.litterbox_expiry)
        if expiry not in LITTERBOX_EXPIRY:
            raise ConfigError(
                f"{settings.path}: litterbox_expiry must be one of {', '.join(LITTERBOX_EXPIRY)}"
            )
        return Litterbox(url, expiry)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}") from None
