"""The plugin is found by Anomalib right after ``pip install``, with nothing imported by the user."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

PRINT_REGISTERED = (
    "import anomalib.models as m, anomalib.data as d;"
    "print(m.GlocalCLIP.__module__, m.AnoCLIP.__name__, d.AuxiliaryTransfer.__name__, d.HeadCT.__name__)"
)


def test_interpreter_start_imports_neither_torch_nor_anomalib(cli) -> None:
    code = (
        "import sys; print(sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'torch', 'anomalib', 'anomalib_glocalclip'})); print('_anomalib_glocalclip_hook' in sys.modules)"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def _nested_imports(importtime_log: str, module: str) -> list[str] | None:
    """Modules imported while ``module`` was imported, from ``python -X importtime`` output (``None``: not imported).

    ``-X importtime`` prints a module after the modules its import pulled in, each indented one level deeper.
    """
    rows = []
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and line.count("|") == 2 and "cumulative" not in line:
            name_field = line.rsplit("|", 1)[1]
            rows.append((len(name_field) - len(name_field.lstrip()), name_field.strip()))
    for index, (depth, name) in enumerate(rows):
        if name == module:
            nested = []
            for child_depth, child in reversed(rows[:index]):
                if child_depth <= depth:
                    break
                nested.append(child)
            return nested
    return None


@pytest.mark.parametrize("disabled", ["", "1"])
def test_start_up_hook_imports_nothing(cli, disabled: str) -> None:
    result = cli("python", "-X", "importtime", "-c", "pass", env={"ANOMALIB_DISABLE_PLUGINS": disabled})
    assert result.returncode == 0, result.stderr
    assert _nested_imports(result.stderr, "_anomalib_glocalclip_hook") == []


def test_start_up_hook_adds_no_module_to_a_bare_interpreter(cli) -> None:
    import _anomalib_glocalclip_hook

    folder = str(Path(_anomalib_glocalclip_hook.__file__).parent)
    # -S: no site, no .pth files; sys and os are what the hook may rely on (site has always loaded them).
    code = (
        f"import sys, os; sys.path.insert(0, {folder!r}); before = set(sys.modules);"
        "import _anomalib_glocalclip_hook; print(sorted(set(sys.modules) - before))"
    )
    result = cli("python", "-S", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['_anomalib_glocalclip_hook']"


def test_importtime_parser_sees_nested_imports() -> None:
    log = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:        10 |         10 |     child\n"
        "import time:        20 |         30 |   parent\n"
        "import time:         5 |          5 |   sibling\n"
    )
    assert _nested_imports(log, "parent") == ["child"]
    assert _nested_imports(log, "sibling") == []
    assert _nested_imports(log, "missing") is None


@pytest.mark.slow
def test_anomalib_models_import_registers_models_and_datamodules(cli) -> None:
    result = cli("python", "-c", PRINT_REGISTERED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "anomalib_glocalclip.glocalclip.lightning_model", "AnoCLIP", "AuxiliaryTransfer", "HeadCT"
    ]
    assert "failed to load" not in result.stderr


@pytest.mark.slow
def test_importing_the_plugin_first_has_no_circular_import_trouble(cli) -> None:
    result = cli("python", "-c", "import anomalib_glocalclip;" + PRINT_REGISTERED)
    assert result.returncode == 0, result.stderr
    assert "failed to load" not in result.stderr


@pytest.mark.slow
def test_get_model_and_benchmark_style_specs_resolve(cli, tiny_config) -> None:
    code = (
        "from anomalib.models import get_model;"
        f"kw = dict(backbone={str(tiny_config)!r}, pretrained=None, image_size=64);"
        "print(type(get_model('GlocalCLIP', **kw)).__name__);"
        "print(type(get_model('glocalclip', **kw)).__name__);"
        "print(type(get_model({'class_path': 'GlocalCLIP', 'init_args': kw})).__name__);"
        "print(type(get_model({'class_path': 'anomalib.models.AnoCLIP', 'init_args': kw})).__name__)"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["GlocalCLIP", "GlocalCLIP", "GlocalCLIP", "AnoCLIP"]


@pytest.mark.slow
def test_environment_switch_turns_the_hook_off(cli) -> None:
    code = "import anomalib.models as m; print(hasattr(m, 'GlocalCLIP'))"
    result = cli("python", "-c", code, env={"ANOMALIB_DISABLE_PLUGINS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.slow
def test_cli_resolves_short_names(cli) -> None:
    result = cli("anomalib", "train", "--model", "GlocalCLIP", "--data", "AuxiliaryTransfer",
                     "--data.auxiliary", "[{layout: visa, root: ./visa}]", "--print_config")
    assert result.returncode == 0, result.stderr
    assert "class_path: anomalib_glocalclip.GlocalCLIP" in result.stdout
    assert "class_path: anomalib_glocalclip.AuxiliaryTransfer" in result.stdout


def test_anomalib_commands_get_their_arguments_without_touching_sys_argv(monkeypatch, capsys) -> None:
    import sys

    from anomalib_glocalclip.cli import main

    monkeypatch.setattr(sys, "argv", ["anomalib-glocalclip"])
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "GlocalCLIP", "--data", "AuxiliaryTransfer",
              "--data.auxiliary", "[{layout: visa, root: ./visa}]", "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: anomalib_glocalclip.GlocalCLIP" in capsys.readouterr().out
    assert sys.argv == ["anomalib-glocalclip"]


def test_console_script_lists_plugin_and_anomalib_commands(cli) -> None:
    result = cli("anomalib-glocalclip", "--help")
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
    assert "train, fit, validate, test, predict, export" in result.stdout


COMMANDS = {"top": [], "evaluate": ["evaluate"], "benchmark": ["benchmark"], "demo": ["demo"]}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_help_imports_neither_torch_nor_anomalib(cli, command: list[str]) -> None:
    code = (
        "import sys\n"
        "from anomalib_glocalclip.cli import main\n"
        f"try:\n    main({[*command, '--help']!r})\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "print('HEAVY', sorted(name for name in ('torch', 'anomalib', 'lightning') if name in sys.modules))\n"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert "usage: anomalib-glocalclip" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def _pyproject_entry_points(group: str) -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    with (REPOSITORY / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["entry-points"][group]


def _load(value: str) -> object:
    module_name, _, attribute = value.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def test_pyproject_entry_points_are_the_models_and_the_catalogues_datamodules() -> None:
    from anomalib_glocalclip.data.catalogue import PLUGIN_DATAMODULE_NAMES
    from anomalib_glocalclip.data.datamodules import DATAMODULES

    models = _pyproject_entry_points("anomalib.models")
    datamodules = _pyproject_entry_points("anomalib.data")
    assert set(models) == {"GlocalCLIP", "AnoCLIP", "MuSc"}
    assert list(datamodules) == ["AuxiliaryTransfer", "LayoutDataModule", *PLUGIN_DATAMODULE_NAMES]
    assert [_load(value) for value in datamodules.values()] == list(DATAMODULES)
    for name, value in {**models, **datamodules}.items():
        loaded = _load(value)
        assert loaded.__name__ == name
        assert loaded.__module__ == value.partition(":")[0]  # the defining module, not a package's re-export


@pytest.mark.slow
def test_building_the_models_leaves_the_excepthook_alone(cli, tiny_config) -> None:
    code = (
        "import sys; hook = sys.excepthook\n"
        "from anomalib_glocalclip import AnoCLIP, GlocalCLIP\n"
        f"kw = dict(backbone={str(tiny_config)!r}, pretrained=None, image_size=64)\n"
        "GlocalCLIP(**kw); AnoCLIP(**kw)\n"
        "assert sys.excepthook is hook\n"
        "print('same hook')\n"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["same", "hook"]


def test_no_module_of_the_package_imports_the_package_root() -> None:
    import ast

    package = REPOSITORY / "src" / "anomalib_glocalclip"
    importers = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            if "anomalib_glocalclip" in names:
                importers.append(str(path.relative_to(package)))
    assert importers == []


def test_evaluate_help_names_every_registered_dataset() -> None:
    from anomalib_glocalclip.cli.evaluate import DATASET_HELP
    from anomalib_glocalclip.data.catalogue import DATASETS

    assert [name for name in DATASETS if name not in DATASET_HELP] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "first_import",
    [
        "from anomalib_glocalclip.anoclip import AnoCLIP",
        "from anomalib_glocalclip.glocalclip import GlocalCLIP",
        "from anomalib_glocalclip.data.catalogue import DATASETS",
        "from anomalib_glocalclip.components import ZeroShotCLIPMixin",
    ],
)
def test_importing_a_subpackage_first_registers_everything_without_warnings(cli, first_import: str) -> None:
    # The subpackage's import is what imports anomalib.models: the start-up hook loads the entry points once that
    # import has finished, not while the subpackage is half-imported.
    code = (
        f"{first_import}\n"
        "import anomalib.data, anomalib.models\n"
        "print(all(hasattr(anomalib.models, n) for n in ('GlocalCLIP', 'AnoCLIP')), hasattr(anomalib.data, 'BTAD'))"
    )
    result = cli("python", "-W", "error::UserWarning:_anomalib_glocalclip_hook", "-c", code)
    assert result.returncode == 0, result.stderr
    assert "failed to load" not in result.stderr
    assert result.stdout.split() == ["True", "True"]
