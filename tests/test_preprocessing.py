"""The ``preprocessing`` choice: each model's reference PIL resize against PIL itself, and its plumbing.

GlocalCLIP's reference resizes images with PIL's bicubic, AnoCLIP's (hq-deng/AnoVL) with PIL's bilinear; both
resize masks bilinear, then ``> 0.5``. PIL is the reference: images are generated with sharp edges (0/255
blocks) and noise, where a float resize overshoots and PIL's 8-bit rounding between its passes matters. The
references ran Pillow 10.4 (GlocalCLIP) and 9.2 (AnoCLIP), which always resize the width first; Pillow 13
resizes the height first when it shrinks much more than the width. So the reference's result is PIL's
width-only resize followed by PIL's height-only resize (each one pass, the same in every Pillow version), and
the full ``Image.resize`` is compared only where both orders agree on the order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode, Normalize, Resize

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from anomalib_glocalclip.components import clip_pre_processor
from anomalib_glocalclip.components.pre_processor import CLIPPreProcessor
from anomalib_glocalclip.components.reference_resize import (
    ReferenceResize,
    pil_coefficients,
    pil_resize,
    pil_resize_dense,
)

# (input h, w) -> (output H, W): downscales by integer and odd factors, upscales, one axis only, tiny inputs.
SIZE_PAIRS = [
    ((100, 130), (37, 37)),
    ((96, 64), (48, 32)),
    ((40, 30), (97, 64)),
    ((64, 64), (64, 33)),
    ((64, 64), (29, 64)),
    ((333, 257), (224, 224)),
    ((9, 7), (50, 50)),
    ((1, 1), (5, 5)),
]


def sharp_image(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    """``[h, w, C]`` uint8: 3-pixel black/white blocks, a fifth of the pixels replaced by noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 2, size=(height // 3 + 1, width // 3 + 1, channels)) * 255
    image = np.repeat(np.repeat(blocks, 3, axis=0), 3, axis=1)[:height, :width]
    noise = rng.integers(0, 256, size=(height, width, channels))
    return np.where(rng.random((height, width, 1)) < 0.2, noise, image).astype(np.uint8)


def pil_resized(image: np.ndarray, size: tuple[int, int], resample: int, width_first: bool = True) -> np.ndarray:
    """``[C, H, W]`` int: PIL's resize of an ``[h, w, C]`` uint8 image, as the reference's Pillow 10.4 does it.

    ``width_first``: two single-axis PIL resizes, width then height (Pillow <= 12's order); ``False``: one
    ``Image.resize`` call of the installed Pillow.
    """
    pil_image = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    if width_first:
        pil_image = pil_image.resize((size[1], image.shape[0]), resample)
    resized = pil_image.resize(size[::-1], resample)
    return np.asarray(resized).reshape(size[0], size[1], -1).transpose(2, 0, 1).astype(np.int64)


def pil_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[C, H, W]`` int: the reference's PIL bicubic resize of an ``[h, w, C]`` uint8 image."""
    return pil_resized(image, size, Image.BICUBIC)


def as_float_image(image: np.ndarray) -> torch.Tensor:
    """``[C, h, w]`` float in ``[0, 1]``, as Anomalib's datasets decode 8-bit images."""
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0


@pytest.mark.parametrize(("in_size", "out_size"), SIZE_PAIRS)
def test_pil_resize_is_pils_bicubic(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    image = sharp_image(*in_size, seed=sum(in_size))
    ours = pil_resize(torch.from_numpy(image).permute(2, 0, 1), out_size)
    assert np.array_equal(ours.numpy().astype(np.int64), pil_bicubic(image, out_size))


@pytest.mark.parametrize(("in_size", "out_size"), [((100, 130), (37, 37)), ((40, 30), (97, 64)), ((64, 64), (29, 64))])
def test_pil_resize_is_a_single_pil_call_where_pillow_versions_agree(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
) -> None:
    """Where the height shrinks no more than the width, every Pillow resizes the width first."""
    image = sharp_image(*in_size, seed=sum(in_size) + 2)
    ours = pil_resize(torch.from_numpy(image).permute(2, 0, 1), out_size)
    expected = pil_resized(image, out_size, Image.BICUBIC, width_first=False)
    assert np.array_equal(ours.numpy().astype(np.int64), expected)


@pytest.mark.parametrize(("in_size", "out_size"), SIZE_PAIRS)
def test_pil_resize_is_pils_bilinear(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    image = sharp_image(*in_size, seed=sum(in_size))
    ours = pil_resize(torch.from_numpy(image).permute(2, 0, 1), out_size, "bilinear")
    assert np.array_equal(ours.numpy().astype(np.int64), pil_resized(image, out_size, Image.BILINEAR))


@pytest.mark.parametrize("filter_name", ["bicubic", "bilinear"])
@pytest.mark.parametrize(("in_size", "out_size"), SIZE_PAIRS)
def test_dense_resize_is_within_one_grey_level(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    filter_name: str,
) -> None:
    image = sharp_image(*in_size, seed=sum(in_size) + 1)
    ours = pil_resize_dense(torch.from_numpy(image).permute(2, 0, 1), out_size, filter_name).numpy()
    resample = Image.BICUBIC if filter_name == "bicubic" else Image.BILINEAR
    difference = np.abs(ours - pil_resized(image, out_size, resample))
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.99


def test_fixed_point_coefficients_by_hand() -> None:
    # 4 -> 2 pixels: scale 2 stretches the bicubic (support 2) to 4; output 0 is centred at 1.0, so inputs 0..3
    # sit at (pos + 0.5 - 1) / 2 = -0.25, 0.25, 0.75, 1.25. With a = -0.5: 1.5x^3 - 2.5x^2 + 1 below 1,
    # -0.5x^3 + 2.5x^2 - 4x + 2 from 1 to 2.
    taps = [0.8671875, 0.8671875, 0.2265625, -0.0703125]
    expected = [int(np.sign(tap) * np.floor(abs(tap / sum(taps)) * 2**22 + 0.5)) for tap in taps]
    coefficients = pil_coefficients(4, 2, "bicubic")
    assert coefficients[0].tolist() == expected
    assert coefficients[1].tolist() == expected[::-1]  # output 1 mirrors output 0
    # Bilinear 4 -> 2 (support 2): |x| = 0.25, 0.25, 0.75, 1.25 -> 0.75, 0.75, 0.25, 0 (sum 1.75).
    assert pil_coefficients(4, 2, "bilinear")[0].tolist() == [
        int(np.floor(value / 1.75 * 2**22 + 0.5)) for value in (0.75, 0.75, 0.25, 0.0)
    ]


def test_reference_resize_of_a_float_image_is_pil_over_255() -> None:
    image = sharp_image(70, 90, seed=5)
    resized = ReferenceResize((32, 48))(tv_tensors.Image(as_float_image(image)))
    assert isinstance(resized, tv_tensors.Image)
    assert resized.dtype == torch.float32
    assert torch.equal(torch.round(resized * 255).long(), torch.from_numpy(pil_bicubic(image, (32, 48))))


def test_torchvision_resize_is_what_the_reference_path_fixes() -> None:
    """The tensor resize is more than a grey level off PIL on these images (else the PIL tests prove little)."""
    image = sharp_image(100, 130, seed=2)
    tensor_resize = Resize((37, 37), antialias=True, interpolation=Image.BICUBIC)(as_float_image(image))
    difference = (tensor_resize.clamp(0, 1) * 255 - torch.from_numpy(pil_bicubic(image, (37, 37)))).abs()
    assert difference.max() > 5


MASK_SIZE_PAIRS = [((100, 130), (37, 37)), ((40, 30), (97, 64)), ((333, 257), (224, 224))]


@pytest.mark.parametrize(("in_size", "out_size"), MASK_SIZE_PAIRS)
def test_masks_are_pil_bilinear_thresholded_at_half(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    binary = sharp_image(*in_size, seed=7, channels=1) > 127
    reference = pil_resized(binary.astype(np.uint8) * 255, out_size, Image.BILINEAR)[0]
    expected = torch.from_numpy(reference / 255.0 > 0.5)
    mask = tv_tensors.Mask(torch.from_numpy(binary[..., 0].astype(np.uint8)))
    resized = ReferenceResize(out_size)(mask)
    assert isinstance(resized, tv_tensors.Mask)
    assert resized.dtype == torch.uint8
    assert torch.equal(resized.bool(), expected)
    # Nearest neighbour (the tensor path) differs on boundaries of these masks.
    nearest = Resize(out_size)(mask)
    assert not torch.equal(nearest.bool(), expected)


def test_reference_pre_processor_on_a_batch() -> None:
    images = np.stack([sharp_image(60, 80, seed=seed) for seed in range(2)])
    batch = tv_tensors.Image(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    masks = tv_tensors.Mask(torch.zeros(2, 60, 80, dtype=torch.bool))
    masks[0, 20:40, 30:50] = True
    pre_processor = clip_pre_processor(32, preprocessing="reference")
    out_images, out_masks = pre_processor.transform(batch, masks)
    expected = np.stack([pil_bicubic(image, (32, 32)) for image in images]) / 255.0
    mean = torch.tensor(OPENAI_CLIP_MEAN)[:, None, None]
    std = torch.tensor(OPENAI_CLIP_STD)[:, None, None]
    torch.testing.assert_close(out_images.as_subclass(torch.Tensor), (torch.from_numpy(expected).float() - mean) / std)
    assert out_masks.shape == (2, 32, 32)
    assert out_masks.dtype == torch.bool
    expected_mask = pil_resized(masks[0, ..., None].numpy().astype(np.uint8) * 255, (32, 32), Image.BILINEAR)[0]
    assert torch.equal(out_masks[0], torch.from_numpy(expected_mask > 127))
    assert out_masks[0].sum() > 0
    assert not out_masks[1].any()


def test_already_resized_input_passes_unchanged() -> None:
    """Anomalib resizes every item in the dataset; the pre-processor's second resize must be the identity."""
    image = as_float_image(sharp_image(32, 32, seed=3))
    assert torch.equal(ReferenceResize((32, 32))(image), image)
    mask = tv_tensors.Mask(torch.from_numpy(sharp_image(32, 32, seed=4, channels=1)[..., 0] > 127))
    assert torch.equal(ReferenceResize((32, 32))(mask), mask)


def test_default_and_unknown_modes(tiny_config) -> None:
    assert type(clip_pre_processor(16).transform.transforms[0]) is Resize
    assert isinstance(clip_pre_processor(16, "reference").transform.transforms[0], ReferenceResize)
    with pytest.raises(ValueError, match=r"preprocessing must be one of \['anomalib', 'reference'\]"):
        clip_pre_processor(16, "pil")
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        AnoCLIP(backbone=str(tiny_config), pretrained=None, image_size=32, preprocessing="PIL")


@pytest.mark.parametrize(("model_class", "image_filter"), [(GlocalCLIP, "bicubic"), (AnoCLIP, "bilinear")])
def test_models_take_the_argument(model_class: type, image_filter: str, tiny_config) -> None:
    """Each model resizes with its own reference's filter."""
    model = model_class(backbone=str(tiny_config), pretrained=None, image_size=32, preprocessing="reference")
    resize = model.pre_processor.transform.transforms[0]
    assert isinstance(resize, ReferenceResize)
    assert resize.image_filter == model_class.reference_image_filter == image_filter
    assert model.pre_processor.export_transform.transforms[0].image_filter == image_filter
    assert model.hparams["preprocessing"] == "reference"
    assert type(model_class(backbone=str(tiny_config), pretrained=None, image_size=32)
                .pre_processor.transform.transforms[0]) is Resize


def test_checkpoint_config_restores_the_mode() -> None:
    reference = clip_pre_processor((24, 40), "reference", "bilinear")
    config = reference.checkpoint_config()
    restored = CLIPPreProcessor((8, 8))  # what load_from_checkpoint builds before the checkpoint's config
    restored.load_checkpoint_config(config)
    resize = restored.transform.transforms[0]
    assert isinstance(resize, ReferenceResize)
    assert list(resize.size) == [24, 40]
    assert resize.exact
    assert resize.image_filter == "bilinear"
    assert restored.export_transform.transforms[0].exact is False
    assert restored.export_transform.transforms[0].image_filter == "bilinear"
    # Checkpoints from before the filter was stored were resized bicubic, whichever the model.
    older = {key: value for key, value in config.items() if key != "reference_image_filter"}
    restored.load_checkpoint_config(older)
    assert restored.transform.transforms[0].image_filter == "bicubic"
    anomalib = clip_pre_processor((24, 40))
    back = CLIPPreProcessor((24, 40), "reference")
    back.load_checkpoint_config(anomalib.checkpoint_config())
    assert type(back.transform.transforms[0]) is Resize
    assert back.preprocessing == "anomalib"


def test_export_transform_builds_coefficients_in_the_graph() -> None:
    pre_processor = clip_pre_processor(32, "reference")
    assert pre_processor.transform.transforms[0].exact
    assert pre_processor.export_transform.transforms[0].exact is False
    image = as_float_image(sharp_image(50, 70, seed=9))[None]
    eager = pre_processor.transform(image)
    exported = pre_processor(image)  # forward = the export transform
    assert (eager - exported).abs().max() <= 1.0 / 255 / min(OPENAI_CLIP_STD) + 1e-6


def test_engine_runs_the_reference_resize_in_the_datasets(tiny_config, tmp_path) -> None:
    """Anomalib copies the resize into the datasets' augmentations: odd-sized images collate; reload keeps it."""
    from anomalib.engine import Engine

    from anomalib_glocalclip.data import LayoutDataModule
    from anomalib_glocalclip.testing import generate_folder

    root = generate_folder(tmp_path / "data", n_good=3, n_bad=3, image_size=(48, 40), odd_images=True)
    # The plugin's datamodule: Anomalib's Folder would read the 16-bit odd image white (refused by ReaderCheck).
    datamodule = LayoutDataModule(root=str(root), layout="folder", eval_batch_size=6, num_workers=0, seed=0,
                                  val_split_mode="from_test")  # a validation pass of its own writes the checkpoint
    model = AnoCLIP(backbone=str(tiny_config), pretrained=None, image_size=32, image_score_views="none",
                    preprocessing="reference")
    engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path / "results",
                    enable_progress_bar=False)
    results = engine.test(model, datamodule=datamodule, verbose=False)
    assert "pixel_AUROC" in results[0]
    augmentations = datamodule.test_data.augmentations
    assert isinstance(augmentations, ReferenceResize)
    assert augmentations.image_filter == "bilinear"  # AnoCLIP's reference
    item = datamodule.test_data[len(datamodule.test_data) - 1]
    assert item.image.shape[-2:] == (32, 32)
    assert set(item.gt_mask.unique().tolist()) <= {0, 1}

    checkpoint = next((tmp_path / "results").rglob("*.ckpt"))
    loaded = AnoCLIP.load_from_checkpoint(checkpoint)
    assert isinstance(loaded.pre_processor.transform.transforms[0], ReferenceResize)
    assert loaded.pre_processor.transform.transforms[0].image_filter == "bilinear"
    assert loaded.pre_processor.export_transform.transforms[0].exact is False


CONFIGS = Path(__file__).parents[1] / "configs"
PROTOCOL_CONFIGS = [*sorted(CONFIGS.glob("glocalclip_*_to_*.yaml")), CONFIGS / "anoclip.yaml",
                    CONFIGS / "anoclip_plus.yaml"]


@pytest.mark.parametrize("config", PROTOCOL_CONFIGS, ids=lambda path: path.stem)
def test_paper_protocol_configs_use_the_reference_resize(config: Path) -> None:
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert values["model"]["init_args"]["preprocessing"] == "reference"


def test_evaluate_builds_glocalclip_with_the_reference_resize(tiny_config, tmp_path) -> None:
    from anomalib_glocalclip.evaluation import anoclip_factory, glocalclip_factory

    tiny = {"backbone": str(tiny_config), "pretrained": None, "image_size": 32}
    prompts = GlocalCLIP(**tiny).save_prompts(tmp_path / "prompts.pt")
    assert isinstance(glocalclip_factory(prompts, **tiny)().pre_processor.transform.transforms[0], ReferenceResize)
    chosen = glocalclip_factory(prompts, **tiny, preprocessing="anomalib")()
    assert type(chosen.pre_processor.transform.transforms[0]) is Resize
    # AnoCLIP's sweep keeps the model's default (its configs and `--model-arg preprocessing=reference` ask).
    assert type(anoclip_factory(**tiny)().pre_processor.transform.transforms[0]) is Resize


# ----- each model's reference, through the model's own pre-processor -----
MODEL_INPUT_SIZES = [(251, 317), (500, 500), (180, 100)]
"""``(h, w)`` of generated images other than the model's size: landscape, square, portrait."""
SAME_ORDER_IN_EVERY_PILLOW = {(251, 317), (500, 500)}
"""Input sizes whose height shrinks no more than their width: one ``Image.resize`` call is the reference's."""


def pixel_values(images: torch.Tensor) -> torch.Tensor:
    """CLIP-normalised ``[..., 3, H, W]`` back to 8-bit values (rounded, ``int64``): undoes ``Normalize``."""
    mean = torch.tensor(OPENAI_CLIP_MEAN)[:, None, None]
    std = torch.tensor(OPENAI_CLIP_STD)[:, None, None]
    return torch.round((images.as_subclass(torch.Tensor) * std + mean) * 255.0).long()


def binary_mask(height: int, width: int, seed: int) -> np.ndarray:
    """``[h, w]`` bool: 3-pixel blocks and noise, so most pixels sit on a boundary."""
    return sharp_image(height, width, seed=seed, channels=1)[..., 0] > 127


def pil_mask(mask: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``[H, W]`` bool: the references' mask resize, PIL bilinear of the 0/255 mask, then ``ToTensor`` > 0.5."""
    resized = pil_resized(mask[..., None].astype(np.uint8) * 255, size, Image.BILINEAR)[0]
    return torch.from_numpy(resized / 255.0 > 0.5)


@pytest.fixture(scope="module")
def anoclip_reference(tiny_config) -> dict[int, AnoCLIP]:
    """``AnoCLIP(preprocessing="reference")`` at the tests' 64 px and the reference's 240 px."""
    return {
        size: AnoCLIP(backbone=str(tiny_config), pretrained=None, image_size=size, preprocessing="reference")
        for size in (64, 240)
    }


@pytest.mark.parametrize("image_size", [64, 240])
@pytest.mark.parametrize("in_size", MODEL_INPUT_SIZES)
def test_anoclip_reference_images_are_pils_bilinear(
    anoclip_reference: dict[int, AnoCLIP],
    in_size: tuple[int, int],
    image_size: int,
) -> None:
    """hq-deng/AnoVL resizes with ``transforms.Resize((240, 240))`` on PIL images: PIL's bilinear, 0 grey levels."""
    image = sharp_image(*in_size, seed=sum(in_size))
    size = (image_size, image_size)
    resized = anoclip_reference[image_size].pre_processor.transform(tv_tensors.Image(as_float_image(image)))
    assert resized.shape == (3, image_size, image_size)
    expected = pil_resized(image, size, Image.BILINEAR)
    assert torch.equal(pixel_values(resized), torch.from_numpy(expected))
    if in_size in SAME_ORDER_IN_EVERY_PILLOW:
        single_call = pil_resized(image, size, Image.BILINEAR, width_first=False)
        assert torch.equal(pixel_values(resized), torch.from_numpy(single_call))
    # The filter matters on these images: GlocalCLIP's bicubic is many grey levels away.
    assert np.abs(pil_bicubic(image, size) - expected).max() > 10


@pytest.mark.parametrize("image_size", [64, 240])
@pytest.mark.parametrize("in_size", MODEL_INPUT_SIZES)
def test_anoclip_reference_masks_are_pils_bilinear_above_half(
    anoclip_reference: dict[int, AnoCLIP],
    in_size: tuple[int, int],
    image_size: int,
) -> None:
    image = tv_tensors.Image(as_float_image(sharp_image(*in_size, seed=1)))
    mask = binary_mask(*in_size, seed=sum(in_size) + 3)
    _, resized = anoclip_reference[image_size].pre_processor.transform(image, tv_tensors.Mask(torch.from_numpy(mask)))
    assert isinstance(resized, tv_tensors.Mask)
    assert resized.dtype == torch.bool
    assert torch.equal(resized.as_subclass(torch.Tensor), pil_mask(mask, (image_size, image_size)))


def test_anoclip_reference_at_240_from_the_class() -> None:
    """The class's own pre-processor at the reference's 240 px, without building a model."""
    image = sharp_image(500, 500, seed=11)
    transform = AnoCLIP.configure_pre_processor((240, 240), "reference").transform
    expected = pil_resized(image, (240, 240), Image.BILINEAR)
    assert torch.equal(pixel_values(transform(as_float_image(image))), torch.from_numpy(expected))


def test_anoclip_reference_export_transform_is_within_one_grey_level(anoclip_reference: dict[int, AnoCLIP]) -> None:
    pre_processor = anoclip_reference[240].pre_processor
    image = as_float_image(sharp_image(251, 317, seed=12))[None]
    exported = pixel_values(pre_processor(image))  # forward = the export transform, coefficients in the graph
    eager = pixel_values(pre_processor.transform(image))
    assert (exported - eager).abs().max() <= 1
    assert (exported == eager).float().mean() > 0.99


def test_glocalclip_reference_stays_pils_bicubic(tiny_config) -> None:
    model = GlocalCLIP(backbone=str(tiny_config), pretrained=None, image_size=64, preprocessing="reference")
    for in_size in MODEL_INPUT_SIZES:
        image = tv_tensors.Image(as_float_image(sharp_image(*in_size, seed=sum(in_size))))
        mask = binary_mask(*in_size, seed=sum(in_size) + 3)
        resized, resized_mask = model.pre_processor.transform(image, tv_tensors.Mask(torch.from_numpy(mask)))
        expected = pil_bicubic(sharp_image(*in_size, seed=sum(in_size)), (64, 64))
        assert torch.equal(pixel_values(resized), torch.from_numpy(expected))
        assert torch.equal(resized_mask.as_subclass(torch.Tensor), pil_mask(mask, (64, 64)))


@pytest.mark.parametrize("model_class", [GlocalCLIP, AnoCLIP])
def test_default_path_is_torchvisions_bicubic_and_nearest_masks(model_class: type, tiny_config) -> None:
    """``preprocessing="anomalib"`` (the default) is unchanged: tensor bicubic (antialiased), masks nearest."""
    model = model_class(backbone=str(tiny_config), pretrained=None, image_size=64)
    image = tv_tensors.Image(as_float_image(sharp_image(251, 317, seed=13)))
    mask = tv_tensors.Mask(torch.from_numpy(binary_mask(251, 317, seed=14)))
    resized, resized_mask = model.pre_processor.transform(image, mask)
    tensor_resize = Resize((64, 64), interpolation=InterpolationMode.BICUBIC, antialias=True)
    normalise = Normalize(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD)
    assert torch.equal(resized.as_subclass(torch.Tensor), normalise(tensor_resize(image)).as_subclass(torch.Tensor))
    nearest = Resize((64, 64), interpolation=InterpolationMode.NEAREST)(mask)
    assert torch.equal(resized_mask.as_subclass(torch.Tensor), nearest.as_subclass(torch.Tensor))
