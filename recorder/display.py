"""What a run shows while it works: a live view in a notebook, one progress line on a
terminal's stderr, or nothing.

The runtime tells the view of an attempt when a step starts, when it ends (replayed,
live or failed) and when the attempt ends. Views redraw at most every
:data:`REDRAW_S` seconds (and always at the end), so a replay of thousands of steps
pays one clock read per step, not one redraw.

The notebook view (ipywidgets) lives in :mod:`recorder.integrations.notebook`; this
module imports no widget library.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .call import Call, RunStats
    from .records import AttemptRecord, TraceEvent

__all__ = ["REDRAW_S", "TICK_S", "LineView", "Snapshot", "View", "format_seconds",
           "format_usd", "in_notebook", "make_view", "step_label"]  # fmt: skip

REDRAW_S = 0.1


def format_usd(value: float) -> str:
    """Money as people read it: ``$0``, ``<$0.0001``, ``$0.0042``, ``$0.12``, ``$1,234.50``."""
    if value == 0:
        return "$0"
    if value < 0:
        return "-" + format_usd(-value)
    if value < 0.0001:
        return "<$0.0001"
    if value < 1:
        return f"${value:.4f}".rstrip("0").rstrip(".") if value < 0.01 else f"${value:.2f}"
    return f"${value:,.2f}"


def format_seconds(value: float) -> str:
    """A duration as people read it: ``0.4 s``, ``12 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if value != value or value < 0:  # NaN: not known
        return "-"
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


TICK_S = 1.0
"""How often a view redraws while a step runs long (elapsed time moves on)."""

_OUTCOME_COLOURS = {"completed": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700",
                    "suspended": "#0969da", "crashed": "#a40e26"}  # fmt: skip


@dataclass
class Snapshot:
    """Everything a view shows, as plain values."""

    run: str
    attempt: int
    replayed: int = 0
    live: int = 0
    failed: int = 0
    current: str = ""
    elapsed_s: float = 0.0
    saved_s: float = 0.0
    saved_cost_usd: float = 0.0
    outcome: str = "running"
    detail: str = ""
    note: str = ""
    """What this attempt follows, when worth saying (``attempt 1 crashed``)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one-line form (terminal, logs, the text form of the notebook view)."""
        parts = [
            f"recorder {self.run} #{self.attempt}",
            f"{self.replayed} replayed",
            f"{self.live} live",
            f"{self.failed} failed",
            format_seconds(self.elapsed_s),
            f"saved {format_seconds(self.saved_s)} {format_usd(self.saved_cost_usd)}",
        ]
        tail = self.current if self.outcome == "running" else self.outcome
        if self.detail:
            tail += f" ({_first_line(self.detail)})"
        return " | ".join(parts) + (f" | {tail}" if tail else "")

    def html(self) -> str:
        """The notebook form: one compact row (escaped); a long outcome shows its first
        line, the rest on demand."""
        colour = _OUTCOME_COLOURS.get(self.outcome, "#57606a")
        cells = [
            ("run", f"{self.run} · attempt {self.attempt}"),
            ("replayed", str(self.replayed)),
            ("live", str(self.live)),
            ("failed", str(self.failed)),
            ("step", self.current or "-"),
            ("elapsed", format_seconds(self.elapsed_s)),
            ("saved", f"{format_seconds(self.saved_s)}, {format_usd(self.saved_cost_usd)}"),
        ]
        body = "".join(
            f'<td style="padding:2px 10px;white-space:nowrap"><span style="color:#57606a">'
            f'{name}</span> <b class="recorder-{name}">{html.escape(value)}</b></td>'
            for name, value in cells
        )
        state = html.escape(self.outcome)
        if self.detail:
            first = _first_line(self.detail)
            head = html.escape(f"{self.outcome}: {first}")
            if first == self.detail.strip():
                state = head
            else:
                state = (
                    f'<details style="display:inline-block"><summary style="cursor:pointer">'
                    f"{head}</summary><pre style='white-space:pre-wrap;margin:2px 0;"
                    f"max-width:900px'>{html.escape(self.detail)}</pre></details>"
                )
        note = (
            f'<td style="padding:2px 10px;color:#57606a">{html.escape(self.note)}</td>'
            if self.note
            else ""
        )
        return (
            '<table class="recorder-live mathjax_ignore tex2jax_ignore" '
            'style="font-family:ui-monospace,monospace;'
            f'font-size:12px"><tr>{body}'
            f'<td style="padding:2px 10px"><b class="recorder-outcome" '
            f'style="color:{colour}">{state}</b></td>{note}</tr></table>'
        )


def _first_line(text: str, width: int = 100) -> str:
    stripped = text.strip()
    first = stripped.splitlines()[0] if stripped else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def step_label(call: Call) -> str:
    """What a step is, in a few words and once each: ``#4 llm gpt-4o-mini``,
    ``#7 browser click #submit``."""
    meta = call.meta
    parts = [call.kind]
    for part in (meta.get("action") or call.name,
                 meta.get("model") or meta.get("selector") or meta.get("url")):  # fmt: skip
        text = str(part or "").strip()
        if text and text not in parts:
            parts.append(text)
    return f"#{call.seq} " + " ".join(parts)


class View:
    """Base view: keeps a :class:`Snapshot` and redraws it, throttled to
    :data:`REDRAW_S`; a step going live is drawn at once (the end of a replayed burst,
    the step now in flight), and :meth:`start_ticking` redraws about once a second
    while a long step runs. Drawing is serialized: the ticking thread and the run's
    own thread never draw at once."""

    def __init__(self, run: str, attempt: int, stats: RunStats | None = None) -> None:
        self.snapshot = Snapshot(run=run, attempt=attempt)
        self._t0 = time.monotonic()
        self._drawn = 0.0
        self._call: Call | None = None
        self._stats = stats
        self._draw_lock = threading.Lock()
        self._done = threading.Event()

    # -- what the runtime calls ------------------------------------------------------

    def started(self, call: Call) -> None:
        self._call = call  # described only when drawn
        if call.record is None:  # going live: a replayed burst ended, show this step now
            self._redraw()
        else:
            self._maybe_draw()

    def ended(self, event: TraceEvent, stats: RunStats) -> None:
        self._stats = stats
        self._maybe_draw()

    def finished(self, record: AttemptRecord, stats: RunStats, detail: str = "") -> None:
        self._done.set()
        self._stats = stats
        with self._draw_lock:
            self._count()
            self.snapshot.outcome = record.outcome.value
            self.snapshot.current = ""
            self.snapshot.detail = detail
            self.snapshot.elapsed_s = time.monotonic() - self._t0
            self.draw(final=True)

    def start_ticking(self) -> None:
        """Redraw about every :data:`TICK_S` seconds until the attempt ends (a daemon
        thread), so elapsed time moves during a long LLM call."""
        threading.Thread(target=self._tick, name="recorder-view", daemon=True).start()

    def _tick(self) -> None:
        while not self._done.wait(TICK_S):
            if time.monotonic() - self._drawn >= TICK_S * 0.9:
                self._redraw(wait=False)

    # -- drawing ---------------------------------------------------------------------

    def _count(self) -> None:
        stats, snap = self._stats, self.snapshot
        if stats is not None:
            snap.replayed, snap.live, snap.failed = stats.replayed, stats.live, stats.failed
            snap.saved_s, snap.saved_cost_usd = stats.saved_s, stats.saved_cost_usd

    def _maybe_draw(self) -> None:
        if time.monotonic() - self._drawn >= REDRAW_S:
            self._redraw()

    def _redraw(self, *, wait: bool = True) -> None:
        if not self._draw_lock.acquire(blocking=wait):
            return
        try:
            if self._done.is_set():
                return
            now = time.monotonic()
            self._drawn = now
            self._count()
            self.snapshot.elapsed_s = now - self._t0
            if self._call is not None:
                self.snapshot.current = step_label(self._call)
            self.draw(final=False)
        except Exception:  # showing progress never fails a run
            pass
        finally:
            self._draw_lock.release()

    def draw(self, *, final: bool) -> None:
        """Show the snapshot (subclasses)."""


class LineView(View):
    """One progress line, redrawn in place (``\\r``) on a terminal's stderr."""

    def __init__(
        self, run: str, attempt: int, stream: TextIO | None = None, stats: RunStats | None = None
    ) -> None:
        super().__init__(run, attempt, stats)
        self.stream = stream if stream is not None else sys.stderr
        self._width = 0

    def draw(self, *, final: bool) -> None:
        text = self.snapshot.line()
        pad = max(0, self._width - len(text))
        self._width = len(text)
        try:
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream never fails the run
            pass


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (ipykernel's shell is running)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_view(
    display: bool | None, run: str, attempt: int, stats: RunStats | None = None, note: str = ""
) -> View | None:
    """The view for an attempt: ``display=None`` shows it in a notebook (HTML that
    stays in the saved notebook) and as a progress line on a terminal (nothing when
    stderr is not one); ``True`` shows one of them always; ``False`` nothing. ``stats``
    are the attempt's counts (read when drawing); ``note`` says what it follows."""
    if display is False:
        return None
    view: View | None = None
    if in_notebook():
        from .integrations.notebook import NotebookView

        view = NotebookView(run, attempt, stats, note)
    else:
        isatty = getattr(sys.stderr, "isatty", None)
        if display is True or (isatty is not None and isatty()):
            view = LineView(run, attempt, stats=stats)
            view.snapshot.note = note
    if view is not None:
        view.start_ticking()
    return view
