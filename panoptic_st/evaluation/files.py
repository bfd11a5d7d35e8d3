"""Cityscapes result files: the official names, finding ground truth and predictions, and the readers shared by
the file-based evaluators (each reads exactly the values the official scripts read; errors name the file)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from panoptic_st.errors import EvaluationInputError
from panoptic_st.evaluation.png import inflate, png_image_data, read_png

__all__ = [
    "cityscapes_prefix",
    "find_ground_truth",
    "id_to_rgb",
    "match_prediction_files",
    "output_stem",
    "progress_bar",
    "read_json",
    "read_label_png",
    "read_mask_png",
    "read_panoptic_ids",
    "read_panoptic_rgb",
    "rgb_to_id",
]


# ----------------------------------------------------------------------------------------------------------------
# names and discovery

_CS_NAME = re.compile(r"^([^_]+)_(\d+)_(\d+)")


def cityscapes_prefix(name: str | os.PathLike) -> str:
    """``{city}_{seq}_{frame}`` of a Cityscapes file name or image id (``aachen_000000_000019_gtFine_x.png``)."""
    base = os.path.basename(os.fspath(name))
    m = _CS_NAME.match(base)
    if m is None:
        raise EvaluationInputError(f"{name}: not a Cityscapes name (expected city_123456_123456...)")
    return m.group(0)


def output_stem(name: str | os.PathLike) -> str:
    """The stem of an image's result files: ``{city}_{seq}_{frame}`` for a Cityscapes name, else the name itself
    without an image suffix and with blanks as ``_`` (it may hold sub-folders, e.g. ``run1/img_001`` for a folder
    of arbitrary images)."""
    base = os.path.basename(os.fspath(name))
    m = _CS_NAME.match(base)
    if m is not None:
        return m.group(0)
    return re.sub(r"\s", "_", re.sub(r"\.(png|jpe?g)$", "", os.fspath(name), flags=re.IGNORECASE))


def find_ground_truth(gt_dir: str | os.PathLike, suffix: str) -> list[Path]:
    """All files ``*{suffix}`` under ``gt_dir`` (recursive, sorted); an error if there are none."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise EvaluationInputError(f"{gt_dir}: ground-truth folder not found")
    files = sorted(gt_dir.rglob(f"*{suffix}"))
    if not files:
        raise EvaluationInputError(f"{gt_dir}: no *{suffix} files found")
    return files


def match_prediction_files(gt_files: Iterable[Path], pred_dir: str | os.PathLike, ext: str) -> list[Path]:
    """The prediction of each GT file, found as the official scripts do: exactly one ``{prefix}*.{ext}`` anywhere
    under ``pred_dir``."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationInputError(f"{pred_dir}: prediction folder not found")
    by_prefix: dict[str, list[Path]] = {}
    for root, _, names in os.walk(pred_dir):
        for name in fnmatch.filter(names, f"*.{ext}"):
            m = _CS_NAME.match(name)
            if m is not None:
                by_prefix.setdefault(m.group(0), []).append(Path(root) / name)
    out = []
    for gt in gt_files:
        prefix = cityscapes_prefix(gt)
        found = by_prefix.get(prefix, [])
        # the official pattern `{prefix}*` also matches longer frame numbers; the regex prefix match is exact
        if not found:
            raise EvaluationInputError(f"{gt}: no prediction {prefix}*.{ext} under {pred_dir}")
        if len(found) > 1:
            raise EvaluationInputError(f"{gt}: several predictions {prefix}*.{ext} under {pred_dir}")
        out.append(found[0])
    return out


# ----------------------------------------------------------------------------------------------------------------
# readers


_GRAY, _RGB, _RGBA = 0, 2, 6
"""PNG colour types."""
_LUMA_WEIGHTS = (19595, 38470, 7471)
"""PIL's ``L`` conversion in 16-bit fixed point for R, G, B: ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16``."""


def _png_format(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) of a PNG, read from its IHDR header; (0, -1) if it is not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return 0, -1
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return 0, -1
    return head[24], head[25]


def _decode(path: Path, ndim: int) -> np.ndarray | None:
    """The image (greyscale, or RGB(A) order) if it has ``ndim`` dimensions: the fast reader's, else OpenCV's."""
    img = read_png(path)
    if img is None:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is not None and img.ndim == 3 and img.shape[2] in (3, 4):
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img if img is not None and img.ndim == ndim else None


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A single-channel PNG with the values PIL gives (as the official scripts read it); errors name the file.

    8- and 16-bit greyscale PNGs are decoded by :mod:`~panoptic_st.evaluation.png` or OpenCV (same values, faster),
    anything else with PIL (palette PNGs give their indices)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: file not found")
    if _png_format(path) in ((8, _GRAY), (16, _GRAY)):
        array = _decode(path, 2)
        if array is not None:
            return array
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read image ({exc})") from None
    if array.ndim != 2:
        raise EvaluationInputError(f"{path}: expected a single-channel image, got shape {array.shape}")
    return array


def read_mask_png(path: str | os.PathLike) -> tuple[np.ndarray, tuple[int, int]]:
    """Flat indices of the pixels of an instance mask: those non-zero after PIL's conversion to ``L``, exactly as
    the official script reads it. Returns ``(flat_indices, (height, width))``.

    Greyscale PNGs of up to 8 bits and 8-bit RGB(A) PNGs are decoded by :mod:`~panoptic_st.evaluation.png` or
    OpenCV (for colour, PIL's ``L`` is computed with its own fixed-point weights), anything else with PIL; only the
    bounding box of the non-zero bytes is scanned."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: mask file not found")
    depth, colour = _png_format(path)
    if (depth, colour) == (1, _GRAY):
        bilevel = _bilevel_pixels(path)
        if bilevel is not None:
            return bilevel
    img = None
    if colour == _GRAY and 0 < depth <= 8:
        img = _decode(path, 2)
    elif colour in (_RGB, _RGBA) and depth == 8:
        img = _decode(path, 3)
    if img is None:
        img = _pil_luma(path)
    return _luma_nonzero(img), img.shape[:2]


def _bilevel_pixels(path: Path) -> tuple[np.ndarray, tuple[int, int]] | None:
    """``read_mask_png`` of a non-interlaced 1-bit greyscale PNG whose rows are all unfiltered (the exporter's
    masks): inflated with zlib-ng and only its non-zero bytes unpacked. None for any other PNG."""
    image = png_image_data(path.read_bytes())
    if image is None or image[0][2:] != (1, _GRAY, 0, 0, 0):
        return None
    (width, height, *_), idat = image
    stride = (width + 7) // 8 + 1
    raw = inflate(idat, height * stride)
    if raw is None:
        return None
    packed = np.frombuffer(raw, np.uint8)
    if packed[::stride].any():  # a filtered row
        return None
    at = np.flatnonzero(packed)  # the filter bytes are 0: every hit is a byte of pixels
    bits = np.flatnonzero(np.unpackbits(packed[at]))  # most significant bit = leftmost pixel
    byte = at[bits >> 3]
    y = byte // stride
    x = (byte - y * stride - 1) * 8 + (bits & 7)
    inside = x < width
    return y[inside] * width + x[inside], (height, width)


def _pil_luma(path: Path) -> np.ndarray:
    """A mask converted to ``L`` by PIL."""
    try:
        with Image.open(path) as img:
            return np.asarray(img if img.mode == "L" else img.convert("L"))
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read mask ({exc})") from None


def _luma_nonzero(img: np.ndarray) -> np.ndarray:
    """Flat indices of the pixels whose PIL ``L`` value is non-zero, of an HxW ``L`` or HxWx3/4 RGB(A) image."""
    height, width = img.shape[:2]
    channels = 1 if img.ndim == 2 else img.shape[2]
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(img, dtype=np.uint8).reshape(height, width * channels))
    x0, x1 = x // channels, (x + w + channels - 1) // channels
    box = img[y : y + h, x0:x1]
    if channels > 1:  # L = (weighted sum + 2^15) >> 16 is non-zero where the weighted sum reaches 2^15
        box = box.astype(np.uint32)
        r, g, b = _LUMA_WEIGHTS
        box = box[..., 0] * r + box[..., 1] * g + box[..., 2] * b >= 1 << 15
    ys, xs = np.nonzero(box)
    return (ys + y) * width + (xs + x0)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Segment ids ``R + 256 G + 256^2 B`` of an HxWx3 RGB array (int64)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB encoding of segment ids in [0, 2^24)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], axis=-1).astype(np.uint8)


def read_panoptic_rgb(path: str | os.PathLike, buffer: np.ndarray | None = None) -> np.ndarray:
    """Decode a COCO panoptic PNG into an HxWx3 (or x4) uint8 RGB(A) array.

    ``buffer``, an earlier result of the same shape, is decoded into (saves page faults on big images).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationInputError(f"{path}: file not found")
    img = read_png(path, buffer)
    if img is None:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None or img.size == 0:
            raise EvaluationInputError(f"{path}: cannot read image")
        if img.ndim == 3 and img.shape[2] in (3, 4):
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise EvaluationInputError(f"{path}: expected an 8-bit RGB panoptic PNG, got {img.dtype} {img.shape}")
    return img


def read_panoptic_ids(path: str | os.PathLike) -> np.ndarray:
    """Segment ids ``R + 256 G + 256^2 B`` of a COCO panoptic PNG as an HxW int64 array (alpha ignored, as the
    official script does)."""
    return rgb_to_id(read_panoptic_rgb(path))


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file holding an object."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: file not found")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationInputError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise EvaluationInputError(f"{path}: expected a JSON object")
    return data


def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm bar over ``total`` images (disabled unless ``enabled``), as a context manager."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="img", leave=False)
