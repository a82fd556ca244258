"""The shipped notebooks in a real JupyterLab 4, used as a person uses them (issue 14, 9).

One JupyterLab server on 127.0.0.1 (a random token, every piece of its state in a
temporary directory) serves a copy of notebooks/ with fixtures/ beside it; its kernels
run this virtualenv's ``python3`` kernelspec. Headless Chromium drives the page through
the UI only: menus (Run -> Run All Cells, Kernel -> Restart Kernel and Run All Cells,
Kernel -> Shut Down Kernel), the notebook toolbar's stop button, Shift+Enter, B and a
paste to add a cell, Ctrl+S, a page reload. The REST API only tells when the server is
up and reads the saved notebook back.

The journey (a module fixture) runs once and keeps what the page showed at each stage;
each test then checks one promise against it, so one broken promise does not hide the
others:

* quickstart.ipynb, with one cell added through the UI that asks a slower model (2.5 s a
  reply, the fixture server's ``delay_s``) four times inside ``recorder.run``: Run All;
  the live view read twice 1.5 s apart while one reply is awaited (elapsed must tick);
  the stop button part-way; Shift+Enter on the same cell (it must resume); Restart
  Kernel and Run All; Ctrl+S; reload; shut the kernel down and reload.
* browser_agent.ipynb, with one cell added after the agent's that records a page visit
  with a screenshot of each step and opens it in the run browser: Run All; the stop
  button while the agent's cell (``async with recorder.run(...)``) goes live; Shift+
  Enter on it; Restart Kernel and Run All; the run browser opened on the visit's step;
  Ctrl+S; reload; shut the kernel down and reload.

Besides the promises of issue 14 (the live view ticks and ends with its counts; the stop
button leaves one line and no traceback; the re-run resumes; the reloaded notebook shows
each view's snapshot, also without its kernel; the run browser shows a step's screenshot
at full size; no JavaScript error) it checks that Restart Kernel and Run All shows
nothing in red and that no amount of money is typeset as a formula by MathJax.

Screenshots of every stage, and journey.json (what each stage saw), go to the test's
temporary directory, or to the one ``$RECORDER_JUPYTERLAB_SHOTS`` names:
docs/images/jupyterlab-*.png come from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_driver import JupyterLab, NotebookUI, copied_notebooks, poll
from test_browser_surface import chromium_processes

from recorder.integrations.browser.launch import find_chromium

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1280, "height": 900}

SLOW_CELL = """\
# A slower model (2.5 s a reply): time to watch the live view and to press stop part-way.
import litellm, recorder
from fixtures.llm_server import LLMServer
slow = LLMServer(mode="echo", delay_s=2.5).start()
slow_llm = dict(model="openai/gpt-4o-mini", api_base=slow.base_url, api_key="sk-local",
                num_retries=0)
with recorder.run("slow-ideas", inputs={"topic": "refunds"}) as run:
    slow_ideas = [litellm.completion(messages=[{"role": "user", "content": f"Idea #{i}"}],
                                     **slow_llm).choices[0].message.content
                  for i in range(4)]
"""

LOOK_CELL = """\
# One page visit, with a screenshot of each step, opened in the run browser.
async with recorder.run("look-around", browser=recorder.Browser(screenshots="each_step")) as look:
    page = await look.new_page()
    await page.goto(site.url + "/search?q=rome")
recorder.show(look)
"""

AGENT_CELL = "async with recorder.run("
"""How the browser agent's cell of browser_agent.ipynb is found."""

WIDGET_ERRORS = ("Error displaying widget", "model not found")

BENIGN_CONSOLE: dict[str, str] = {
    # A pattern of a console error of JupyterLab itself, and why it says nothing about the
    # recorder's outputs. None is needed with JupyterLab 4.6: its own messages on this
    # journey are warnings and debug lines (slow plugin activation on a busy machine,
    # "Starting WebSocket"), which are not collected.
}
"""Console errors that are not failures, each with its reason."""


def count(name: str, text: str) -> int | None:
    """The number a view shows next to ``name``: ``replayed 21`` (the notebook view) or
    ``21 replayed`` (the text line)."""
    found = re.search(rf"\b{name}\W{{0,3}}(\d+)", text) or re.search(rf"(\d+)\s*{name}\b", text)
    return int(found.group(1)) if found else None


def elapsed(text: str) -> str | None:
    found = re.search(r"elapsed\s*([\d.]+\s*(?:s|min)[^|]*?)(?=\s+saved|\s*\||$)", text)
    return found.group(1).strip() if found else None


@dataclass
class Stage:
    """What the page showed at one stage of the journey."""

    done: bool = False
    problem: str = ""
    seen: dict[str, Any] = field(default_factory=dict)
    shot: Path | None = None


@dataclass
class Journey:
    stages: dict[str, Stage] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
    kernelspecs: dict[str, Any] = field(default_factory=dict)
    shots: Path = Path()
    seconds: float = 0.0
    left_chromium: int = 0

    def stage(self, name: str) -> Stage:
        """A finished stage; fails the test (with why) when the journey did not get there."""
        stage = self.stages.get(name)
        if stage is None:
            pytest.fail(f"the journey never reached stage {name!r}")
        if not stage.done:
            pytest.fail(f"stage {name!r} did not finish: {stage.problem} (see {stage.shot})")
        return stage


class StageRunner:
    """Runs the journey's stages, keeping going past a stage that fails."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey

    @contextlib.contextmanager
    def stage(self, name: str, ui: NotebookUI) -> Iterator[Stage]:
        stage = self.journey.stages.setdefault(name, Stage())
        try:
            yield stage
            stage.done = True
        except Exception as error:
            stage.problem = "".join(traceback.format_exception_only(error)).strip()
            stage.seen["traceback"] = traceback.format_exc()
            with contextlib.suppress(Exception):
                stage.shot = ui.shot(self.journey.shots / f"jupyterlab-{name}-failed.png")


def outputs_seen(ui: NotebookUI, index: int) -> dict[str, Any]:
    return {
        "output": ui.output_text(index),
        "errors": ui.error_text(index),
        "views": ui.live_views(index),
        "prompt": ui.prompt(index),
    }


def whole_notebook(ui: NotebookUI) -> dict[str, Any]:
    """Every cell's prompt, what each cell shows in red, and the outputs that MathJax
    typeset (JupyterLab typesets ``$...$`` in HTML outputs: two amounts of money on
    one line become a formula)."""
    cells = range(ui.cell_count())
    return {
        "prompts": [ui.prompt(i) for i in cells],
        "red": {i: text for i in cells if (text := ui.error_text(i))},
        "typeset": {
            i: ui.output_text(i)[:300]
            for i in cells
            if ui.cell(i).locator(".jp-OutputArea mjx-container").count()
        },
    }


def settle_outputs(ui: NotebookUI) -> None:
    """Outputs drawn, and widget views given the time to resolve their models (or to say
    they cannot)."""
    poll("the outputs", lambda: ui.page.locator(".jp-OutputArea-output").count() > 0, 30)
    time.sleep(1.0)


def reload_seen(ui: NotebookUI, cells: list[int]) -> dict[str, Any]:
    """What a reloaded notebook shows where runs drew their live views."""
    page_text = ui.page.locator(".jp-NotebookPanel").first.inner_text()
    return {
        "widget errors": [m for m in WIDGET_ERRORS if m in page_text],
        "views": {i: ui.live_views(i) for i in cells},
        "outputs": {i: ui.output_text(i)[:600] for i in cells},
    }


def saved_snapshots(lab: JupyterLab, name: str, cells: list[int]) -> dict[int, list[str]]:
    """Per cell, the mime types of its saved outputs that carry a live view's HTML."""
    book = lab.saved(name)
    found: dict[int, list[str]] = {}
    for index in cells:
        cell = book["cells"][index]
        found[index] = [
            mime
            for output in cell.get("outputs", [])
            for mime, data in output.get("data", {}).items()
            if "recorder-live" in ("".join(data) if isinstance(data, list) else str(data))
        ]
    return found


def quickstart(ui: NotebookUI, rec: StageRunner, shots: Path) -> None:
    journey = rec.journey
    with rec.stage("quickstart-open", ui) as stage:
        ui.open()
        ui.hide_sidebar()
        try:
            anchor = ui.find("recorder.show(")
        except LookupError:
            anchor = ui.cell_count() - 2
        slow = ui.add_cell_below(anchor, SLOW_CELL)
        stage.seen["slow cell"] = slow
        stage.seen["recorded cells"] = [
            i for i in range(ui.cell_count())
            if ui.is_code(i) and re.search(r"recorder\.run\(|^%%record", ui.source(i), re.MULTILINE)
        ]  # fmt: skip
    if not journey.stages["quickstart-open"].done:
        return
    slow = journey.stages["quickstart-open"].seen["slow cell"]
    recorded = journey.stages["quickstart-open"].seen["recorded cells"]

    with rec.stage("quickstart-running", ui) as stage:
        ui.run_all()
        ui.wait_running(slow)
        poll("the slow cell's live view", lambda: ui.live_view(slow) and ui.busy(slow), 60)
        # Right after a reply arrives (live goes 0 -> 1) the next one takes 2.5 s: two
        # reads 1.5 s apart fall within that one step.
        poll("the first live reply", lambda: (count("live", ui.live_view(slow)) or 0) >= 1, 30,
             every=0.05)  # fmt: skip
        first = ui.live_view(slow)
        time.sleep(1.5)
        second = ui.live_view(slow)
        stage.seen.update(first=first, second=second)
        stage.shot = ui.shot(shots / "jupyterlab-live-view.png", slow)

    with rec.stage("quickstart-interrupted", ui) as stage:
        poll("a second live reply",
             lambda: (count("live", ui.live_view(slow)) or 0) >= 2 or not ui.busy(slow), 30,
             every=0.05)  # fmt: skip
        stage.seen["interrupted while running"] = ui.busy(slow)
        ui.interrupt()
        ui.wait_idle(60)
        stage.seen.update(outputs_seen(ui, slow))
        stage.shot = ui.shot(shots / "jupyterlab-interrupted-llm.png", slow)

    with rec.stage("quickstart-rerun", ui) as stage:
        ui.run_cell(slow)
        ui.wait_done(slow, 60)
        ui.wait_idle(30)
        stage.seen.update(outputs_seen(ui, slow))
        stage.shot = ui.shot(shots / "jupyterlab-rerun-llm.png", slow)

    with rec.stage("quickstart-restart-run-all", ui) as stage:
        ui.restart_and_run_all()
        poll("the restarted kernel to run the cells", lambda: ui.busy(slow) or
             re.search(r"\[1\]", ui.prompt(1)), 60)  # fmt: skip
        ui.wait_idle(120)
        stage.seen.update(whole_notebook(ui))
        ui.scroll_to(ui.cell(recorded[1] if len(recorded) > 1 else slow))
        stage.shot = ui.shot(shots / "jupyterlab-restart-run-all.png")

    reloads(ui, rec, shots, "quickstart", recorded)


def reloads(ui: NotebookUI, rec: StageRunner, shots: Path, name: str, cells: list[int]) -> None:
    with rec.stage(f"{name}-reloaded", ui) as stage:
        ui.save()
        stage.seen["saved snapshots"] = saved_snapshots(ui.lab, ui.name, cells)
        ui.reload()
        settle_outputs(ui)
        stage.seen.update(reload_seen(ui, cells))
        ui.scroll_to(ui.cell(cells[-1]))
        stage.shot = ui.shot(shots / f"jupyterlab-{name}-reloaded.png")

    with rec.stage(f"{name}-reopened-without-kernel", ui) as stage:
        ui.shut_down_kernel()
        ui.reload()
        settle_outputs(ui)
        stage.seen.update(reload_seen(ui, cells))
        ui.scroll_to(ui.cell(cells[-1]))
        stage.shot = ui.shot(shots / f"jupyterlab-{name}-reopened.png")


def browser_agent(ui: NotebookUI, rec: StageRunner, shots: Path) -> None:
    journey = rec.journey
    with rec.stage("agent-open", ui) as stage:
        ui.open()
        ui.hide_sidebar()
        agent = ui.find(AGENT_CELL)
        look = ui.add_cell_below(agent, LOOK_CELL)
        stage.seen.update(agent=agent, look=look)
    if not journey.stages["agent-open"].done:
        return
    agent, look = (
        journey.stages["agent-open"].seen["agent"],
        journey.stages["agent-open"].seen["look"],
    )

    with rec.stage("agent-interrupted", ui) as stage:
        ui.run_all()
        # The cell before the agent's runs the agent in a process of its own (about half
        # a minute on a busy machine); then the agent replays its turns and goes live.
        ui.wait_running(agent, 30)
        poll("the agent's cell to go live",
             lambda: (count("live", ui.live_view(agent)) or 0) >= 3 or
             re.search(r"\[\d+\]", ui.prompt(agent)), 150, every=0.05)  # fmt: skip
        stage.seen["view when stopped"] = ui.live_view(agent)
        stage.seen["interrupted while running"] = ui.busy(agent)
        ui.interrupt()
        ui.wait_idle(60)
        stage.seen.update(outputs_seen(ui, agent))
        stage.shot = ui.shot(shots / "jupyterlab-interrupted-agent.png", agent)

    with rec.stage("agent-rerun", ui) as stage:
        ui.run_cell(agent)
        ui.wait_done(agent, 90)
        ui.wait_idle(60)
        stage.seen.update(outputs_seen(ui, agent))
        stage.shot = ui.shot(shots / "jupyterlab-rerun-agent.png", agent)

    with rec.stage("agent-restart-run-all", ui) as stage:
        ui.restart_and_run_all()
        poll("the restarted kernel to run the cells", lambda: ui.busy(agent), 60)
        ui.wait_idle(180)
        stage.seen.update(outputs_seen(ui, agent))
        stage.seen.update(whole_notebook(ui))
        ui.scroll_to(ui.cell(agent))
        stage.shot = ui.shot(shots / "jupyterlab-agent-restart-run-all.png")

    with rec.stage("run-browser", ui) as stage:
        stage.seen.update(open_screenshot_step(ui, look, shots))
        stage.shot = ui.shot(shots / "jupyterlab-run-browser.png")

    reloads(ui, rec, shots, "agent", [agent, look])


def open_screenshot_step(ui: NotebookUI, index: int, shots: Path) -> dict[str, Any]:
    """In the run browser's output: open the page visit (the ``goto`` browser step) as a
    person does, with a click on its row, then measure the screenshot shown; if it is
    smaller than the picture, click it (full size on demand) and measure again. The page
    is left scrolled to the opened step."""
    output = ui.cell(index).locator(".jp-OutputArea")
    row = output.get_by_text(re.compile(r"^\s*goto\s*$")).first
    row.wait_for(timeout=30_000)
    row.click()
    images = output.locator("img")
    poll("a screenshot in the step's detail", lambda: images.count() > 0, 15)
    ui.scroll_to(row)
    measured = measure(ui, output)
    if not measured["full size"]:
        with contextlib.suppress(Exception):
            images.first.click(timeout=3000)
            time.sleep(0.5)
            again = measure(ui, ui.page.locator("body"))
            ui.shot(shots / "jupyterlab-run-browser-enlarged.png")
            ui.page.keyboard.press("Escape")
            measured = {**again, "after a click": True, "before the click": measured}
    return {"chosen": "goto", **measured}


def measure(ui: NotebookUI, scope: Any) -> dict[str, Any]:
    """The largest visible image in ``scope``: its picture's width, its drawn width and
    the width its output area offers."""
    sizes = scope.locator("img").evaluate_all(
        """imgs => imgs.filter(i => i.getBoundingClientRect().width > 0).map(i => {
            const inner = e => { const s = getComputedStyle(e);
                return e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); };
            const area = i.closest('.jp-OutputArea-output') || document.body;
            return {natural: i.naturalWidth, drawn: i.getBoundingClientRect().width,
                    container: inner(i.parentElement), room: inner(area)};
        })"""
    )
    if not sizes:
        return {"full size": False, "natural": 0, "drawn": 0, "container": 0, "room": 0}
    best = max(sizes, key=lambda s: s["drawn"])
    full = abs(best["drawn"] - best["natural"]) <= 1 or (
        # Narrower than the picture only because its container is: a container that
        # takes most of the output's width, not a thumbnail's column.
        best["drawn"] < best["natural"]
        and best["drawn"] >= best["container"] - 2
        and best["container"] >= 0.75 * best["room"]
    )
    return {"full size": full, **best}


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("jupyterlab")
    shots = Path(os.environ.get("RECORDER_JUPYTERLAB_SHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    marker = f"recorder-jupyterlab-{uuid.uuid4().hex}"
    journey = Journey(shots=shots)
    rec = StageRunner(journey)
    started = time.monotonic()
    with copied_notebooks(REPO, tmp) as root:
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "RECORDER_DIR": str(tmp / "store"),
               "RECORDER_TEST_MARKER": marker}  # fmt: skip
        lab = JupyterLab(root, tmp / "state", env)
        journey.kernelspecs = lab.kernelspecs()
        with lab, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                for name, flow in (("quickstart.ipynb", quickstart),
                                   ("browser_agent.ipynb", browser_agent)):  # fmt: skip
                    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
                    page = context.new_page()
                    page.on("console", lambda m, n=name: journey.console.append(
                        f"{n}: {m.text}") if m.type == "error" else None)  # fmt: skip
                    page.on("pageerror", lambda e, n=name: journey.console.append(
                        f"{n}: uncaught {e}"))  # fmt: skip
                    ui = NotebookUI(page, lab, name, workspace=name.split(".")[0])
                    flow(ui, rec, shots)
                    context.close()
            finally:
                browser.close()
        journey.seconds = time.monotonic() - started
        deadline = time.monotonic() + 10
        while (left := chromium_processes(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        journey.left_chromium = left
    summary = {name: {"done": st.done, "problem": st.problem, "shot": str(st.shot),
                      "seen": st.seen} for name, st in journey.stages.items()}  # fmt: skip
    summary["console"] = journey.console  # type: ignore[assignment]
    summary["seconds"] = journey.seconds  # type: ignore[assignment]
    (shots / "journey.json").write_text(json.dumps(summary, indent=1, default=str))
    yield journey


# -- the environment -----------------------------------------------------------------------


def test_kernels_run_this_virtualenv(journey: Journey) -> None:
    spec = journey.kernelspecs.get("python3")
    assert spec is not None, f"no python3 kernelspec: {sorted(journey.kernelspecs)}"
    assert Path(spec["resource_dir"]).is_relative_to(sys.prefix), (
        f"the python3 kernelspec comes from {spec['resource_dir']}, not this venv ({sys.prefix})"
    )
    assert spec["spec"]["argv"][0] in ("python", "python3", sys.executable), (
        f"the kernelspec starts {spec['spec']['argv'][0]}, not the server's own python"
    )


# -- the live view -------------------------------------------------------------------------


def test_the_live_view_ticks_while_a_cell_runs(journey: Journey) -> None:
    seen = journey.stage("quickstart-running").seen
    first, second = seen["first"], seen["second"]
    assert first != second, (
        f"the live view did not change in 1.5 s while an LLM call was in flight: {first!r}"
    )
    assert elapsed(first) != elapsed(second), (
        f"elapsed did not move in 1.5 s: {first!r} then {second!r}"
    )


def test_the_live_view_shows_its_final_counts(journey: Journey) -> None:
    seen = journey.stage("quickstart-rerun").seen
    view = seen["views"][-1] if seen["views"] else ""
    assert "completed" in view, f"the re-run's live view does not end as completed: {view!r}"
    replayed, live = count("replayed", view), count("live", view)
    assert (replayed, live) == (2, 2) or (replayed or 0) + (live or 0) == 4, (
        f"the re-run's view does not count the 4 calls (replayed + live): {view!r}"
    )


# -- interrupts and resumes -------------------------------------------------------------

INTERRUPTED = {"quickstart": "quickstart-interrupted", "browser_agent": "agent-interrupted"}
RERUN = {"quickstart": "quickstart-rerun", "browser_agent": "agent-rerun"}


@pytest.mark.parametrize("notebook", sorted(INTERRUPTED))
def test_the_stop_button_leaves_one_line_and_no_traceback(journey: Journey, notebook: str) -> None:
    seen = journey.stage(INTERRUPTED[notebook]).seen
    assert seen["interrupted while running"], (
        f"the cell had finished before the stop button was pressed: {seen['output']!r}"
    )
    shown = seen["output"]
    assert "Traceback" not in shown, f"the interrupted cell shows a traceback:\n{shown[:3000]}"
    assert "CancelledError" not in shown, (
        f"the interrupted cell shows CancelledError:\n{shown[:3000]}"
    )
    red = [line for line in seen["errors"].splitlines() if line.strip()]
    assert len(red) <= 1, (
        f"the interrupted cell shows {len(red)} error lines ({len(seen['errors'])} characters),"
        f" not one:\n{seen['errors'][:3000]}"
    )


@pytest.mark.parametrize("notebook", sorted(RERUN))
def test_running_the_cell_again_resumes(journey: Journey, notebook: str) -> None:
    seen = journey.stage(RERUN[notebook]).seen
    text = seen["output"]
    replayed = [count("replayed", view) for view in seen["views"]] or [count("replayed", text)]
    assert max((n or 0) for n in replayed) > 0, (
        f"the re-run does not say that steps replayed:\n{text[:2000]}"
    )
    assert not seen["errors"], f"the re-run shows errors:\n{seen['errors'][:2000]}"


RESTART = {"quickstart": "quickstart-restart-run-all", "browser_agent": "agent-restart-run-all"}


@pytest.mark.parametrize("notebook", sorted(RESTART))
def test_restart_kernel_and_run_all_runs_every_cell_cleanly(
    journey: Journey, notebook: str
) -> None:
    seen = journey.stage(RESTART[notebook]).seen
    assert not seen["red"], "\n".join(
        f"cell {i} shows in red:\n{text[:1500]}" for i, text in seen["red"].items()
    )
    unrun = [i for i, p in enumerate(seen["prompts"]) if p and not re.search(r"\[\d+\]", p)]
    assert not unrun, f"cells {unrun} did not run: prompts {seen['prompts']}"


@pytest.mark.parametrize("notebook", sorted(RESTART))
def test_money_is_not_typeset_as_a_formula(journey: Journey, notebook: str) -> None:
    seen = journey.stage(RESTART[notebook]).seen
    assert not seen["typeset"], (
        "MathJax typeset part of these outputs as a formula: two '$' in one HTML output "
        "delimit TeX math in JupyterLab (mark the recorder's HTML with class "
        f"'mathjax_ignore', and 'tex2jax_ignore' for MathJax 2 front ends): {seen['typeset']}"
    )


# -- what survives ------------------------------------------------------------------------

RELOADS = {
    "quickstart, reloaded": "quickstart-reloaded",
    "quickstart, kernel gone": "quickstart-reopened-without-kernel",
    "browser_agent, reloaded": "agent-reloaded",
    "browser_agent, kernel gone": "agent-reopened-without-kernel",
}


@pytest.mark.parametrize("when", list(RELOADS))
def test_the_reloaded_notebook_shows_the_live_views_snapshots(journey: Journey, when: str) -> None:
    seen = journey.stage(RELOADS[when]).seen
    assert not seen["widget errors"], (
        f"the reloaded notebook shows {seen['widget errors']}: outputs {seen['outputs']}"
    )
    missing = [i for i, views in seen["views"].items() if not views]
    assert not missing, (
        f"cells {missing} show no live view after the reload: outputs "
        f"{ {i: seen['outputs'][i] for i in missing} }"
    )


@pytest.mark.parametrize("notebook", ["quickstart", "agent"])
def test_the_saved_notebook_keeps_each_live_view_as_html(journey: Journey, notebook: str) -> None:
    seen = journey.stage(f"{notebook}-reloaded").seen
    missing = [i for i, mimes in seen["saved snapshots"].items() if "text/html" not in mimes]
    assert not missing, (
        f"cells {missing} of the saved {notebook} notebook keep no text/html snapshot of their "
        f"live view (found {seen['saved snapshots']})"
    )


# -- the run browser ------------------------------------------------------------------------


def test_the_run_browser_shows_a_steps_screenshot_at_full_size(journey: Journey) -> None:
    seen = journey.stage("run-browser").seen
    assert seen["full size"], (
        f"the screenshot of step {seen['chosen']!r} is drawn {seen['drawn']:.0f} px wide, its "
        f"picture is {seen['natural']} px, its container {seen['container']:.0f} px and the "
        f"output {seen['room']:.0f} px"
        + (" (also after a click on it)" if seen.get("after a click") else "")
    )


# -- the page ---------------------------------------------------------------------------------


def test_no_javascript_errors(journey: Journey) -> None:
    errors = [e for e in journey.console if not any(re.search(p, e) for p in BENIGN_CONSOLE)]
    assert not errors, "console errors:\n" + "\n".join(errors[:30])


def test_no_chromium_left_behind(journey: Journey) -> None:
    assert journey.left_chromium == 0, (
        f"{journey.left_chromium} Chromium processes of the kernels outlived the server"
    )
