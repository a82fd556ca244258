"""The package surface: a light import and a curated, sorted public API."""

from __future__ import annotations

import json
import subprocess
import sys

import recorder

HEAVY = ("litellm", "playwright", "pandas", "ipywidgets")


def test_import_recorder_loads_no_heavy_library() -> None:
    code = (
        f"import sys, json, recorder\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


def test_core_modules_do_not_import_integrations_at_module_level() -> None:
    code = (
        "import sys, json, recorder, recorder.runtime, recorder.store, recorder.history, "
        "recorder.cli, recorder.export\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


def test_the_core_never_imports_psycopg() -> None:
    """Only opening a postgresql:// URL imports the Postgres store and psycopg."""
    code = (
        "import sys, json, recorder, recorder.stores, recorder.store, recorder.cli, "
        "recorder.locks, recorder.runtime\n"
        "recorder.open_store(recorder.MemoryStore())\n"
        "print(json.dumps([m for m in sys.modules if m.startswith(('psycopg', "
        "'recorder.stores.postgres'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


def test_all_is_sorted_and_complete() -> None:
    assert recorder.__all__ == sorted(recorder.__all__)
    for name in recorder.__all__:
        assert hasattr(recorder, name), name
    # "@py_builtins"...: pytest rewrites the asserts of its plugin's package, recorder.
    public = {n for n in dir(recorder) if not n.startswith(("_", "@"))}
    modules = {"call", "differences", "errors", "history", "journal", "keys", "locks", "records",
               "runtime", "store", "values", "integrations", "export", "cli", "effects",
               "faults", "display", "retry", "bundle", "rundiff", "pytest_plugin", "quota",
               "memo", "switching", "options", "autoinstall", "forking", "steps", "waits",
               "attempts", "testing", "callsite", "redaction", "sequence",
               "fanout", "fanview", "fanlog", "engines", "limits", "stores"}  # fmt: skip
    assert public - modules - {"annotations"} == set(recorder.__all__)


def test_error_tree() -> None:
    for name in recorder.__all__:
        obj = getattr(recorder, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name.endswith("Error"):
            assert issubclass(obj, recorder.RecorderError), name
    assert issubclass(recorder.ConfigError, ValueError)
    assert issubclass(recorder.NotSerializableError, TypeError)
    assert issubclass(recorder.RunNotFoundError, LookupError)
