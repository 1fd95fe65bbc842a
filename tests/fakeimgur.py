"""A local Imgur-compatible API on loopback, with the real API's shapes and injectable faults."""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import socket
import string
import struct
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
from urllib.parse import urlsplit

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
    block_on_close = False  # FakeImgur joins its handlers itself, with a deadline
    fake: FakeImgur

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


class FakeImgur:
    """Imgur's upload/delete/info API on 127.0.0.1, recording requests and injecting faults."""

    def __init__(self, client_id: str) -> None:
        self._lock = threading.Lock()
        self._client_id = client_id
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

    def _add_fault(self, fault: _Fault) -> None:
        if fault.count > 0:
            with self._lock:
                self._faults.append(fault)

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
        mime, ext, width, height = _describe(content, part.get_content_type(), kind == "video")
        image_id, deletehash = _token(7), _token(15)
        link = f"https://i.imgur.com/{image_id}.{ext}"
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
        if info is None:
            return error_reply(404, f"Unable to find an image with the id, {key}", path, method)
        data = True if method == "DELETE" else info
        return json_reply(200, {"data": data, "success": True, "status": 200})


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

    def do_POST(self) -> None:
        fake, path, headers = self.server.fake, urlsplit(self.path).path, dict(self.headers)
        record = fake._record("POST", path, headers)
        if path not in UPLOAD_PATHS:
            self._read_body(record)
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

    def do_DELETE(self) -> None:
        self._image_request("DELETE")

    def _image_request(self, method: str) -> None:
        fake, path = self.server.fake, urlsplit(self.path).path
        record = fake._record(method, path, dict(self.headers))
        self._read_body(record)
        if not path.startswith("/3/image/") or path.count("/") != 3:
            return self._send(record, error_reply(404, "Not found", path, method))
        return self._send(record, fake.answer_image(method, path, dict(self.headers)))

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
        self.wfile.write(reply.body)
