"""ShareX custom uploaders (.sxcu): a request template, read by one generic host.

Supported: RequestMethod, RequestURL, Parameters, Headers, Body (MultipartFormData, Binary,
FormURLEncoded), Arguments, FileFormName, URL, ThumbnailURL, DeletionURL, ErrorMessage, with
`{json:path}`, `{regex:pattern|group}`, `{header:name}`, `{response}`, `{responseurl}`,
`{filename}` and backslash escapes. `$VARS` in Headers/Arguments values come from the
environment. Anything else is a ConfigError naming the file and the key. Header and argument
values (the tokens) never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from requests_toolbelt import MultipartEncoder

from imgdrop.config import ConfigError
from imgdrop.filetype import FileType
from imgdrop.hosts.anonymous import text_failure
from imgdrop.hosts.base import (
    Answer,
    AuthFailed,
    BoundedReader,
    Deleted,
    DeleteOutcome,
    Host,
    Http,
    NoDelete,
    Permanent,
    RateLimited,
    Reply,
    Transient,
    Uploaded,
    acceptable_link,
    clip,
    guarded,
    url_problem,
    wire_name,
)

MAX_FILE_BYTES = 1024 * 1024
_TEXT_KEYS = ("Version", "Name", "DestinationType", "RequestMethod", "RequestURL", "Body",
              "FileFormName", "URL", "ThumbnailURL", "DeletionURL", "ErrorMessage",
              "RequestType", "ResponseType")  # fmt: skip
_MAP_KEYS = ("Parameters", "Headers", "Arguments")
_RESPONSE_KEYS = ("URL", "ThumbnailURL", "DeletionURL", "ErrorMessage")
_BODIES = ("MultipartFormData", "Binary", "FormURLEncoded")
_METHODS = ("POST", "PUT", "PATCH")
_WHY_NOT = {
    "xml": "XML answers are not supported",
    "random": "random choices are not supported",
    "input": "{input} needs text input, which a file upload does not have",
    "inputbox": "prompts need a person at the keyboard; a daemon has none",
    "select": "prompts need a person at the keyboard; a daemon has none",
    "outputbox": "prompts need a person at the keyboard; a daemon has none",
}
_REQUEST_FUNCS = {"filename"}
_RESPONSE_FUNCS = {"json", "regex", "header", "response", "responseurl", "filename"}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|(\$))")
_SECRET_MIN = 6  # shorter header/argument values are not worth scrubbing (and could mangle text)


class _TemplateError(Exception):
    """A template the parser cannot use; the message lacks only file and key."""


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[str, ...]


_Part = str | _Call


def _split_args(text: str) -> list[str]:
    """Split on unescaped `|`, then unescape \\{ \\} \\| \\\\ (other backslashes stay)."""
    args, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}|\\":
            current.append(text[i + 1])
            i += 2
            continue
        if ch == "|":
            args.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    args.append("".join(current))
    return args


def parse_template(text: str) -> list[_Part]:
    """Return the literal text and {function:args} calls of a template; raise _TemplateError."""
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}|\\":
            literal.append(text[i + 1])
            i += 2
            continue
        if ch == "}":
            raise _TemplateError("a `}` without its `{` (write \\} for a literal one)")
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        j, raw = i + 1, []
        while j < len(text) and text[j] != "}":
            if text[j] == "{":
                raise _TemplateError("nested {…} syntax is not supported")
            if text[j] == "\\" and j + 1 < len(text):
                raw.append(text[j : j + 2])
                j += 2
                continue
            raw.append(text[j])
            j += 1
        if j >= len(text):
            raise _TemplateError("a `{` without its `}` (write \\{ for a literal one)")
        inner = "".join(raw)
        name, colon, rest = inner.partition(":")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_Call(name.strip().lower(), tuple(_split_args(rest)) if colon else ()))
        i = j + 1
    if literal:
        parts.append("".join(literal))
    return parts


def _check(parts: list[_Part], allowed: set[str]) -> None:
    for part in parts:
        if isinstance(part, str):
            continue
        if part.name in _WHY_NOT:
            raise _TemplateError(f"{{{part.name}}}: {_WHY_NOT[part.name]}")
        if part.name not in allowed:
            where = "here" if part.name in _RESPONSE_FUNCS else "in imgdrop"
            raise _TemplateError(f"{{{part.name}}} is not supported {where}")
        if part.name == "regex":
            if not part.args or not part.args[0]:
                raise _TemplateError("{regex:pattern|group} needs a pattern")
            try:
                re.compile(part.args[0])
            except re.error as exc:
                raise _TemplateError(f"the regex does not compile ({exc})") from None
        if part.name in ("json", "header") and not (part.args and part.args[0].strip()):
            raise _TemplateError(f"{{{part.name}:…}} needs a name")


@dataclass(frozen=True)
class _Context:
    """What response-side templates read."""

    filename: str
    body: str = ""
    doc: Any = None
    headers: Mapping[str, str] | None = None
    url: str = ""


_JSON_STEP = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def json_path(doc: Any, path: str) -> Any:
    """Return the value at a dotted path with [i] indexes (files[0].url), or None."""
    value = doc
    for index, key in _JSON_STEP.findall(path.strip()):
        if index:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _header(call: _Call, ctx: _Context) -> str:
    wanted = call.args[0].strip().lower()
    return next((v for k, v in (ctx.headers or {}).items() if k.lower() == wanted), "")


def _json(call: _Call, ctx: _Context) -> str:
    value = json_path(ctx.doc, call.args[0])
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _regex(call: _Call, ctx: _Context) -> str:
    match = re.search(call.args[0], ctx.body)
    if match is None:
        return ""
    wanted = call.args[1].strip() if len(call.args) > 1 else ""
    group: int | str = int(wanted) if wanted.isdigit() else wanted or 0
    try:
        return match.group(group) or ""
    except IndexError:  # no such group
        return ""


_FUNCS = {
    "filename": lambda call, ctx: ctx.filename,
    "response": lambda call, ctx: ctx.body,
    "responseurl": lambda call, ctx: ctx.url,
    "header": _header,
    "json": _json,
    "regex": _regex,
}


def _render_call(call: _Call, ctx: _Context) -> str:
    return str(_FUNCS[call.name](call, ctx))


def render(parts: list[_Part], ctx: _Context) -> str:
    """Return the template's text for this answer."""
    return "".join(p if isinstance(p, str) else _render_call(p, ctx) for p in parts)


# --- loading -----------------------------------------------------------------------------------


def _expand_vars(value: str, where: str, env: bool = True) -> str:
    """Expand $NAME / ${NAME} from the environment ($$ is a literal $); raise _TemplateError
    for a missing variable (with env=False, only check the syntax: missing ones become "")."""

    def one(match: re.Match[str]) -> str:
        if match.group(3):
            return "$"
        name = match.group(1) or match.group(2)
        if not env:
            return os.environ.get(name, "")
        if name not in os.environ:
            raise _TemplateError(f"the environment variable ${name} is not set ({where})")
        return os.environ[name]

    return _VAR.sub(one, value)


@dataclass(frozen=True)
class _Spec:
    method: str
    url: list[_Part]
    parameters: dict[str, list[_Part]] = field(repr=False)
    headers: dict[str, str] = field(repr=False)  # $VARS expanded: tokens
    arguments: dict[str, list[_Part]] = field(repr=False)
    body: str
    file_field: str
    link: list[_Part]
    thumbnail: list[_Part] | None
    deletion: list[_Part] | None
    error: list[_Part] | None


def _read_doc(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the custom host file ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: too large for a custom host file (over 1 MB)")
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a .sxcu file must hold one JSON object")
    return doc


def _text(doc: dict[str, Any], path: Path, key: str, default: str = "") -> str:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key}: must be text")
    return value


def _mapping(doc: dict[str, Any], path: Path, key: str) -> dict[str, str]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise ConfigError(f"{path}: {key}: must be an object of names and text values")
    return {k: str(v) for k, v in value.items()}


def _template(path: Path, key: str, text: str, allowed: set[str]) -> list[_Part]:
    try:
        parts = parse_template(text)
        _check(parts, allowed)
    except _TemplateError as exc:
        raise ConfigError(f"{path}: {key}: {exc}") from None
    return parts


def _headers(doc: dict[str, Any], path: Path, env: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in _mapping(doc, path, "Headers").items():
        try:
            expanded = _expand_vars(value, f"header {name}", env)
        except _TemplateError as exc:
            raise ConfigError(f"{path}: Headers: {exc}") from None
        if any(ch in expanded for ch in "\r\n"):
            raise ConfigError(f"{path}: Headers: the value of {name} has a line break")
        headers[name] = expanded
    return headers


def _arguments(doc: dict[str, Any], path: Path, env: bool) -> dict[str, list[_Part]]:
    arguments: dict[str, list[_Part]] = {}
    for name, value in _mapping(doc, path, "Arguments").items():
        try:
            expanded = _expand_vars(value, f"argument {name}", env)
        except _TemplateError as exc:
            raise ConfigError(f"{path}: Arguments: {exc}") from None
        arguments[name] = _template(path, "Arguments", expanded, _REQUEST_FUNCS)
    return arguments


def _check_keys(doc: dict[str, Any], path: Path) -> None:
    for key in doc:
        if key not in _TEXT_KEYS and key not in _MAP_KEYS:
            if key == "Data":
                raise ConfigError(f"{path}: Data: JSON and XML bodies are not supported")
            raise ConfigError(f"{path}: {key}: not a key imgdrop supports")
    for key in _TEXT_KEYS:
        _text(doc, path, key)
    if _text(doc, path, "ResponseType", "Text") != "Text":
        raise ConfigError(f"{path}: ResponseType: only Text is supported")


def variables(path: Path) -> list[str]:
    """The environment variables the Headers/Arguments of a (valid) .sxcu file use."""
    doc = _read_doc(path)
    names: list[str] = []
    for key in ("Headers", "Arguments"):
        for value in _mapping(doc, path, key).values():
            for match in _VAR.finditer(value):
                name = match.group(1) or match.group(2)
                if name and name not in names:
                    names.append(name)
    return names


def parse_sxcu(path: Path, env: bool = True) -> _Spec:
    """Return the request template `path` describes; raise ConfigError naming file and key.

    env=False checks everything but whether the $VARS are set (for `hosts import`)."""
    doc = _read_doc(path)
    _check_keys(doc, path)
    method_key = "RequestMethod" if "RequestMethod" in doc else "RequestType"
    method = _text(doc, path, method_key, "POST").strip().upper()
    if method not in _METHODS:
        raise ConfigError(f"{path}: {method_key}: must be POST, PUT or PATCH to send a file")
    file_field = _text(doc, path, "FileFormName").strip()
    body = _text(doc, path, "Body", "MultipartFormData" if file_field else "").strip()
    if body not in _BODIES:
        why = "is not supported" if body in ("JSON", "XML") else "cannot carry a file"
        shown = body or "(missing)"
        raise ConfigError(
            f"{path}: Body: {shown} {why} (use MultipartFormData, Binary or FormURLEncoded)"
        )
    if body == "MultipartFormData" and not file_field:
        raise ConfigError(f"{path}: FileFormName: needed for a MultipartFormData body")
    request_url = _text(doc, path, "RequestURL").strip()
    if not request_url:
        raise ConfigError(f"{path}: RequestURL: missing")
    url = _template(path, "RequestURL", request_url, _REQUEST_FUNCS)
    problem = url_problem(render(url, _Context("x.png")))
    if problem is not None:
        raise ConfigError(f"{path}: RequestURL: cannot be used: {problem}")
    headers = _headers(doc, path, env)
    arguments = _arguments(doc, path, env)
    parameters = {
        name: _template(path, "Parameters", value, _REQUEST_FUNCS)
        for name, value in _mapping(doc, path, "Parameters").items()
    }
    link_text = _text(doc, path, "URL").strip() or "{response}"
    optional = {
        key: _template(path, key, _text(doc, path, key), _RESPONSE_FUNCS)
        if _text(doc, path, key).strip()
        else None
        for key in ("ThumbnailURL", "DeletionURL", "ErrorMessage")
    }
    return _Spec(
        method, url, parameters, headers, arguments, body, file_field,
        _template(path, "URL", link_text, _RESPONSE_FUNCS),
        optional["ThumbnailURL"], optional["DeletionURL"], optional["ErrorMessage"],
    )  # fmt: skip


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


# --- the host ----------------------------------------------------------------------------------


class SxcuHost(Host):
    """A host described by a .sxcu file."""

    def __init__(self, name: str, path: Path, spec: _Spec) -> None:
        self.name = name
        self.path = path
        self._spec = spec
        self.can_delete = spec.deletion is not None
        base = render(spec.url, _Context("x"))
        self._origin = _origin(base)
        secrets = [v for v in spec.headers.values() if len(v) >= _SECRET_MIN]
        secrets += [
            p
            for parts in (*spec.arguments.values(), *spec.parameters.values())
            for p in parts
            if isinstance(p, str) and len(p) >= _SECRET_MIN
        ]  # fmt: skip  (a Parameters `key`, as Chevereto's, is a token too)
        self._http = Http(name, base, tuple(secrets))
        self._base_shown = f"{self._origin[0]}://{urlsplit(base).netloc.rpartition('@')[2]}"

    def __repr__(self) -> str:
        return f"SxcuHost({self.name!r}, {self._base_shown!r})"

    @guarded
    def upload(self, stream: BinaryIO, size: int, name: str, kind: FileType) -> Reply:
        name = wire_name(name)
        spec = self._spec
        quoted = quote(name, safe="")
        url = render(spec.url, _Context(quoted))
        params = {k: render(v, _Context(name)) for k, v in spec.parameters.items()}
        headers = dict(spec.headers)
        arguments = {k: render(v, _Context(name)) for k, v in spec.arguments.items()}
        kwargs: dict[str, Any] = {"params": params or None}
        if spec.body == "MultipartFormData":
            fields: dict[str, Any] = dict(arguments)
            fields[spec.file_field] = (name, BoundedReader(stream, size), kind.mime)
            encoder = MultipartEncoder(fields=fields)
            headers["Content-Type"] = encoder.content_type
            kwargs["data"] = encoder
        elif spec.body == "Binary":
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = kind.mime
            kwargs["data"] = BoundedReader(stream, size)
        else:  # FormURLEncoded: the arguments only, as ShareX sends them
            kwargs["data"] = arguments
        answer = self._http.send(spec.method, url, headers=headers, **kwargs)
        if isinstance(answer, Transient):
            return Reply(answer)
        return self._judge(answer, name, url)

    def _context(self, answer: Answer, name: str, url: str) -> _Context:
        text = answer.body[: 1024 * 1024].decode("utf-8", "replace")
        try:
            doc = json.loads(text) if text.lstrip()[:1] in ("{", "[") else None
        except (ValueError, RecursionError):
            doc = None
        return _Context(name, text, doc, answer.headers, url)

    def _judge(self, answer: Answer, name: str, url: str) -> Reply:
        try:
            ctx = self._context(answer, name, url)
            if not 200 <= answer.status < 300:
                message = (
                    clip(self._http.scrub(render(self._spec.error, ctx)))
                    if (self._spec.error)
                    else ""
                )
                outcome = text_failure(
                    self.name, answer.status, answer.headers, answer.body, message, auth=True
                )
                if isinstance(outcome, AuthFailed):
                    outcome = AuthFailed(
                        f"{self.name} refused the credentials in {self.path} "
                        f"(HTTP {answer.status}); check its Headers/Arguments and their $VARS.",
                        answer.status,
                        outcome.message,
                    )
                until = outcome.until if isinstance(outcome, RateLimited) else None
                return Reply(outcome, None, until)
            link = render(self._spec.link, ctx).strip()
            if not acceptable_link(link, self._http.loopback):
                reason = f"{self.name}'s answer was malformed (no secure link in it); will retry."
                return Reply(Transient(reason, answer.status, clip(self._http.scrub(link[:80]))))
            deletion = render(self._spec.deletion, ctx).strip() if self._spec.deletion else ""
            remote_id = PurePosixPath(urlsplit(link).path).name or link
            return Reply(Uploaded(link, remote_id, deletion or None))
        except Exception as exc:  # an odd answer must never crash a worker
            reason = f"{self.name}'s answer could not be read; will retry."
            return Reply(Transient(reason, answer.status, type(exc).__name__))

    def _delete_method(self, url: str) -> str:
        # Zipline (/api/user/files/:id) and Chibisafe (/api/file/:uuid) delete by API call;
        # other generated DeletionURLs (XBackBone's <url>/delete/<token>) are opened with GET
        return "DELETE" if re.search(r"/api/(user/)?files?/", urlsplit(url).path) else "GET"

    @guarded
    def delete(self, delete_handle: str | None, link: str) -> DeleteOutcome:
        if self._spec.deletion is None:
            return NoDelete(f"{self.name} has no DeletionURL in {self.path}, so it has no delete.")
        if not delete_handle:
            return NoDelete(f"{self.name} gave no delete URL for this upload.")
        self._http.add_secret(delete_handle)
        problem = url_problem(delete_handle)
        if problem is not None:
            return Permanent(f"{self.name}'s delete URL cannot be used: {problem}.", None, "")
        # the credentials go only back to the server they belong to
        same = _origin(delete_handle) == self._origin
        headers = dict(self._spec.headers) if same else {}
        answer = self._http.send(self._delete_method(delete_handle), delete_handle, headers=headers)
        if isinstance(answer, Transient):
            return answer
        return self._deleted(answer)

    def _deleted(self, answer: Answer) -> DeleteOutcome:
        message = clip(answer.body[:2048].decode("utf-8", "replace"))
        if 200 <= answer.status < 300:
            return Deleted()
        if answer.status in (404, 410):
            reason = f"{self.name} has no such upload; it may be deleted already."
            return Permanent(reason, answer.status, message)
        if answer.status in (401, 403):
            return AuthFailed(f"{self.name} refused to delete the upload.", answer.status, message)
        what = "is having trouble" if answer.status >= 500 else "sent an unexpected answer"
        return Transient(
            f"{self.name} {what} (HTTP {answer.status}); will retry.", answer.status, message
        )

    def delete_url(self, delete_handle: str | None, link: str) -> str | None:
        """A page a person can open to delete (a GET DeletionURL), else None."""
        if delete_handle and self._delete_method(delete_handle) == "GET":
            return delete_handle
        return None

    def close(self) -> None:
        self._http.close()


def load_sxcu(path: Path, name: str) -> Host:
    """Return the host `path` describes; raise ConfigError naming the file and the key."""
    spec = parse_sxcu(path)
    try:
        return SxcuHost(name, path, spec)
    except ValueError as exc:
        raise ConfigError(f"{path}: RequestURL: {exc}") from None
