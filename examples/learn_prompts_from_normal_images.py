r"""GlocalCLIP from your own normal images: learn prompts on synthetic anomalies, then test zero-shot on real ones.

    python examples/learn_prompts_from_normal_images.py                          # generated data, tiny CLIP
    python examples/learn_prompts_from_normal_images.py --normal-images ./my_good_images \\
        --test-images ./my_test_images --weights ~/.cache/clip/ViT-L-14-336px.pt

``--normal-images`` is a flat folder of good images of your product; they receive synthetic (Perlin) anomalies
with masks, drawn once per seed and stored in ``~/.cache/anomalib_glocalclip/synthetic``. ``--test-images`` holds
``good/``, ``bad/`` and optionally ``masks/`` (named like the images in ``bad/``). Without folders the script
generates small ones; without ``--weights`` it uses the tiny random CLIP ``tiny-clip`` (the pipeline runs, the
scores mean nothing). Metrics are on Anomalib's normalised scores, as ``anomalib test`` reports them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anomalib.data import Folder
from anomalib.engine import Engine

from anomalib_glocalclip import AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.data import SyntheticSource
from anomalib_glocalclip.testing import generate_folder, generate_normal_folder

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--normal-images", type=Path, help="folder of good images of your product (training)")
parser.add_argument("--test-images", type=Path, help="folder with good/, bad/ and optionally masks/ (testing)")
parser.add_argument("--anomaly-source-path", help="folder of textures filling the anomalies (e.g. DTD), optional")
parser.add_argument("--regenerate", choices=("once", "epoch"), default="once", help="new anomalies every epoch?")
parser.add_argument("--weights", help="OpenAI ViT-L-14-336px.pt (or another local CLIP weight file)")
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--workdir", type=Path, default=Path("results/example_normal_images"))
parser.add_argument("--accelerator", default="auto")
args = parser.parse_args()
args.workdir = args.workdir.resolve()  # printed paths open from any folder

normal_images = args.normal_images or generate_normal_folder(args.workdir / "data" / "good", n=16, category="bottle")
test_images = args.test_images or generate_folder(args.workdir / "data" / "test", n_good=6, n_bad=6,
                                                  defects=("scratch",), category="bottle", seed=1)
if args.weights:
    backbone = {"backbone": "ViT-L-14-336", "pretrained": args.weights, "image_size": 518}
else:
    backbone = {"backbone": "tiny-clip", "pretrained": None, "image_size": 64, "sigma": 1.0}


def target() -> Folder:
    """The real test images; every good image is tested (``normal_test_dir``), half of the split validates."""
    has_masks = (Path(test_images) / "masks").is_dir()
    return Folder(name="my_product", root=test_images, normal_dir="good", normal_test_dir="good",
                  abnormal_dir="bad", mask_dir="masks" if has_masks else None, num_workers=0)


# 1. Learn the prompts on the normal images plus synthetic anomalies (thresholds from the target's validation).
learner = GlocalCLIP(**backbone)
datamodule = AuxiliaryTransfer(
    synthetic=SyntheticSource(root=str(normal_images), anomaly_source_path=args.anomaly_source_path,
                              regenerate=args.regenerate, seed=0),
    target=target(),
    num_workers=0,
)
engine = Engine(default_root_dir=args.workdir / "train", max_epochs=args.epochs, accelerator=args.accelerator)
engine.fit(learner, datamodule=datamodule)
prompts = learner.prompt_file_path()
print(f"Learned prompts: {prompts}")

# 2. Zero-shot: a fresh model from the prompt file, tested on the real test images.
model = GlocalCLIP(**backbone, prompt_weights=str(prompts))
test_engine = Engine(default_root_dir=args.workdir / "zero_shot", accelerator=args.accelerator)
metrics = test_engine.test(model, datamodule=target(), verbose=False)[0]
print("Zero-shot metrics (on Anomalib's normalised scores, as `anomalib test`):")
print({name: round(value, 3) for name, value in metrics.items()})
print(f"Heatmaps: {Path(test_engine.trainer.default_root_dir) / 'images'}")
