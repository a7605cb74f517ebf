"""The runtime dependencies declared in pyproject.toml are exactly the third-party packages ``src`` imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# distribution name -> import name, where they differ
IMPORT_NAMES = {
    "open-clip-torch": "open_clip",
    "huggingface-hub": "huggingface_hub",
    "pillow": "PIL",
    "pyyaml": "yaml",
    "opencv-python-headless": "cv2",
}


def imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_runtime_dependencies_equal_imports() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    declared_modules = {IMPORT_NAMES.get(name, name) for name in declared}
    app_extra = {re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()
                 for requirement in project["optional-dependencies"]["app"]}
    own = {"anomalib_glocalclip", "_anomalib_glocalclip_hook", "__future__"}
    third_party = imported_top_level_modules() - set(sys.stdlib_module_names) - own
    # The page's Gradio is the app extra's: only `anomalib-glocalclip app` needs it (and says how to install it).
    assert declared_modules == third_party - app_extra
    assert app_extra == {"gradio"} <= third_party
