"""Shared fixtures. Only loopback traffic: the LLM and the web site are local fixtures."""

from __future__ import annotations

import os

# Before anything imports litellm: otherwise its import fetches the cost map online.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from fixtures.llm_server import LLMServer

# Timings here swing 2x and more when the machine is busy: a property is about results,
# so no example fails for taking long (hypothesis' 200 ms deadline does, under load).
settings.register_profile("recorder", deadline=None)
settings.load_profile("recorder")

pytest_plugins = ["pytester"]  # tests/integration/test_pytest_plugin.py runs pytest itself

MODEL = "openai/gpt-4o-mini"


class Clock:
    """A deterministic clock: each call advances one second from a fixed instant."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A fresh store directory (not yet created: the recorder creates it 0700)."""
    return tmp_path / "store"


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """The fixture LLM server in random mode: a live call gives fresh text, so a test
    can tell a replay (same text as recorded) from a live call."""
    with LLMServer(mode="random", seed=7) as server:
        yield server


@pytest.fixture
def llm(llm_server: LLMServer) -> dict[str, Any]:
    """Keyword arguments that point litellm at the fixture server."""
    import litellm

    litellm.suppress_debug_info = True
    return {"model": MODEL, "api_base": llm_server.base_url, "api_key": "sk-test", "num_retries": 0}


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One throwaway Postgres cluster for the session (fixtures/postgres.py). Missing
    Postgres skips the tests that need it, but fails them under ``CI=true``."""
    from fixtures.postgres import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and Postgres is unavailable: {error}")
        pytest.skip(f"Postgres is unavailable: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


_schemas = iter(range(1, 10**9))


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> Iterator[str]:
    """The URL of a store in a schema of its own (dropped after the test)."""
    schema = f"t{os.getpid()}_{next(_schemas)}"
    yield f"{postgres_cluster.url}?schema={schema}"
    import recorder.stores

    for key in [k for k in recorder.stores._open_stores if schema in k]:
        recorder.stores._open_stores.pop(key).close()
    found = postgres_cluster.sql(
        "SELECT string_agg(quote_ident(nspname), ', ') FROM pg_namespace "
        f"WHERE nspname LIKE '{schema}%'",
        database="recorder",
    ).strip()
    if found:  # the test's schema and those it named after it
        postgres_cluster.sql(f"DROP SCHEMA {found} CASCADE", database="recorder")
