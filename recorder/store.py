"""The names of :mod:`recorder.stores`, where they lived before the store backends
became a package: ``from recorder.store import DiskStore`` keeps working."""

from __future__ import annotations

from .stores import DEFAULT_DIR as DEFAULT_DIR
from .stores import STORE_ENV as STORE_ENV
from .stores import STORE_FORMAT as STORE_FORMAT
from .stores import DiskStore as DiskStore
from .stores import MemoryStore as MemoryStore
from .stores import Store as Store
from .stores import _open_stores as _open_stores
from .stores import check_directory_safe as check_directory_safe
from .stores import damaged_database as damaged_database
from .stores import default_directory as default_directory
from .stores import default_target as default_target
from .stores import open_store as open_store
from .stores import store_path as store_path
from .stores import store_target as store_target

__all__ = ["DEFAULT_DIR", "DiskStore", "MemoryStore", "Store", "open_store"]
