"""What a fan-out shows while it works: one progress line on a terminal (tqdm), a panel
in a notebook, or nothing.

Both views read the fan-out's rows (one dict per input, see
:data:`recorder.fanout.COLUMNS`) and show the same :class:`FanSnapshot`: counts by
status, progress over the inputs, throughput, elapsed and estimated time left, the cost
spent and saved, the slowest and the failed children. They redraw when a child ends
(at most every ``interval`` seconds) and on a tick about once a second, so elapsed time
and a child running long move while nothing ends; the final state is always drawn.

The notebook panel is plain HTML published through a display handle
(:mod:`recorder.integrations.notebook`), so a saved notebook keeps its last state as
static HTML, with no widget model to lose.
"""

from __future__ import annotations

import contextlib
import html
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .display import REDRAW_S, format_seconds, format_usd, in_notebook

__all__ = ["TICK_S", "FanOutLine", "FanOutView", "FanSnapshot", "make_fan_view",
           "snapshot_of"]  # fmt: skip

TICK_S = 1.0
"""How often a running fan-out's view redraws when no child ends."""

_OPEN = ("pending", "running")
_COLOURS = {"completed": "#1a7f37", "replayed": "#4ac26b", "failed": "#cf222e",
            "crashed": "#a40e26", "interrupted": "#9a6700", "suspended": "#0969da",
            "running": "#d4a72c", "running elsewhere": "#bf8700", "skipped": "#8c959f",
            "pending": "#d0d7de"}  # fmt: skip
_ORDER = ("completed", "replayed", "failed", "crashed", "interrupted", "suspended",
          "running elsewhere", "skipped", "running", "pending")  # fmt: skip

Rows = Callable[[], Sequence[dict[str, Any]]]


@dataclass
class FanSnapshot:
    """Everything a fan-out's view shows, as plain values."""

    name: str
    total: int
    counts: dict[str, int]
    elapsed_s: float
    ended_here: int
    """Children that ended in this call (the throughput counts only these)."""
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    slowest: list[tuple[str, str, float]] = field(default_factory=list)
    """Up to three ``(key, status, seconds)``, running children with their time so far."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Up to five ``(key, error)``."""
    failed_total: int = 0
    outcome: str = "running"
    note: str = ""
    opener: str = "fan.show({key!r})"
    """How to open a child in the run browser (``{key}`` is filled in)."""
    dashboard: str | None = None
    """The engine's own dashboard (a URL: the Dask dashboard), if it has one."""

    @property
    def remaining(self) -> int:
        return sum(self.counts.get(s, 0) for s in _OPEN)

    @property
    def settled(self) -> int:
        return self.total - self.remaining

    @property
    def rate(self) -> float | None:
        """Children per second in this call, once one ended."""
        if self.ended_here == 0 or self.elapsed_s <= 0:
            return None
        return self.ended_here / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if rate is None or self.outcome != "running":
            return None
        return self.remaining / rate

    def summary(self) -> str:
        """Counts and money, in one short line (the terminal line's tail)."""
        shown = ", ".join(f"{self.counts[s]} {s}" for s in _ORDER if self.counts.get(s))
        return f"{shown} | {format_usd(self.cost_usd)} spent, {format_usd(self.saved_usd)} saved"

    def line(self) -> str:
        """The whole state in one line (logs, ``text/plain``)."""
        parts = [f"recorder fan-out {self.name}", f"{self.settled}/{self.total}",
                 self.summary(), f"elapsed {format_seconds(self.elapsed_s)}"]  # fmt: skip
        if self.outcome != "running":
            parts.append(self.outcome + (f": {self.note}" if self.note else ""))
        if self.dashboard:
            parts.append(f"dashboard {self.dashboard}")
        return " | ".join(parts)

    def html(self) -> str:
        """The notebook panel: a headline, a bar over the inputs coloured by status, the
        counts, the slowest and the failed children, and how to open one (escaped)."""
        e = html.escape
        rate = self.rate
        facts = [f"{self.settled} of {self.total} settled",
                 f"elapsed {format_seconds(self.elapsed_s)}"]  # fmt: skip
        if rate is not None:
            facts.append(f"{rate * 60:.1f} children/min" if rate < 1 else f"{rate:.1f} children/s")
        if self.eta_s is not None:
            facts.append(f"about {format_seconds(self.eta_s)} left")
        facts += [f"spent {format_usd(self.cost_usd)}", f"saved {format_usd(self.saved_usd)}"]
        state = self.outcome + (f": {self.note}" if self.note else "")
        colour = {"finished": "#1a7f37", "interrupted": "#9a6700"}.get(self.outcome, "#57606a")
        if self.outcome == "finished" and self.failed_total:
            colour = "#cf222e"
        total = max(self.total, 1)
        bar = "".join(
            f'<div title="{self.counts[s]} {e(s)}" style="background:{_COLOURS[s]};'
            f'width:{100 * self.counts[s] / total:.3f}%"></div>'
            for s in _ORDER
            if self.counts.get(s)
        )
        chips = " ".join(
            f'<span style="white-space:nowrap;margin-right:10px"><span style="color:'
            f'{_COLOURS[s]}">&#9632;</span> <b class="recorder-count-{s.replace(" ", "-")}">'
            f"{self.counts[s]}</b> {e(s)}</span>"
            for s in _ORDER
            if self.counts.get(s)
        )
        parts = [
            '<div class="recorder-fanout mathjax_ignore tex2jax_ignore" '
            'style="font-family:ui-monospace,monospace;'
            'font-size:12px;line-height:1.5;max-width:900px">',
            f'<div><b>fan-out {e(self.name)}</b> · <b class="recorder-outcome" '
            f'style="color:{colour}">{e(state)}</b> · {e(" · ".join(facts))}</div>',
            '<div class="recorder-bar" style="display:flex;height:8px;margin:4px 0;'
            f'background:{_COLOURS["pending"]};border-radius:4px;overflow:hidden">{bar}</div>',
            f"<div>{chips}</div>",
        ]
        if self.slowest:
            rows = "".join(
                f"<tr><td{_CELL}>{e(k)}</td><td{_CELL}>{e(s)}</td>"
                f"<td{_CELL}>{format_seconds(t)}</td></tr>"
                for k, s, t in self.slowest
            )
            parts.append(_table("slowest", ("child", "status", "time"), rows))
        if self.failed:
            rows = "".join(
                f'<tr><td{_CELL}>{e(k)}</td><td><details><summary style="cursor:pointer">'
                f"{e(_first_line(err))}</summary><pre style='white-space:pre-wrap;margin:2px 0'>"
                f"{e(err)}</pre></details></td></tr>"
                for k, err in self.failed
            )
            more = self.failed_total - len(self.failed)
            title = f"failed (first {len(self.failed)} of {self.failed_total})" if more else ""
            parts.append(_table(title or "failed", ("child", "error"), rows))
        example = (self.failed or [(k, "") for k, _, _ in self.slowest] or [("KEY", "")])[0][0]
        parts.append(
            '<div style="color:#57606a">open a child in the run browser: '
            f"<code>{e(self.opener.format(key=example))}</code></div>"
        )
        if self.dashboard:
            link = e(self.dashboard, quote=True)
            parts.append(
                '<div class="recorder-dashboard" style="color:#57606a">where its workers are: '
                f'<a href="{link}" target="_blank">{link}</a> (the Dask dashboard)</div>'
            )
        parts.append("</div>")
        return "".join(parts)


def _table(title: str, heads: tuple[str, ...], rows: str) -> str:
    head = "".join(f'<th style="text-align:left;padding-right:12px">{h}</th>' for h in heads)
    return (
        f'<div style="margin-top:4px;color:#57606a">{html.escape(title)}</div>'
        f'<table class="recorder-{title.split()[0]}" style="font-size:12px;border-collapse:'
        f'collapse"><tr>{head}</tr>{rows}</table>'
    )


_CELL = ' style="white-space:nowrap;padding-right:12px;vertical-align:top"'


def _first_line(text: str, width: int = 90) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def snapshot_of(
    name: str,
    rows: Sequence[dict[str, Any]],
    *,
    elapsed_s: float,
    ended_here: int,
    outcome: str = "running",
    note: str = "",
    now: float | None = None,
    dashboard: str | None = None,
) -> FanSnapshot:
    """The snapshot of a fan-out whose rows are ``rows`` (``now``: the wall clock, for
    the time so far of running children)."""
    clock = time.time() if now is None else now
    counts = Counter(r["status"] for r in rows)
    times: list[tuple[float, str, str]] = []
    failed: list[tuple[str, str]] = []
    cost = saved = 0.0
    for r in rows:
        cost += r["cost_usd"]
        saved += r["cost_saved_usd"]
        status = r["status"]
        if status == "running" and isinstance(r["started_at"], int | float):
            times.append((clock - r["started_at"], r["key"], status))
        elif status in ("completed", "failed") and r["duration_s"] == r["duration_s"]:
            times.append((float(r["duration_s"]), r["key"], status))
        if status in ("failed", "crashed"):
            failed.append((r["key"], str(r["error"] or status)))
    times.sort(reverse=True)
    return FanSnapshot(
        name=name,
        total=len(rows),
        counts=dict(counts),
        elapsed_s=elapsed_s,
        ended_here=ended_here,
        cost_usd=cost,
        saved_usd=saved,
        slowest=[(k, s, t) for t, k, s in times[:3]],
        failed=failed[:5],
        failed_total=len(failed),
        outcome=outcome,
        note=note,
        dashboard=dashboard,
    )


class FanOutView:
    """A fan-out's view: told when a child ends (:meth:`advance`), ticked about once a
    second (:meth:`tick`) and closed once (:meth:`close`); subclasses draw."""

    interval = REDRAW_S

    def __init__(self, name: str, rows: Rows) -> None:
        self.name = name
        self._rows = rows
        self._t0 = time.monotonic()
        self._ended = 0
        self._drawn = 0.0
        self._closed = False
        self.dashboard: str | None = None
        """The engine's dashboard, once its engine started (the panel links it)."""

    def snapshot(self, outcome: str = "running", note: str = "") -> FanSnapshot:
        return snapshot_of(self.name, self._rows(), elapsed_s=time.monotonic() - self._t0,
                           ended_here=self._ended, outcome=outcome, note=note,
                           dashboard=self.dashboard)  # fmt: skip

    def advance(self) -> None:
        """One more child ended in this call."""
        self._ended += 1
        self._maybe_draw()

    def tick(self) -> None:
        """Time passed: redraw if nothing did lately."""
        self._maybe_draw()

    def close(self, outcome: str = "finished", note: str = "") -> None:
        """Draw the final state (kept on screen); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, ValueError):  # a closed stream never fails a fan-out
            self.draw(self.snapshot(outcome, note), final=True)

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        if self._closed or now - self._drawn < self.interval:
            return
        self._drawn = now
        with contextlib.suppress(OSError, ValueError):
            self.draw(self.snapshot(), final=False)

    def draw(self, snap: FanSnapshot, *, final: bool) -> None:
        """Show ``snap`` (subclasses)."""


class FanOutLine(FanOutView):
    """One progress line over the inputs (tqdm, on stderr): children already settled
    when the call began start the bar and do not count in tqdm's throughput."""

    def __init__(self, name: str, rows: Rows, stream: TextIO | None = None) -> None:
        from tqdm import tqdm

        super().__init__(name, rows)
        snap = self.snapshot()
        self._bar = tqdm(
            total=snap.total,
            initial=snap.settled,
            desc=f"recorder {name}",
            unit="child",
            file=stream if stream is not None else sys.stderr,
            mininterval=REDRAW_S,
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def advance(self) -> None:
        super().advance()
        with contextlib.suppress(OSError, ValueError):
            self._bar.update(1)

    def tick(self) -> None:
        super().tick()
        with contextlib.suppress(OSError, ValueError):
            self._bar.refresh()

    def draw(self, snap: FanSnapshot, *, final: bool) -> None:
        tail = snap.summary()
        if snap.outcome not in ("running", "finished"):
            tail += f" | {snap.outcome}"
        self._bar.set_postfix_str(tail, refresh=False)
        if final:
            self._bar.close()


class FanOutPanel(FanOutView):
    """The notebook panel: ``publish(html, text)`` shows (and replaces) it."""

    interval = 0.5  # each redraw is a message to the front end

    def __init__(self, name: str, rows: Rows, publish: Callable[[str, str], None]) -> None:
        super().__init__(name, rows)
        self._publish = publish
        self._maybe_draw()

    def draw(self, snap: FanSnapshot, *, final: bool) -> None:
        self._publish(snap.html(), snap.line())


def make_fan_view(display: bool | None, name: str, rows: Rows) -> FanOutView | None:
    """The view of a fan-out's call: ``None`` shows the panel in a notebook and the line
    when stderr is a terminal, ``True`` one of them always, ``False`` nothing."""
    if display is False:
        return None
    if in_notebook():
        from .integrations.notebook import publisher

        return FanOutPanel(name, rows, publisher())
    isatty = getattr(sys.stderr, "isatty", None)
    if display is True or (isatty is not None and isatty()):
        return FanOutLine(name, rows)
    return None
