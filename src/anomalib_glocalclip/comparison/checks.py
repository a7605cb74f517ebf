"""Checks of a benchmark config's inputs, run before its first job: one clear error listing every problem.

A typo in a class name, a prompt file not trained yet or a missing dataset root stops the benchmark at once
instead of surfacing as failed rows hours later. Problems that only show when a model is built (weights offline,
a wrong init arg) still fail their job only.
"""

from __future__ import annotations

from pathlib import Path

from anomalib.pipelines.components.utils import get_iterator_from_grid_dict

from anomalib_glocalclip.utils.model_config import ClassSpec, normalise_spec, resolve_class_path

PROMPT_HINT = (
    "train the prompts first (e.g. `anomalib train -c configs/glocalclip_visa_to_mvtec.yaml` writes them, see the "
    "README) or point `prompt_weights` at an existing prompts.pt / .ckpt"
)
DATA_PATH_KEYS = ("root",)
"""Data init args that name a folder that must exist before the benchmark starts."""


class BenchmarkConfigError(ValueError):
    """The benchmark config names a model, a file or a folder that does not exist; lists every such problem."""


def check_inputs(section: dict[str, object], config_path: str | Path | None = None) -> None:
    """Check every model and data entry of the ``benchmark`` section (``config_path`` is named in the error).

    Checked: each model's class path resolves, a model's ``prompt_weights`` file exists, the data's ``root`` exists.

    Raises:
        BenchmarkConfigError: one line per problem, each with its fix.
    """
    problems: list[str] = []
    for container in get_iterator_from_grid_dict(section):
        for problem in [*_model_problems(container["model"]), *_data_problems(container["data"])]:
            if problem not in problems:
                problems.append(problem)
    if problems:
        where = f" {config_path}" if config_path is not None else ""
        lines = "\n".join(f"  - {problem}" for problem in problems)
        msg = f"The benchmark config{where} cannot run; nothing was started:\n{lines}"
        raise BenchmarkConfigError(msg)


def _model_problems(spec: ClassSpec) -> list[str]:
    entry = normalise_spec(spec)
    problems = []
    try:
        resolve_class_path(entry["class_path"])
    except ImportError as error:  # Anomalib's UnknownModelError is an ImportError
        problems.append(f"model `{entry['class_path']}`: {error}")
    prompts = entry["init_args"].get("prompt_weights")
    if prompts and not Path(prompts).expanduser().is_file():
        problems.append(f"model `{entry['class_path']}`: prompt_weights file {prompts} does not exist: {PROMPT_HINT}.")
    return problems


def _data_problems(spec: ClassSpec) -> list[str]:
    entry = normalise_spec(spec)
    problems = []
    for key in DATA_PATH_KEYS:
        folder = entry["init_args"].get(key)
        if folder and not Path(folder).expanduser().exists():
            problems.append(
                f"data `{entry['class_path']}`: {key} {folder} does not exist: download or generate the dataset there, "
                f"or set `data.init_args.{key}` to its folder (relative paths start at the current folder, "
                f"{Path.cwd()})."
            )
    return problems
