"""albumentations pipelines that move the image, the semantic map and the instance map together.

Both label maps travel as float32 masks with nearest-neighbour resampling; the semantic map is shifted by one so
that a single constant fill (0) yields ignore (255) for semantics and "none" (0) for instances.
The target's multi-view sampling happens on the device, in `panoptic_st.semantic.pseudo_labels`.
"""

from __future__ import annotations

import random

import albumentations as A
import cv2
import numpy as np

from panoptic_st.data.labels import IGNORE_INDEX

_NEAREST = cv2.INTER_NEAREST


def _apply(pipeline: A.Compose, image: np.ndarray, semantic: np.ndarray, instance: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shifted = semantic.astype(np.float32) + 1.0
    shifted[semantic == IGNORE_INDEX] = 0.0
    out = pipeline(image=image, masks=[shifted, instance.astype(np.float32)])
    sem, inst = out["masks"]
    sem = np.rint(sem).astype(np.int64) - 1
    sem[sem < 0] = IGNORE_INDEX
    return out["image"], sem.astype(np.uint8), np.rint(inst).astype(np.int32)


class Pipeline:
    """A callable (image, semantic, instance) -> (image, semantic, instance) around an albumentations Compose."""

    def __init__(self, transforms: list[A.BasicTransform]) -> None:
        self.compose = A.Compose(transforms)
        self.reseed(0)

    def reseed(self, seed: int) -> None:
        """Make the next random draws a function of `seed` (the training sampler seeds every sample).

        All transforms draw from one shared generator: albumentations' own `set_random_seed` gives every
        transform an identically seeded generator, which couples e.g. the flip decision to the crop position.
        """
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))

    def __call__(self, image: np.ndarray, semantic: np.ndarray, instance: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _apply(self.compose, image, semantic, instance)


def _crop(height: int, width: int) -> list[A.BasicTransform]:
    return [
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
        A.RandomCrop(height=height, width=width),
    ]


def source_train_transform(crop: tuple[int, int], scale: tuple[float, float] = (0.5, 1.0), flip: bool = True
                           ) -> Pipeline:
    """SAC source augmentation: random scale, crop (padded with ignore), horizontal flip."""
    return Pipeline([
        A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), mask_interpolation=_NEAREST, p=1.0),
        *_crop(*crop),
        A.HorizontalFlip(p=0.5 if flip else 0.0),
    ])


def target_train_transform(size: tuple[int, int], crop: tuple[int, int],
                           scale: tuple[float, float] = (1.0, 1.1), flip: bool = True) -> Pipeline:
    """SAC target augmentation before the views: downscale to `size`, random scale, crop, shared flip."""
    return Pipeline([
        A.Resize(height=size[0], width=size[1], mask_interpolation=_NEAREST),
        A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), mask_interpolation=_NEAREST, p=1.0),
        *_crop(*crop),
        A.HorizontalFlip(p=0.5 if flip else 0.0),
    ])


def eval_transform(size: tuple[int, int] | None = None) -> Pipeline | None:
    """Validation: optionally resize to `size`, nothing random; None keeps the native resolution."""
    if size is None:
        return None
    return Pipeline([A.Resize(height=size[0], width=size[1], mask_interpolation=_NEAREST)])
