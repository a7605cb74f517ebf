"""``anomalib-glocalclip benchmark``: GlocalCLIP, AnoCLIP, WinCLIP (any Anomalib model) on the same data, one table.

Anomalib's benchmark machinery (``Pipeline``, runners, job generator) with the plugin's job (README "Deploy and
compare" says why): each model entry has its own init args, any class path works, and a job that fails is a row
with its error. Writes ``results.csv`` (one row per model x category, then a ``mean`` row per model) and
``results.md`` (main columns) and ``benchmark.log``. Metrics are on Anomalib's normalised scores, as
``anomalib test`` reports them. Exit status: 0 when every job succeeded, 1 when some failed (the table is written
either way), 2 when the config is unusable (checked before the first job).

Config (the layout of ``anomalib benchmark``'s; any key ending in ``grid`` is expanded, all combinations)::

    accelerator: auto                   # (default) cuda if there is a GPU, else cpu; or a list: [cpu, cuda]
    output_dir: results/zero_shot       # optional; --output_dir overrides; default runs/benchmark/<date-time>
    benchmark:
      seed: 42
      model:
        grid:                           # one entry per model, each with its own init args
          - class_path: GlocalCLIP
            init_args:
              prompt_weights: prompts/visa.pt
          - class_path: AnoCLIP
            init_args:
              image_score_views: none
          - class_path: WinClip
      data:
        class_path: MVTecAD
        init_args:
          root: ./datasets/MVTecAD
          category:
            grid: [bottle, cable]

``model`` may also be Anomalib's form ``model: {class_path: {grid: [GlocalCLIP, AnoCLIP, WinClip]}}``. Class
paths are short names, ``anomalib.models.*`` or ``anomalib_glocalclip.*`` paths; a model entry may set ``name``
to tell two entries of one class apart. Every model gets the plugin's evaluator and no visualizer.

Example:
    anomalib-glocalclip benchmark --config configs/benchmark_zero_shot.yaml --output_dir results/bench
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The options of ``anomalib-glocalclip benchmark`` (the config layout is in the epilog)."""
    parser = argparse.ArgumentParser(
        prog="anomalib-glocalclip benchmark",
        description="Benchmark GlocalCLIP, AnoCLIP, WinCLIP and other Anomalib models; write one results table.",
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="benchmark YAML (layout below)")
    parser.add_argument("--output_dir", type=Path, default=None, help="results folder (default: runs/benchmark/...)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``anomalib-glocalclip benchmark --config FILE [--output_dir DIR]``; return the exit status."""
    arguments = build_parser().parse_args(argv)
    import yaml

    from anomalib_glocalclip.comparison import STATUS_FAILED, ZeroShotBenchmark

    benchmark = ZeroShotBenchmark(output_dir=arguments.output_dir)
    try:
        table = benchmark.run(argparse.Namespace(config=arguments.config))
    except (OSError, TypeError, ValueError, yaml.YAMLError) as error:  # the config, not a job (jobs never raise)
        print(f"anomalib-glocalclip benchmark: error: {error}", file=sys.stderr)
        return 2
    csv_path, markdown_path = benchmark.written
    print(f"Results: {csv_path}\n         {markdown_path}")
    failed = table[table["status"] == STATUS_FAILED]  # job rows only: mean rows read "k/n ok"
    for _, row in failed.iterrows():
        print(f"FAILED {row['model']} / {row['category']}: {row['error']}")
    return 1 if len(failed) else 0
