"""Upright stuff and void objects (poles with lights and signs, trees, bins) and the surface detail
shared by all domains."""

from __future__ import annotations

import numpy as np

from panoptic_st.data.toy.scene import (
    BUILDING,
    FENCE,
    LIGHT,
    POLE,
    SIDEWALK,
    SIGN,
    STATIC,
    TERRAIN,
    VEGETATION,
    Canvas,
    coarse_noise,
    stripes,
)


def draw_pole(cv: Canvas, x: float, yb: float, m: float, rng: np.random.Generator, d: int) -> None:
    """A pole, maybe with a traffic light on an arm or a sign."""
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


def draw_tree(cv: Canvas, x: float, yb: float, m: float, rng: np.random.Generator) -> None:
    """A tree: trunk and two crowns."""
    cv.rect(x - 0.15 * m, yb - 2.6 * m, x + 0.15 * m, yb, VEGETATION, 0, 0.55)
    r = rng.uniform(1.5, 2.5) * m
    cv.ellipse((x, yb - 2.4 * m - 0.8 * r), (r, 0.85 * r), VEGETATION)
    cv.ellipse((x + rng.uniform(-0.6, 0.6) * r, yb - 2.4 * m - 1.3 * r), (0.6 * r, 0.5 * r), VEGETATION, 0, 1.1)


def draw_static(cv: Canvas, x: float, yb: float, m: float) -> None:
    """A bin (void class 'static')."""
    cv.rect(x - 0.3 * m, yb - 1.0 * m, x + 0.3 * m, yb, STATIC)
    cv.rect(x - 0.35 * m, yb - 1.1 * m, x + 0.35 * m, yb - 0.9 * m, STATIC, 0, 0.7)


def surface_detail(cv: Canvas, rng: np.random.Generator) -> None:
    """Shape cues shared by all domains: windows, fence slats, paving, foliage and grass texture."""
    h, w = cv.sem.shape
    s = cv.scale
    yy, xx = np.mgrid[0:h, 0:w]
    p = int(rng.integers(4, 7))
    windows = stripes(xx, p * s, p // 2 * s) & stripes(yy, (p + 1) * s, (p + 1) // 2 * s)
    cv.shade[(cv.sem == BUILDING) & windows] *= 0.6
    cv.shade[(cv.sem == FENCE) & stripes(xx, 3 * s, s)] *= 0.55
    cv.shade[(cv.sem == SIDEWALK) & (stripes(yy, 4 * s, s) | stripes(xx, 7 * s, s))] *= 0.88
    blobs = coarse_noise(rng, h, w, 4 * s)
    fine = rng.random((h, w)).astype(np.float32)
    veg, grass = cv.sem == VEGETATION, cv.sem == TERRAIN
    cv.shade[veg] *= 0.7 + 0.6 * blobs[veg]
    cv.shade[grass] *= 0.9 + 0.2 * fine[grass]
