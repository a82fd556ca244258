"""What the side-effect ledger costs: ``run.once`` against ``run.step`` on the same
function, live (the durable intent marker is the difference) and replayed.

    python tests/bench/bench_effects.py [--calls N]

Both run in one process on a DiskStore in a temporary directory, interleaved call by
call so that the machine's drift hits both; medians per call. The intent marker is one
extra write flushed with ``PRAGMA synchronous=FULL``, so its cost is the disk's fsync.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import recorder  # noqa: E402


def effect(i: int) -> dict[str, int]:
    return {"i": i, "square": i * i}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    n = parser.parse_args(argv).calls
    clock = time.perf_counter_ns
    with tempfile.TemporaryDirectory(prefix="bench-effects-") as tmp:
        store = recorder.DiskStore(tmp)
        samples: dict[str, list[int]] = {"step": [], "once": [], "step replayed": [],
                                         "once replayed": []}  # fmt: skip
        for label in ("live", "replayed"):
            with recorder.run("bench-effects", store=store) as run:
                for i in range(n):
                    t0 = clock()
                    run.step("plain", effect, i)
                    t1 = clock()
                    run.once("ledgered", effect, i)
                    t2 = clock()
                    suffix = "" if label == "live" else " replayed"
                    samples["step" + suffix].append(t1 - t0)
                    samples["once" + suffix].append(t2 - t1)
            expected = n if label == "replayed" else 0
            assert run.stats.replayed == 2 * expected, run.stats
        store.close()
    med = {k: statistics.median(v) / 1e3 for k, v in samples.items()}
    print("| measurement | median us/call |\n|---|---:|")
    for name, value in med.items():
        print(f"| {name} | {value:,.1f} |")
    print(f"| intent marker (once - step, live) | {med['once'] - med['step']:,.1f} |")
    live, replayed = med["once"] / med["step"], med["once replayed"] / med["step replayed"]
    print(f"\nonce/step live: {live:.2f}x; replayed: {replayed:.2f}x ({n} calls each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
