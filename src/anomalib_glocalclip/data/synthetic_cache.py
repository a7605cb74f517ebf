"""Where synthetic samples are stored: ``<cache_dir>/<name>-<fingerprint>/`` with PNG images and masks.

The fingerprint covers everything that decides the pixels (source images' path, size and mtime, seed, options,
textures), so samples are drawn once per seed and reused; old folders can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anomalib_glocalclip.utils.files import atomic_path, atomic_write_json

CACHE_VERSION = 1  # bump when the way samples are drawn changes, so that old files are not reused
CACHE_ENV = "ANOMALIB_GLOCALCLIP_CACHE"


def default_cache_dir() -> Path:
    """``$ANOMALIB_GLOCALCLIP_CACHE/synthetic`` if set, else ``~/.cache/anomalib_glocalclip/synthetic`` (XDG)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "synthetic"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "anomalib_glocalclip" / "synthetic"


def fingerprint(options: Mapping[str, object], files: Iterable[str | Path]) -> str:
    """16 hex digits naming ``options`` (JSON-serialisable) and the identity of ``files`` (path, size, mtime)."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, **options}, sort_keys=True).encode())
    for file in files:
        stat = Path(file).stat()
        digest.update(f"\n{Path(file).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def write_sample(image: torch.Tensor, mask: torch.Tensor, image_path: Path, mask_path: Path) -> None:
    """Write an image ``[3, H, W]`` uint8 and its mask ``[H, W]`` bool as PNGs, each atomically."""
    _write_png(np.ascontiguousarray(image.permute(1, 2, 0).numpy()), image_path)
    _write_png(mask.numpy().astype(np.uint8) * 255, mask_path)


def write_manifest(folder: Path, content: Mapping[str, object]) -> None:
    """``synthetic.json``: what the samples of ``folder`` were drawn from, for people looking at the cache."""
    atomic_write_json(folder / "synthetic.json", content, default=str)


def _write_png(array: np.ndarray, path: Path) -> None:
    # Written under a unique name and renamed: readers (other ranks, other runs) never see half a file.
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")
