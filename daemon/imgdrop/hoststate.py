"""Per-host state: rate-limit gate, auth pause, blocked here, outage probing; kept in the journal.

Each host of the chain has one `HostState`. The worker asks `HostStates.pick()` for the first host
usable now; the answers it gets back (`note_*`) open and close these gates, each change said once
in the log. Times are epoch seconds (wall clock): a Mac that slept through a wait resumes on time.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from imgdrop.journal import Journal

log = logging.getLogger(__name__)

MAX_WAIT = 86400.0  # no gate a host derives is trusted beyond a day (SPEC: clamp to 24 h)
PROBE_RECHECK = 1.0  # seconds between looks at a host whose probe is still out
META_PREFIX = "host:"
BUSY = "answering another file first"  # a probe is out: a moment's wait, not worth a log line
LIMITS_SAVE_SECONDS = 5.0  # how stale the rate-limit figures `status` shows may be


def when(epoch: float) -> str:
    """`HH:MM:SS`, with the date when it is not today; never raises on an absurd value."""
    try:
        moment = time.localtime(epoch)
        today = time.localtime()
    except (OverflowError, OSError, ValueError):
        return "an unknown time"
    fmt = "%H:%M:%S" if moment[:3] == today[:3] else "%Y-%m-%d %H:%M:%S"
    return time.strftime(fmt, moment)


def clamp(until: float | None, now: float, cap: float = MAX_WAIT) -> float:
    """A gate's end, never more than `cap` seconds away; 0 for none or nonsense (NaN)."""
    if until is None or math.isnan(until) or until <= now:
        return 0.0
    return min(until, now + cap)


@dataclass
class HostState:
    """What stops one host from taking files now, if anything."""

    name: str
    rate_until: float = 0.0
    auth_until: float = 0.0
    auth_reason: str = ""
    blocked_until: float = 0.0
    blocked_reason: str = ""
    outage: bool = False
    probe_due: float = 0.0
    probing: bool = False
    probe_failures: int = 0
    successes: int = 0  # uploads that worked: a 5xx counts only when others succeed meanwhile
    proven: bool = False  # answered since start: until then one file at a time finds out
    limits: dict[str, float | None] | None = None
    reason: str = ""
    saved_at: float = 0.0

    def usable_at(self, now: float) -> float:
        """When this host may be sent a file (`now` or earlier: at once)."""
        until = max(self.rate_until, self.auth_until, self.blocked_until)
        if self.probing:  # its answer decides for everyone; look again soon (or when woken)
            until = max(until, now + PROBE_RECHECK)
        elif self.outage:
            until = max(until, self.probe_due)
        return until

    def state(self, now: float) -> tuple[str, float | None]:
        """The state's name for `status` and `hosts list`, and when it ends."""
        if self.blocked_until > now:
            return "blocked", self.blocked_until
        if self.auth_until > now:
            return "paused", self.auth_until
        if self.rate_until > now:
            return "rate-limited", self.rate_until
        if self.outage:
            return "outage", self.probe_due or None
        return "usable", None

    def to_json(self, now: float) -> str:
        state, until = self.state(now)
        doc = {
            "state": state,
            "until": until,
            "reason": self.reason if state != "usable" else "",
            "limits": self.limits,
            "rate_until": self.rate_until,
            "blocked_until": self.blocked_until,
            "blocked_reason": self.blocked_reason,
        }
        return json.dumps(doc)


def read_states(journal: Journal, names: Iterable[str]) -> dict[str, dict[str, object]]:
    """The persisted state of each named host, for `status` and `hosts list` (none: usable)."""
    states: dict[str, dict[str, object]] = {}
    for name in names:
        try:
            doc = json.loads(journal.get_meta(META_PREFIX + name) or "{}")
        except ValueError:
            doc = {}
        if not isinstance(doc, dict) or not doc:
            doc = {"state": "usable", "until": None, "reason": "", "limits": None}
        elif isinstance(doc.get("until"), int | float) and doc["until"] <= time.time():
            doc = {**doc, "state": "usable", "until": None, "reason": ""}
        states[name] = doc
    return states


class HostStates:
    """The chain's gates, shared by the workers.

    `on_usable(paced)` is called when a host may take files again: paced after an outage or a
    pause (a backlog goes gradually), at once when only a probe's answer was awaited.
    """

    def __init__(
        self,
        names: Iterable[str],
        journal: Journal,
        blocked_hours: float,
        retry: tuple[float, float],
        on_usable: Callable[[bool], None],
    ) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._on_usable = on_usable
        self._hosts: dict[str, HostState] = {}
        self.configure(names, blocked_hours, retry)

    def configure(self, names: Iterable[str], blocked_hours: float, retry: tuple[float, float]
                  ) -> None:  # fmt: skip
        """Take the (re)loaded chain and its (initial, max) retry delays; hosts keep state."""
        with self._lock:
            self._blocked_seconds = blocked_hours * 3600
            self._retry_initial, self._retry_max = retry
            self._hosts = {name: self._hosts.get(name) or self._restore(name) for name in names}

    def _restore(self, name: str) -> HostState:
        """A host's persisted gates, each validated: a corrupt or absurd value opens the gate."""
        host = HostState(name)
        now = time.time()
        try:
            doc = json.loads(self._journal.get_meta(META_PREFIX + name) or "{}")
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        host.rate_until = clamp(_number(doc.get("rate_until")), now)
        host.blocked_until = clamp(_number(doc.get("blocked_until")), now, self._blocked_seconds)
        host.blocked_reason = str(doc.get("blocked_reason") or "")
        limits = doc.get("limits")
        host.limits = limits if isinstance(limits, dict) else None
        if host.blocked_until:
            host.reason = host.blocked_reason
            log.warning(
                "%s refuses uploads from this network (%s); skipped until %s",
                name,
                host.blocked_reason.rstrip(".") or "blocked here",
                when(host.blocked_until),
            )
        elif host.rate_until:
            host.reason = "rate limit used up"
            log.warning("%s's rate limit is still used up: no uploads until %s", label(name),
                        when(host.rate_until))  # fmt: skip
        self._save(host)  # what was clamped stays clamped for `status`
        return host

    # -- choosing ------------------------------------------------------------

    def pick(self, allowed: Callable[[str], bool] = lambda name: True) -> str | None:
        """The first host usable now that `allowed` accepts.

        A host in an outage, or not heard from since start, is sent one file (the probe) and
        nothing else until it answers: a blocked Imgur is asked once, not once per worker.
        While a preferred host's first answer is pending, files wait for it (a moment) rather
        than go to the next host; while it is failing, the next host takes them.
        """
        now = time.time()
        with self._lock:
            for host in self._hosts.values():
                if not allowed(host.name):
                    continue
                if host.usable_at(now) <= now:
                    host.probing = host.outage or not host.proven
                    return host.name
                if host.probing and not host.outage and host.usable_at(now) <= now + PROBE_RECHECK:
                    return None  # only its first answer is pending, no gate
        return None

    def next_usable(self, allowed: Callable[[str], bool] = lambda name: True) -> float:
        """The earliest time a host `allowed` accepts becomes usable (now: at once)."""
        now = time.time()
        with self._lock:
            times = [h.usable_at(now) for h in self._hosts.values() if allowed(h.name)]
        return max(now, min(times)) if times else now + MAX_WAIT

    def successes(self, name: str) -> int:
        with self._lock:
            return self._hosts[name].successes if name in self._hosts else 0

    def why(self, name: str) -> str:
        """A few words on what keeps the host from taking files now."""
        now = time.time()
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                return "not configured"
            if host.probing:
                return BUSY
            state, until = host.state(now)
            if state == "outage":
                return host.reason.rstrip(".")
        words = {"blocked": "blocked here", "paused": "Client ID refused",
                 "rate-limited": "rate limit used up"}.get(state, state)  # fmt: skip
        return f"{words} until {when(until)}" if until else words

    def state_of(self, name: str) -> str:
        """The host's state name alone (no times, no server words): what a wait is for."""
        with self._lock:
            host = self._hosts.get(name)
            return host.state(time.time())[0] if host else "not configured"

    # -- answers -------------------------------------------------------------

    def note_success(self, name: str) -> None:
        """An upload worked: an outage, a pause or a passed rate limit is over."""
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                return
            host.successes += 1
            host.proven = True
            now = time.time()
            news = []
            if host.outage:
                news.append("is reachable again")
            if host.auth_reason:
                news.append("accepts the Client ID again" if name == "imgur" else
                            "accepts our credentials again")  # fmt: skip
            if 0 < host.rate_until <= now:
                news.append("has reset its rate limit")
                host.rate_until = 0.0
            if 0 < host.blocked_until <= now:
                news.append("takes uploads from this network again")
                host.blocked_until = 0.0
                host.blocked_reason = ""
            if news:
                host.outage = host.probing = False
                host.probe_failures = 0
                host.auth_until = 0.0
                host.auth_reason = host.reason = ""
                self._save(host)
        if news:
            log.info("%s %s; uploads continue", label(name), " and ".join(news))
            self._on_usable(True)

    def note_limits(self, name: str, limits: dict[str, float | None] | None, until: float | None,
                    reason: str = "rate limit used up") -> None:  # fmt: skip
        """Keep the latest rate-limit figures; close the gate until `until` (clamped)."""
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                return
            now = time.time()
            if limits is not None:
                host.limits = limits
            gate = clamp(until, now)
            closing = gate > host.rate_until
            if closing:
                host.rate_until = gate
                host.reason = reason
            if closing or now - host.saved_at >= LIMITS_SAVE_SECONDS:
                self._save(host)  # the figures are for `status`: a write per upload is waste
        if closing:
            log.warning("%s: %s: no uploads until %s", label(name), reason.rstrip("."), when(gate))

    def note_auth(self, name: str, reason: str) -> bool:
        """The host refused our credentials: pause it; True the first time (say it loudly)."""
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                return False
            first = not host.auth_reason
            host.auth_until = time.time() + self._retry_max
            host.auth_reason = host.reason = reason
            self._save(host)
        return first

    def note_blocked(self, name: str, reason: str) -> None:
        """The host refuses this network: skip it for blocked_retry_hours, across restarts."""
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                return
            host.blocked_until = time.time() + self._blocked_seconds
            host.blocked_reason = host.reason = reason
            host.probing = host.proven = False  # when the block ends, one file finds out
            self._save(host)
            alone = len(self._hosts) == 1
        then = ("no other host is in `hosts`, so files wait in the inbox (add one, e.g. 0x0.st)"
                if alone else "the next host in `hosts` takes its files")  # fmt: skip
        said = reason if reason.startswith(label(name)) else f"{label(name)}: {reason}"
        log.warning("%s Skipped until %s; %s.", said, when(host.blocked_until), then)

    def note_trouble(self, name: str, reason: str, counted_since: int | None) -> bool:
        """A transient failure. True when it counts against the file: the host worked since
        `counted_since` (None: unreachable, never counts). Otherwise every upload fails: the
        host is in an outage, probed one file at a time.
        """
        offline = counted_since is None
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                return False
            if counted_since is not None and host.successes > counted_since and not host.outage:
                return True
            started = not host.outage
            host.outage = True
            host.probing = False
            host.probe_failures += 1
            delay = min(self._retry_max, self._retry_initial * 2.0 ** (host.probe_failures - 1))
            host.probe_due = time.time() + delay
            host.reason = reason
            self._save(host)
        if started and offline:
            log.warning("%s cannot be reached; files wait in the inbox, one retried at a time",
                        label(name))  # fmt: skip
        elif started:
            log.warning("%s is having trouble (%s); files wait in the inbox, one retried at a time",
                        label(name), reason.rstrip("."))  # fmt: skip
        return False

    def note_alive(self, name: str) -> None:
        """The host answered for this file alone (it refused the bytes): it is up."""
        with self._lock:
            if name in self._hosts:
                self._hosts[name].proven = True

    def release_probe(self, name: str) -> None:
        """An upload's answer has been acted on: files waiting for that probe look again."""
        with self._lock:
            host = self._hosts.get(name)
            was = host is not None and host.probing
            if host is not None:
                host.probing = False
        if was:
            self._on_usable(False)

    def lift_pauses(self) -> bool:
        """Config saved or SIGHUP: try paused hosts, and a host in an outage, again now.

        Rate limits and blocks stay: the host said when. True when a host was paused.
        """
        with self._lock:
            paused = [h for h in self._hosts.values() if h.auth_until]
            for host in paused:
                host.auth_until = 0.0
            for host in self._hosts.values():
                host.probe_due = 0.0  # an outage gets its next probe now
        return bool(paused)

    def _save(self, host: HostState) -> None:
        """Persist under the lock, so a concurrent change never overwrites with older values."""
        host.saved_at = time.time()
        try:
            self._journal.set_meta(META_PREFIX + host.name, host.to_json(host.saved_at))
        except Exception as err:  # the gate still holds in memory; status shows it later
            log.warning("%s: could not save its state in the journal: %s", host.name, err)


def label(name: str) -> str:
    """The host's name as people write it in a sentence."""
    return "Imgur" if name == "imgur" else name


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
