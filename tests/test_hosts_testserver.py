"""`python -m imgdrop.testserver`: prints its URL, serves every fake host, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

from imgdrop.testserver import DEMO_CLIENT_ID, FakeHosts
from tests import images


def test_runs_as_a_module_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgdrop.testserver", "--edge-block"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        answer = requests.post(f"{url}/0x0", files={"file": ("a.png", images.png(100))}, timeout=5)
        assert answer.status_code == 200 and answer.text.startswith(url + "/0x0/")
        assert requests.head(answer.text.strip(), timeout=5).status_code == 200
        auth = {"Authorization": f"Client-ID {DEMO_CLIENT_ID}"}
        files = {"image": ("a.png", images.png(100))}
        blocked = requests.post(f"{url}/3/image", files=files, headers=auth, timeout=5)
        assert (blocked.status_code, blocked.headers["CDN-Error"]) == (400, "yes")
        assert not any(name.lower().startswith("x-ratelimit") for name in blocked.headers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait(5)


def test_only_loopback_and_unknown_paths_are_404(fake_imgur: FakeHosts) -> None:
    assert fake_imgur.url.startswith("http://127.0.0.1:")
    assert requests.get(f"{fake_imgur.url}/nothing", timeout=5).status_code == 404
    assert requests.put(f"{fake_imgur.url}/nothing", data=b"x", timeout=5).status_code == 404
    assert requests.post(f"{fake_imgur.url}/nothing", data=b"x", timeout=5).status_code == 404
