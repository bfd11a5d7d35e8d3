"""The three rendering styles: SYNTHIA-style flat colours, GTA-style shaded palette and the "real" Cityscapes
style."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from panoptic_st.data.toy.scene import PERSON, RIDER, Scene, coarse_noise, px

CANON_RGB = np.array([
    (85, 85, 92), (170, 160, 152), (150, 105, 85), (190, 180, 150), (125, 88, 55), (125, 130, 150),
    (40, 40, 36), (228, 205, 50), (60, 125, 45), (150, 172, 82), (130, 175, 230), (230, 100, 150),
    (240, 135, 30), (35, 65, 170), (110, 70, 160), (200, 40, 40), (40, 160, 160), (190, 40, 180),
    (160, 230, 60), (95, 105, 85),
], dtype=np.float32) / 255.0
"""Canonical colour of each scene class (19 trainIds + STATIC) before a domain style is applied."""


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
    """Float image in [0, 1] -> rounded uint8."""
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
    edges = cv2.dilate(np.minimum(edges, 1.0), np.ones((px(s), px(s)), np.uint8))
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
    coarse = coarse_noise(rng, h, w, 8 * s)
    fine = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7 * s)
    img = img * (0.9 + 0.2 * coarse + 0.06 * s * fine)[..., None]  # x s: blurring s times wider shrinks it 1/s
    a, b = rng.uniform(0.825, 1.075, 2)
    img = img * np.linspace(a, b, w, dtype=np.float32)[None, :, None]
    img = np.clip(img, 0.0, 1.0) ** rng.uniform(1.2, 1.7)
    img = img * np.array([1.08, 1.0, 0.84], np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 1.0) * s)
    return _to_uint8(img + rng.normal(0.0, rng.uniform(0.0075, 0.0175), img.shape).astype(np.float32))
