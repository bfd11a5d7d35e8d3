"""Figures: panoptic overlays and per-class bars, written as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from panoptic_st.data.labels import CLASS_NAMES, LABEL_DIVISOR, NUM_CLASSES, colorize


def panoptic_colors(panoptic: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB image of a panoptic map: stuff in its class colour, each thing instance in a jittered class colour."""
    classes = np.where(panoptic >= 0, panoptic // LABEL_DIVISOR, 255).astype(np.int64)
    rgb = colorize(np.where(classes < NUM_CLASSES, classes, 255).astype(np.uint8)).astype(np.int16)
    instance = np.where(panoptic >= 0, panoptic % LABEL_DIVISOR, 0)
    rng = np.random.default_rng(seed)
    jitter = rng.integers(-60, 61, size=(int(instance.max(initial=0)) + 1, 3))
    jitter[0] = 0
    rgb += jitter[instance]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a colour map onto an RGB uint8 image."""
    return (image * (1 - alpha) + colors * alpha).astype(np.uint8)


def save_panoptic_panel(path: Path, image: np.ndarray, rows: dict[str, np.ndarray]) -> None:
    """One figure: the image, then each named panoptic map as an overlay."""
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(3.2 * (len(rows) + 1), 2.0))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=8)
    for ax, (name, panoptic) in zip(axes[1:], rows.items()):
        ax.imshow(overlay(image, panoptic_colors(panoptic)))
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_per_class_bars(path: Path, values: dict[str, list[float]], ylabel: str,
                        class_ids: list[int] | None = None) -> None:
    """Grouped bars per class (NaN drawn as missing), one group member per named series."""
    ids = class_ids if class_ids is not None else list(range(NUM_CLASSES))
    width = 0.8 / max(len(values), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(ids)), 3.0))
    x = np.arange(len(ids))
    for k, (name, series) in enumerate(values.items()):
        ax.bar(x + k * width, np.nan_to_num(np.asarray(series, dtype=float)), width, label=name)
    ax.set_xticks(x + width * (len(values) - 1) / 2)
    ax.set_xticklabels([CLASS_NAMES[c] for c in ids], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def instance_colors(instances: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB image (H, W, 3) of an instance-id map: one random bright colour per instance, background (0) black."""
    ids, inverse = np.unique(instances, return_inverse=True)
    colors = np.random.default_rng(seed).integers(64, 256, size=(len(ids), 3)).astype(np.uint8)
    colors[ids == 0] = 0
    return colors[inverse.reshape(instances.shape)]


PCA_FIT_POINTS = 20_000
"""The embedding PCA is fitted on at most about this many evenly spaced pixels (every pixel is projected)."""


def embedding_rgb(embeddings: np.ndarray) -> np.ndarray:
    """RGB image (H, W, 3) of per-pixel embeddings (D, H, W): their first three principal components."""
    from sklearn.decomposition import PCA

    dim, height, width = embeddings.shape
    points = embeddings.reshape(dim, -1).T.astype(np.float64)
    n = min(3, *points.shape)
    components = np.zeros((points.shape[0], 3))
    sample = points[::max(1, len(points) // PCA_FIT_POINTS)]
    components[:, :n] = PCA(n_components=n, svd_solver="full").fit(sample).transform(points)  # no RNG draws
    # one common scale for all components: weak ones stay grey instead of amplifying noise
    scaled = 0.5 + components / (2 * max(float(np.abs(components).max()), 1e-12))
    return (scaled * 255).round().astype(np.uint8).reshape(height, width, 3)
