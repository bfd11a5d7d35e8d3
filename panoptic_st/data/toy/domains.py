"""The four generated image sets, their per-image random generators and image sizes."""

from __future__ import annotations

import math

import numpy as np

DOMAINS = {"synthia": 0, "gta5": 1, "cityscapes_train": 2, "cityscapes_val": 3}
DEFAULT_SIZE = (96, 192)
"""(height, width) of the default toy images, the size at which the detail scale is 1."""
NATIVE_SIZES = {"synthia": (760, 1280), "gta5": (1052, 1914), "cityscapes_train": (1024, 2048),
                "cityscapes_val": (1024, 2048)}
"""(height, width) of the real datasets' images."""
GTA5_ODD_SIZES = ((1054, 1914), (1080, 1920))
"""Chosen stand-ins for the few real GTA5 images of other sizes: GTA5 image indices 1, 2 modulo GTA5_ODD_PERIOD."""
GTA5_ODD_PERIOD = 10
NATIVE_COUNTS = {"n_source": 4, "n_target": 4, "n_val": 3}
"""Default image counts at native size (a few per dataset)."""


def image_rng(seed: int, domain: str, index: int) -> np.random.Generator:
    """The generator of one image, independent of worker count and order."""
    return np.random.default_rng(np.random.SeedSequence([seed, DOMAINS[domain], index]))


def detail_scale(height: int, width: int) -> float:
    """Detail scale of an image of this size: its linear size relative to the default toy image."""
    return math.sqrt(height * width / (DEFAULT_SIZE[0] * DEFAULT_SIZE[1]))


def native_image_size(domain: str, index: int) -> tuple[int, int]:
    """(height, width) of image `index` of a dataset at native size."""
    k = index % GTA5_ODD_PERIOD
    if domain == "gta5" and 1 <= k <= len(GTA5_ODD_SIZES):
        return GTA5_ODD_SIZES[k - 1]
    return NATIVE_SIZES[domain]


def image_size_and_scale(domain: str, index: int, native: bool, height: int,
                         width: int) -> tuple[int, int, float]:
    """(height, width, detail scale) of one image: native, or the one size given at detail scale 1."""
    if not native:
        return height, width, 1.0
    h, w = native_image_size(domain, index)
    return h, w, detail_scale(h, w)
