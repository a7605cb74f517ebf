"""The ``anomalib-glocalclip`` command: Anomalib's CLI with the plugin loaded, plus the plugin's own commands.

``anomalib-glocalclip train|fit|validate|test|predict|export|...`` behaves exactly like ``anomalib ...``
(it *is* Anomalib's CLI), with GlocalCLIP, AnoCLIP and the plugin's datamodules registered whether or
not the start-up hook is active. The plugin adds its own commands, listed by ``anomalib-glocalclip --help``.

The parsers of the plugin's commands (one module each) import neither torch nor Anomalib: ``--help`` answers
at once, and the heavy imports happen inside the command functions. A plugin error (``utils.errors.PluginError``)
ends a command with one ``Error: <message>`` and exit status 1, through :func:`main` only: nothing changes
the interpreter's exception hook.
"""

import importlib
import sys
from collections.abc import Sequence

from anomalib_glocalclip.utils.errors import plugin_error_message, traceback_requested

# name -> (module with a ``main(argv) -> int``, one-line help)
PLUGIN_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("anomalib_glocalclip.cli.demo", "offline demo: learn prompts on generated data, test zero-shot"),
    "evaluate": ("anomalib_glocalclip.cli.evaluate", "zero-shot sweep over a dataset's categories, paper tables"),
    "benchmark": (
        "anomalib_glocalclip.cli.benchmark",
        "GlocalCLIP, AnoCLIP, WinCLIP on the same data: one results table",
    ),
    "app": ("anomalib_glocalclip.cli.app", "local web page: drop images, see heatmaps, scores, decisions"),
}


def _usage() -> str:
    own = "\n".join(f"  {name:<10} {help_text}" for name, (_, help_text) in PLUGIN_COMMANDS.items())
    return (
        "usage: anomalib-glocalclip <command> [options]\n\n"
        f"Plugin commands:\n{own}\n\n"
        "Anomalib commands (same as `anomalib <command>`, with the plugin loaded):\n"
        "  train, fit, validate, test, predict, export, install, ...   see `anomalib-glocalclip <command> --help`\n"
    )


def run_anomalib_cli(argv: Sequence[str]) -> None:
    """Run Anomalib's own CLI on ``argv`` after registering the plugin.

    Args:
        argv: the arguments after ``anomalib-glocalclip`` (``train --model GlocalCLIP ...``).
    """
    from anomalib.cli import AnomalibCLI
    from anomalib.loggers import configure_logger

    from anomalib_glocalclip.registry import register_with_anomalib

    register_with_anomalib()
    configure_logger()  # as ``anomalib.cli.main`` does before building its CLI
    AnomalibCLI(args=list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anomalib-glocalclip``: a plugin error ends it with ``Error: <message>`` and status 1.

    Other errors, and plugin errors with ``ANOMALIB_GLOCALCLIP_TRACEBACK=1``, end with their traceback.

    Args:
        argv: the command line without the program name. Defaults to ``sys.argv[1:]``.

    Returns:
        The exit status.
    """
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Exception as error:
        message = None if traceback_requested() else plugin_error_message(error)
        if message is None:
            raise
        print(f"Error: {message}", file=sys.stderr)
        return 1


def run(argv: Sequence[str]) -> int:
    """Run one command of ``anomalib-glocalclip``; errors propagate.

    Args:
        argv: the command line without the program name.

    Returns:
        The exit status.
    """
    argv = list(argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] in PLUGIN_COMMANDS:
        module = importlib.import_module(PLUGIN_COMMANDS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    run_anomalib_cli(argv)
    return 0
