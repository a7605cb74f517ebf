"""``anomalib-glocalclip evaluate``: its options, and the command (which imports Anomalib only when it runs).

The sweep itself is :func:`anomalib_glocalclip.evaluation.evaluate` (``evaluation/sweep.py``).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from anomalib_glocalclip.data.catalogue import DATASETS

DATASET_HELP = f"dataset of the catalogue: {', '.join(DATASETS)} (aliases allowed)"
"""From the catalogue, which imports neither torch nor Anomalib (``--help`` answers at once)."""


def _key_value(text: str) -> tuple[str, object]:
    import yaml

    key, separator, value = text.partition("=")
    if not separator or not key:
        msg = f"expected KEY=VALUE, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    """The options of ``anomalib-glocalclip evaluate``."""
    parser = argparse.ArgumentParser(
        prog="anomalib-glocalclip evaluate",
        description="Test a model zero-shot on every category of a dataset and write the paper's tables "
        "(per category and mean, x100), with heatmaps. Reruns resume: finished categories are skipped.",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="glocalclip",
                       help="glocalclip (needs --prompts), anoclip, musc (the paper's preset for the dataset: RsCIN "
                       "k 1,8,9 on VisA, 1,2,3 elsewhere), or an Anomalib config file with a model: section, e.g. "
                       "configs/musc_visa.yaml")
    model.add_argument("--prompts", default=None, help="GlocalCLIP's learned prompt file (prompts.pt)")
    model.add_argument("--backbone", default=None, help="open_clip model name or config JSON (model default if unset)")
    model.add_argument("--pretrained", default=None,
                       help="open_clip pretrained tag or weight file; 'none' for random weights (tests only)")
    model.add_argument("--image-size", type=int, default=None, help="input size (model default if unset)")
    model.add_argument("--few-shot", type=int, default=0, metavar="K",
                       help="K normal train images per category as references (GlocalCLIP, AnoCLIP, MuSc; the same for "
                       "every model, seeded by category and --seed); default 0: zero-shot")
    model.add_argument("--model-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="further init argument of the model, value in YAML (e.g. sigma=8, tta=true); repeatable")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, help=DATASET_HELP)
    data.add_argument("--root", required=True, help="dataset root, in its official download layout")
    data.add_argument("--categories", nargs="+", default=None, help="categories to test (default: all found)")
    data.add_argument("--resize-masks", action="store_true", help="resize masks whose size differs from their "
                      "image's (default: such a category fails, naming both files)")
    data.add_argument("--batch-size", type=int, default=8, help="evaluation batch size")
    data.add_argument("--workers", type=int, default=4, help="dataloader workers")
    run = parser.add_argument_group("run")
    run.add_argument("--output", default=None, help="output folder (default: results/evaluate/<model>/<dataset>)")
    run.add_argument("--accelerator", default="auto", help="Lightning accelerator (auto, gpu, cpu)")
    run.add_argument("--devices", default="1", help="Lightning devices")
    run.add_argument("--seed", type=int, default=111, help="seed set before every category")
    run.add_argument("--no-heatmaps", action="store_true", help="do not write heatmaps")
    run.add_argument("--normalize-scores", action="store_true",
                     help="compute metrics on Anomalib's normalised scores (default: raw scores, as the paper)")
    run.add_argument("--overwrite", action="store_true", help="discard earlier results in --output and start over")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


# Hints written for ``anomalib test``/``fit`` (jsonargparse options), as this command spells them.
_HINT_OPTIONS = (
    ("--model.pretrained null", "--pretrained none"),
    ("--model.pretrained", "--pretrained"),
    ("--model.backbone", "--backbone"),
    ("--model.image_size", "--image-size"),
    ("--model.prompt_weights", "--prompts"),
)


def evaluate_hints(message: str) -> str:
    """``message`` with the options of Anomalib's CLI replaced by this command's (``--pretrained none`` ...)."""
    for anomalib_option, own_option in _HINT_OPTIONS:
        message = message.replace(anomalib_option, own_option)
    return message


def _model_args(args: argparse.Namespace) -> dict[str, object]:
    model_args: dict[str, object] = dict(args.model_arg)
    if args.prompts is not None:
        model_args["prompt_weights"] = args.prompts
    if args.backbone is not None:
        model_args["backbone"] = args.backbone
    if args.pretrained is not None:
        model_args["pretrained"] = None if args.pretrained.lower() in {"none", "null"} else args.pretrained
    if args.image_size is not None:
        model_args["image_size"] = args.image_size
    return model_args


def main(argv: Sequence[str]) -> int:
    """``anomalib-glocalclip evaluate``: 0 if every category succeeded, 1 if some failed, 2 on a setup error.

    Stopped by SIGINT or SIGTERM: 130 or 143 (``128 + signal``), after the tables of the finished categories.
    """
    parser = build_parser()
    args = parser.parse_args(list(argv))
    model = args.model
    if model.lower() == "glocalclip" and args.prompts is None:
        parser.error("--model glocalclip is evaluated with learned prompts: pass --prompts prompts.pt")
    if model.lower() == "musc" and args.normalize_scores:
        parser.error("--normalize-scores does not apply to --model musc: its scores are relative to each set and its "
                     "post-processor normalises nothing")
    from anomalib_glocalclip.data.catalogue import get_dataset
    from anomalib_glocalclip.evaluation.stopping import SweepStopped
    from anomalib_glocalclip.evaluation.sweep import DEFAULT_OUTPUT, LOG_FILE, evaluate, is_config, quiet_lightning

    label = Path(model).stem if is_config(model) else model.lower()
    if args.few_shot < 0:
        parser.error(f"--few-shot must be 0 (zero-shot) or a number of reference images, got {args.few_shot}")
    if args.few_shot:
        label = f"{label}_{args.few_shot}shot"
    devices: int | str = int(args.devices) if args.devices.isdigit() else args.devices
    try:
        output = Path(args.output) if args.output else DEFAULT_OUTPUT / label / get_dataset(args.dataset).name
        with quiet_lightning():
            table = evaluate(
                model, args.dataset, args.root, categories=args.categories, output=output,
                model_args=_model_args(args), accelerator=args.accelerator, devices=devices,
                batch_size=args.batch_size, num_workers=args.workers, heatmaps=not args.no_heatmaps,
                normalize=args.normalize_scores, resize_masks=args.resize_masks, overwrite=args.overwrite,
                seed=args.seed, progress=not args.no_progress, few_shot=args.few_shot,
            )
    except (ValueError, TypeError, OSError, ImportError) as error:  # setup errors: the model, the data, the folder
        print(f"anomalib-glocalclip evaluate: error: {evaluate_hints(str(error))}", file=sys.stderr)
        return 2
    except SweepStopped as stopped:
        print(f"anomalib-glocalclip evaluate: {stopped}; finished categories are in {output / 'results.csv'}, "
              "rerun the same command to do the rest.", file=sys.stderr)
        return stopped.exit_status
    print((output / "results.md").read_text(encoding="utf-8"))
    print(f"Results: {output / 'results.csv'}, {output / 'results.md'}, {output / 'metrics.csv'}, "
          f"{output / 'report.html'}")
    failed = table.attrs.get("failed", [])
    if failed:
        print(f"{len(failed)} categories failed: {', '.join(failed)} (see {output / LOG_FILE})", file=sys.stderr)
        return 1
    return 0
