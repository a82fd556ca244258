"""Where records live: the :class:`Store` interface, its backends, and :func:`open_store`,
the one function that turns a ``store=`` argument (a Store, a path, a URL or ``None``)
into a store.

- :class:`MemoryStore` (:mod:`.memory`): a dict, for tests and throwaway runs;
- :class:`DiskStore` (:mod:`.disk`): one SQLite database in a directory, the default;
- ``PostgresStore`` (:mod:`.postgres`): a schema in a Postgres database, shared by many
  processes on many hosts; opened from a ``postgresql://`` (or ``postgres://``) URL.
  Importing this package never imports psycopg: only opening such a URL does.

Shared pieces: :mod:`.base` (the contract), :mod:`.quota` (``max_store_bytes``) and
:mod:`.network` (a directory on a network file system is refused).

With ``store=None`` the store is ``$RECORDER_STORE`` (a URL or a directory), else
``$RECORDER_DIR`` (a directory), else ``./.recorder``.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import NO_HOLD, LockHold, Store
from .disk import STORE_FORMAT, DiskStore, check_directory_safe, damaged_database
from .memory import MemoryStore
from .quota import check_limit, resolve_limit

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = [
    "DEFAULT_DIR",
    "NO_HOLD",
    "STORE_ENV",
    "STORE_FORMAT",
    "DiskStore",
    "LockHold",
    "MemoryStore",
    "Store",
    "check_directory_safe",
    "damaged_database",
    "default_directory",
    "default_target",
    "is_postgres_url",
    "open_store",
    "store_path",
    "store_target",
]

DEFAULT_DIR = ".recorder"
STORE_ENV = "RECORDER_STORE"
"""A store URL or directory used when ``store=None`` (before ``$RECORDER_DIR``)."""

_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")

_open_stores: dict[str, Store] = {}
"""The stores ``open_store`` opened from a path or URL, by resolved directory or URL:
every run of this process that names the same place shares one store object."""
_open_lock = threading.Lock()


def is_postgres_url(where: object) -> bool:
    """Whether ``where`` is a ``postgresql://`` or ``postgres://`` URL."""
    if not isinstance(where, str):
        return False
    found = _SCHEME.match(where)
    return found is not None and found.group(1).lower() in _POSTGRES_SCHEMES


def store_path(where: str | os.PathLike[str], given: str) -> Path:
    """The directory a path names; a ``scheme://`` URL is refused unless it is a local
    ``file://`` one (a URL never silently becomes a directory named ``postgresql:``).
    A Postgres URL is refused here too: it names no directory (use :func:`store_target`
    where a URL may be given)."""
    if not isinstance(where, str):
        return Path(where)
    found = _SCHEME.match(where)
    if found is None:
        return Path(where)
    scheme = found.group(1).lower()
    parts = urllib.parse.urlsplit(where)
    if scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(parts.path))
    if scheme in _POSTGRES_SCHEMES:
        # Only the scheme is shown: the rest of a URL may hold a password.
        raise ConfigError(
            f"{given} is a {scheme}:// URL, which is not supported there: {given} names a "
            f"directory. Put a Postgres store's URL in ${STORE_ENV} or pass it as store= "
            "(or --store)."
        )
    raise ConfigError(
        f"{given} is a {scheme}:// URL, which is not supported: the recorder keeps runs "
        "in a local directory or in Postgres. Pass a directory path (or a file:// URL), a "
        "postgresql:// URL, a Store object, or None for $RECORDER_STORE / $RECORDER_DIR / "
        "./.recorder."
    )


def store_target(where: str | os.PathLike[str], given: str) -> Path | str:
    """What a ``store=`` path or URL names: a directory (``Path``) or a Postgres URL
    (``str``). Any other URL is refused (ConfigError, showing only its scheme)."""
    if is_postgres_url(where):
        assert isinstance(where, str)
        return where
    return store_path(where, given)


def default_target() -> Path | str:
    """``$RECORDER_STORE`` (a directory or a Postgres URL), else ``$RECORDER_DIR`` (a
    directory), else ``./.recorder``."""
    found = os.environ.get(STORE_ENV, "").strip()
    if found:
        return store_target(found, f"${STORE_ENV}")
    return default_directory()


def default_directory() -> Path:
    """``$RECORDER_DIR``, or ``./.recorder`` in the current directory (a URL there is
    refused as for ``store=``)."""
    return store_path(os.environ.get("RECORDER_DIR") or DEFAULT_DIR, "$RECORDER_DIR")


def open_store(
    store: Store | str | os.PathLike[str] | None = None,
    *,
    create: bool = True,
    max_store_bytes: int | None = None,
) -> Store:
    """Resolve a ``store=`` argument: a :class:`Store` is used as is; a directory path
    opens a :class:`DiskStore` and a ``postgresql://`` URL a ``PostgresStore``, each
    shared by every run in this process that names the same place; ``None`` is
    :func:`default_target`. With ``create=False`` a place that holds no store is an
    error instead of a new store.

    ``max_store_bytes`` (for a path or URL: else ``$RECORDER_MAX_STORE_BYTES``) sets the
    store's size limit, replacing the one a store already open had; when neither is
    given, an open store keeps its limit."""
    if isinstance(store, Store):
        if max_store_bytes is not None:
            store.max_store_bytes = check_limit(max_store_bytes)
        return store
    if store is not None and not isinstance(store, str | os.PathLike):
        raise ConfigError(
            f"store= takes a Store, a directory path, a postgresql:// URL or None, not "
            f"{type(store).__name__}."
        )
    limit = resolve_limit(max_store_bytes)
    target = default_target() if store is None else store_target(store, "store=")
    if isinstance(target, str):
        return _open_postgres(target, create=create, limit=limit)
    resolved = str(target.expanduser().resolve())
    with _open_lock:
        found = _open_stores.get(resolved)
        if found is None:
            found = _open_stores[resolved] = DiskStore(
                resolved, create=create, max_store_bytes=limit
            )
        elif limit is not None and limit != found.max_store_bytes:
            found.max_store_bytes = limit
        return found


def _open_postgres(url: str, *, create: bool, limit: int | None) -> PostgresStore:
    from .postgres import PostgresStore

    with _open_lock:
        found = _open_stores.get(url)
        # A store opened before a fork belongs to the parent: its connections are the
        # parent's, so the child opens its own.
        if not isinstance(found, PostgresStore) or found.closed or found.pid != os.getpid():
            found = PostgresStore(url, create=create, max_store_bytes=limit)
            _open_stores[url] = found
        elif limit is not None and limit != found.max_store_bytes:
            found.max_store_bytes = limit
        return found
