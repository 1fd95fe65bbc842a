"""Loopback fakes of every host imgdrop speaks to, with the real answers' shapes and faults.

One server on 127.0.0.1 serves, by path: Imgur (`/3/...`), 0x0.st (`/0x0`), catbox
(`/catbox/user/api.php`), litterbox (`/litterbox/api.php`), a Zipline-like JSON API
(`POST /api/upload`, `DELETE /api/user/files/<id>`) and a raw-body `PUT /put/<name>` host,
plus the uploaded files themselves (GET/HEAD of a link). `python -m imgdrop.testserver` prints
the base URL and serves until SIGTERM (used by `imgdrop demo`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import secrets
import signal
import socket
import string
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

UPLOAD_PATHS = ("/3/image", "/3/upload")
USER_LIMIT, CLIENT_LIMIT, POST_LIMIT = 500, 12500, 1250
UPLOAD_COST = 10  # credits per upload, as on the real API
HTML_PAGE = "<!DOCTYPE html><html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
_MAGIC = [
    (b"\x89PNG", "image/png", "png"),
    (b"\xff\xd8", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
]


@dataclass
class RequestRecord:
    """One request as received; `status` is None until answered (and stays None after a reset)."""

    method: str
    path: str
    headers: dict[str, str]
    time: float  # when it was received (time.time())
    status: int | None = None
    body_length: int = 0


@dataclass(frozen=True)
class UploadRecord:
    """One successful upload."""

    id: str
    deletehash: str
    link: str
    field: str
    filename: str | None
    content: bytes
    headers: dict[str, str]
    mime: str
    path: str
    name: str | None = None
    title: str | None = None
    host: str = "imgur"
    form: dict[str, str] = dataclasses.field(default_factory=dict)  # the form's text fields


@dataclass
class _Fault:
    kind: str  # "error" | "reset" | "malformed"
    count: int
    status: int = 200
    shape: str = "json"
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    link: str | None = None


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    on_answer: Callable[[], None] | None = None  # runs as the answer goes out


def json_reply(status: int, doc: object, headers: dict[str, str] | None = None) -> Reply:
    """A JSON answer with the given status."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return Reply(status, all_headers, json.dumps(doc).encode())


def error_reply(status: int, message: str, path: str, method: str = "POST") -> Reply:
    """Error shape 1: data.error as a string."""
    data = {"error": message, "request": path, "method": method}
    return json_reply(status, {"data": data, "success": False, "status": status})


def _shaped_error(fault: _Fault, path: str) -> Reply:
    """The error reply in one of the shapes seen from the real API."""
    status, message = fault.status, fault.message or HTTPStatus(fault.status).phrase
    if fault.shape == "json":
        reply = error_reply(status, message, path)
    elif fault.shape == "object":
        error = {"code": status, "message": message, "type": "ImgurException", "exception": []}
        data = {"error": error, "request": path, "method": "POST"}
        reply = json_reply(status, {"data": data, "success": False, "status": status})
    elif fault.shape == "errors":
        error = {"code": str(status), "status": HTTPStatus(status).phrase, "detail": message}
        body = json.dumps({"errors": [error]}).encode()
        reply = Reply(status, {"Content-Type": "application/vnd.imgur.v1+json"}, body)
    elif fault.shape == "html":
        page = HTML_PAGE.format(fault.message or "Imgur is over capacity!").encode()
        reply = Reply(status, {"Content-Type": "text/html; charset=utf-8"}, page)
    elif fault.shape == "bytes":
        reply = Reply(status, {"Content-Type": "application/json"}, b"<error>\r\n")
    else:
        raise ValueError(f"unknown error shape {fault.shape!r}")
    reply.headers.update(fault.headers)
    return reply


def _token(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _describe(content: bytes, part_mime: str, is_video: bool) -> tuple[str, str, int, int]:
    """(mime, extension, width, height) from the magic bytes, falling back to the part's type."""
    width, height = 0, 0
    if content.startswith(b"\x89PNG") and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
    elif content.startswith(b"GIF8") and len(content) >= 10:
        width, height = struct.unpack("<HH", content[6:10])
    for magic, mime, ext in _MAGIC:
        if content.startswith(magic):
            return mime, ext, width, height
    if is_video:
        return "video/mp4", "mp4", width, height
    return part_mime, part_mime.rpartition("/")[2] or "bin", width, height


def _form_fields(content_type: str, body: bytes) -> dict[str, EmailMessage]:
    """The parts of a multipart/form-data body, by field name (empty when not multipart)."""
    if not content_type.startswith("multipart/form-data"):
        return {}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    assert isinstance(message, EmailMessage)
    if not message.is_multipart():
        return {}
    parts: dict[str, EmailMessage] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(part, EmailMessage):
            parts[name] = part
    return parts


def _utf8(text: str | None) -> str | None:
    # header bytes arrive surrogate-escaped; give tests back the UTF-8 the client sent
    return None if text is None else text.encode("utf-8", "surrogateescape").decode("utf-8")


def _text(part: EmailMessage | None) -> str | None:
    if part is None:
        return None
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck handler never blocks interpreter exit
    block_on_close = False  # FakeHosts joins its handlers itself, with a deadline
    fake: FakeHosts

    def process_request(self, request: Any, client_address: Any) -> None:
        # registered here, on the serving thread, so stop() never misses a fresh connection
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="fakeimgur-connection",
            daemon=True,
        )
        self.fake._track(request, thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        self.fake._track(request, None)
        super().shutdown_request(request)


EDGE_BLOCK_BODY = {
    "data": {"error": "These actions are forbidden."},
    "success": False,
    "status": 400,
}
EDGE_BLOCK_HEADERS = {
    "CDN-Error": "yes",
    "Retry-After": "0",
    "X-Served-By": "cache-fra-etou8220141-FRA",
}
DEMO_CLIENT_ID = "test-client-id-0123456789"  # the Client ID `python -m imgdrop.testserver` takes
ZIPLINE_TOKEN = "zipline-token-0123456789abcdef"  # noqa: S105 - a test server's fixed token
PUT_TOKEN = "put-token-fedcba9876543210"  # noqa: S105 - a test server's fixed token
OTHER_HOSTS = ("0x0.st", "catbox", "litterbox", "zipline", "put")


class FakeHosts:
    """Imgur, 0x0.st, catbox, litterbox, a Zipline-like and a PUT host on 127.0.0.1, recording
    requests and injecting faults."""

    def __init__(
        self,
        client_id: str = DEMO_CLIENT_ID,
        zipline_token: str = ZIPLINE_TOKEN,
        put_token: str = PUT_TOKEN,
    ) -> None:
        self._lock = threading.Lock()
        self._client_id = client_id
        self.zipline_token = zipline_token
        self.put_token = put_token
        self._files: dict[str, tuple[bytes, str, str]] = {}  # link path -> (content, mime, token)
        self._host_faults: dict[str, deque[_Fault]] = {}
        self._edge_block = False
        self._poison: dict[bytes, int] = {}  # file bytes -> status: fail_content
        # Imgur links point at i.imgur.com like the real API; True serves them here (/i/<id>)
        self.local_links = False
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._requests: list[RequestRecord] = []
        self._uploads: list[UploadRecord] = []
        self._images: dict[str, dict[str, Any]] = {}  # id -> info, while not deleted
        self._faults: deque[_Fault] = deque()
        self._limited_until = 0.0
        self._limited_header = "user"
        self._quota: tuple[int, float] | None = None  # (uploads left, reset seconds): exhaust_after
        self._window_end = time.time() + 3600
        self._used = {"user": 0, "client": 0, "post": 0}
        self.latency = 0.0

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self._port}"

    def env(self) -> dict[str, str]:
        """The environment that points the built-in anonymous hosts at this server."""
        return {
            "IMGDROP_0X0_URL": f"{self.url}/0x0",
            "IMGDROP_CATBOX_URL": f"{self.url}/catbox/user/api.php",
            "IMGDROP_LITTERBOX_URL": f"{self.url}/litterbox/api.php",
        }

    def zipline_sxcu(self) -> dict[str, Any]:
        """A .sxcu document for the Zipline-like API, its token taken from $ZIPLINE_TOKEN."""
        return {
            "Version": "15.0.0",
            "Name": "fake zipline",
            "DestinationType": "ImageUploader, FileUploader",
            "RequestMethod": "POST",
            "RequestURL": f"{self.url}/api/upload",
            "Headers": {"authorization": "$ZIPLINE_TOKEN"},
            "Body": "MultipartFormData",
            "FileFormName": "file",
            "URL": "{json:files[0].url}",
            "DeletionURL": f"{self.url}/api/user/files/{{json:files[0].id}}",
            "ErrorMessage": "{json:error}",
        }

    def put_sxcu(self) -> dict[str, Any]:
        """A .sxcu document for the raw-body PUT host, its key taken from $PUT_TOKEN."""
        return {
            "Version": "15.0.0",
            "Name": "fake put",
            "RequestMethod": "PUT",
            "RequestURL": f"{self.url}/put/{{filename}}",
            "Headers": {"X-Api-Key": "$PUT_TOKEN"},
            "Body": "Binary",
            "URL": "{response}",
            "DeletionURL": "{header:X-Delete-Url}",
        }

    def start(self) -> None:
        """Listen on a free port and return once connections are accepted."""
        self._listen(0)

    def stop(self) -> None:
        """Stop listening, drop open connections and join every thread (idempotent)."""
        self._close()

    def down(self) -> None:
        """Stop listening (connections are refused) but keep the port for up()."""
        self._close()

    def up(self) -> None:
        """Listen again on the same port."""
        self._listen(self._port)

    def _listen(self, port: int) -> None:
        if self._server is not None:
            return  # already listening
        self._closing.clear()
        server = _Server(("127.0.0.1", port), _Handler)
        server.fake = self
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakeimgur"
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self._port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                self._closing.wait(0.01)

    def _close(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._closing.set()  # wakes handlers waiting out `latency`
        server.shutdown()
        thread.join(5)
        with self._lock:
            open_connections = list(self._connections.items())
        for conn, _ in open_connections:
            _drop(conn)  # wakes handlers waiting for the next keep-alive request
        server.server_close()
        deadline = time.monotonic() + 5
        for _, handler in open_connections:
            handler.join(max(0.0, deadline - time.monotonic()))

    def _track(self, conn: socket.socket, handler: threading.Thread | None) -> None:
        with self._lock:
            if handler is not None:
                self._connections[conn] = handler
            else:
                self._connections.pop(conn, None)

    # --- state tests read or set ---------------------------------------------------------

    @property
    def client_id(self) -> str:
        """The Client ID accepted right now."""
        with self._lock:
            return self._client_id

    @client_id.setter
    def client_id(self, value: str) -> None:
        with self._lock:
            self._client_id = value

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def uploads(self) -> list[UploadRecord]:
        """Every successful upload so far (a copy)."""
        with self._lock:
            return list(self._uploads)

    # --- fault injection --------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        shape: str = "json",
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next n uploads with an error: shape json|object|errors|html|bytes."""
        fault = _Fault("error", n, status, shape, message, dict(headers or {}))
        _shaped_error(fault, "/3/image")  # reject an unknown shape now, not in the handler
        self._add_fault(fault)

    def reset_next(self, n: int = 1) -> None:
        """Close the connection mid-request, without an answer, for the next n uploads."""
        self._add_fault(_Fault("reset", n))

    def malformed_next(self, n: int = 1, link: str | None = None) -> None:
        """Answer the next n uploads 200 without data.link (or with `link` as given)."""
        self._add_fault(_Fault("malformed", n, link=link))

    def rate_limited(self, reset_in: float, header: str = "user") -> None:
        """Answer uploads 429 for `reset_in` seconds; header: user|post|client."""
        if header not in ("user", "post", "client"):
            raise ValueError(f"unknown rate-limit header {header!r}")
        with self._lock:
            self._limited_until = time.time() + reset_in
            self._limited_header = header

    def exhaust_after(self, n: int, reset_in: float) -> None:
        """The n-th upload from now spends the last post credit: its answer says Remaining 0,
        and uploads are refused with 429 until `reset_in` seconds later."""
        with self._lock:
            self._quota = (n, reset_in)

    def _spend_quota(self, headers: dict[str, str]) -> None:
        with self._lock:
            if self._quota is None:
                return
            left, reset_in = self._quota
            self._quota = (left - 1, reset_in) if left > 1 else None
            if left > 1:
                return
            self._limited_until, self._limited_header = time.time() + reset_in, "post"
        headers["X-Post-Rate-Limit-Remaining"] = "0"
        headers["X-Post-Rate-Limit-Reset"] = str(math.ceil(reset_in))

    def edge_block(self, on: bool = True) -> None:
        """Answer every Imgur upload like its 2025 CDN edge block (400 forbidden, CDN-Error)."""
        with self._lock:
            self._edge_block = on

    def fail_host(
        self,
        host: str,
        n: int,
        status: int,
        body: str = "",
        headers: dict[str, str] | None = None,
        shape: str = "text",
    ) -> None:
        """Answer the next n uploads to `host` (0x0.st|catbox|litterbox|zipline|put) with
        `status` and a short text body; shape "reset" drops the connection, "malformed" gives a
        2xx whose body is not a link."""
        if host not in OTHER_HOSTS:
            raise ValueError(f"unknown host {host!r}")
        if shape not in ("text", "reset", "malformed"):
            raise ValueError(f"unknown fault shape {shape!r}")
        if n > 0:
            fault = _Fault(shape, n, status, shape, body, dict(headers or {}))
            with self._lock:
                self._host_faults.setdefault(host, deque()).append(fault)

    def _take_host_fault(self, host: str) -> _Fault | None:
        with self._lock:
            queue = self._host_faults.get(host)
            if not queue:
                return None
            fault = queue[0]
            fault.count -= 1
            if fault.count == 0:
                queue.popleft()
            return fault

    def uploads_to(self, host: str) -> list[UploadRecord]:
        """The successful uploads to one host."""
        return [u for u in self.uploads if u.host == host]

    def file_at(self, link: str) -> bytes | None:
        """The content served at `link`, or None once deleted."""
        with self._lock:
            entry = self._files.get(urlsplit(link).path)
        return None if entry is None else entry[0]

    def _add_fault(self, fault: _Fault) -> None:
        if fault.count > 0:
            with self._lock:
                self._faults.append(fault)

    def fail_content(self, data: bytes, status: int = 502) -> None:
        """Answer every Imgur upload of exactly `data` with `status`; other files succeed."""
        with self._lock:
            self._poison[data] = status

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.count -= 1
            if fault.count == 0:
                self._faults.popleft()
            return fault

    def _wait_latency(self) -> bool:
        """Sleep `latency` seconds; False when the server is closing meanwhile."""
        return not self._closing.wait(self.latency) if self.latency > 0 else True

    # --- answers ---------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str]) -> RequestRecord:
        record = RequestRecord(method, path, headers, time.time())
        with self._lock:
            self._requests.append(record)
        return record

    def _auth_error(self, headers: dict[str, str], path: str, method: str) -> Reply | None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not auth.startswith("Client-ID "):
            return error_reply(403, "Malformed auth header", path, method)
        if auth.removeprefix("Client-ID ") != self.client_id:
            return error_reply(403, "Invalid client_id", path, method)
        return None

    def _rate_headers(self, spend: bool) -> dict[str, str]:
        """X-RateLimit-* headers; remaining counts fall per upload and refill before reaching 0."""
        now = time.time()
        with self._lock:
            if now > self._window_end or self._used["user"] + UPLOAD_COST >= USER_LIMIT:
                self._window_end, self._used = now + 3600, dict.fromkeys(self._used, 0)
            if spend:
                self._used["user"] += UPLOAD_COST
                self._used["client"] += UPLOAD_COST
                self._used["post"] += 1
            used, window_end = dict(self._used), self._window_end
        return {
            "X-RateLimit-UserLimit": str(USER_LIMIT),
            "X-RateLimit-UserRemaining": str(USER_LIMIT - used["user"]),
            "X-RateLimit-UserReset": str(int(window_end)),
            "X-RateLimit-ClientLimit": str(CLIENT_LIMIT),
            "X-RateLimit-ClientRemaining": str(CLIENT_LIMIT - used["client"]),
            "X-Post-Rate-Limit-Limit": str(POST_LIMIT),
            "X-Post-Rate-Limit-Remaining": str(POST_LIMIT - used["post"]),
            "X-Post-Rate-Limit-Reset": str(math.ceil(window_end - now)),
        }

    def _rate_limit_reply(self, path: str) -> Reply | None:
        with self._lock:
            until, which = self._limited_until, self._limited_header
        left = until - time.time()
        if left <= 0:
            return None
        message = f"You are uploading too fast. Please wait {math.ceil(left / 60)} more minutes."
        reply = _shaped_error(_Fault("error", 1, 429, "object", message), path)
        reply.headers.update(self._rate_headers(spend=False))
        if which == "post":
            reply.headers["X-Post-Rate-Limit-Remaining"] = "0"
            reply.headers["X-Post-Rate-Limit-Reset"] = str(math.ceil(left))
        else:
            title = which.capitalize()
            reply.headers[f"X-RateLimit-{title}Remaining"] = "0"
            reply.headers[f"X-RateLimit-{title}Reset"] = str(math.ceil(until))
        return reply

    def _upload_reply(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = _form_fields(headers.get("Content-Type", ""), body)
        kind = "video" if "video" in parts else "image"
        part = parts.get(kind)
        content = part.get_payload(decode=True) if part is not None else None
        if part is None or not isinstance(content, bytes) or not content:
            return error_reply(400, "No image data was sent to the upload api", path)
        if content in self._poison:
            return error_reply(self._poison[content], "Internal error for this file", path)
        mime, ext, width, height = _describe(content, part.get_content_type(), kind == "video")
        image_id, deletehash = _token(7), _token(15)
        link = f"https://i.imgur.com/{image_id}.{ext}"
        if self.local_links:
            link = f"{self.url}/i/{image_id}.{ext}"
        info = {
            "id": image_id, "deletehash": deletehash, "link": link, "type": mime,
            "width": width, "height": height, "size": len(content),
            "datetime": int(time.time()), "animated": False,
        }  # fmt: skip
        record = UploadRecord(
            image_id, deletehash, link, kind, _utf8(part.get_filename()), content, headers, mime,
            path, _text(parts.get("name")), _text(parts.get("title")),
        )  # fmt: skip

        def commit() -> None:
            with self._lock:
                self._images[image_id] = info
                self._uploads.append(record)
                if self.local_links:
                    self._files[urlsplit(link).path] = (content, mime, deletehash)

        doc = {"data": info, "success": True, "status": 200}
        answer_headers = self._rate_headers(spend=True)
        self._spend_quota(answer_headers)
        return json_reply(200, doc, answer_headers)._replace(on_answer=commit)

    def answer_upload(
        self, path: str, headers: dict[str, str], body: bytes, fault: _Fault | None
    ) -> Reply:
        """The reply to an upload whose body was read, after any latency."""
        if fault is not None and fault.kind == "error":
            return _shaped_error(fault, path)
        with self._lock:
            blocked = self._edge_block
        if blocked:
            return json_reply(400, EDGE_BLOCK_BODY, {**EDGE_BLOCK_HEADERS, "Connection": "close"})
        if fault is not None:  # malformed
            data: dict[str, Any] = {"id": _token(7), "deletehash": _token(15), "type": "image/png"}
            if fault.link is not None:
                data["link"] = fault.link
            return json_reply(200, {"data": data, "success": True, "status": 200})
        limited = self._rate_limit_reply(path)
        if limited is not None:
            return limited
        return self._auth_error(headers, path, "POST") or self._upload_reply(path, headers, body)

    def answer_image(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        """GET /3/image/{id} and DELETE /3/image/{deletehash}."""
        auth = self._auth_error(headers, path, method)
        if auth is not None:
            return auth
        key = path.removeprefix("/3/image/")
        with self._lock:
            if method == "GET":
                info = self._images.get(key)
            else:
                info = next((i for i in self._images.values() if i["deletehash"] == key), None)
                if info is not None:
                    del self._images[info["id"]]
                    self._files.pop(urlsplit(info["link"]).path, None)
        if info is None:
            return error_reply(404, f"Unable to find an image with the id, {key}", path, method)
        data = True if method == "DELETE" else info
        return json_reply(200, {"data": data, "success": True, "status": 200})

    def answer_credits(self, path: str, headers: dict[str, str]) -> Reply:
        """GET /3/credits: the rate-limit figures, for a Client ID the fake accepts."""
        auth = self._auth_error(headers, path, "GET")
        if auth is not None:
            return auth
        rate = self._rate_headers(spend=False)
        data = {
            "UserLimit": int(rate.get("X-RateLimit-UserLimit", 12500)),
            "UserRemaining": int(rate.get("X-RateLimit-UserRemaining", 12500)),
            "UserReset": int(time.time()) + 3600,
            "ClientLimit": int(rate.get("X-RateLimit-ClientLimit", 12500)),
            "ClientRemaining": int(rate.get("X-RateLimit-ClientRemaining", 12500)),
        }
        return json_reply(200, {"data": data, "success": True, "status": 200}, rate)

    # --- the other hosts ---------------------------------------------------------------------

    def _store(self, host: str, prefix: str, content: bytes, mime: str, ext: str) -> str:
        """Keep an upload served at `prefix`/<id>.<ext>; return its path."""
        file_id = _token(8)
        path = f"{prefix}/{file_id}.{ext}"
        with self._lock:
            self._files[path] = (content, mime, _token(24))
        return path

    def answer_other(  # noqa: PLR0911 - one early answer per refusal, as the real hosts
        self,
        host: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        fault: _Fault | None,
    ) -> Reply:
        """The reply to an upload to one of the non-Imgur hosts."""
        if fault is not None and fault.kind == "malformed":
            return Reply(200, {"Content-Type": "text/plain"}, b"<html>not a link</html>\n")
        if fault is not None:
            text = (fault.message or HTTPStatus(fault.status).phrase) + "\n"
            return Reply(
                fault.status, {"Content-Type": "text/plain", **fault.headers}, text.encode()
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        if host == "put":
            return self._put_reply(path, headers, body)
        parts = _form_fields(lowered.get("content-type", ""), body)
        name = {
            "0x0.st": "file",
            "catbox": "fileToUpload",
            "litterbox": "fileToUpload",
            "zipline": "file",
        }[host]
        if host == "zipline" and lowered.get("authorization") != self.zipline_token:
            return json_reply(401, {"error": "not logged in"})
        if host in ("catbox", "litterbox") and _text(parts.get("reqtype")) != "fileupload":
            return Reply(400, {"Content-Type": "text/plain"}, b"No request type given.")
        if host == "litterbox" and _text(parts.get("time")) not in ("1h", "12h", "24h", "72h"):
            return Reply(400, {"Content-Type": "text/plain"}, b"Invalid time given.")
        part = parts.get(name)
        content = part.get_payload(decode=True) if part is not None else None
        if part is None or not isinstance(content, bytes) or not content:
            return Reply(400, {"Content-Type": "text/plain"}, b"No file given.")
        mime, ext, _, _ = _describe(content, part.get_content_type(), False)
        prefix = {
            "0x0.st": "/0x0",
            "catbox": "/catbox/files",
            "litterbox": "/litterbox/files",
            "zipline": "/z",
        }[host]
        stored = self._store(host, prefix, content, mime, ext)
        link = self.url + stored
        with self._lock:
            token = self._files[stored][2]
        texts = {
            k: v for k, v in ((k, _text(p)) for k, p in parts.items() if k != name) if v is not None
        }
        record = UploadRecord(
            stored.rpartition("/")[2].partition(".")[0], token, link, name,
            _utf8(part.get_filename()), content, headers, mime, path, host=host, form=texts,
        )  # fmt: skip

        def commit() -> None:
            with self._lock:
                self._uploads.append(record)

        if host == "zipline":
            doc = {"files": [{"id": record.id, "type": mime, "url": link}]}
            return json_reply(200, doc)._replace(on_answer=commit)
        extra = {"X-Token": token} if host == "0x0.st" else {}
        reply = Reply(
            200, {"Content-Type": "text/plain; charset=utf-8", **extra}, (link + "\n").encode()
        )
        return reply._replace(on_answer=commit)

    def _put_reply(self, path: str, sent: dict[str, str], body: bytes) -> Reply:
        headers = {k.lower(): v for k, v in sent.items()}
        if headers.get("x-api-key") != self.put_token:
            return Reply(403, {"Content-Type": "text/plain"}, b"bad key")
        if not body:
            return Reply(400, {"Content-Type": "text/plain"}, b"empty body")
        filename = unquote(path.removeprefix("/put/"))
        mime, ext, _, _ = _describe(
            body, headers.get("content-type", "application/octet-stream"), False
        )
        stored = self._store("put", "/put/files", body, mime, ext)
        link = self.url + stored
        with self._lock:
            token = self._files[stored][2]
        record = UploadRecord(
            stored.rpartition("/")[2].partition(".")[0], token, link, "", filename, body,
            sent, mime, path, host="put",
        )  # fmt: skip

        def commit() -> None:
            with self._lock:
                self._uploads.append(record)

        answer = {"Content-Type": "text/plain", "X-Delete-Url": f"{self.url}/put/delete/{token}"}
        return Reply(201, answer, link.encode())._replace(on_answer=commit)

    def answer_file(  # noqa: PLR0911 - a small router
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        """GET/HEAD of an uploaded file; the deletes of 0x0.st, Zipline and the PUT host."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if method == "DELETE" and path.startswith("/api/user/files/"):
            if lowered.get("authorization") != self.zipline_token:
                return json_reply(401, {"error": "not logged in"})
            file_id = path.removeprefix("/api/user/files/")
            return self._forget(
                lambda p, _t: p.startswith(f"/z/{file_id}."),
                json_reply(200, {"id": file_id, "deleted": True}),
            )
        if method == "GET" and path.startswith("/put/delete/"):
            token = path.removeprefix("/put/delete/")
            return self._forget(
                lambda p, t: p.startswith("/put/files/") and t == token,
                Reply(200, {"Content-Type": "text/plain"}, b"deleted"),
            )
        if method == "POST" and path.startswith("/0x0/"):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            with self._lock:
                entry = self._files.get(path)
            if entry is None:
                return Reply(404, {"Content-Type": "text/plain"}, b"Not Found")
            if "delete" not in form or form.get("token", [""])[0] != entry[2]:
                return Reply(401, {"Content-Type": "text/plain"}, b"Unauthorized")
            return self._forget(lambda p, _t: p == path, Reply(200, {}, b""))
        with self._lock:
            entry = self._files.get(path) if method in ("GET", "HEAD") else None
        if entry is None:
            return Reply(404, {"Content-Type": "text/plain"}, b"Not Found")
        return Reply(200, {"Content-Type": entry[1]}, b"" if method == "HEAD" else entry[0])

    def _forget(self, match: Callable[[str, str], bool], done: Reply) -> Reply:
        with self._lock:
            paths = [p for p, (_, _, t) in self._files.items() if match(p, t)]
            for p in paths:
                del self._files[p]
        return done if paths else Reply(404, {"Content-Type": "text/plain"}, b"Not Found")


def route(method: str, path: str) -> str | None:
    """The non-Imgur host an upload request is for, or None."""
    if method == "PUT":
        return "put" if path.startswith("/put/") and path.count("/") == 2 else None
    return {
        "/0x0": "0x0.st",
        "/0x0/": "0x0.st",
        "/catbox/user/api.php": "catbox",
        "/litterbox/api.php": "litterbox",
        "/api/upload": "zipline",
    }.get(path)


def _hung_up(conn: socket.socket) -> bool:
    """Has the client closed its end (it was killed while waiting for the answer)?"""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _drop(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the client went away (timeout tests)
            super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            self.close_connection = True  # reset or timed-out client: nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_POST(self) -> None:  # noqa: PLR0911 - a small router
        fake, path, headers = self.server.fake, urlsplit(self.path).path, dict(self.headers)
        record = fake._record("POST", path, headers)
        if route("POST", path) is not None:
            return self._other_upload(record, "POST", path, headers)
        if path not in UPLOAD_PATHS:
            body = self._read_body(record)
            if path.startswith("/0x0/"):
                return self._send(record, fake.answer_file("POST", path, headers, body))
            return self._send(record, error_reply(404, "Not found", path))
        if "Content-Length" not in self.headers:
            return self._send(record, error_reply(411, "Length Required", path))
        fault = fake._take_fault()
        if fault is not None and fault.kind == "reset":
            record.body_length = len(self.rfile.read(min(1024, self._length())))
            self.close_connection = True
            return _drop(self.connection)
        body = self._read_body(record)
        if len(body) < self._length() or not fake._wait_latency():
            self.close_connection = True  # the client died mid-body, or the server is closing
            return None
        return self._send(record, fake.answer_upload(path, headers, body, fault))

    def do_GET(self) -> None:
        self._image_request("GET")

    def do_HEAD(self) -> None:
        self._image_request("HEAD")

    def do_DELETE(self) -> None:
        self._image_request("DELETE")

    def do_PUT(self) -> None:
        fake, path, headers = self.server.fake, urlsplit(self.path).path, dict(self.headers)
        record = fake._record("PUT", path, headers)
        if route("PUT", path) is None:
            self._read_body(record)
            return self._send(record, error_reply(404, "Not found", path, "PUT"))
        return self._other_upload(record, "PUT", path, headers)

    def _other_upload(
        self, record: RequestRecord, method: str, path: str, headers: dict[str, str]
    ) -> None:
        fake = self.server.fake
        host = route(method, path)
        assert host is not None
        if "Content-Length" not in self.headers:
            return self._send(record, error_reply(411, "Length Required", path))
        fault = fake._take_host_fault(host)
        if fault is not None and fault.kind == "reset":
            record.body_length = len(self.rfile.read(min(1024, self._length())))
            self.close_connection = True
            return _drop(self.connection)
        body = self._read_body(record)
        if len(body) < self._length() or not fake._wait_latency():
            self.close_connection = True
            return None
        return self._send(record, fake.answer_other(host, method, path, headers, body, fault))

    def _image_request(self, method: str) -> None:
        fake, path = self.server.fake, urlsplit(self.path).path
        record = fake._record(method, path, dict(self.headers))
        body = self._read_body(record)
        if method in ("GET", "DELETE") and path.startswith("/3/image/") and path.count("/") == 3:
            return self._send(record, fake.answer_image(method, path, dict(self.headers)))
        if method == "GET" and path == "/3/credits":
            return self._send(record, fake.answer_credits(path, dict(self.headers)))
        if path.startswith("/3/"):
            return self._send(record, error_reply(404, "Not found", path, method))
        return self._send(record, fake.answer_file(method, path, dict(self.headers), body))

    def _length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def _read_body(self, record: RequestRecord) -> bytes:
        body = self.rfile.read(self._length())
        record.body_length = len(body)
        return body

    def _send(self, record: RequestRecord, reply: Reply) -> None:
        record.status = reply.status
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.on_answer is not None:
            if _hung_up(self.connection):
                # SPEC's duplicate window opens when Imgur answers: a client that died before
                # hearing back did not get an upload (its body may still sit in our buffer)
                self.close_connection = True
                return
            reply.on_answer()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


FakeImgur = FakeHosts  # the name the older tests use


def main(argv: list[str] | None = None) -> int:
    """Serve every fake host on loopback, print the base URL, stop on SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m imgdrop.testserver", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--edge-block", action="store_true", help="answer Imgur uploads like its 2025 edge block"
    )
    args = parser.parse_args(argv)
    fake = FakeHosts()
    fake.local_links = True  # a newcomer's links open in the browser
    fake.edge_block(args.edge_block)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    fake.start()
    try:
        print(fake.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
