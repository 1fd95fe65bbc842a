"""Per-host gates with a real journal: clamped, persisted, one probe during an outage."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from imgdrop.hoststate import MAX_WAIT, HostStates, read_states, when
from imgdrop.journal import Journal
from tests.conftest import wait_until


def states(journal: Journal, names: tuple[str, ...] = ("imgur", "catbox"), hours: float = 6
           ) -> tuple[HostStates, list[int]]:  # fmt: skip
    woken: list[int] = []
    made = HostStates(names, journal, hours, (0.05, 0.2),
                      on_usable=lambda paced: woken.append(int(paced)))  # fmt: skip
    return made, woken


@pytest.fixture
def journal(tmp_path: Path):
    with Journal(tmp_path / "history.sqlite3") as j:
        yield j


@pytest.mark.parametrize("value", [1e17, 1.7e12 * 1000, float("nan"), "soon", -5, True, [1]])
def test_an_absurd_persisted_gate_never_blocks_past_a_day_nor_crashes(
    journal: Journal, value: object
) -> None:
    """Defect: an epoch-ms reset blocked uploads until the year 58888; 1e17 crashed every start."""
    doc = {"rate_until": value, "blocked_until": value}
    journal.set_meta("host:imgur", json.dumps(doc))
    made, _ = states(journal)
    until = made.next_usable()
    assert until <= time.time() + MAX_WAIT + 1
    assert when(1e17) == "an unknown time"  # formatting never raises either


def test_when_shows_the_date_when_not_today() -> None:
    assert len(when(time.time())) == 8  # HH:MM:SS
    assert when(time.time() + 3 * 86400).count("-") == 2


def test_a_rate_limit_and_a_block_survive_a_restart_and_block_is_clamped(journal: Journal) -> None:
    made, _ = states(journal, hours=6)
    made.note_limits("imgur", {"UserRemaining": 0}, time.time() + 600)
    made.note_blocked("catbox", "These actions are forbidden.")
    again, _ = states(journal, hours=1)  # a restart with a shorter blocked_retry_hours
    assert again.pick() is None
    saved = read_states(journal, ["imgur", "catbox"])
    assert saved["imgur"]["state"] == "rate-limited"
    assert saved["catbox"]["state"] == "blocked"
    assert float(saved["catbox"]["until"]) <= time.time() + 3600 + 1  # type: ignore[arg-type]
    assert again.next_usable() <= time.time() + 600 + 1


def test_the_first_usable_host_is_picked_in_order(journal: Journal) -> None:
    made, _ = states(journal)
    assert made.pick() == "imgur"
    made.note_blocked("imgur", "blocked")
    assert made.pick() == "catbox"
    assert made.pick(lambda name: name != "catbox") is None


def test_an_outage_sends_one_probe_at_a_time_and_its_success_wakes_the_waiting(
    journal: Journal,
) -> None:
    made, woken = states(journal, names=("imgur",))
    assert made.note_trouble("imgur", "HTTP 503", counted_since=0) is False  # no success: outage
    assert made.pick() is None  # the probe is not due yet (0.05 s)
    wait_until(lambda: made.pick() == "imgur", timeout=2, message="the probe")
    assert made.pick() is None  # …and only one
    made.note_success("imgur")
    assert woken == [1]
    assert made.pick() == "imgur"
    assert made.pick() == "imgur"  # usable again for everyone


def test_a_5xx_counts_only_when_other_uploads_succeeded_since(journal: Journal) -> None:
    made, _ = states(journal, names=("imgur",))
    made.note_success("imgur")
    seen = made.successes("imgur")
    made.note_success("imgur")  # another file worked after this file's last try
    assert made.note_trouble("imgur", "HTTP 500", counted_since=seen) is True
    assert made.note_trouble("imgur", "HTTP 500", counted_since=made.successes("imgur")) is False
    assert made.note_trouble("imgur", "refused", counted_since=None) is False  # offline


def test_an_auth_pause_lifts_on_reload(journal: Journal) -> None:
    made, _ = states(journal, names=("imgur",))
    assert made.note_auth("imgur", "Invalid client_id") is True
    assert made.note_auth("imgur", "Invalid client_id") is False  # said loudly once
    assert made.pick() is None
    assert made.lift_pauses() is True
    assert made.pick() == "imgur"


def test_files_wait_for_the_preferred_hosts_first_answer_not_the_next_host(
    journal: Journal,
) -> None:
    made, _ = states(journal)
    assert made.pick() == "imgur"  # the first file finds out whether imgur works
    assert made.pick() is None  # the next waits a moment instead of going to catbox
    made.note_success("imgur")
    made.release_probe("imgur")
    assert made.pick() == "imgur"
    made.note_trouble("imgur", "HTTP 503", counted_since=made.successes("imgur"))
    assert made.pick() == "catbox"  # while imgur is failing, the next host takes files
