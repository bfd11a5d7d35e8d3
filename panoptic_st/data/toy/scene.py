"""Scene classes, the drawn `Scene` and the canvas that paints class, instance id and shading together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from panoptic_st.data.labels import CLASS_NAMES, NUM_CLASSES, train_id

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY,
 PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = (train_id(n) for n in CLASS_NAMES)
STATIC = NUM_CLASSES
"""Scene-map index of the one void object kind (bins): Cityscapes/GTA5 label id 4 'static', Synthia 0."""


@dataclass
class Scene:
    """One drawn street scene: class map, instance map, detail shading and the thing list."""

    sem: np.ndarray
    """uint8 (H, W): trainId 0..18, or STATIC."""
    inst: np.ndarray
    """int32 (H, W): 0 = none, else 1-based index into `things` (visible part only)."""
    shade: np.ndarray
    """float32 (H, W): multiplicative detail shading (windows, wheels, markings, foliage)."""
    things: list[tuple[int, bool]] = field(default_factory=list)
    """(trainId, crowd) of instance i + 1 of `inst`."""
    scale: float = 1.0
    """Detail scale: pixel size of textures, blurs and the smallest instance relative to the default toy."""


Point = tuple[float, float]


def pt(p: Point) -> tuple[int, int]:
    """A point in whole pixels."""
    return round(float(p[0])), round(float(p[1]))


def px(v: float) -> int:
    """A size in whole pixels, at least one."""
    return max(1, round(float(v)))


class Canvas:
    """Paints class, instance id and shading together so every drawn part stays consistent."""

    def __init__(self, height: int, width: int, scale: float = 1.0):
        self.scale = scale
        self.sem = np.full((height, width), SKY, np.uint8)
        self.inst = np.zeros((height, width), np.int32)
        self.shade = np.ones((height, width), np.float32)
        self.things: list[tuple[int, bool]] = []

    def thing(self, cls: int, crowd: bool = False) -> int:
        """Register a new thing and return its instance id."""
        self.things.append((cls, crowd))
        return len(self.things)

    def _draw(self, fn: Callable[[np.ndarray, float], object], cls: int, iid: int, shade: float) -> None:
        fn(self.sem, int(cls))
        fn(self.inst, int(iid))
        fn(self.shade, float(shade))

    def poly(self, pts: list[Point], cls: int, iid: int = 0, shade: float = 1.0) -> None:
        """Filled polygon."""
        p = [np.round(np.asarray(pts, np.float64)).astype(np.int32)]
        self._draw(lambda img, v: cv2.fillPoly(img, p, v), cls, iid, shade)

    def rect(self, x0: float, y0: float, x1: float, y1: float, cls: int, iid: int = 0, shade: float = 1.0) -> None:
        """Filled axis-aligned rectangle given by two corners."""
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], cls, iid, shade)

    def ellipse(self, c: Point, axes: Point, cls: int, iid: int = 0, shade: float = 1.0,
                thickness: int = -1) -> None:
        """Ellipse (filled unless `thickness` > 0); a circle when both axes are equal."""
        centre, ax = pt(c), (px(axes[0]), px(axes[1]))
        self._draw(lambda img, v: cv2.ellipse(img, centre, ax, 0, 0, 360, v, thickness), cls, iid, shade)

    def line(self, p0: Point, p1: Point, width: float, cls: int, iid: int = 0, shade: float = 1.0) -> None:
        """Line segment at least one pixel wide."""
        a, b = pt(p0), pt(p1)
        self._draw(lambda img, v: cv2.line(img, a, b, v, px(width)), cls, iid, shade)

    def shade_line(self, p0: Point, p1: Point, width: float, value: float) -> None:
        """Line on the shading map only (markings that keep the class below)."""
        cv2.line(self.shade, pt(p0), pt(p1), float(value), px(width))


def stripes(coord: np.ndarray, period: float, on: float) -> np.ndarray:
    """coord % period < on, both rounded to whole pixels (at least one)."""
    return coord % px(period) < px(on)


def coarse_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Uniform noise on a grid of about `cell`-pixel cells, bilinearly resized to (h, w)."""
    c = px(cell)
    return cv2.resize(rng.random((h // c + 1, w // c + 1)).astype(np.float32), (w, h))
