"""Start-up hook that makes Anomalib see plugins registered under entry points.

Anomalib 2.7 has no plugin discovery: ``anomalib train --model GlocalCLIP`` resolves a short name only if the
class was imported before the CLI parses its arguments. Imported at every interpreter start by
``anomalib_glocalclip_hook.pth``, this module installs an import watcher; once ``anomalib.models`` has been
imported, and no plugin module is half-imported, the watcher sets each entry point of the groups
``anomalib.models`` and ``anomalib.data`` on that namespace, then removes itself.

At start-up it imports nothing (``sys`` and ``os`` are loaded before ``.pth`` files run): the finder and loader
follow the import protocols instead of subclassing ``importlib.abc``, whose import pulls in some sixty modules.
Set ``ANOMALIB_DISABLE_PLUGINS=1`` to turn it off.
"""
# No ``from __future__ import annotations``: ``__future__`` is a module a bare interpreter does not load.
import os
import sys

_WATCHED = "anomalib.models"
_PLUGIN = "anomalib_glocalclip"
_GROUPS = {"anomalib.models": "anomalib.models", "anomalib.data": "anomalib.data"}
DISABLE_ENV = "ANOMALIB_DISABLE_PLUGINS"


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
            try:
                setattr(namespace, entry_point.name, entry_point.load())
            except Exception as error:  # noqa: BLE001 - a broken plugin must not break anomalib
                warnings.warn(
                    f"Anomalib plugin entry point {entry_point.name!r} ({entry_point.value}) failed to load: {error}",
                    stacklevel=2,
                )


class _ImportWatcher:
    """``sys.meta_path`` finder: wraps the loaders of ``anomalib.models`` and of the plugin's modules.

    ``in_progress`` counts the plugin's modules being imported, plus one while the entry points load.
    """

    def __init__(self) -> None:
        self.in_progress = 0

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        """``None`` for modules not watched; for the others the real spec, with a wrapped loader."""
        if fullname not in {_WATCHED, _PLUGIN} and not fullname.startswith(_PLUGIN + "."):
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec and finder is not self else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _WatchedLoader(spec.loader, self)
        return spec

    def module_done(self) -> None:
        """Load the entry points if ``anomalib.models`` is imported and no plugin module is half-imported."""
        if self.in_progress or _WATCHED not in sys.modules or self not in sys.meta_path:
            return
        self.in_progress += 1
        try:
            register_entry_points()
        finally:
            self.in_progress -= 1
            sys.meta_path.remove(self)

    def invalidate_caches(self) -> None:
        """Nothing cached (``importlib.invalidate_caches`` calls this on every finder that has it)."""


class _WatchedLoader:
    """Wraps the real ``loader`` of a watched module; tells the ``watcher`` when the module has run."""

    def __init__(self, loader: object, watcher: _ImportWatcher) -> None:
        self._loader = loader
        self._watcher = watcher

    def create_module(self, spec: object) -> object:
        """The real loader's module (``None``: the import system's default module)."""
        create_module = getattr(self._loader, "create_module", None)
        return create_module(spec) if create_module is not None else None

    def exec_module(self, module: object) -> None:
        """Run the real loader, then give the watcher its chance to load the entry points."""
        counted = int(module.__name__ != _WATCHED)
        self._watcher.in_progress += counted
        try:
            self._loader.exec_module(module)
        finally:
            self._watcher.in_progress -= counted
        # The import system binds a module on its parent only after this returns; plugins that
        # ``import anomalib.models`` while the entry points load need the binding now.
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        self._watcher.module_done()

    def __getattr__(self, name: str) -> object:
        # Keeps get_source, is_package, get_resource_reader, ... of the real loader working.
        return getattr(self._loader, name)


def install() -> None:
    """Install the watcher unless disabled or ``anomalib.models`` is already imported."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return
    if _WATCHED in sys.modules:
        register_entry_points()
        return
    if not any(type(finder).__name__ == _ImportWatcher.__name__ for finder in sys.meta_path):
        sys.meta_path.insert(0, _ImportWatcher())


install()
