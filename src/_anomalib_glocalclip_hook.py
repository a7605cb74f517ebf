"""Start-up hook that makes Anomalib see plugins registered under entry points.

Anomalib 2.7 has no plugin discovery: ``anomalib train --model GlocalCLIP`` resolves the short name only
if the class was imported before the CLI parses its arguments, and ``anomalib.models.get_model`` (used by
``anomalib benchmark``) only looks inside the ``anomalib.models`` namespace. This module is imported at
every interpreter start by ``anomalib_glocalclip_hook.pth``; it installs a one-shot import watcher and
does nothing else. When ``anomalib.models`` has finished importing, the watcher loads the entry points of
the groups ``anomalib.models`` and ``anomalib.data`` and sets each object on ``anomalib.models`` /
``anomalib.data`` under its entry-point name.

At start-up it imports nothing: ``sys`` and ``os`` are loaded by every interpreter before ``.pth`` files run,
and the finder and loader are plain classes that follow the import protocols (``find_spec``;
``create_module``/``exec_module``) instead of subclassing ``importlib.abc``, whose import pulls in some sixty
modules (``typing``, ``pathlib``, ``tempfile``, ...). ``importlib.metadata`` and ``warnings`` are imported only
once ``anomalib.models`` is. Set ``ANOMALIB_DISABLE_PLUGINS=1`` to turn it off.
"""

# No ``from __future__ import annotations``: ``__future__`` is a module a bare interpreter does not load.
import os
import sys

_WATCHED = "anomalib.models"
_GROUPS = {"anomalib.models": "anomalib.models", "anomalib.data": "anomalib.data"}
DISABLE_ENV = "ANOMALIB_DISABLE_PLUGINS"


def _is_initializing(module_name: str) -> bool:
    """True while ``module_name``, or one of its submodules, is half-way through its import or registration.

    A plugin whose import is cheap and which imports its models on demand sets ``REGISTERING_WITH_ANOMALIB``
    while doing so (``anomalib_glocalclip.register``). Like a circular import in progress (``import
    anomalib_glocalclip.anoclip`` imports ``anomalib.models`` before its classes exist), it then registers
    itself when it is done.
    """
    module = sys.modules.get(module_name)
    if getattr(module, "REGISTERING_WITH_ANOMALIB", False):
        return True
    prefix = module_name + "."
    for name, loaded in list(sys.modules.items()):
        if name == module_name or name.startswith(prefix):
            spec = getattr(loaded, "__spec__", None)
            if getattr(spec, "_initializing", False):
                return True
    return False


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


class _RegisteringLoader:
    """Wraps the real loader of ``anomalib.models`` and registers plugins once it has run.

    Args:
        loader: the loader the import system found for ``anomalib.models``.
    """

    def __init__(self, loader: object) -> None:
        self._loader = loader

    def create_module(self, spec: object) -> object:
        """The real loader's module (``None``: the import system's default module)."""
        create_module = getattr(self._loader, "create_module", None)
        return create_module(spec) if create_module is not None else None

    def exec_module(self, module: object) -> None:
        """Run the real loader, bind ``anomalib.models`` on ``anomalib``, then register the plugins."""
        self._loader.exec_module(module)
        # The import system binds ``anomalib.models`` on its parent only after this returns; plugins that
        # ``import anomalib.models`` while we register need the binding now.
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        register_entry_points()

    def __getattr__(self, name: str) -> object:
        # Keeps get_source, is_package, get_resource_reader, ... of the real loader working.
        return getattr(self._loader, name)


class _AnomalibImportWatcher:
    """One-shot ``sys.meta_path`` finder: wraps the loader of ``anomalib.models`` and then removes itself."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        """``None`` for every module but ``anomalib.models``, whose spec gets a registering loader."""
        if fullname != _WATCHED:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec

    def invalidate_caches(self) -> None:
        """Nothing cached (``importlib.invalidate_caches`` calls this on every finder that has it)."""


def install() -> None:
    """Install the watcher unless disabled or ``anomalib.models`` is already imported."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return
    if _WATCHED in sys.modules:
        register_entry_points()
        return
    if not any(type(finder).__name__ == _AnomalibImportWatcher.__name__ for finder in sys.meta_path):
        sys.meta_path.insert(0, _AnomalibImportWatcher())


install()
