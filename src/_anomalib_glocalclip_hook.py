"""Start-up hook that makes Anomalib see plugins registered under entry points.

Anomalib 2.7 has no plugin discovery: ``anomalib train --model GlocalCLIP`` resolves the short name only
if the class was imported before the CLI parses its arguments, and ``anomalib.models.get_model`` (used by
``anomalib benchmark``) only looks inside the ``anomalib.models`` namespace. This module is imported at
every interpreter start by ``anomalib_glocalclip_hook.pth``; it installs a one-shot import watcher and
does nothing else. When ``anomalib.models`` has finished importing, the watcher loads the entry points of
the groups ``anomalib.models`` and ``anomalib.data`` and sets each object on ``anomalib.models`` /
``anomalib.data`` under its entry-point name.

It imports neither torch nor anomalib itself, so ``python -c pass`` costs the same with or without it.
Set ``ANOMALIB_DISABLE_PLUGINS=1`` to turn it off.
"""

from __future__ import annotations

import os
import sys
from importlib.abc import Loader, MetaPathFinder

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module imports nothing it does not need at start-up
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

_WATCHED = "anomalib.models"
_GROUPS = {"anomalib.models": "anomalib.models", "anomalib.data": "anomalib.data"}
DISABLE_ENV = "ANOMALIB_DISABLE_PLUGINS"


def _is_initializing(module_name: str) -> bool:
    """True while ``module_name`` is half-way through its own import (a circular import in progress)."""
    module = sys.modules.get(module_name)
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def register_entry_points() -> None:
    """Set every entry point of the watched groups on its Anomalib namespace (missing names only)."""
    import warnings
    from importlib.metadata import entry_points

    for group, namespace_name in _GROUPS.items():
        namespace = sys.modules.get(namespace_name)
        if namespace is None:
            continue
        for entry_point in entry_points(group=group):
            if hasattr(namespace, entry_point.name):
                continue
            top_module = entry_point.value.split(":")[0].split(".")[0]
            if _is_initializing(top_module):
                # The plugin itself is importing anomalib; it registers itself when it is done.
                continue
            try:
                setattr(namespace, entry_point.name, entry_point.load())
            except Exception as error:  # noqa: BLE001 - a broken plugin must not break anomalib
                warnings.warn(
                    f"Anomalib plugin entry point {entry_point.name!r} ({entry_point.value}) failed to load: {error}",
                    stacklevel=2,
                )


class _RegisteringLoader(Loader):
    """Wraps the real loader of ``anomalib.models`` and registers plugins once it has run."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec) -> ModuleType | None:  # noqa: ANN001
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        self._loader.exec_module(module)
        # The import system binds ``anomalib.models`` on its parent only after this returns; plugins that
        # ``import anomalib.models`` while we register need the binding now.
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        register_entry_points()

    def __getattr__(self, name: str):  # noqa: ANN204 - keeps get_source, is_package, ... working
        return getattr(self._loader, name)


class _AnomalibImportWatcher(MetaPathFinder):
    """One-shot finder: wraps the loader of ``anomalib.models`` and then removes itself."""

    def find_spec(self, fullname, path=None, target=None) -> ModuleSpec | None:  # noqa: ANN001
        if fullname != _WATCHED:
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install() -> None:
    """Install the watcher unless disabled or ``anomalib.models`` is already imported."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return
    if _WATCHED in sys.modules:
        register_entry_points()
        return
    if not any(isinstance(finder, _AnomalibImportWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AnomalibImportWatcher())


install()
