"""A JupyterLab 4 server on 127.0.0.1 and a person's hands on its page (Playwright, sync API).

:class:`JupyterLab` starts ``python -m jupyterlab`` with this interpreter (so kernels run
the venv's ``python3`` kernelspec: jupyter_client replaces the spec's ``python`` by the
server's own executable) with every piece of state in a temporary directory: config,
data, runtime, workspaces and user settings. The REST API is used only to wait for the
server and to read a saved notebook back; everything else goes through the page.

:class:`NotebookUI` is what a person does on one notebook: open it, use the menus (Run,
Kernel), the notebook toolbar's stop button, keyboard shortcuts (Shift+Enter, Ctrl+S, B
to add a cell, Escape), and read what the page shows. Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Locator, Page

T = TypeVar("T")

USER_SETTINGS = {
    # No "Would you like to get notified about official Jupyter news?" toast over the
    # notebook, and no request to the news feed.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    # Every cell in the DOM (the default, contentVisibility, skips the rendering of cells
    # out of view, and their text with it): the test reads cells it has not scrolled to.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def poll(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """``probe()`` until it returns something other than None/False; TimeoutError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


class JupyterLab:
    """``python -m jupyterlab`` on a free loopback port with a random token, serving
    ``root`` (a directory of notebooks), all of its state under ``state``."""

    def __init__(self, root: Path, state: Path, env: dict[str, str]) -> None:
        self.root, self.state = root, state
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        dirs = {name: state / name for name in ("config", "data", "runtime", "workspaces",
                                                 "settings", "ipython")}  # fmt: skip
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        for name, values in USER_SETTINGS.items():
            target = dirs["settings"] / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        self.env = {
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        self.command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
            f"--LabApp.user_settings_dir={dirs['settings']}",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self.command.append("--allow-root")  # CI runs as root
        self.log_path = state / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def kernelspecs(self) -> dict[str, Any]:
        """``jupyter kernelspec list --json`` as the server sees it (same environment)."""
        out = subprocess.run(
            [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
            env=self.env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return dict(json.loads(out.stdout)["kernelspecs"])

    def start(self, timeout: float = 60) -> JupyterLab:
        with self.log_path.open("wb") as log:
            # A session of its own: stop() signals the server and whatever it started.
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                return bool(self.api("status"))
            return False

        poll("JupyterLab to answer /api/status", ready, timeout, every=0.2)
        return self

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.base}/api/{path}", method=method,
            headers={"Authorization": f"token {self.token}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def saved(self, name: str) -> dict[str, Any]:
        """The notebook as saved on disk (the contents API)."""
        return dict(self.api(f"contents/{name}?content=1&type=notebook")["content"])

    def url(self, name: str, workspace: str) -> str:
        """The notebook in a workspace of its own (no other tab restored into the page)."""
        return f"{self.base}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        # The server shuts its kernels down on SIGTERM; its session is signalled too,
        # so a kernel's children (an agent's Chromium) do not outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def copied_notebooks(repo: Path, tmp: Path) -> Iterator[Path]:
    """A copy of ``repo``'s notebooks/ with ``fixtures`` linked beside it (the notebooks
    put their parent directory on sys.path and run ``python -m fixtures.demo`` there)."""
    base = tmp / "repo"
    shutil.copytree(repo / "notebooks", base / "notebooks",
                    ignore=shutil.ignore_patterns(".recorder", ".ipynb_checkpoints"))  # fmt: skip
    (base / "fixtures").symlink_to(repo / "fixtures", target_is_directory=True)
    yield base / "notebooks"


# -- the page ----------------------------------------------------------------------------

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{PANEL} .jp-Notebook .jp-Cell"
LIVE_VIEW = "table.recorder-live"
"""A run's live view, as recorder/display.py draws it."""
ERROR_MIME = (
    '[data-mime-type="application/vnd.jupyter.stderr"],'
    ' [data-mime-type="application/vnd.jupyter.error"]'
)


class NotebookUI:
    """One notebook open in one page."""

    def __init__(self, page: Page, lab: JupyterLab, name: str, workspace: str) -> None:
        self.page, self.lab, self.name, self.workspace = page, lab, name, workspace

    # -- reading the page --------------------------------------------------------------

    def kernel_status(self) -> str:
        """The kernel's state as the status bar shows it (``Python 3 (ipykernel) | Idle``),
        lower case: ``idle``, ``busy``, ``connecting``...; ``""`` while there is no
        kernel (the toolbar's indicator says idle before a kernel exists)."""
        text = " ".join(self.page.locator("#jp-main-statusbar").all_inner_texts())
        found = re.search(r"^(?!No Kernel)[^\n|]+\| (\w+)", text, re.MULTILINE)
        return found.group(1).lower() if found else ""

    def cell(self, index: int) -> Locator:
        return self.page.locator(CELLS).nth(index)

    def cell_count(self) -> int:
        return self.page.locator(CELLS).count()

    def source(self, index: int) -> str:
        lines = self.cell(index).locator(".jp-InputArea-editor .cm-content .cm-line")
        return "\n".join(str(t) for t in lines.all_text_contents())

    def is_code(self, index: int) -> bool:
        return "jp-CodeCell" in (self.cell(index).get_attribute("class") or "")

    def find(self, needle: str) -> int:
        """The index of the first code cell whose source contains ``needle``."""
        for index in range(self.cell_count()):
            if self.is_code(index) and needle in self.source(index):
                return index
        raise LookupError(f"no code cell of {self.name} contains {needle!r}")

    def prompt(self, index: int) -> str:
        """The cell's execution prompt: ``[ ]:``, ``[*]:`` (queued or running), ``[7]:``."""
        text = self.cell(index).locator(".jp-InputPrompt").first.text_content() or ""
        return text.strip()

    def busy(self, index: int) -> bool:
        return "*" in self.prompt(index)

    def output_text(self, index: int) -> str:
        outputs = self.cell(index).locator(".jp-OutputArea-output")
        return "\n".join(str(t) for t in outputs.all_inner_texts())

    def error_text(self, index: int) -> str:
        """What the cell shows in red: stderr streams and error outputs."""
        return "\n".join(str(t) for t in self.cell(index).locator(ERROR_MIME).all_inner_texts())

    def live_views(self, index: int) -> list[str]:
        """The text of each live view (``table.recorder-live``) in the cell's output."""
        views = self.cell(index).locator(LIVE_VIEW)
        return [" ".join(str(t).split()) for t in views.all_inner_texts()]

    def live_view(self, index: int) -> str:
        views = self.live_views(index)
        return views[-1] if views else ""

    # -- waiting ----------------------------------------------------------------------

    def wait_loaded(self, timeout: float = 90) -> None:
        poll(f"{self.name}'s cells", lambda: self.cell_count() > 0, timeout)
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 90, settle: float = 0.3) -> None:
        """The kernel idle and no cell queued, for ``settle`` seconds in a row (between
        two queued cells the kernel is idle for a moment)."""
        since: list[float] = []

        def quiet() -> bool:
            idle = self.kernel_status() == "idle" and not any(
                "*" in (t or "")
                for t in self.page.locator(f"{CELLS} .jp-InputPrompt").all_text_contents()
            )
            if not idle:
                since.clear()
                return False
            since.append(time.monotonic()) if not since else None
            return time.monotonic() - since[0] >= settle

        poll(f"{self.name}'s kernel to be idle with no cell running", quiet, timeout)

    def wait_running(self, index: int, timeout: float = 60) -> None:
        poll(f"cell {index} of {self.name} to run", lambda: self.busy(index), timeout, 0.05)

    def wait_done(self, index: int, timeout: float = 90) -> None:
        poll(f"cell {index} of {self.name} to finish",
             lambda: re.search(r"\[\d+\]", self.prompt(index)) is not None, timeout)  # fmt: skip

    # -- doing, as a person does ---------------------------------------------------------

    def open(self) -> None:
        self.page.goto(self.lab.url(self.name, self.workspace))
        self.wait_loaded()

    def menu(self, top: str, item: str) -> None:
        """Click a main-menu item (``Run`` -> ``Run All Cells``)."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{top}$")).click()
        entry = self.page.locator(".lm-Menu .lm-Menu-item",
                                  has_text=re.compile(rf"^{re.escape(item)}"))  # fmt: skip
        entry.first.click()

    def accept_dialog(self, timeout: float = 10) -> None:
        button = self.page.locator(".jp-Dialog .jp-mod-accept")
        button.wait_for(state="visible", timeout=timeout * 1000)
        button.click()
        self.page.locator(".jp-Dialog").wait_for(state="detached", timeout=timeout * 1000)

    def run_all(self) -> None:
        self.menu("Run", "Run All Cells")

    def restart_and_run_all(self) -> None:
        self.menu("Kernel", "Restart Kernel and Run All Cells")
        self.accept_dialog()

    def shut_down_kernel(self) -> None:
        self.menu("Kernel", "Shut Down Kernel")
        with contextlib.suppress(Exception):  # some versions ask, some do not
            self.accept_dialog(timeout=3)
        poll("the kernel to shut down",
             lambda: self.kernel_status() in ("unknown", "dead", ""), 30)  # fmt: skip

    def interrupt(self) -> None:
        """The stop button of the notebook toolbar."""
        self.page.locator(f'{PANEL} jp-button[data-command="notebook:interrupt-kernel"]').click()

    def select(self, index: int) -> None:
        """Select a cell in command mode (a click on its prompt, then Escape)."""
        self.cell(index).locator(".jp-InputPrompt").first.click()
        self.page.keyboard.press("Escape")

    def run_cell(self, index: int) -> None:
        """Shift+Enter on the cell."""
        self.select(index)
        self.page.keyboard.press("Shift+Enter")

    def add_cell_below(self, index: int, source: str) -> int:
        """B below the cell, Enter to edit, the source pasted (typing would be auto-
        indented by the editor), Escape. Returns the new cell's index."""
        self.select(index)
        before = self.cell_count()
        self.page.keyboard.press("b")
        poll("the new cell", lambda: self.cell_count() == before + 1, 10)
        self.page.keyboard.press("Enter")
        self.page.keyboard.insert_text(source)
        self.page.keyboard.press("Escape")
        return index + 1

    def save(self) -> None:
        """Ctrl+S, then wait until the tab is no longer marked dirty."""
        self.page.locator(f"{PANEL} .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        poll("the notebook to be saved",
             lambda: self.page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count()
             == 0, 20)  # fmt: skip

    def reload(self) -> None:
        self.page.reload()
        self.wait_loaded()

    def hide_sidebar(self) -> None:
        """View -> Appearance -> Show Left Sidebar (Ctrl+B), off: room for the notebook."""
        if self.page.locator("#jp-left-stack:visible").count():
            self.page.keyboard.press("Control+b")

    def scroll_to(self, target: Locator) -> None:
        """Scroll the notebook so that ``target`` is at the top of the view."""
        target.evaluate("e => e.scrollIntoView({block: 'start'})")
        time.sleep(0.2)

    def shot(self, path: Path, index: int | None = None) -> Path:
        """A PNG of the page, or of one cell."""
        if index is None:
            self.page.screenshot(path=str(path), type="png")
        else:
            self.cell(index).scroll_into_view_if_needed()
            self.cell(index).screenshot(path=str(path), type="png")
        return path
