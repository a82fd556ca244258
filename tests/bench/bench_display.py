"""What the live view costs a replay: the same recorded run replayed with no view, with
the terminal line and with the notebook view, interleaved pass by pass.

    python tests/bench/bench_display.py [--steps N] [--passes K]

Views redraw at most every 0.1 s, so a replay pays one clock read per step; this
prints the median pass time of each variant and its ratio to no view.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import recorder  # noqa: E402
from recorder import runtime  # noqa: E402
from recorder.display import LineView, View  # noqa: E402


def views() -> dict[str, Any]:
    import recorder.integrations.notebook as notebook

    shown: list[str] = []
    # what the kernel's display handle gets: the HTML of each redraw (built, not sent)
    notebook.publisher = lambda: lambda markup, text: shown.append(markup)  # type: ignore[assignment]

    def widget(display: bool | None, run: str, attempt: int, *rest: Any) -> View:
        return notebook.NotebookView(run, attempt, *rest)

    return {
        "no view": lambda display, run, attempt, *rest: None,
        "terminal line": lambda display, run, attempt, stats=None, note="": LineView(
            run, attempt, io.StringIO(), stats
        ),
        "notebook view": widget,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=7)
    args = parser.parse_args(argv)
    variants = views()
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench-display-") as tmp:
        store = recorder.DiskStore(tmp)
        with recorder.run("bench-display", store=store, display=False) as run:
            for i in range(args.steps):
                run.step("work", abs, -i)
        original = runtime.make_view
        try:
            for _ in range(args.passes):
                for name, make in variants.items():
                    runtime.make_view = make  # type: ignore[assignment]
                    start = time.perf_counter()
                    with recorder.run("bench-display", store=store) as run:
                        for i in range(args.steps):
                            run.step("work", abs, -i)
                    times[name].append(time.perf_counter() - start)
                    assert run.stats.replayed == args.steps
        finally:
            runtime.make_view = original
        store.close()
    base = statistics.median(times["no view"])
    print(f"| replay of {args.steps} steps | median s | vs no view |\n|---|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {median:.4f} | {median / base:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
