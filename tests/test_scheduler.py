"""The work queue and the worker pool: due order, one entry per path, waking, self-healing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from imgdrop.scheduler import PACE, Workers, WorkQueue
from tests.conftest import wait_until


def test_due_order_and_one_entry_per_path(tmp_path: Path) -> None:
    queue = WorkQueue()
    a, b, c = (tmp_path / n for n in "abc")
    now = time.time()
    queue.later(c, now - 1, "backoff")
    queue.submit(a)
    queue.submit(a)  # twice: still one entry
    queue.later(b, now + 3600, "rate limit")
    assert queue.take(lambda: False) == c
    assert queue.take(lambda: False) == a
    queue.release(a)
    queue.release(c)
    assert queue.waiting() == {b: "rate limit"}
    assert queue.settled()  # only a waiting file remains


def test_submit_of_a_waiting_file_makes_it_due_now(tmp_path: Path) -> None:
    queue = WorkQueue()
    path = tmp_path / "x.png"
    queue.later(path, time.time() + 3600, "backoff")
    queue.submit(path)  # it changed: look again now
    assert queue.take(lambda: False) == path


def test_ready_again_while_active_is_queued_on_release(tmp_path: Path) -> None:
    queue = WorkQueue()
    path = tmp_path / "x.png"
    queue.submit(path)
    assert queue.take(lambda: False) == path
    queue.submit(path)  # a new event while a worker holds it
    queue.later(path, time.time() + 3600, "backoff")  # the worker asks for later…
    queue.release(path)
    assert queue.take(lambda: False) == path  # …but the change wins: due now


def test_wake_releases_waiting_files_paced(tmp_path: Path) -> None:
    queue = WorkQueue()
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path in paths:
        queue.later(path, time.time() + 3600, "outage")
    assert queue.wake() == 3
    started = time.time()
    taken = [queue.take(lambda: False) for _ in paths]
    assert sorted(map(str, taken)) == sorted(map(str, paths))
    assert time.time() - started >= 2 * PACE * 0.9  # paced, not all at once


def test_forget_drops_a_folders_files(tmp_path: Path) -> None:
    queue = WorkQueue()
    queue.later(tmp_path / "old" / "a.png", time.time(), "backoff")
    queue.forget(tmp_path / "old")
    assert queue.waiting() == {}
    assert queue.settled()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_survives_errors_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    queue = WorkQueue()
    seen: list[Path] = []
    lock = threading.Lock()

    def work(path: Path) -> None:
        with lock:
            seen.append(path)
        if path.name == "boom":
            raise PermissionError(13, "Permission denied")  # as path.exists() could raise
        if path.name == "die":
            raise SystemExit  # escapes `except Exception`: the thread ends

    workers = Workers(queue, work)
    workers.resize(1)
    try:
        queue.submit(tmp_path / "boom")
        queue.submit(tmp_path / "after-boom")
        wait_until(lambda: tmp_path / "after-boom" in seen, message="the worker goes on")
        queue.submit(tmp_path / "die")
        wait_until(lambda: not any(t.is_alive() for t in workers._threads), message="death")
        workers.heal()
        queue.submit(tmp_path / "after-death")
        wait_until(lambda: tmp_path / "after-death" in seen, message="a new worker took over")
        assert queue.waiting()[tmp_path / "boom"] == "unexpected error"  # retried later
    finally:
        queue.stop()
        assert workers.join(time.monotonic() + 5)


def test_resize_down_lets_surplus_workers_leave(tmp_path: Path) -> None:
    queue = WorkQueue()
    workers = Workers(queue, lambda path: None)
    workers.resize(3)
    workers.resize(1)
    wait_until(lambda: sum(t.is_alive() for t in workers._threads) == 1, message="two leave")
    queue.stop()
    assert workers.join(time.monotonic() + 5)


def test_woken_files_are_not_settled_while_paced(tmp_path: Path) -> None:
    """Defect: `run --once` exited 1 while woken files were still paced, not yet due."""
    queue = WorkQueue()
    for i in range(3):
        queue.later(tmp_path / f"{i}.png", time.time() + 3600, "outage")
    assert queue.settled()
    queue.wake()
    assert not queue.settled()
    assert queue.waiting() == {}


def test_a_file_held_during_a_wake_looks_again_on_release(tmp_path: Path) -> None:
    queue = WorkQueue()
    path = tmp_path / "x.png"
    queue.submit(path)
    assert queue.take(lambda: False) == path
    queue.wake()  # a host came back while this worker was deciding to wait
    queue.later(path, time.time() + 3600, "waiting for a host")
    queue.release(path)
    assert queue.take(lambda: False) == path
