"""Procedural toy domain-adaptation benchmark: SYNTHIA-, GTA5- and Cityscapes-format street scenes.

Every image is drawn from one shared scene model (perspective street with a vanishing point, facades, poles,
trees and the eight thing classes painted far-to-near), so the three datasets differ only in how the scene is
rendered (two clean synthetic styles vs. one "real" style) and in the label quirks of the real formats.

Calibration at the defaults (U-Net, mobilenetv3_small encoder from scratch, 300 steps x 16, 2-core CPU), 19-class
mIoU on toy Cityscapes val: trained on SYNTHIA+GTA5 32.8 (79.1 on held-out GTA5), with BN statistics re-estimated
on the target 45.8, trained on the target (oracle) 70.0. Traffic lights and signs stay near 0 at this size/budget.

With `native_size=True` every dataset is written at the real datasets' sizes (height x width): SYNTHIA
RAND_CITYSCAPES 760 x 1280, Cityscapes 1024 x 2048 and GTA5 1052 x 1914, except the GTA5 files 00002 and 00003 of
every ten (00002, 00003, 00012, 00013, ...), which are 1054 x 1914 and 1080 x 1920. Those two sizes are chosen to
stand for the few real GTA5 images that are not 1052 x 1914; their share here is not the real one. The scene
geometry scales with the image as at any size; textures, blurs, skyline widths and the smallest instance scale too
(`detail_scale`), so a native-size image looks like an enlarged default one.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
from PIL import Image
from tqdm import tqdm

from panoptic_st.data.labels import (
    CLASS_NAMES,
    LABEL_DIVISOR,
    NUM_CLASSES,
    TRAIN_ID_TO_LABEL_ID,
    TRAIN_ID_TO_SYNTHIA,
    colorize,
    is_thing_label_id,
    train_id,
)

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY,
 PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = (train_id(n) for n in CLASS_NAMES)
STATIC = NUM_CLASSES
"""Scene-map index of the one void object kind (bins): Cityscapes/GTA5 label id 4 'static', Synthia 0."""
STATIC_LABEL_ID = 4
MIN_INSTANCE_PX = 10
"""Things whose visible part is smaller lose their instance id (Cityscapes writes them as a group region); an area
at detail scale 1, so it grows with the square of `detail_scale`."""
CAM_HEIGHT_M = 1.6

DOMAINS = {"synthia": 0, "gta5": 1, "cityscapes_train": 2, "cityscapes_val": 3}
CITIES = {"train": ("aachen", "bremen", "zurich"), "val": ("frankfurt", "lindau", "munster")}
README_TITLE = "# Toy domain-adaptation benchmark (panoptic_st)"

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

CANON_RGB = np.array([
    (85, 85, 92), (170, 160, 152), (150, 105, 85), (190, 180, 150), (125, 88, 55), (125, 130, 150),
    (40, 40, 36), (228, 205, 50), (60, 125, 45), (150, 172, 82), (130, 175, 230), (230, 100, 150),
    (240, 135, 30), (35, 65, 170), (110, 70, 160), (200, 40, 40), (40, 160, 160), (190, 40, 180),
    (160, 230, 60), (95, 105, 85),
], dtype=np.float32) / 255.0
"""Canonical colour of each scene class (19 trainIds + STATIC) before a domain style is applied."""


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


def _pt(p: Point) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _px(v: float) -> int:
    """A size in whole pixels, at least one."""
    return max(1, round(float(v)))


class _Canvas:
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
        centre, ax = _pt(c), (_px(axes[0]), _px(axes[1]))
        self._draw(lambda img, v: cv2.ellipse(img, centre, ax, 0, 0, 360, v, thickness), cls, iid, shade)

    def line(self, p0: Point, p1: Point, width: float, cls: int, iid: int = 0, shade: float = 1.0) -> None:
        """Line segment at least one pixel wide."""
        a, b = _pt(p0), _pt(p1)
        self._draw(lambda img, v: cv2.line(img, a, b, v, _px(width)), cls, iid, shade)

    def shade_line(self, p0: Point, p1: Point, width: float, value: float) -> None:
        """Line on the shading map only (markings that keep the class below)."""
        cv2.line(self.shade, _pt(p0), _pt(p1), float(value), _px(width))


@dataclass
class _Street:
    """Perspective geometry: horizon, vanishing point and the ground lines through it (x at the bottom row)."""

    h: int
    w: int
    yh: float
    xv: float
    road: tuple[float, float]
    curb_out: tuple[float, float]
    facade: tuple[float, float]

    def y(self, t: float) -> float:
        """Image row of ground depth t (0 at the horizon, 1 at the bottom row)."""
        return self.yh + t * (self.h - self.yh)

    def x(self, xb: float, t: float) -> float:
        """Column at depth t of the ground line that meets the bottom row at xb."""
        return self.xv + t * (xb - self.xv)

    def ppm(self, t: float) -> float:
        """Pixels per metre at depth t (camera 1.6 m above the ground)."""
        return t * (self.h - self.yh) / CAM_HEIGHT_M


def _street(rng: np.random.Generator, h: int, w: int) -> _Street:
    """Random horizon, vanishing point, road, sidewalk and (sometimes) grass-strip widths."""
    yh = h * rng.uniform(0.33, 0.55)
    xv = w * rng.uniform(0.3, 0.7)
    cx, half = xv + w * rng.uniform(-0.15, 0.15), w * rng.uniform(0.25, 0.55)
    walk = w * rng.uniform(0.1, 0.3, 2)
    grass = w * rng.uniform(0.1, 0.4, 2) * (rng.random(2) < 0.35)
    road = (cx - half, cx + half)
    curb_out = (road[0] - walk[0], road[1] + walk[1])
    facade = (curb_out[0] - grass[0], curb_out[1] + grass[1])
    return _Street(h, w, yh, xv, road, curb_out, facade)


def _draw_ground(cv: _Canvas, st: _Street) -> None:
    """Sky, outer ground, sidewalks, road and its dashed centre line."""
    yh, xv, h = round(st.yh), round(st.xv), st.h
    cv.sem[yh:, :xv] = TERRAIN if st.facade[0] < st.curb_out[0] else SIDEWALK
    cv.sem[yh:, xv:] = TERRAIN if st.facade[1] > st.curb_out[1] else SIDEWALK
    cv.poly([(st.xv, st.yh), (st.curb_out[0], h), (st.curb_out[1], h)], SIDEWALK)
    cv.poly([(st.xv - 0.5, st.yh), (st.road[0], h), (st.road[1], h), (st.xv + 0.5, st.yh)], ROAD)
    centre = (st.road[0] + st.road[1]) / 2
    t = 0.08
    while t < 1.2:
        t2 = t * 1.25
        cv.shade_line((st.x(centre, t), st.y(t)), (st.x(centre, t2), st.y(t2)), 0.15 * st.ppm(t2), 1.9)
        t = t2 * 1.3


def _draw_skyline(cv: _Canvas, st: _Street, rng: np.random.Generator) -> None:
    """Distant buildings and trees around the vanishing point."""
    if rng.random() < 0.2:
        return
    x = st.xv - st.w * rng.uniform(0.2, 0.4)
    end = st.xv + st.w * rng.uniform(0.2, 0.4)
    while x < end:
        bw = rng.uniform(3, 14) * cv.scale
        top = st.yh - st.h * rng.uniform(0.02, 0.18)
        if rng.random() < 0.25:
            cv.ellipse((x + bw / 2, st.yh), (bw / 2, st.yh - top), VEGETATION)
        else:
            cv.rect(x, top, x + bw, st.yh + 1, BUILDING)
        x += bw


def _facade_segment(cv: _Canvas, st: _Street, xb: float, ta: float, tb: float, cls: int, k: float) -> None:
    """Vertical plane along the ground line `xb` between depths ta and tb, k times the camera height tall."""
    d = st.h - st.yh
    cv.poly([(st.x(xb, ta), st.y(ta)), (st.x(xb, ta), st.yh - k * ta * d),
             (st.x(xb, tb), st.yh - k * tb * d), (st.x(xb, tb), st.y(tb))], cls)


def _draw_side(cv: _Canvas, st: _Street, side: int, rng: np.random.Generator) -> None:
    """Facade row of one street side (buildings, hedges, walls, gaps) and maybe a fence in front."""
    xb = st.facade[side]
    edge = 0.0 if side == 0 else st.w - 1.0
    t = (edge - st.xv) / (xb - st.xv) + 0.05
    while t > 0.03:
        t2 = t * rng.uniform(0.45, 0.8)
        kind = rng.choice(4, p=[0.66, 0.14, 0.1, 0.1])  # building, hedge, wall, gap
        if kind == 0:
            _facade_segment(cv, st, xb, t, t2, BUILDING, rng.uniform(0.8, 3.5))
        elif kind == 1:
            _facade_segment(cv, st, xb, t, t2, VEGETATION, rng.uniform(0.4, 1.2))
            for _ in range(2):
                tc = rng.uniform(t2, t)
                r = rng.uniform(1.2, 2.5) * st.ppm(tc)
                cv.ellipse((st.x(xb, tc), st.yh - 0.9 * tc * (st.h - st.yh)), (r, 0.8 * r), VEGETATION)
        elif kind == 2:
            if rng.random() < 0.6:
                _facade_segment(cv, st, xb, t, t2, BUILDING, rng.uniform(1.0, 3.0))
            _facade_segment(cv, st, xb, t, t2, WALL, rng.uniform(0.6, 1.1))
        t = t2
    if rng.random() < 0.35:
        ta = rng.uniform(0.3, 1.3)
        line = st.curb_out[side] if st.facade[side] == st.curb_out[side] else (st.curb_out[side] + xb) / 2
        _facade_segment(cv, st, line, ta, ta * rng.uniform(0.15, 0.5), FENCE, rng.uniform(0.6, 0.9))


# --- things and vertical stuff: each draws standing at (x, yb) with m pixels per metre, facing `d` (+1/-1) ---

def _person(cv: _Canvas, x: float, yb: float, m: float, iid: int, rng: np.random.Generator) -> None:
    h = rng.uniform(1.6, 1.9) * m
    stride, swing = rng.uniform(0.0, 0.14) * h, rng.uniform(-0.08, 0.08) * h
    cv.line((x - 0.05 * h, yb - 0.48 * h), (x - stride, yb), 0.1 * h, PERSON, iid, 0.55)
    cv.line((x + 0.05 * h, yb - 0.48 * h), (x + stride, yb), 0.1 * h, PERSON, iid, 0.55)
    cv.poly([(x - 0.13 * h, yb - 0.84 * h), (x + 0.13 * h, yb - 0.84 * h),
             (x + 0.1 * h, yb - 0.46 * h), (x - 0.1 * h, yb - 0.46 * h)], PERSON, iid)
    cv.line((x - 0.12 * h, yb - 0.82 * h), (x - 0.15 * h + swing, yb - 0.5 * h), 0.06 * h, PERSON, iid)
    cv.line((x + 0.12 * h, yb - 0.82 * h), (x + 0.15 * h - swing, yb - 0.5 * h), 0.06 * h, PERSON, iid)
    cv.ellipse((x, yb - 0.92 * h), (0.075 * h, 0.075 * h), PERSON, iid, 1.3)


def _bicycle(cv: _Canvas, x: float, yb: float, m: float, iid: int, d: int) -> tuple[float, float]:
    """Draw a side-view bicycle; returns the seat point for a rider."""
    r, half, w = 0.34 * m, 0.52 * m, max(1.0, 0.07 * m)
    rear, front = (x - d * half, yb - r), (x + d * half, yb - r)
    seat, head = (x - d * 0.2 * m, yb - 2.4 * r), (x + d * 0.42 * m, yb - 2.6 * r)
    crank = (x - d * 0.05 * m, yb - r)
    for c in (rear, front):
        cv.ellipse(c, (r, r), BICYCLE, iid, 0.6, _px(0.08 * m))
    for a, b in ((rear, seat), (seat, crank), (crank, rear), (seat, (head[0], seat[1])), (crank, head),
                 (head, front)):
        cv.line(a, b, w, BICYCLE, iid)
    return seat


def _motorcycle(cv: _Canvas, x: float, yb: float, m: float, iid: int, d: int) -> tuple[float, float]:
    """Draw a side-view motorcycle; returns the seat point for a rider."""
    r, half = 0.32 * m, 0.72 * m
    cv.ellipse((x, yb - 1.9 * r), (1.05 * half, 0.55 * r), MOTORCYCLE, iid)
    cv.poly([(x - d * 0.3 * half, yb - 2.4 * r), (x + d * 0.55 * half, yb - 2.6 * r),
             (x + d * 0.7 * half, yb - 1.6 * r), (x - d * 0.2 * half, yb - 1.4 * r)], MOTORCYCLE, iid, 1.2)
    cv.line((x + d * 0.75 * half, yb - 3.2 * r), (x + d * half, yb - r), 0.08 * m, MOTORCYCLE, iid, 0.6)
    for c in ((x - d * half, yb - r), (x + d * half, yb - r)):
        cv.ellipse(c, (r, r), MOTORCYCLE, iid, 0.3)
    return x - d * 0.35 * half, yb - 2.5 * r


def _rider(cv: _Canvas, seat: tuple[float, float], yb: float, m: float, iid: int, d: int) -> None:
    sx, sy = seat
    shoulder = (sx + d * 0.25 * m, sy - 0.6 * m)
    cv.line(seat, (sx + d * 0.2 * m, yb - 0.3 * m), 0.17 * m, RIDER, iid, 0.55)
    cv.poly([(sx - d * 0.1 * m, sy), (sx + d * 0.12 * m, sy + 0.05 * m),
             (shoulder[0] + d * 0.12 * m, shoulder[1]), (shoulder[0] - d * 0.15 * m, shoulder[1] - 0.05 * m)],
            RIDER, iid)
    cv.line(shoulder, (sx + d * 0.75 * m, sy - 0.25 * m), 0.1 * m, RIDER, iid)
    cv.ellipse((shoulder[0] + d * 0.05 * m, shoulder[1] - 0.2 * m), (0.14 * m, 0.14 * m), RIDER, iid, 1.3)


def _wheels(cv: _Canvas, xs, yb: float, r: float, cls: int, iid: int) -> None:
    for wx in xs:
        cv.ellipse((wx, yb - r), (r, r), cls, iid, 0.25)


def _car(cv: _Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool) -> None:
    if side:
        half, r = 2.15 * m, 0.33 * m
        cv.poly([(x - 0.55 * half, yb - 1.0 * m), (x - 0.35 * half, yb - 1.5 * m),
                 (x + 0.3 * half, yb - 1.5 * m), (x + 0.6 * half, yb - 1.0 * m)], CAR, iid)
        cv.poly([(x - 0.45 * half, yb - 1.05 * m), (x - 0.3 * half, yb - 1.4 * m),
                 (x + 0.25 * half, yb - 1.4 * m), (x + 0.48 * half, yb - 1.05 * m)], CAR, iid, 0.45)
        cv.rect(x - half, yb - 1.05 * m, x + half, yb - 0.2 * m, CAR, iid)
        cv.rect(x + d * 0.93 * half, yb - 0.85 * m, x + d * half, yb - 0.7 * m, CAR, iid, 1.6)
        _wheels(cv, (x - 0.62 * half, x + 0.62 * half), yb, r, CAR, iid)
        return
    half = 0.9 * m
    cv.rect(x - 0.85 * half, yb - 0.35 * m, x - 0.55 * half, yb, CAR, iid, 0.25)
    cv.rect(x + 0.55 * half, yb - 0.35 * m, x + 0.85 * half, yb, CAR, iid, 0.25)
    cv.poly([(x - 0.85 * half, yb - 1.05 * m), (x - 0.7 * half, yb - 1.5 * m),
             (x + 0.7 * half, yb - 1.5 * m), (x + 0.85 * half, yb - 1.05 * m)], CAR, iid)
    cv.poly([(x - 0.75 * half, yb - 1.1 * m), (x - 0.62 * half, yb - 1.42 * m),
             (x + 0.62 * half, yb - 1.42 * m), (x + 0.75 * half, yb - 1.1 * m)], CAR, iid, 0.45)
    cv.rect(x - half, yb - 1.08 * m, x + half, yb - 0.25 * m, CAR, iid)
    for s in (-1, 1):
        cv.rect(x + s * 0.95 * half, yb - 0.9 * m, x + s * 0.7 * half, yb - 0.75 * m, CAR, iid, 1.7)


def _truck(cv: _Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool) -> None:
    if side:
        half, r = 3.5 * m, 0.5 * m
        front = x + d * half
        cv.rect(x - d * half, yb - 3.5 * m, x + d * 0.45 * half, yb - 0.8 * m, TRUCK, iid, 0.92)
        cv.rect(x + d * 0.5 * half, yb - 2.9 * m, front, yb - 0.6 * m, TRUCK, iid)
        cv.rect(x + d * 0.6 * half, yb - 2.7 * m, front - d * 0.05 * half, yb - 1.8 * m, TRUCK, iid, 0.45)
        cv.rect(x - d * half, yb - 1.0 * m, front, yb - 0.5 * m, TRUCK, iid, 0.5)
        _wheels(cv, (x - d * 0.75 * half, x - d * 0.45 * half, x + d * 0.7 * half), yb, r, TRUCK, iid)
        return
    half = 1.25 * m
    cv.rect(x - 0.9 * half, yb - 0.6 * m, x - 0.5 * half, yb, TRUCK, iid, 0.25)
    cv.rect(x + 0.5 * half, yb - 0.6 * m, x + 0.9 * half, yb, TRUCK, iid, 0.25)
    cv.rect(x - half, yb - 3.5 * m, x + half, yb - 0.6 * m, TRUCK, iid, 0.92)
    cv.rect(x - half, yb - 0.9 * m, x + half, yb - 0.6 * m, TRUCK, iid, 0.4)
    cv.line((x, yb - 3.4 * m), (x, yb - 1.0 * m), 0.06 * m, TRUCK, iid, 0.6)


def _bus(cv: _Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool) -> None:
    if side:
        half, r = 5.5 * m, 0.5 * m
        cv.rect(x - half, yb - 3.1 * m, x + half, yb - 0.35 * m, BUS, iid)
        cv.rect(x - 0.95 * half, yb - 2.8 * m, x + 0.97 * half, yb - 1.8 * m, BUS, iid, 0.45)
        for k in range(-4, 5):
            cv.line((x + k * 0.2 * half, yb - 2.8 * m), (x + k * 0.2 * half, yb - 1.8 * m), 0.12 * m, BUS, iid)
        cv.rect(x + d * 0.55 * half, yb - 2.6 * m, x + d * 0.7 * half, yb - 0.5 * m, BUS, iid, 0.5)
        _wheels(cv, (x - 0.65 * half, x + 0.65 * half), yb, r, BUS, iid)
        return
    half = 1.28 * m
    cv.rect(x - 0.9 * half, yb - 0.5 * m, x - 0.55 * half, yb, BUS, iid, 0.25)
    cv.rect(x + 0.55 * half, yb - 0.5 * m, x + 0.9 * half, yb, BUS, iid, 0.25)
    cv.rect(x - half, yb - 3.1 * m, x + half, yb - 0.35 * m, BUS, iid)
    cv.rect(x - 0.85 * half, yb - 2.9 * m, x + 0.85 * half, yb - 1.6 * m, BUS, iid, 0.45)
    cv.rect(x - 0.6 * half, yb - 3.05 * m, x + 0.6 * half, yb - 2.95 * m, BUS, iid, 1.5)


def _train(cv: _Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool,
           rng: np.random.Generator) -> None:
    if side:
        half = rng.uniform(9, 15) * m
        cv.line((x, yb - 3.6 * m), (x + 0.8 * m, yb - 4.4 * m), 0.08 * m, TRAIN, iid, 0.5)
        cv.line((x + 0.8 * m, yb - 4.4 * m), (x + 1.8 * m, yb - 4.4 * m), 0.08 * m, TRAIN, iid, 0.5)
        cv.rect(x - half, yb - 3.6 * m, x + half, yb - 0.5 * m, TRAIN, iid)
        for end in (-1, 1):
            cv.ellipse((x + end * half, yb - 2.05 * m), (0.8 * m, 1.55 * m), TRAIN, iid)
        cv.rect(x - half, yb - 1.0 * m, x + half, yb - 0.5 * m, TRAIN, iid, 0.6)
        pitch = 1.8 * m
        for k in range(int(-half // pitch), int(half // pitch)):
            wx = x + k * pitch + 0.3 * m
            cv.rect(wx, yb - 3.0 * m, wx + 1.2 * m, yb - 2.0 * m, TRAIN, iid, 0.45)
        for wx in np.arange(x - 0.8 * half, x + 0.81 * half, 0.4 * half):
            cv.rect(wx - 0.5 * m, yb - 0.5 * m, wx + 0.5 * m, yb, TRAIN, iid, 0.25)
        return
    half = 1.32 * m
    cv.rect(x - half, yb - 3.3 * m, x + half, yb - 0.3 * m, TRAIN, iid)
    cv.ellipse((x, yb - 3.3 * m), (half, 0.4 * m), TRAIN, iid)
    cv.rect(x - 0.85 * half, yb - 3.2 * m, x + 0.85 * half, yb - 1.9 * m, TRAIN, iid, 0.4)
    cv.rect(x - 0.9 * half, yb - 0.9 * m, x + 0.9 * half, yb - 0.3 * m, TRAIN, iid, 0.6)
    cv.rect(x - 0.4 * half, yb - 0.3 * m, x + 0.4 * half, yb, TRAIN, iid, 0.25)


def _pole(cv: _Canvas, x: float, yb: float, m: float, rng: np.random.Generator, d: int) -> None:
    top = yb - rng.uniform(4.5, 7.0) * m
    w = max(1.0, 0.16 * m)
    cv.rect(x - w / 2, top, x + w / 2, yb, POLE)
    attach = rng.random()
    if attach < 0.3:
        arm = x + d * rng.uniform(0.0, 2.0) * m
        cv.line((x, top), (arm, top), 0.12 * m, POLE)
        cv.rect(arm - 0.2 * m, top, arm + 0.2 * m, top + 1.0 * m, LIGHT, 0, 0.6)
        lamp = rng.integers(3)
        cv.ellipse((arm, top + (0.2 + 0.3 * lamp) * m), (0.11 * m, 0.11 * m), LIGHT, 0, 2.2)
    elif attach < 0.65:
        cy = top + rng.uniform(0.3, 1.5) * m
        kind = rng.integers(3)
        if kind == 0:
            cv.ellipse((x, cy), (0.35 * m, 0.35 * m), SIGN, 0, 0.8)
            cv.ellipse((x, cy), (0.25 * m, 0.25 * m), SIGN, 0, 1.25)
        elif kind == 1:
            cv.poly([(x - 0.4 * m, cy - 0.3 * m), (x + 0.4 * m, cy - 0.3 * m), (x, cy + 0.4 * m)], SIGN)
        else:
            cv.rect(x - 0.45 * m, cy - 0.3 * m, x + 0.45 * m, cy + 0.3 * m, SIGN, 0, 0.85)


def _tree(cv: _Canvas, x: float, yb: float, m: float, rng: np.random.Generator) -> None:
    cv.rect(x - 0.15 * m, yb - 2.6 * m, x + 0.15 * m, yb, VEGETATION, 0, 0.55)
    r = rng.uniform(1.5, 2.5) * m
    cv.ellipse((x, yb - 2.4 * m - 0.8 * r), (r, 0.85 * r), VEGETATION)
    cv.ellipse((x + rng.uniform(-0.6, 0.6) * r, yb - 2.4 * m - 1.3 * r), (0.6 * r, 0.5 * r), VEGETATION, 0, 1.1)


def _static(cv: _Canvas, x: float, yb: float, m: float) -> None:
    cv.rect(x - 0.3 * m, yb - 1.0 * m, x + 0.3 * m, yb, STATIC)
    cv.rect(x - 0.35 * m, yb - 1.1 * m, x + 0.35 * m, yb - 0.9 * m, STATIC, 0, 0.7)


def _plan_objects(st: _Street, rng: np.random.Generator) -> list[tuple[float, int, str, float, int]]:
    """Sample (depth t, draw order, kind, column, facing) for every upright object in the scene."""
    plan: list[tuple[float, str, float, int]] = []  # (t, kind, x, facing)

    def on(span: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
        t = rng.uniform(lo, hi)
        return t, rng.uniform(*sorted((st.x(span[0], t), st.x(span[1], t))))

    def sidewalk(lo: float, hi: float) -> tuple[float, float]:
        s = rng.integers(2)
        return on((st.road[0], st.curb_out[0]) if s == 0 else (st.road[1], st.curb_out[1]), lo, hi)

    def add(kind: str, where: tuple[float, float]) -> None:
        plan.append((where[0], kind, where[1], 1 if rng.random() < 0.5 else -1))

    for _ in range(rng.poisson(2.2)):
        add("car_side" if rng.random() < 0.35 else "car", on(st.road, 0.1, 0.95))
    for _ in range(rng.poisson(1.8) if rng.random() < 0.8 else 0):
        add("person", sidewalk(0.12, 1.0) if rng.random() < 0.85 else on(st.road, 0.12, 1.0))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.25 else 0):
        add("rider_bicycle" if rng.random() < 0.6 else "rider_motorcycle", on(st.road, 0.12, 0.9))
    for _ in range(rng.integers(1, 4) if rng.random() < 0.25 else 0):
        add("bicycle", sidewalk(0.12, 0.9))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.2 else 0):
        add("motorcycle", sidewalk(0.12, 0.9) if rng.random() < 0.5 else on(st.road, 0.12, 0.9))
    for kind, p, hi in (("truck", 0.22, 0.7), ("bus", 0.22, 0.7), ("train", 0.18, 0.38)):
        if rng.random() < p:
            add(kind if rng.random() < 0.5 else kind + "_side", on(st.road, 0.09, hi))
    if rng.random() < 0.12:
        t, x = sidewalk(0.1, 0.22)
        for _ in range(rng.integers(3, 7)):
            plan.append((t + rng.uniform(-0.01, 0.01), "group_person" if rng.random() < 0.75 else "group_bicycle",
                         x + rng.uniform(-2.0, 2.0) * st.ppm(t), 1 if rng.random() < 0.5 else -1))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.3 else 0):
        add("static", sidewalk(0.15, 0.9))
    for _ in range(rng.poisson(2.5)):
        s = rng.integers(2)
        line = st.road[s] + (st.curb_out[s] - st.road[s]) * (0.15 if rng.random() < 0.6 else 0.85)
        t = rng.uniform(0.1, 1.0)
        plan.append((t, "pole", st.x(line, t), 1 if s == 0 else -1))
    for _ in range(rng.poisson(1.5) if rng.random() < 0.6 else 0):
        s = rng.integers(2)
        line = (st.curb_out[s] + st.facade[s]) / 2 if st.facade[s] != st.curb_out[s] else st.curb_out[s]
        t = rng.uniform(0.1, 0.9)
        plan.append((t, "tree", st.x(line, t), 1))
    return [(t, i, kind, x, d) for i, (t, kind, x, d) in enumerate(plan)]


def _draw_object(cv: _Canvas, st: _Street, kind: str, t: float, x: float, d: int,
                 rng: np.random.Generator) -> None:
    """Draw one planned object; things register their instance ids in draw order."""
    yb, m = st.y(t), st.ppm(t)
    base = kind.removesuffix("_side")
    side = kind.endswith("_side")
    if kind in ("person", "group_person"):
        _person(cv, x, yb, m, cv.thing(PERSON, kind.startswith("group")), rng)
    elif kind in ("bicycle", "group_bicycle"):
        _bicycle(cv, x, yb, m, cv.thing(BICYCLE, kind.startswith("group")), d)
    elif kind == "motorcycle":
        _motorcycle(cv, x, yb, m, cv.thing(MOTORCYCLE), d)
    elif kind.startswith("rider_"):
        vehicle = _bicycle if kind == "rider_bicycle" else _motorcycle
        seat = vehicle(cv, x, yb, m, cv.thing(BICYCLE if kind == "rider_bicycle" else MOTORCYCLE), d)
        _rider(cv, seat, yb, m, cv.thing(RIDER), d)
    elif base == "car":
        _car(cv, x, yb, m, cv.thing(CAR), d, side)
    elif base == "truck":
        _truck(cv, x, yb, m, cv.thing(TRUCK), d, side)
    elif base == "bus":
        _bus(cv, x, yb, m, cv.thing(BUS), d, side)
    elif base == "train":
        _train(cv, x, yb, m, cv.thing(TRAIN), d, side, rng)
    elif kind == "pole":
        _pole(cv, x, yb, m, rng, d)
    elif kind == "tree":
        _tree(cv, x, yb, m, rng)
    else:
        _static(cv, x, yb, m)


def _stripes(coord: np.ndarray, period: float, on: float) -> np.ndarray:
    """coord % period < on, both rounded to whole pixels (at least one)."""
    return coord % _px(period) < _px(on)


def _coarse_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Uniform noise on a grid of about `cell`-pixel cells, bilinearly resized to (h, w)."""
    c = _px(cell)
    return cv2.resize(rng.random((h // c + 1, w // c + 1)).astype(np.float32), (w, h))


def _surface_detail(cv: _Canvas, rng: np.random.Generator) -> None:
    """Shape cues shared by all domains: windows, fence slats, paving, foliage and grass texture."""
    h, w = cv.sem.shape
    s = cv.scale
    yy, xx = np.mgrid[0:h, 0:w]
    p = int(rng.integers(4, 7))
    windows = _stripes(xx, p * s, p // 2 * s) & _stripes(yy, (p + 1) * s, (p + 1) // 2 * s)
    cv.shade[(cv.sem == BUILDING) & windows] *= 0.6
    cv.shade[(cv.sem == FENCE) & _stripes(xx, 3 * s, s)] *= 0.55
    cv.shade[(cv.sem == SIDEWALK) & (_stripes(yy, 4 * s, s) | _stripes(xx, 7 * s, s))] *= 0.88
    blobs = _coarse_noise(rng, h, w, 4 * s)
    fine = rng.random((h, w)).astype(np.float32)
    veg, grass = cv.sem == VEGETATION, cv.sem == TERRAIN
    cv.shade[veg] *= 0.7 + 0.6 * blobs[veg]
    cv.shade[grass] *= 0.9 + 0.2 * fine[grass]


def _keep_visible(cv: _Canvas) -> Scene:
    """Drop instance ids of things whose visible part is below MIN_INSTANCE_PX; renumber the rest 1..k."""
    area = np.bincount(cv.inst.ravel(), minlength=len(cv.things) + 1)
    keep = area[1:] >= MIN_INSTANCE_PX * cv.scale ** 2
    remap = np.zeros(len(cv.things) + 1, np.int32)
    remap[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    things = [th for th, k in zip(cv.things, keep) if k]
    return Scene(cv.sem, remap[cv.inst], cv.shade, things, cv.scale)


def detail_scale(height: int, width: int) -> float:
    """Detail scale of an image of this size: its linear size relative to the default toy image."""
    return math.sqrt(height * width / (DEFAULT_SIZE[0] * DEFAULT_SIZE[1]))


def draw_scene(rng: np.random.Generator, height: int, width: int, scale: float = 1.0) -> Scene:
    """Draw one random street scene (the layout shared by all domains) at detail scale `scale`."""
    cv = _Canvas(height, width, scale)
    st = _street(rng, height, width)
    _draw_ground(cv, st)
    _draw_skyline(cv, st, rng)
    for side in (0, 1):
        _draw_side(cv, st, side, rng)
    for t, _, kind, x, d in sorted(_plan_objects(st, rng)):
        _draw_object(cv, st, kind, t, x, d, rng)
    _surface_detail(cv, rng)
    return _keep_visible(cv)


# --- rendering styles ---

def _hsv_adjust(rgb: np.ndarray, hue_deg: float, sat: float, val: float = 1.0) -> np.ndarray:
    """Rotate hue and scale saturation/value of an (N, 3) float RGB table in [0, 1]."""
    hsv = cv2.cvtColor(rgb.reshape(1, -1, 3).astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + hue_deg) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0.0, 1.0)
    hsv[..., 2] = hsv[..., 2] * val
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3)


GTA_RGB = np.clip(_hsv_adjust(CANON_RGB, -8.0, 1.15, 0.95), 0.0, 1.0)
"""The GTA-style palette: the canonical colours slightly shifted in hue and more saturated."""


def _flat(scene: Scene, palette: np.ndarray, rng: np.random.Generator,
          colour_table: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Flat-shaded float RGB image: per-image stuff jitter, per-instance thing jitter, detail shading."""
    stuff = palette + rng.uniform(-0.04, 0.04, palette.shape).astype(np.float32)
    things = np.array([palette[c] for c, _ in scene.things], np.float32).reshape(-1, 3)
    spread = np.array([0.16 if c in (PERSON, RIDER) else 0.08 for c, _ in scene.things], np.float32)
    things = things + rng.uniform(-1.0, 1.0, things.shape).astype(np.float32) * spread[:, None]
    table = np.clip(np.concatenate([stuff, things]), 0.0, 1.0)
    if colour_table is not None:
        table = colour_table(table)
    seg = np.where(scene.inst > 0, len(palette) + scene.inst - 1, scene.sem)
    return table[seg] * scene.shade[..., None]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_synthia(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """SYNTHIA style: flat colours with per-instance jitter and one global light level."""
    return _to_uint8(_flat(scene, CANON_RGB, rng) * rng.uniform(0.85, 1.1))


def render_gta(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """GTA style: its own clean palette, soft top-down light, darkened contours and slight blur."""
    h, w = scene.sem.shape
    s = scene.scale
    img = _flat(scene, GTA_RGB, rng)
    seg = scene.sem.astype(np.int32) * 4096 + scene.inst
    edges = np.zeros((h, w), np.float32)
    edges[:, 1:] += seg[:, 1:] != seg[:, :-1]
    edges[1:, :] += seg[1:, :] != seg[:-1, :]
    edges = cv2.dilate(np.minimum(edges, 1.0), np.ones((_px(s), _px(s)), np.uint8))
    edges = cv2.GaussianBlur(edges, (0, 0), 1.2 * s)
    light = np.linspace(1.12, 0.88, h, dtype=np.float32)[:, None] * (1.0 - 0.5 * edges)
    return _to_uint8(cv2.GaussianBlur(img * light[..., None], (0, 0), 0.6 * s))


def object_stripes(scene: Scene, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """HxW brightness factor 1 + amplitude * sin(...) of one random stripe pattern per thing (1 elsewhere):
    orientation, period (3-8 px times the detail scale) and phase drawn per instance."""
    n = len(scene.things)
    if n == 0:
        return np.ones(scene.sem.shape, np.float32)
    angle = rng.uniform(0, np.pi, n)
    period, phase = rng.uniform(3.0, 8.0, n) * scene.scale, rng.uniform(0, 2 * np.pi, n)
    ys, xs = np.mgrid[0:scene.sem.shape[0], 0:scene.sem.shape[1]].astype(np.float32)
    k = np.maximum(scene.inst - 1, 0)
    wave = np.sin(2 * np.pi * (xs * np.cos(angle[k]) + ys * np.sin(angle[k])) / period[k] + phase[k])
    return np.where(scene.inst > 0, 1.0 + amplitude * wave, 1.0).astype(np.float32)


def render_real(scene: Scene, rng: np.random.Generator, object_texture: float = 0.0) -> np.ndarray:
    """'Real' (Cityscapes) style: hue/saturation shift, texture, uneven light, gamma, warm tint, blur, noise;
    with `object_texture` > 0 also stripes of that amplitude on every thing (`object_stripes`)."""
    h, w = scene.sem.shape
    hue = rng.uniform(15.0, 25.0)
    img = _flat(scene, CANON_RGB, rng, lambda t: np.clip(_hsv_adjust(t, hue, 0.55), 0.0, 1.0))
    if object_texture > 0:
        img = img * object_stripes(scene, rng.spawn(1)[0], object_texture)[..., None]  # the rest draws as without
    s = scene.scale
    coarse = _coarse_noise(rng, h, w, 8 * s)
    fine = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7 * s)
    img = img * (0.9 + 0.2 * coarse + 0.06 * s * fine)[..., None]  # x s: blurring s times wider shrinks it 1/s
    a, b = rng.uniform(0.825, 1.075, 2)
    img = img * np.linspace(a, b, w, dtype=np.float32)[None, :, None]
    img = np.clip(img, 0.0, 1.0) ** rng.uniform(1.2, 1.7)
    img = img * np.array([1.08, 1.0, 0.84], np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 1.0) * s)
    return _to_uint8(img + rng.normal(0.0, rng.uniform(0.0075, 0.0175), img.shape).astype(np.float32))


# --- writers for the real on-disk formats ---

def _label_id_lut() -> np.ndarray:
    lut = np.zeros(NUM_CLASSES + 1, np.uint8)
    lut[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
    lut[STATIC] = STATIC_LABEL_ID
    return lut


def _synthia_lut() -> np.ndarray:
    """Scene class -> Synthia class id, with the real quirk: terrain, truck and train are void (0)."""
    lut = np.array([TRAIN_ID_TO_SYNTHIA[c] for c in range(NUM_CLASSES)] + [0], np.uint16)
    lut[[TERRAIN, TRUCK, TRAIN]] = 0
    return lut


LABEL_ID_LUT = _label_id_lut()
SYNTHIA_LUT = _synthia_lut()


def _label_colours() -> np.ndarray:
    """Cityscapes colour of every label id, (256, 3) RGB (also the GTA5 label palette)."""
    table = np.zeros((256, 3), np.uint8)
    for lab in CS_LABELS:
        if lab.id >= 0:
            table[lab.id] = lab.color
    return table


LABEL_COLOURS = _label_colours()
LABEL_NAMES = {lab.id: lab.name for lab in CS_LABELS if lab.id >= 0}


def _imwrite(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write image")


def _write_synthia(root: Path, index: int, scene: Scene, rgb: np.ndarray) -> None:
    name = f"{index:07d}.png"
    label = np.zeros(scene.sem.shape + (3,), np.uint16)
    label[..., 2] = SYNTHIA_LUT[scene.sem]
    label[..., 1] = scene.inst
    train_ids = np.where(label[..., 2] > 0, scene.sem, 255).astype(np.uint8)
    _imwrite(root / "RGB" / name, rgb[..., ::-1])
    _imwrite(root / "GT" / "LABELS" / name, label)
    _imwrite(root / "GT" / "COLOR" / name, colorize(train_ids)[..., ::-1])


def _write_gta(root: Path, index: int, scene: Scene, rgb: np.ndarray) -> None:
    name = f"{index + 1:05d}.png"
    _imwrite(root / "images" / name, rgb[..., ::-1])
    label = Image.fromarray(LABEL_ID_LUT[scene.sem])
    label.putpalette(LABEL_COLOURS.ravel().tolist())
    label.save(root / "labels" / name)


def cityscapes_stem(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of toy Cityscapes image `index` of a split."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_000019"


def _instance_ids(scene: Scene, label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes instanceIds: labelId * 1000 + k per thing (k from 0 per class), labelId for stuff and crowd."""
    value = np.zeros(len(scene.things) + 1, np.int64)
    counts: dict[int, int] = {}
    for i, (cls, crowd) in enumerate(scene.things, start=1):
        if not crowd:
            lid = int(TRAIN_ID_TO_LABEL_ID[cls])
            value[i] = lid * LABEL_DIVISOR + counts.get(lid, 0)
            counts[lid] = counts.get(lid, 0) + 1
    per_pixel = value[scene.inst]
    return np.where(per_pixel > 0, per_pixel, label_ids).astype(np.uint16)


def _polygons(label_ids: np.ndarray, instance_ids: np.ndarray) -> dict:
    """Minimal gtFine polygons: one object per outer contour of every stuff region and thing instance."""
    objects = []
    for seg in np.unique(instance_ids):
        lid = int(seg) // LABEL_DIVISOR if seg >= LABEL_DIVISOR else int(seg)
        name = LABEL_NAMES[lid] + ("group" if seg < LABEL_DIVISOR and is_thing_label_id(lid) else "")
        contours, _ = cv2.findContours((instance_ids == seg).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        objects += [{"label": name, "polygon": c.reshape(-1, 2).tolist()} for c in contours if len(c) >= 3]
    h, w = label_ids.shape
    return {"imgHeight": h, "imgWidth": w, "objects": objects}


def _write_cityscapes(root: Path, split: str, index: int, scene: Scene, rgb: np.ndarray) -> None:
    city, stem = cityscapes_stem(split, index)
    gt = root / "gtFine" / split / city / stem
    label_ids = LABEL_ID_LUT[scene.sem]
    instance_ids = _instance_ids(scene, label_ids)
    colour = np.concatenate([LABEL_COLOURS[label_ids][..., ::-1], np.full(label_ids.shape + (1,), 255, np.uint8)],
                            axis=-1)
    _imwrite(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb[..., ::-1])
    _imwrite(gt.with_name(f"{stem}_gtFine_labelIds.png"), label_ids)
    _imwrite(gt.with_name(f"{stem}_gtFine_instanceIds.png"), instance_ids)
    _imwrite(gt.with_name(f"{stem}_gtFine_color.png"), colour)
    gt.with_name(f"{stem}_gtFine_polygons.json").write_text(json.dumps(_polygons(label_ids, instance_ids)))


# --- driver ---

def image_rng(seed: int, domain: str, index: int) -> np.random.Generator:
    """The generator of one image, independent of worker count and order."""
    return np.random.default_rng(np.random.SeedSequence([seed, DOMAINS[domain], index]))


def native_image_size(domain: str, index: int) -> tuple[int, int]:
    """(height, width) of image `index` of a dataset at native size."""
    k = index % GTA5_ODD_PERIOD
    if domain == "gta5" and 1 <= k <= len(GTA5_ODD_SIZES):
        return GTA5_ODD_SIZES[k - 1]
    return NATIVE_SIZES[domain]


def _image_size(domain: str, index: int, native: bool, height: int, width: int) -> tuple[int, int, float]:
    """(height, width, detail scale) of one image: native, or the one size given at detail scale 1."""
    if not native:
        return height, width, 1.0
    h, w = native_image_size(domain, index)
    return h, w, detail_scale(h, w)


def _make_one(task: tuple[Path, int, int, int, float, str, int, float]) -> np.ndarray:
    """Draw, render and write one image; returns which scene classes it contains."""
    out, seed, height, width, scale, domain, index, object_texture = task
    rng = image_rng(seed, domain, index)
    scene = draw_scene(rng, height, width, scale)
    if domain == "synthia":
        _write_synthia(out / "synthia", index, scene, render_synthia(scene, rng))
    elif domain == "gta5":
        _write_gta(out / "gta5", index, scene, render_gta(scene, rng))
    else:
        rgb = render_real(scene, rng, object_texture)
        _write_cityscapes(out / "cityscapes", domain.split("_")[1], index, scene, rgb)
    return np.bincount(scene.sem.ravel(), minlength=NUM_CLASSES + 1) > 0


def truck_and_train_index(seed: int, start: int, limit: int = 1000, shrink: int = 8) -> int:
    """The first native-size GTA5 image index from `start` whose scene shows a truck and a train (the Mixed source
    takes only such GTA5 images). Scenes are drawn `shrink` times smaller (same objects, as the detail scale
    follows the size) and not rendered; the chosen one is checked at full size."""
    for index in range(start, start + limit):
        height, width, scale = _image_size("gta5", index, True, 0, 0)
        small = draw_scene(image_rng(seed, "gta5", index), round(height / shrink), round(width / shrink),
                           scale / shrink)
        if np.isin([TRUCK, TRAIN], small.sem).all() and np.isin(
                [TRUCK, TRAIN], draw_scene(image_rng(seed, "gta5", index), height, width, scale).sem).all():
            return index
    raise RuntimeError(f"no GTA5 scene with a truck and a train among images {start}..{start + limit - 1}")


DATASET_FOLDERS = ("synthia", "gta5", "cityscapes")
LABEL_FOLDERS = ("GT", "labels", "gtFine")  # SYNTHIA's, GTA5's, Cityscapes'
STAGING = ".make-toy-partial"
# Listed, with every image, while a toy is being written: `data check` rejects an unfinished dataset folder.
UNFINISHED_ENTRY = "make-toy-did-not-finish.png\n"


def _refuse_foreign(out: Path) -> None:
    """Refuse an output folder whose synthia/gta5/cityscapes folders are not an earlier toy benchmark."""
    readme = out / "README.md"
    is_toy = readme.is_file() and readme.read_text().startswith(README_TITLE)
    if any((out / p).exists() for p in DATASET_FOLDERS) and not is_toy:
        raise FileExistsError(f"{out}: holds synthia/gta5/cityscapes folders that are not a toy benchmark; "
                              "choose an empty output directory")


def _make_folders(out: Path) -> None:
    for d in ("RGB", "GT/LABELS", "GT/COLOR"):
        (out / "synthia" / d).mkdir(parents=True, exist_ok=True)
    for d in ("images", "labels"):
        (out / "gta5" / d).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        for city in CITIES[split]:
            (out / "cityscapes" / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (out / "cityscapes" / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)


def _remove(folder: Path) -> None:
    """Delete a toy folder (or one dataset of it) labels first: no moment of the deletion leaves images with all
    their labels but not all of the split's images, a dataset `data check` would accept."""
    datasets = [folder, *(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
    for dataset in datasets:
        for labels in LABEL_FOLDERS:
            shutil.rmtree(dataset / labels, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def _install(staged: Path, out: Path) -> None:
    """Move the complete toy from `staged` into `out`, replacing an earlier one: the README first (so `out` stays
    recognisably a toy), then each dataset folder by one rename; the replaced folders are deleted last."""
    os.replace(staged / "README.md", out / "README.md")
    for name in DATASET_FOLDERS:
        if (out / name).exists():
            os.replace(out / name, staged / f"replaced-{name}")
        os.replace(staged / name, out / name)
    _remove(staged)


def _write_lists(out: Path, counts: dict[str, int], val_start: int = 0, gta5_indices: list[int] | None = None,
                 last_line: str = "") -> None:
    """The split lists (image paths, relative), each followed by `last_line`."""
    gta5_indices = list(range(counts["gta5"])) if gta5_indices is None else gta5_indices
    (out / "synthia" / "train.txt").write_text(
        "".join(f"RGB/{i:07d}.png\n" for i in range(counts["synthia"])) + last_line)
    (out / "gta5" / "train.txt").write_text("".join(f"images/{i + 1:05d}.png\n" for i in gta5_indices) + last_line)
    for split, first in (("train", 0), ("val", val_start)):
        lines = []
        for i in range(first, first + counts[f"cityscapes_{split}"]):
            city, stem = cityscapes_stem(split, i)
            lines.append(f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png\n")
        (out / "cityscapes" / f"{split}.txt").write_text("".join(sorted(lines)) + last_line)


def _size_text(native: bool, height: int, width: int) -> str:
    """The README's image sizes, width x height like the rest of it."""
    if not native:
        return f"images {width}x{height} px"
    (sh, sw), (gh, gw), (ch, cw) = (NATIVE_SIZES[d] for d in ("synthia", "gta5", "cityscapes_val"))
    odd = ", ".join(f"{w}x{h} for file {k + 2:05d}" for k, (h, w) in enumerate(GTA5_ODD_SIZES))
    return (f"images at the real datasets' sizes: SYNTHIA {sw}x{sh}, GTA5 {gw}x{gh} ({odd} of every "
            f"{GTA5_ODD_PERIOD}), Cityscapes {cw}x{ch} px, details scaled to match")


def _write_readme(out: Path, seed: int, sizes: str, counts: dict[str, int],
                  presence: dict[str, np.ndarray], val_start: int = 0, object_texture: float = 0.0) -> None:
    rows = "\n".join(
        f"| {CLASS_NAMES[c]} | " + " | ".join(f"{100 * presence[d][c]:.0f}%" for d in DOMAINS) + " |"
        for c in range(NUM_CLASSES)
    )
    notes = (f"; Cityscapes val images {val_start} to {val_start + counts['cityscapes_val'] - 1} of the "
             "generator (a held-out split that shares no image with val images 0 onwards of a smaller count)"
             if val_start else "")
    if object_texture > 0:
        notes += f"; things of the Cityscapes-style images striped (amplitude {object_texture})"
    text = f"""{README_TITLE}

Generated by `panoptic_st.data.toy.make_toy` with seed {seed}, {sizes}{notes}.
The same seed gives byte-identical files.

| dataset | images | format |
|---|---|---|
| `synthia/` | {counts['synthia']} | SYNTHIA RAND_CITYSCAPES: `RGB/`, `GT/LABELS/` (16-bit, class in R, instance in G), `GT/COLOR/` |
| `gta5/` | {counts['gta5']} | GTA5: `images/`, `labels/` (palette PNG of Cityscapes label ids, no instances) |
| `cityscapes/` train | {counts['cityscapes_train']} | Cityscapes `leftImg8bit/` + `gtFine/` (labelIds, instanceIds, color, polygons) |
| `cityscapes/` val | {counts['cityscapes_val']} | same, plus `gtFine/cityscapes_panoptic_{{train,val}}.json` from `csCreatePanopticImgs` |

Split lists: `synthia/train.txt`, `gta5/train.txt`, `cityscapes/{{train,val}}.txt` (image paths, relative).

All three share one scene model (street in perspective; things painted far-to-near so instance masks are their
visible parts; things under {MIN_INSTANCE_PX} visible pixels keep their class but no instance id). Only the rendering
differs: SYNTHIA-style flat colours, GTA-style shaded palette, and a "real" Cityscapes style (hue +15-25 deg,
saturation x0.55, texture, left-right light gradient, gamma 1.2-1.7, warm tint, blur, noise).
Label quirks as in the real data: SYNTHIA terrain, truck and train pixels have class 0 (void) but trucks and trains
keep instance ids; a few distant groups of persons/bicycles are Cityscapes crowd regions (instanceId = labelId);
bins are void ('static', label id 4; SYNTHIA 0).

Share of images in which each class is drawn (SYNTHIA writes terrain/truck/train as void):

| class | {' | '.join(DOMAINS)} |
|---|{'---|' * len(DOMAINS)}
{rows}
"""
    (out / "README.md").write_text(text)


def _init_worker() -> None:
    cv2.setNumThreads(1)


def make_toy(out: Path, seed: int = 0, n_source: int = 1000, n_target: int = 1000, n_val: int = 200,
             height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1], workers: int = 2, progress: bool = True,
             val_start: int = 0, object_texture: float = 0.0, native_size: bool = False) -> dict:
    """Write the toy SYNTHIA, GTA5 and Cityscapes datasets (+ panoptic GT) under `out`; return counts, seconds.

    Every image is a function of (seed, dataset, index). `val_start` makes the Cityscapes val split images
    `val_start .. val_start + n_val - 1`: with `val_start=200` it shares no image with the default 200-image val
    split, a held-out test split for results selected on val. `object_texture` > 0 stripes the things of the
    Cityscapes-style images (amplitude of a brightness wave per object): a domain gap for the instance branch.
    `native_size` writes every dataset at the real datasets' sizes (`native_image_size`) instead of
    `height` x `width`, and its last GTA5 image is the first from there on whose scene shows a truck and a train (the
    Mixed source needs one); pair it with few images (`NATIVE_COUNTS`).
    The toy is written into `out/.make-toy-partial`, its split lists first with an entry that never exists (so that
    `data check` rejects an unfinished folder), and moved into `out` when complete: an interrupted run leaves `out`
    as it was. An earlier toy in `out` is replaced; other synthia/gta5/cityscapes folders there are refused.
    """
    if min(n_target, n_val) < 1 or min(n_source, val_start) < 0 or min(height, width) < 32:
        raise ValueError("make_toy needs n_target >= 1, n_val >= 1, n_source >= 0, val_start >= 0 and images of at "
                         "least 32x32 px")
    start = time.perf_counter()
    out = Path(out)
    counts = {"synthia": n_source, "gta5": n_source, "cityscapes_train": n_target, "cityscapes_val": n_val}
    _refuse_foreign(out)
    staged = out / STAGING
    _remove(staged)
    _make_folders(staged)
    first = {"cityscapes_val": val_start}
    indices = {d: list(range(first.get(d, 0), first.get(d, 0) + n)) for d, n in counts.items()}
    if native_size and n_source:
        indices["gta5"][-1] = truck_and_train_index(seed, n_source - 1)
    _write_lists(staged, counts, val_start, indices["gta5"], UNFINISHED_ENTRY)
    tasks = [(staged, seed, *_image_size(d, i, native_size, height, width), d, i, object_texture)
             for d, ids in indices.items() for i in ids]
    bar = tqdm(total=len(tasks), desc="toy benchmark", unit="img", disable=not progress)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            spawn = multiprocessing.get_context("spawn")  # a forked worker can inherit a held thread lock and hang
            pool = stack.enter_context(spawn.Pool(workers, initializer=_init_worker))
            results = pool.imap(_make_one, tasks, chunksize=max(1, min(16, len(tasks) // (4 * workers))))
        else:
            results = map(_make_one, tasks)
        found = []
        for r in results:
            found.append(r)
            bar.update()
    bar.close()
    presence, k = {}, 0
    for d, n in counts.items():
        presence[d] = np.mean(found[k:k + n], axis=0) if n else np.zeros(NUM_CLASSES + 1)
        k += n
    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(cityscapesPath=str(staged / "cityscapes" / "gtFine"),
                         outputFolder=str(staged / "cityscapes" / "gtFine"), useTrainId=False,
                         setNames=["train", "val"])
    _write_readme(staged, seed, _size_text(native_size, height, width), counts, presence, val_start, object_texture)
    _write_lists(staged, counts, val_start, indices["gta5"])
    _install(staged, out)
    seconds = time.perf_counter() - start
    print(f"toy benchmark: {sum(counts.values())} images in {out} ({seconds:.1f} s)")
    return {**counts, "seconds": seconds}
