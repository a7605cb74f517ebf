r"""GlocalCLIP in Python: learn prompts on an auxiliary dataset, then test and predict zero-shot on a target.

    python examples/glocalclip_learn_and_test.py                                   # generated data, tiny CLIP
    python examples/glocalclip_learn_and_test.py --visa ./datasets/visa --mvtec ./datasets/MVTecAD \\
        --weights ~/.cache/clip/ViT-L-14-336px.pt                                   # the paper's VisA -> MVTec AD

Without dataset folders it generates small VisA- and MVTec-like sets; without ``--weights`` it uses the tiny random
CLIP ``tiny-clip`` (the pipeline runs, the scores mean nothing). It prints the metrics once (on Anomalib's
normalised scores, as ``anomalib test``) and the full path of every file it writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anomalib.data import MVTecAD
from anomalib.engine import Engine

from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.demo.datasets import generate_mvtec_ad, generate_visa

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--visa", type=Path, help="VisA as downloaded (auxiliary data)")
parser.add_argument("--mvtec", type=Path, help="MVTec AD as extracted (target)")
parser.add_argument("--weights", help="OpenAI ViT-L-14-336px.pt (or another local CLIP weight file)")
parser.add_argument("--category", default="bottle")
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--workdir", type=Path, default=Path("results/example_glocalclip"))
args = parser.parse_args()
args.workdir = args.workdir.resolve()  # printed paths open from any folder

visa = args.visa or generate_visa(args.workdir / "data" / "visa", categories=("candle", "pcb1"))
mvtec = args.mvtec or generate_mvtec_ad(args.workdir / "data" / "mvtec", categories=(args.category,), seed=3)
if args.weights:
    backbone = {"backbone": "ViT-L-14-336", "pretrained": args.weights, "image_size": 518, "preset": "visa_to_mvtec"}
else:
    backbone = {"backbone": "tiny-clip", "pretrained": None, "image_size": 64, "sigma": 1.0}

# 1. Learn the prompts (one-class fit on the auxiliary data; thresholds from the target's validation split).
learner = GlocalCLIP(**backbone)
datamodule = AuxiliaryTransfer(
    auxiliary=AuxiliarySource("visa", str(visa)),
    target=MVTecAD(root=mvtec, category=args.category),
    num_workers=0,
)
Engine(default_root_dir=args.workdir / "train", max_epochs=args.epochs).fit(learner, datamodule=datamodule)
prompts = learner.prompt_file_path()
print(f"Learned prompts: {prompts}")

# 2. Zero-shot: a fresh model from the prompt file, tested on the target (validation first, then test).
backbone.pop("preset", None)  # the prompt file carries its sizes
model = GlocalCLIP(**backbone, prompt_weights=str(prompts))
engine = Engine(default_root_dir=args.workdir / "zero_shot")
datamodule = MVTecAD(root=mvtec, category=args.category, num_workers=0)
metrics = engine.test(model, datamodule=datamodule, verbose=False)[0]
print("Zero-shot metrics (on Anomalib's normalised scores, as `anomalib test`):")
print({name: round(value, 3) for name, value in metrics.items()})
print(f"Heatmaps: {Path(engine.trainer.default_root_dir) / 'images'}")

# 3. Predict on a folder of images: heatmaps under <run>/images, labels in <run>/predictions.csv.
predictions = engine.predict(model, data_path=Path(mvtec) / args.category / "test", return_predictions=True)
for batch in predictions or []:
    for path, score, label in zip(batch.image_path, batch.pred_score.tolist(), batch.pred_label.tolist(), strict=True):
        print(f"{Path(path).resolve()}: score {score:.3f}, anomalous {bool(label)}")
print(f"Predictions: {Path(engine.trainer.default_root_dir) / 'predictions.csv'}")
