"""Soak: writers, host faults and daemon kills for SOAK_MINUTES (default 30), then an audit.

Not collected by `make test` (pyproject ignores tests/soak); run it with `make soak` or
`SOAK_MINUTES=2 .venv/bin/pytest -o addopts="" -o timeout=0 tests/soak -s`.

A loopback fake host server runs in this process; a real `imgdrop run` daemon runs beside it
on a temp workspace. Writer threads drop random valid images in several ways, a fault thread
makes the server misbehave, a killer thread SIGKILLs (now and then SIGTERMs) and restarts the
daemon, and once an inbox flood overflows the inotify event queue. At the end the inbox must
drain, and every dropped file must be in done/ with exactly one link file whose link the server
issued for those bytes, or in failed/ with a reason it deserved.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import pytest

from imgdrop import links
from imgdrop.filing import ERROR_SUFFIX
from imgdrop.testserver import HTML_PAGE, FakeHosts, Reply, _Fault
from tests import images
from tests.conftest import CLIENT_ID
from tests.workspace import DaemonProcess, Workspace, make_workspace

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
WRITERS = 4
FLOOD_FILES = int(min(1000, 300 + 25 * MINUTES))  # 64 queued events overflow long before
QUEUE_SYSCTL = Path("/proc/sys/fs/inotify/max_queued_events")
REFUSAL = "Internal error for this file"  # the fake's message for a refused (poisoned) file
BAD_LOG_LINES = ("worker(s) had stopped", "Traceback")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Item:
    """One dropped file: its bytes' hash, every name it had in the inbox, and whether the
    server was told to refuse it."""

    digest: str
    size: int
    kind: str
    names: list[str]
    refused: bool = False


class SoakHosts(FakeHosts):
    """The fake hosts plus time-window faults: an HTML 503 outage until `outage_until`."""

    def __init__(self) -> None:
        super().__init__(client_id=CLIENT_ID)
        self.outage_until = 0.0
        self.outage_answers = 0

    def answer_upload(
        self, path: str, headers: dict[str, str], body: bytes, fault: _Fault | None
    ) -> Reply:
        if time.time() < self.outage_until:
            self.outage_answers += 1
            page = HTML_PAGE.format("Imgur is over capacity!").encode()
            return Reply(503, {"Content-Type": "text/html; charset=utf-8"}, page)
        return super().answer_upload(path, headers, body, fault)


@dataclass
class Soak:
    ws: Workspace
    fake: SoakHosts
    rng: random.Random
    end: float  # monotonic time the active phase ends
    items: list[Item] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    terms: int = 0
    daemons: list[DaemonProcess] = field(default_factory=list)
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, pid, kB)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    daemon_lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    seq: int = 0

    # --- bookkeeping ---------------------------------------------------------------------

    def name(self, writer: int, kind: str, ext: str) -> str:
        with self.lock:
            self.seq += 1
            return f"w{writer}-{self.seq:06d}-{kind}.{ext}"

    def add(self, item: Item) -> Item:
        with self.lock:
            self.items.append(item)
        return item

    def image(self, big: bool = True) -> tuple[bytes, str]:
        roll = self.rng.random()
        if not big or roll < 0.70:
            size = self.rng.randint(300, 50_000)
        elif roll < 0.97:
            size = self.rng.randint(50_000, 300_000)
        else:
            size = self.rng.randint(500_000, 2_000_000)
        maker, ext = self.rng.choice(
            [(images.png, "png"), (images.jpeg, "jpg"), (images.gif, "gif")]
        )
        return maker(size), ext

    def prepare(self, data: bytes) -> bool:
        """Maybe make the server refuse these bytes (400); True when it will."""
        if self.rng.random() < 0.03:
            self.fake.fail_content(data, 400)
            with self.lock:
                self.faults["400 for one file"] += 1
            return True
        return False

    # --- the daemon ----------------------------------------------------------------------

    @property
    def daemon(self) -> DaemonProcess:
        return self.daemons[-1]

    def start_daemon(self) -> None:
        proc = DaemonProcess(self.ws)
        self.daemons.append(proc)
        deadline = time.monotonic() + 30
        while not proc.started():
            if proc.proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.proc.returncode}:\n{proc.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"daemon did not start within 30 s:\n{proc.log}")
            time.sleep(0.05)

    def restart(self, signum: int) -> None:
        with self.daemon_lock:
            proc = self.daemon
            if signum == signal.SIGKILL:
                proc.kill()
                self.kills += 1
            else:
                proc.signal(signal.SIGTERM)
                self.terms += 1
                code = proc.wait(30)
                if code != 0:
                    self.errors.append(f"SIGTERM: daemon exited {code} ({proc.log_path.name})")
            self.start_daemon()

    # --- threads -------------------------------------------------------------------------

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the active phase is over; False once it is."""
        left = self.end - time.monotonic()
        if left <= 0 or self.stop.is_set():
            return False
        self.stop.wait(min(seconds, left))
        return time.monotonic() < self.end and not self.stop.is_set()

    def writer(self, n: int) -> None:
        inbox, staging = self.ws.inbox, self.ws.root / "staging"
        ways: list[tuple[float, Callable[[int, Path, Path], None]]] = [
            (0.35, self.drop_closed),
            (0.20, self.drop_renamed_in),
            (0.15, self.drop_slow),
            (0.15, self.drop_twice),
            (0.15, self.drop_then_rename),
        ]
        weights = [w for w, _ in ways]
        while self.sleep(self.rng.uniform(0.4, 3.0)):
            way = self.rng.choices([f for _, f in ways], weights)[0]
            try:
                way(n, inbox, staging)
            except Exception as exc:  # a writer's own mistake must show, not hang the soak
                self.errors.append(f"writer {n}: {way.__name__}: {exc!r}")
                return

    def drop_closed(self, n: int, inbox: Path, staging: Path) -> None:
        data, ext = self.image()
        name = self.name(n, "closed", ext)
        item = self.add(Item(sha(data), len(data), "write+close", [name], self.prepare(data)))
        (inbox / name).write_bytes(data)
        assert item

    def drop_renamed_in(self, n: int, inbox: Path, staging: Path) -> None:
        data, ext = self.image()
        name = self.name(n, "renamed-in", ext)
        self.add(Item(sha(data), len(data), "rename in", [name], self.prepare(data)))
        tmp = staging / name
        tmp.write_bytes(data)
        tmp.rename(inbox / name)

    def drop_slow(self, n: int, inbox: Path, staging: Path) -> None:
        data, ext = self.image()
        name = self.name(n, "slow", ext)
        self.add(Item(sha(data), len(data), "slow writer", [name], self.prepare(data)))
        chunks = self.rng.randint(3, 8)
        step = max(1, len(data) // chunks)
        with (inbox / name).open("wb") as f:
            for start in range(0, len(data), step):
                f.write(data[start : start + step])
                f.flush()
                time.sleep(self.rng.uniform(0.1, 0.9))

    def drop_twice(self, n: int, inbox: Path, staging: Path) -> None:
        data, ext = self.image()
        refused = self.prepare(data)
        for copy in ("twice-a", "twice-b"):
            name = self.name(n, copy, ext)
            self.add(Item(sha(data), len(data), "same bytes twice", [name], refused))
            (inbox / name).write_bytes(data)
            time.sleep(self.rng.uniform(0.0, 3.0))

    def drop_then_rename(self, n: int, inbox: Path, staging: Path) -> None:
        data, ext = self.image()
        name = self.name(n, "to-rename", ext)
        item = self.add(
            Item(sha(data), len(data), "rename during upload", [name], self.prepare(data))
        )
        (inbox / name).write_bytes(data)
        time.sleep(self.rng.uniform(0.0, 1.5))
        new = name.replace("to-rename", "renamed")
        item.names.append(new)
        with contextlib.suppress(FileNotFoundError):  # already filed: the rename came too late
            (inbox / name).rename(inbox / new)

    def fault_injector(self) -> None:
        fake, rng = self.fake, self.rng
        latency_until = 0.0
        while self.sleep(rng.uniform(2.0, 8.0)):
            now = time.time()
            if latency_until and now > latency_until:
                fake.latency, latency_until = 0.0, 0.0
            kind = rng.choices(
                ["5xx", "outage", "reset", "429", "latency"], [0.35, 0.10, 0.25, 0.15, 0.15]
            )[0]
            if kind in ("5xx", "reset", "429") and fake._faults:
                # a daemon probing an outage takes faults slower than they come: never let
                # them pile up, or the host stays broken after the active phase
                continue
            if kind == "5xx":
                status = rng.choice([500, 502, 503, 504])
                shape = rng.choice(["json", "object", "errors", "bytes", "html"])
                fake.fail_next(rng.randint(1, 3), status, shape)
                self.faults[f"{status} ({shape})"] += 1
            elif kind == "outage":
                fake.outage_until = now + rng.uniform(3.0, 15.0)
                self.faults["HTML 503 outage window"] += 1
            elif kind == "reset":
                fake.reset_next(rng.randint(1, 2))
                self.faults["connection reset"] += 1
            elif kind == "429":
                label, headers, message = rng.choice(self.odd_resets(now))
                fake.fail_next(1, 429, "object", message, headers)
                self.faults[f"429 {label}"] += 1
            else:
                fake.latency = rng.uniform(1.0, 4.0)
                latency_until = now + rng.uniform(2.0, 8.0)
                self.faults["latency spike"] += 1
        fake.latency, fake.outage_until = 0.0, 0.0

    @staticmethod
    def odd_resets(now: float) -> list[tuple[str, dict[str, str], str]]:
        """429 answers whose reset is spelled oddly but is seconds away (a day would stall)."""
        wait = "You are uploading too fast. Please wait 3 more seconds."
        return [
            (
                "reset in epoch ms",
                {
                    "X-RateLimit-UserRemaining": "0",
                    "X-RateLimit-UserReset": str(int((now + 4) * 1000)),
                },
                "",
            ),
            ("Retry-After 2.5", {"Retry-After": "2.5"}, ""),
            ("Retry-After HTTP date", {"Retry-After": formatdate(now + 3, usegmt=True)}, ""),
            (
                "Retry-After -7 + post reset 3",
                {
                    "Retry-After": "-7",
                    "X-Post-Rate-Limit-Remaining": "0",
                    "X-Post-Rate-Limit-Reset": "3",
                },
                "",
            ),
            (
                "reset as seconds, not epoch",
                {"X-RateLimit-UserRemaining": "0", "X-RateLimit-UserReset": "5"},
                "",
            ),
            ("Retry-After garbage + wait in message", {"Retry-After": "soon"}, wait),
        ]

    def guarded(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        """`body` whose exception is an audit failure (a thread's traceback alone would pass)."""

        def run() -> None:
            try:
                body()
            except Exception as exc:
                self.errors.append(f"{name}: {exc!r}")
                self.stop.set()

        return run

    def killer(self) -> None:
        rng, span = self.rng, max(10.0, min(60.0, (self.end - time.monotonic()) / 6))
        while self.sleep(rng.uniform(span / 3, span)):
            self.restart(signal.SIGTERM if rng.random() < 0.12 else signal.SIGKILL)

    def rss_sampler(self) -> None:
        while not self.stop.wait(1.0):
            pid = self.daemon.proc.pid
            with contextlib.suppress(OSError, ValueError, IndexError):
                status = Path(f"/proc/{pid}/status").read_text()
                line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
                self.rss.append((time.monotonic(), pid, int(line.split()[1])))

    def flood(self) -> None:
        """Overflow the inotify queue once: a daemon started with a tiny queue, then many files."""
        if not self.sleep((self.end - time.monotonic()) * 0.4):
            return
        old: str | None = None
        try:
            old = QUEUE_SYSCTL.read_text().strip()
            QUEUE_SYSCTL.write_text("64\n")
        except OSError as exc:
            old = None
            print(f"soak: cannot lower {QUEUE_SYSCTL} ({exc}); flooding {FLOOD_FILES} files anyway")
        try:
            if old is not None:
                self.restart(signal.SIGKILL)  # a new inotify instance takes the tiny queue
        finally:
            if old is not None:
                QUEUE_SYSCTL.write_text(old + "\n")
        note = f"flood: {FLOOD_FILES} files" + (" into a 64-event queue" if old else "")
        with self.daemon_lock:  # no kill in the middle of the flood: it is to test the rescan
            for i in range(FLOOD_FILES):
                data = images.png(self.rng.randint(100, 600))
                name = f"flood-{i:05d}.png"
                self.add(Item(sha(data), len(data), "flood", [name]))
                (self.ws.inbox / name).write_bytes(data)
        self.notes.append(note)


def visible(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def audit(soak: Soak) -> tuple[list[str], dict[str, object]]:  # noqa: PLR0912
    """Check every dropped file's fate; return (failures, figures)."""
    ws, fake, failures = soak.ws, soak.fake, list(soak.errors)
    expected: dict[str, list[Item]] = defaultdict(list)
    for item in soak.items:
        expected[item.digest].append(item)

    def by_digest(paths: list[Path]) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = defaultdict(list)
        for p in paths:
            out[sha(p.read_bytes())].append(p)
        return out

    left = visible(ws.inbox)
    if left:
        failures.append(f"{len(left)} file(s) still in the inbox: {[p.name for p in left[:5]]}")
    done = by_digest(visible(ws.done))
    failed_files = [p for p in visible(ws.failed) if not p.name.endswith(ERROR_SUFFIX)]
    failed = by_digest(failed_files)

    uploads: dict[str, list[str]] = defaultdict(list)  # digest -> links issued for it
    link_digest: dict[str, str] = {}
    for up in fake.uploads:
        digest = sha(up.content)
        uploads[digest].append(up.link)
        link_digest[up.link] = digest
    link_files: dict[str, list[Path]] = defaultdict(list)
    for p in visible(ws.outbox):
        try:
            url = links.read_link(p)
        except (OSError, ValueError) as exc:
            failures.append(f"link file {p.name} unreadable: {exc}")
            continue
        if url not in link_digest:
            failures.append(f"link file {p.name} holds {url}, a link the server never issued")
            continue
        link_files[link_digest[url]].append(p)

    for digest, its in expected.items():
        names = sorted(n for i in its for n in i.names)
        stems = {Path(n).stem for n in names}
        d, f = done.get(digest, []), failed.get(digest, [])
        if len(d) + len(f) != len(its):
            failures.append(f"{names}: {len(its)} dropped, {len(d)} in done/, {len(f)} in failed/")
        if its[0].refused and d:
            failures.append(f"{names}: refused by the server yet in done/")
        for p in f:
            error = p.with_name(p.name + ERROR_SUFFIX)
            text = error.read_text(errors="replace") if error.exists() else ""
            if not its[0].refused:
                failures.append(f"{p.name} in failed/ undeserved: {text.splitlines()[:1]}")
            elif not text:
                failures.append(f"{p.name} in failed/ without {error.name}")
            elif REFUSAL not in text and "400" not in text:
                failures.append(f"{p.name}: {error.name} gives another reason: {text[:200]!r}")
        lf = link_files.get(digest, [])
        if len(lf) != len(d):
            failures.append(
                f"{names}: {len(d)} in done/ but {len(lf)} link file(s) for those bytes: "
                f"{[p.name for p in lf]}"
            )
        for p in d:
            if p.name not in names:
                failures.append(f"done/{p.name}: not a name the file had ({names})")
        for p in lf:
            if p.stem not in stems:
                failures.append(f"links/{p.name}: named after none of {names}")
    for digest, paths in [*done.items(), *failed.items()]:
        if digest not in expected:
            failures.append(f"{[p.name for p in paths]}: bytes nobody dropped")

    duplicates = sum(len(v) - 1 for k, v in uploads.items() if k in expected)
    orphans = sum(len(v) for k, v in uploads.items() if k not in expected)
    if duplicates > soak.kills:
        failures.append(f"{duplicates} duplicate upload(s) > {soak.kills} SIGKILL(s)")
    if orphans:
        failures.append(f"{orphans} upload(s) of bytes no dropped file has (a partial file?)")

    bad_lines: list[str] = []
    for proc in soak.daemons:
        for line in proc.log.splitlines():
            if any(bad in line for bad in BAD_LOG_LINES):
                bad_lines.append(f"{proc.log_path.name}: {line}")
    if bad_lines:
        failures.append(f"{len(bad_lines)} bad log line(s): {bad_lines[:10]}")
    logs = "\n".join(proc.log for proc in soak.daemons)
    overflow = "overflow" in logs.lower()
    missed = sum(
        int(line.split(" found ")[1].split()[0])
        for line in logs.splitlines()
        if "rescan of" in line and " found " in line
    )

    peak = max((kb for _, _, kb in soak.rss), default=0)
    failures += rss_growth(soak.rss)
    families: Counter[str] = Counter()
    for label, count in soak.faults.items():
        family = label.split(" (")[0] if label[0] != "5" else "5xx answers"
        families["429 odd reset" if label.startswith("429") else family] += count
    statuses = Counter(r.status for r in fake.requests if r.method in ("POST", "PUT"))
    figures: dict[str, object] = {
        "files dropped": len(soak.items),
        "by way": dict(Counter(i.kind for i in soak.items)),
        "done": sum(len(v) for v in done.values()),
        "failed (refused by the server)": len(failed_files),
        "uploads accepted": len(fake.uploads),
        "faults by kind": dict(families),
        "faults injected": dict(soak.faults),
        "upload answers by status": {str(k): v for k, v in statuses.items()},
        "HTML outage answers": fake.outage_answers,
        "SIGKILLs": soak.kills,
        "SIGTERMs": soak.terms,
        "duplicate uploads": duplicates,
        "queue overflow seen in log": overflow,
        "files found by rescans": missed,
        "peak RSS MB": round(peak / 1024, 1),
        "notes": soak.notes,
    }
    return failures, figures


def rss_growth(samples: list[tuple[float, int, int]]) -> list[str]:
    """Memory that keeps growing: in any daemon that lived 60 s or more, the peak of its last
    third above 1.5x + 30 MB the peak of its first third (after 5 s warm-up); or over 500 MB."""
    failures = []
    by_pid: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for t, pid, kb in samples:
        by_pid[pid].append((t, kb))
    for pid, points in by_pid.items():
        start, end = points[0][0] + 5, points[-1][0]
        if end - start < 60:
            continue
        third = (end - start) / 3
        early = max(kb for t, kb in points if start <= t < start + third)
        late = max(kb for t, kb in points if t >= end - third)
        if late > early * 1.5 + 30 * 1024:
            failures.append(f"daemon {pid}: RSS grew from {early} kB to {late} kB")
    peak = max((kb for _, _, kb in samples), default=0)
    if peak > 500 * 1024:
        failures.append(f"peak RSS {peak} kB over 500 MB")
    return failures


def test_soak(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    fake = SoakHosts()
    fake.start()
    ws = make_workspace(
        tmp_path / "ws",
        fake.url,
        CLIENT_ID,
        settle_seconds=0.5,
        retry_initial_seconds=0.2,
        retry_max_seconds=2.0,
        max_attempts=1000,  # random 5xx must not fail a file: only the refused ones deserve it
        rescan_seconds=10,
        link_format="txt",
        workers=2,
        log_level="INFO",
    )
    (ws.root / "staging").mkdir()
    active = MINUTES * 60
    soak = Soak(ws=ws, fake=fake, rng=rng, end=time.monotonic() + active)
    print(f"\nsoak: {MINUTES:g} min, seed {SEED}, workspace {ws.root}")
    threads: list[threading.Thread] = []
    try:
        soak.start_daemon()
        targets: list[tuple[str, Callable[[], None]]] = [
            (f"writer-{n}", functools.partial(soak.writer, n)) for n in range(WRITERS)
        ]
        targets += [
            ("faults", soak.fault_injector),
            ("killer", soak.killer),
            ("flood", soak.flood),
        ]
        threads = [
            threading.Thread(target=soak.guarded(n, f), name=f"soak-{n}") for n, f in targets
        ]
        sampler = threading.Thread(target=soak.rss_sampler, name="soak-rss")
        sampler.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(active + 120)
        fake.latency, fake.outage_until = 0.0, 0.0
        print(f"soak: active phase over ({len(soak.items)} files); waiting for the inbox to drain")
        drain = time.monotonic() + max(180.0, active / 4)
        while visible(ws.inbox) and time.monotonic() < drain:
            if soak.daemon.proc.poll() is not None:
                soak.errors.append(f"daemon exited {soak.daemon.proc.returncode} while draining")
                break
            time.sleep(0.5)
        time.sleep(2.0)  # a file moved out of the inbox has its link; let the last log lines land
        soak.stop.set()
        sampler.join(5)
        soak.daemon.signal(signal.SIGTERM)
        code = soak.daemon.wait(30)
        if code != 0:
            soak.errors.append(f"final SIGTERM: daemon exited {code}")
        failures, figures = audit(soak)
    finally:
        soak.stop.set()
        for proc in soak.daemons:
            proc.kill()
        fake.stop()
    print("soak summary:")
    for key, value in figures.items():
        print(f"  {key}: {value}")
    if failures:
        print(f"soak AUDIT FAILED ({len(failures)}):")
        for line in failures[:50]:
            print(f"  - {line}")
        pytest.fail(f"soak audit: {len(failures)} failure(s); first: {failures[0]}")
    print("soak audit: clean")
