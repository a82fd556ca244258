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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .call import Call, RunStats
    from .records import AttemptRecord, TraceEvent

__all__ = ["REDRAW_S", "LineView", "Snapshot", "View", "format_seconds", "format_usd",
           "in_notebook", "make_view"]  # fmt: skip

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
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one-line form (terminal, logs)."""
        parts = [
            f"recorder {self.run} #{self.attempt}",
            f"{self.replayed} replayed",
            f"{self.live} live",
            f"{self.failed} failed",
            f"{self.elapsed_s:.1f}s",
            f"saved {self.saved_s:.1f}s ${self.saved_cost_usd:.4f}",
        ]
        tail = self.current if self.outcome == "running" else self.outcome
        if self.detail:
            tail += f" ({self.detail})"
        return " | ".join(parts) + (f" | {tail}" if tail else "")

    def html(self) -> str:
        """The notebook form: a compact table row (escaped)."""
        colour = {"completed": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700",
                  "suspended": "#0969da"}.get(self.outcome, "#57606a")  # fmt: skip
        cells = [
            ("run", f"{self.run} · attempt {self.attempt}"),
            ("replayed", str(self.replayed)),
            ("live", str(self.live)),
            ("failed", str(self.failed)),
            ("step", self.current or "-"),
            ("elapsed", f"{self.elapsed_s:.1f} s"),
            ("saved", f"{self.saved_s:.1f} s, ${self.saved_cost_usd:.4f}"),
        ]
        body = "".join(
            f'<td style="padding:2px 10px"><span style="color:#57606a">{name}</span> '
            f'<b class="recorder-{name}">{html.escape(value)}</b></td>'
            for name, value in cells
        )
        outcome = html.escape(self.outcome + (f": {self.detail}" if self.detail else ""))
        return (
            '<table class="recorder-live" style="font-family:monospace;font-size:12px">'
            f"<tr>{body}"
            f'<td style="padding:2px 10px"><b class="recorder-outcome" '
            f'style="color:{colour}">{outcome}</b></td></tr></table>'
        )


class View:
    """Base view: keeps a :class:`Snapshot` and redraws it, throttled."""

    def __init__(self, run: str, attempt: int) -> None:
        self.snapshot = Snapshot(run=run, attempt=attempt)
        self._t0 = time.monotonic()
        self._drawn = 0.0
        self._call: Call | None = None

    # -- what the runtime calls ------------------------------------------------------

    def started(self, call: Call) -> None:
        self._call = call  # described only when drawn
        self._maybe_draw()

    def ended(self, event: TraceEvent, stats: RunStats) -> None:
        if time.monotonic() - self._drawn >= REDRAW_S:
            self._count(stats)
            self._maybe_draw()

    def finished(self, record: AttemptRecord, stats: RunStats, detail: str = "") -> None:
        self._count(stats)
        self.snapshot.outcome = record.outcome.value
        self.snapshot.current = ""
        self.snapshot.detail = detail
        self.snapshot.elapsed_s = time.monotonic() - self._t0
        self.draw(final=True)

    # -- drawing ---------------------------------------------------------------------

    def _count(self, stats: RunStats) -> None:
        snap = self.snapshot
        snap.replayed, snap.live, snap.failed = stats.replayed, stats.live, stats.failed
        snap.saved_s, snap.saved_cost_usd = stats.saved_s, stats.saved_cost_usd

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        if now - self._drawn >= REDRAW_S:
            self._drawn = now
            self.snapshot.elapsed_s = now - self._t0
            call = self._call
            if call is not None:
                meta = call.meta
                where = meta.get("model") or meta.get("selector") or meta.get("url") or ""
                label = f"{call.kind} {meta.get('action') or call.name} {where}"
                self.snapshot.current = label.strip()
            self.draw(final=False)

    def draw(self, *, final: bool) -> None:
        """Show the snapshot (subclasses)."""


class LineView(View):
    """One progress line, redrawn in place (``\\r``) on a terminal's stderr."""

    def __init__(self, run: str, attempt: int, stream: TextIO | None = None) -> None:
        super().__init__(run, attempt)
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


def make_view(display: bool | None, run: str, attempt: int) -> View | None:
    """The view for an attempt: ``display=None`` shows the widget in a notebook and
    the progress line on a terminal (nothing when stderr is not one); ``True`` shows
    one of them always; ``False`` nothing."""
    if display is False:
        return None
    if in_notebook():
        try:
            from .integrations.notebook import WidgetView

            return WidgetView(run, attempt)
        except ImportError:  # no ipywidgets: the line, in the cell's stderr
            return LineView(run, attempt)
    isatty = getattr(sys.stderr, "isatty", None)
    if display is True or (isatty is not None and isatty()):
        return LineView(run, attempt)
    return None
