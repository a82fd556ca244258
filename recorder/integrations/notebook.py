"""The notebook side: the live views of an attempt and of a fan-out (HTML in the cell's
output, replaced in place), and the ``%%record`` cell magic (``%load_ext recorder``).

Imported only inside a Jupyter kernel, when a run starts or the extension loads.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.display import display

from ..display import View

if TYPE_CHECKING:
    from ..call import RunStats

__all__ = ["NotebookView", "load_ipython_extension", "publisher", "record_transformer"]


class NotebookView(View):
    """The live view of an attempt in the cell's output: one row of HTML, replaced in
    place through a display handle. Plain display data, not a widget: the saved
    notebook keeps its final state, readable with no kernel (and in nbconvert's output)."""

    def __init__(
        self, run: str, attempt: int, stats: RunStats | None = None, note: str = ""
    ) -> None:
        super().__init__(run, attempt, stats)
        self.snapshot.note = note
        self._publish = publisher()
        self.draw(final=False)

    def draw(self, *, final: bool) -> None:
        self._publish(self.snapshot.html(), self.snapshot.line())


def publisher() -> Callable[[str, str], None]:
    """A new output of the running cell, and the function that replaces its content
    (HTML, with a text form for consoles and nbconvert's text exports). Plain display
    data, not a widget: a saved notebook keeps the last content as it is."""
    handle: list[Any] = []

    def publish(markup: str, text: str) -> None:
        bundle = {"text/html": markup, "text/plain": text}
        if not handle:
            handle.append(display(bundle, raw=True, display_id=True))  # type: ignore[no-untyped-call]
        elif handle[0] is not None:  # None: no display system (not in a kernel)
            handle[0].update(bundle, raw=True)

    return publish


# -- %%record ------------------------------------------------------------------------------

_USAGE = "%%record NAME [--mode auto|replay|record] [--inputs EXPR] [--store DIR]"


_FLAG = re.compile(r"(?:^|\s)--(\w+)(?:\s+|$)")


def _parse(line: str) -> dict[str, str]:
    """``NAME [--mode M] [--store DIR] [--inputs EXPR]``: EXPR is Python and runs to the
    next flag or the end of the line; the other values are shell words."""
    pieces = _FLAG.split(" " + line.strip())
    head = shlex.split(pieces[0])
    if len(head) != 1:
        raise SyntaxError(f"%%record needs one run name first: {_USAGE}")
    options = {"name": head[0]}
    for flag, value in zip(pieces[1::2], pieces[2::2], strict=True):
        if flag not in ("mode", "inputs", "store") or flag in options or not value.strip():
            raise SyntaxError(f"%%record does not understand --{flag} {value.strip()!r}: {_USAGE}")
        options[flag] = value.strip() if flag == "inputs" else " ".join(shlex.split(value))
    return options


def _is_async(source: str) -> bool:
    """Whether the cell awaits at top level (IPython runs it as a coroutine)."""
    try:
        code = compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:  # IPython reports it once the cell runs
        return False
    return bool(code.co_flags & inspect.CO_COROUTINE)


def record_transformer(lines: list[str]) -> list[str]:
    """Rewrite a ``%%record`` cell as the same code inside ``with recorder.run(...)``
    (``async with`` when the cell awaits at top level), before IPython compiles it, so
    that names the cell defines stay global and top-level await keeps working."""
    if not lines or not lines[0].startswith("%%record"):
        return lines
    options = _parse(lines[0][len("%%record") :].strip())
    body = lines[1:] or ["pass\n"]
    source = "".join(body)
    arguments = [repr(options["name"])]
    if "inputs" in options:
        arguments.append(f"inputs=({options['inputs']})")
    if "mode" in options:
        arguments.append(f"mode={options['mode']!r}")
    if "store" in options:
        arguments.append(f"store={options['store']!r}")
    opener = "async with" if _is_async(source) else "with"
    header = f"{opener} __import__('recorder').run({', '.join(arguments)}) as run:\n"
    indented = [("    " + line) if line.strip() else line for line in body]
    if not any(line.strip() for line in indented):
        indented = ["    pass\n"]
    if not indented[-1].endswith("\n"):
        indented[-1] += "\n"
    return [header, *indented]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext recorder``: enable ``%%record`` cells."""
    transformers = ipython.input_transformers_cleanup
    if record_transformer not in transformers:
        transformers.append(record_transformer)
