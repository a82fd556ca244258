"""The notebook side: the live views of an attempt and of a fan-out (HTML in the cell's
output, replaced in place), and the ``%%record`` cell magic (``%load_ext recorder``).

Imported only inside a Jupyter kernel, when a run starts or the extension loads.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.display import display

from ..display import View
from ..options import Mode

if TYPE_CHECKING:
    from ..call import RunStats

__all__ = ["NotebookView", "RecordCell", "load_ipython_extension", "publisher",
           "record_transformer"]  # fmt: skip


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
_MARK = "__recorder_cell__"
_LAST = "__recorder_last__"

_FLAG = re.compile(r"(?:^|\s)--(\w+)(?:\s+|$)")


def _usage(message: str) -> Exception:
    """A usage mistake, shown by IPython as one line (``UsageError: ...``)."""
    try:
        from IPython.core.error import UsageError
    except ImportError:  # pragma: no cover - IPython is there when cells are
        return SyntaxError(message)
    return UsageError(message)


def _parse(line: str) -> dict[str, str]:
    """``NAME [--mode M] [--store DIR] [--inputs EXPR]``: EXPR is Python and runs to the
    next flag or the end of the line; the other values are shell words."""
    pieces = _FLAG.split(" " + line.strip())
    try:
        head = shlex.split(pieces[0])
    except ValueError as error:
        raise _usage(f"%%record: {error} in {pieces[0].strip()!r}. Usage: {_USAGE}") from None
    if len(head) != 1:
        raise _usage(f"%%record needs one run name first. Usage: {_USAGE}")
    options = {"name": head[0]}
    for flag, value in zip(pieces[1::2], pieces[2::2], strict=True):
        if flag not in ("mode", "inputs", "store") or flag in options or not value.strip():
            raise _usage(
                f"%%record does not understand --{flag} {value.strip()!r}. Usage: {_USAGE}"
            )
        options[flag] = value.strip() if flag == "inputs" else " ".join(shlex.split(value))
    modes = [m.value for m in Mode]
    if "mode" in options and options["mode"] not in modes:
        raise _usage(
            f"%%record --mode {options['mode']!r} is not a mode: use one of {', '.join(modes)}."
        )
    return options


def record_transformer(lines: list[str]) -> list[str]:
    """Turn the ``%%record`` line of a cell into a marker call (the cell's own lines stay
    as they are, with their line numbers); :class:`RecordCell` then wraps the cell's
    statements in ``with recorder.run(...)`` (``async with`` when the cell awaits at
    top level) after IPython parsed it. Usage mistakes raise IPython's UsageError,
    which a notebook shows as one line."""
    if not lines or not lines[0].startswith("%%record"):
        return lines
    options = _parse(lines[0][len("%%record") :].strip())
    arguments = [repr(options["name"])]
    if "inputs" in options:
        arguments.append(f"inputs=({options['inputs']})")
    if "mode" in options:
        arguments.append(f"mode={options['mode']!r}")
    if "store" in options:
        arguments.append(f"store={options['store']!r}")
    said = lines[0].strip()  # kept as a comment: a traceback's context shows what was written
    return [f"{_MARK}({', '.join(arguments)})  # {said}\n", *lines[1:]]


class RecordCell(ast.NodeTransformer):
    """IPython's AST step for ``%%record`` cells: a module that starts with the marker
    call becomes::

        __recorder_last__ = None
        with __import__("recorder").run(<the marker's arguments>) as run:
            <the cell's statements; the last one, if an expression, assigned to
             __recorder_last__>
        __recorder_last__            # displayed as a cell's last expression is

    so names the cell defines stay global, top-level ``await`` works (``async with``),
    and the cell's last expression shows as in any cell."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        first = node.body[0] if node.body else None
        if not (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Call)
            and isinstance(first.value.func, ast.Name)
            and first.value.func.id == _MARK
        ):
            return node
        marker = first.value
        body = node.body[1:]
        shown: list[ast.stmt] = []
        if body and isinstance(body[-1], ast.Expr):
            last = body[-1]
            body = [
                *body[:-1],
                ast.Assign(targets=[ast.Name(_LAST, ast.Store())], value=last.value),
            ]
            shown = [ast.Expr(ast.Name(_LAST, ast.Load()))]
        opener = ast.Call(
            func=ast.Attribute(
                value=ast.Call(ast.Name("__import__", ast.Load()), [ast.Constant("recorder")], []),
                attr="run",
                ctx=ast.Load(),
            ),
            args=marker.args,
            keywords=marker.keywords,
        )
        item = ast.withitem(context_expr=opener, optional_vars=ast.Name("run", ast.Store()))
        kind = ast.AsyncWith if _awaits(body) else ast.With
        block = kind(items=[item], body=body or [ast.Pass()])
        reset = ast.Assign(targets=[ast.Name(_LAST, ast.Store())], value=ast.Constant(None))
        node.body = [reset, block, *shown]
        for made in node.body:
            ast.copy_location(made, first)
        return ast.fix_missing_locations(node)


def _awaits(body: list[ast.stmt]) -> bool:
    """Whether statements await at top level (not inside a function of their own)."""
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return False


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext recorder``: enable ``%%record`` cells."""
    transformers = ipython.input_transformers_cleanup
    if record_transformer not in transformers:
        transformers.append(record_transformer)
    if not any(isinstance(t, RecordCell) for t in ipython.ast_transformers):
        ipython.ast_transformers.append(RecordCell())
