"""The shared browser and event loops: a script that calls ``asyncio.run`` once per
run (each a new loop) gets a new Chromium each time, and the one of the closed loop
is ended, not left running until the process exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.site import FixtureSite

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import recorder
    from recorder.integrations.browser import launch

    def drivers() -> int:
        found = 0
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read()
            except (OSError, ValueError, IndexError):
                continue
            found += ppid == os.getpid() and b"run-driver" in command
        return found

    async def one(n: int) -> str:
        async with recorder.run(f"loop-{n}", store=sys.argv[1], display=False) as run:
            page = await run.new_page()
            await page.goto(sys.argv[2])
            return await page.title()

    for n in range(3):
        asyncio.run(one(n))
        deadline = time.monotonic() + 10
        while drivers() > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        print(n, launch.launches, drivers(), flush=True)
    """
)


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite() as served:
        yield served


def test_a_new_event_loop_ends_the_browser_of_the_closed_one(
    site: FixtureSite, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store"), site.url + "/login"],
        capture_output=True, text=True, timeout=180, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # one launch per loop, and never more than one driver (with its Chromium) alive
    assert done.stdout.split("\n")[:3] == ["0 1 1", "1 2 1", "2 3 1"], done.stdout
