"""``store=`` given as a URL: a scheme the recorder does not know is refused, never
taken for a directory (``postgresql://host/db`` once became a local ``postgresql:``);
a Postgres URL opens a Postgres store, and no message ever shows its password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import recorder
from recorder.errors import ConfigError, StoreError
from recorder.store import DiskStore, open_store


@pytest.mark.parametrize(
    "url",
    [
        "s3://ada:hunter2-pw@bucket/runs",
        "mysql://db/runs",
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


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_an_unreachable_postgres_is_a_store_error_without_the_password(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"{scheme}://ada:hunter2-pw@127.0.0.1:1/runs?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert f"{scheme}://ada@127.0.0.1:1/runs" in message and "hunter2" not in message
    assert "hunter2" not in repr(caught.value) and caught.value.__cause__ is None
    assert os.listdir(tmp_path) == []


@pytest.mark.integration
def test_a_postgres_url_opens_a_postgres_store(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.stores.postgres import PostgresStore

    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore) and store is open_store(postgres_url)
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in store.location and password not in repr(store)
    monkeypatch.setenv("RECORDER_STORE", postgres_url)
    monkeypatch.setenv("RECORDER_DIR", "/nonexistent/never-used")
    assert open_store(None) is store  # $RECORDER_STORE comes before $RECORDER_DIR


def test_recorder_dir_holding_a_url_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECORDER_DIR", "postgresql://db/runs")
    with pytest.raises(ConfigError, match="RECORDER_DIR") as caught:
        open_store(None)
    assert "RECORDER_STORE" in str(caught.value)  # where a URL goes instead
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
    """``recorder --store s3://...`` (or $RECORDER_DIR) is refused with the same
    message, not read as a directory named ``s3:``; ``--store postgresql://...`` that
    cannot be reached fails without showing the password."""
    import contextlib
    import io

    from recorder.cli import main

    monkeypatch.chdir(tmp_path)
    for url, said in (
        ("s3://me:pw@127.0.0.1:5/db", "s3:// URL"),
        ("postgresql://me:pw@127.0.0.1:5/db?connect_timeout=2", "postgresql://me@127.0.0.1:5/db"),
    ):
        args = ["ls"] if env else ["--store", url, "ls"]
        if env:
            monkeypatch.setenv(
                "RECORDER_STORE" if said.startswith("postgres") else "RECORDER_DIR", url
            )
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main(args)
            except SystemExit as stop:
                code = int(stop.code or 0)
        assert code != 0
        assert said in out.getvalue() and "pw" not in out.getvalue()
        assert list(tmp_path.iterdir()) == []
