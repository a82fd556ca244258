"""Getting the GIL back promptly after a store write.

A step is written on the thread that made the call, and SQLite releases the GIL for the
write. Right after a live LLM call another thread is nearly always waiting for it:
litellm hands its success callbacks (cost, logging) to a worker thread as the call
returns. That thread takes the GIL during the write and keeps it until it blocks or the
interpreter's switch interval (5 ms by default) runs out, so a write of ~0.1 ms kept
the caller waiting ~0.6-0.9 ms (measured by ``tests/bench/bench_llm.py``).

While any thread is inside :func:`prompt_handback`, the switch interval is lowered to
:data:`HANDBACK_INTERVAL_S`, so the writer waits at most about that long once its write
is done; the interval the process had is put back when the last such thread leaves.
No work is skipped: the worker finishes its callbacks a little later, in the next wait
for the network.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HANDBACK_INTERVAL_S", "prompt_handback"]

HANDBACK_INTERVAL_S = 5e-5

_lock = threading.Lock()
_inside = 0
_saved = 0.0


@contextmanager
def prompt_handback() -> Iterator[None]:
    """Lower the switch interval while the body runs (see the module docstring)."""
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = sys.getswitchinterval()
            if _saved > HANDBACK_INTERVAL_S:
                sys.setswitchinterval(HANDBACK_INTERVAL_S)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _saved > HANDBACK_INTERVAL_S:
                sys.setswitchinterval(_saved)
