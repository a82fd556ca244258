"""Traces and run lists as pandas DataFrames, and trace files (csv, parquet, jsonl).

pandas is imported inside the functions: ``import recorder`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .history import TRACE_COLUMNS
from .redaction import redact_value, secret_params

if TYPE_CHECKING:
    import pandas

__all__ = ["EXPORT_FORMATS", "runs_frame", "trace_frame", "write_frame"]

EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl"}

_FLOAT_COLUMNS = ("duration_s", "recorded_duration_s", "temperature", "cost_usd")
_INT_COLUMNS = ("attempt", "seq", "occurrence", "generation", "seed", "prompt_tokens",
                "completion_tokens")  # fmt: skip


def trace_frame(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    """Trace rows as a DataFrame: the columns of ``TRACE_COLUMNS`` first, in order,
    then any extra column integrations added; ``started_at`` in UTC, numbers with
    missing values as NaN (floats) or <NA> (nullable integers). Secret URL parameters
    and URL passwords in any text cell are shown as ``[redacted]`` (records written
    before they were hidden at write time, names added to ``$RECORDER_SECRET_PARAMS``
    since)."""
    import pandas as pd

    params = secret_params()
    columns = list(TRACE_COLUMNS)
    rows = [{k: redact_value(v, params) for k, v in row.items()} for row in rows]
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    frame = pd.DataFrame(rows, columns=columns)
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    for column in _FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in _INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def runs_frame(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    """Run summaries as a DataFrame."""
    import pandas as pd

    columns = ["run", "name", "inputs", "attempts", "steps", "status", "created_at",
               "last_activity"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("created_at", "last_activity"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def write_frame(frame: pandas.DataFrame, path: str | Path) -> str:
    """Write ``frame`` to ``path`` in the format its extension names; return it."""
    target = Path(path)
    kind = EXPORT_FORMATS.get(target.suffix.lower())
    if kind is None:
        valid = ", ".join(EXPORT_FORMATS)
        raise ConfigError(f"cannot export to {target.name!r}: use one of {valid}.")
    if kind == "csv":
        frame.to_csv(target, index=False)
    elif kind == "parquet":
        frame.to_parquet(target, index=False)
    else:
        frame.to_json(target, orient="records", lines=True, date_format="iso")
    return kind
