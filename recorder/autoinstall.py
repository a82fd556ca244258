"""Integrations installed when a run is entered: at once for a library already
imported, else the moment it is imported (a one-shot import hook)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__all__ = ["install_integrations"]

# Integrations installed at run entry when the library they adapt is already imported.
_AUTO_INTEGRATIONS = {"litellm": "recorder.integrations.litellm"}


def install_integrations() -> None:
    """Install the integration of each library already imported; for one imported later
    (``import litellm`` inside the agent, after the run began), install it the moment
    that import finishes, before any name is bound from it."""
    for trigger, module in _AUTO_INTEGRATIONS.items():
        if trigger in sys.modules:
            importlib.import_module(module).install()
        elif not any(isinstance(f, _AfterImport) and f.name == trigger for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterImport(trigger, module))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of module ``name`` so that the
    integration ``module`` is installed right after ``name`` executes (one shot)."""

    def __init__(self, name: str, module: str) -> None:
        self.name, self.module = name, module

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot, and no recursion into ourselves
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, integration = spec.loader, self.module
        run_module = loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            importlib.import_module(integration).install()

        # This loader instance serves this one import: resources, is_package and the
        # rest of it stay as they are (litellm reads its package data through them).
        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
