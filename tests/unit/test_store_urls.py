"""``store=`` given as a URL: a scheme the recorder does not know is refused, never
taken for a directory (``postgresql://host/db`` once became a local ``postgresql:``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import recorder
from recorder.errors import ConfigError
from recorder.store import DiskStore, open_store


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ada:hunter2-pw@db.example/runs",
        "postgres://db/runs",
        "s3://bucket/runs",
        "sqlite:///tmp/x.db",
        "redis+tls://cache:6379",
    ],
)
def test_an_unknown_scheme_is_refused_and_creates_nothing(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    scheme = url.split("://")[0]
    assert f"{scheme}://" in message and "not supported" in message
    assert "hunter2-pw" not in message  # a URL's password is never echoed
    with pytest.raises(ConfigError):
        recorder.run("r", store=url).__enter__()
    assert os.listdir(tmp_path) == []


def test_postgres_says_it_is_not_supported_yet() -> None:
    with pytest.raises(ConfigError, match="Postgres store is not supported yet"):
        open_store("postgresql://db/runs")


def test_recorder_dir_holding_a_url_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECORDER_DIR", "postgresql://db/runs")
    with pytest.raises(ConfigError, match="RECORDER_DIR"):
        open_store(None)
    assert os.listdir(tmp_path) == []


def test_file_urls_and_plain_paths_still_open_a_directory(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path / 'a'}")
    assert isinstance(store, DiskStore)
    assert store is open_store(tmp_path / "a")
    odd = tmp_path / "name:with-colon"  # a colon alone is no scheme
    assert isinstance(open_store(str(odd)), DiskStore)


@pytest.mark.parametrize("env", [False, True])
def test_the_command_line_refuses_a_url_store_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: bool
) -> None:
    """``recorder --store postgresql://...`` (or $RECORDER_DIR) is refused with the same
    message, not read as a directory named ``postgresql:``."""
    import contextlib
    import io

    from recorder.cli import main

    monkeypatch.chdir(tmp_path)
    url = "postgresql://me:pw@127.0.0.1:5/db"
    args = ["ls"] if env else ["--store", url, "ls"]
    if env:
        monkeypatch.setenv("RECORDER_DIR", url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(args)
        except SystemExit as stop:
            code = int(stop.code or 0)
    assert code != 0
    assert "postgresql:// URL" in out.getvalue() and "pw" not in out.getvalue()
    assert list(tmp_path.iterdir()) == []
