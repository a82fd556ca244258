"""Print the path of a usable Chromium and exit 0, or exit 1 when there is none.

Same order as the recorder's own lookup: $RECORDER_CHROMIUM, a Playwright-managed
build (~/.cache/ms-playwright), then the system's chromium. Stdlib only: it runs
before the virtual environment exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys


def find() -> str | None:
    explicit = os.environ.get("RECORDER_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    cache = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or os.path.expanduser(
        "~/.cache/ms-playwright"
    )
    for pattern in (
        "chromium-*/chrome-linux*/chrome",
        "chromium_headless_shell-*/chrome-*/headless_shell",
    ):
        found = sorted(glob.glob(os.path.join(cache, pattern)))
        if found:
            return found[-1]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


if __name__ == "__main__":
    path = find()
    if path is None:
        sys.exit(1)
    print(path)
