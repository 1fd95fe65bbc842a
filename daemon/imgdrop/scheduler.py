"""Scheduling: which file a worker takes next, and the worker threads themselves.

`WorkQueue` holds each inbox path at most once, due now (ready) or later (waiting: backoff, a
closed gate). Due times are epoch seconds so a Mac that slept through a wait resumes on time;
condition waits are capped at a second to notice such jumps. `Workers` keeps N threads taking
from the queue; a thread never dies of an error, and one that somehow did is replaced.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_NAP = 1.0  # seconds a waiting worker sleeps before it looks at the wall clock again
PACE = 0.05  # seconds between waiting files released at once (after an outage, a SIGHUP)


class WorkQueue:
    """Inbox paths by due time; at most one entry per path, never one that a worker holds."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._heap: list[tuple[float, int, Path]] = []
        self._due: dict[Path, float] = {}  # the live entry per path; older heap items are stale
        self._waiting: dict[Path, str] = {}  # path -> why it waits (it is queued for later)
        self._active: set[Path] = set()
        self._again: set[Path] = set()  # ready again while a worker had it
        self._parked: dict[Path, float] = {}  # due time asked for while a worker had it
        self._seq = itertools.count()
        self.stopping = False

    def _push(self, path: Path, due: float) -> None:
        self._due[path] = due
        heapq.heappush(self._heap, (due, next(self._seq), path))
        self.cond.notify()

    def submit(self, path: Path) -> None:
        """A file is ready: due now (a waiting file too: it changed, or was saved again)."""
        with self.cond:
            if path in self._active:
                self._again.add(path)
            elif path not in self._due or path in self._waiting:
                self._waiting.pop(path, None)
                self._push(path, time.time())

    def later(self, path: Path, due: float, reason: str) -> None:
        """Queue `path` again at epoch `due`; `reason` is what it waits for."""
        with self.cond:
            self._waiting[path] = reason
            if path in self._active:
                self._parked[path] = due  # queued when its worker lets go
            else:
                self._push(path, due)

    def take(self, leave: Callable[[], bool]) -> Path | None:
        """The next due path, waiting for one; None when stopping or when `leave()` says so."""
        with self.cond:
            while not self.stopping and not leave():
                now = time.time()
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # stale: the path was re-queued or forgotten
                if self._heap and self._heap[0][0] <= now:
                    _, _, path = heapq.heappop(self._heap)
                    del self._due[path]
                    self._waiting.pop(path, None)
                    self._active.add(path)
                    return path
                nap = self._heap[0][0] - now if self._heap else MAX_NAP
                self.cond.wait(min(nap, MAX_NAP))
            return None

    def release(self, path: Path) -> None:
        """A worker is done with `path`: queue it again if asked to, at once if it changed."""
        with self.cond:
            self._active.discard(path)
            due = self._parked.pop(path, None)
            if path in self._again:
                self._again.discard(path)
                self._waiting.pop(path, None)
                due = time.time()
            if due is not None and path not in self._due:
                self._push(path, due)

    def wake(self, pace: float = PACE) -> int:
        """Make waiting files due now, `pace` seconds apart; their count.

        Files a worker holds look again when released: one may be deciding to wait right now.
        """
        with self.cond:
            self._again.update(self._active)
            chosen = [p for p in self._waiting if p in self._due]
            chosen.sort(key=self._due.__getitem__)
            start = time.time()
            for i, path in enumerate(chosen):
                del self._waiting[path]  # due (if paced) rather than waiting: not settled
                self._push(path, start + i * pace)
            self.cond.notify_all()
            return len(chosen)

    def forget(self, folder: Path) -> None:
        """Drop the queued files of a folder that is no longer the inbox."""
        with self.cond:
            for path in [p for p in self._due if p.parent == folder]:
                del self._due[path]
                self._waiting.pop(path, None)
            for path in [p for p in self._parked if p.parent == folder]:
                del self._parked[path]

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def settled(self) -> bool:
        """True when no file is being worked on or due; only waiting ones remain."""
        with self.cond:
            now = time.time()
            due = any(p not in self._waiting or t <= now for p, t in self._due.items())
            return not self._active and not due and not self._again

    def waiting(self) -> dict[Path, str]:
        """Files left in the inbox for later, and why."""
        with self.cond:
            return dict(self._waiting)


class Workers:
    """`count` threads running `work(path)` for paths from the queue; resizable, self-healing."""

    def __init__(self, queue: WorkQueue, work: Callable[[Path], None]) -> None:
        self._queue = queue
        self._work = work
        self._threads: list[threading.Thread] = []
        self._count = 0

    def resize(self, count: int) -> None:
        """Run `count` workers; replace any that died (an error that escaped everything)."""
        with self._queue.cond:
            self._count = count
            dead = [t for t in self._threads if not t.is_alive() and not t.name.endswith("-left")]
            if dead and not self._queue.stopping:
                log.error("%d worker(s) had stopped; started new ones", len(dead))
            self._threads = [t for t in self._threads if t.is_alive()]
            for _ in range(count - len(self._threads)):
                thread = threading.Thread(target=self._run, name="imgdrop-worker", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._queue.cond.notify_all()

    def heal(self) -> None:
        """Replace workers that died; cheap enough to call on every event."""
        if any(not t.is_alive() for t in self._threads):
            self.resize(self._count)

    def join(self, deadline: float) -> bool:
        """Wait until monotonic `deadline` for the workers to end; True when all did."""
        threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _surplus(self) -> bool:
        """A worker beyond the configured count leaves (called with the queue's lock held)."""
        me = threading.current_thread()
        if len(self._threads) > self._count and me in self._threads:
            self._threads.remove(me)
            me.name += "-left"
            return True
        return False

    def _run(self) -> None:
        while (path := self._queue.take(self._surplus)) is not None:
            try:
                self._work(path)
            except Exception:  # a worker must outlive any error
                log.exception("%s: unexpected error; it stays in the inbox", path.name)
                self._queue.later(path, time.time() + MAX_NAP * 10, "unexpected error")
            finally:
                self._queue.release(path)
