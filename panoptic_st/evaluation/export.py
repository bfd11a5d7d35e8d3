"""Cityscapes result file formats: writers from the project's prediction contract, and the readers shared by the
file-based evaluators.

Formats (the ones the official ``cityscapesscripts`` evaluators read):

- semantic: one single-channel PNG of Cityscapes *label ids* per image, named ``{city}_{seq}_{frame}*.png``;
- instance: one ``{city}_{seq}_{frame}*.txt`` per image whose lines are ``relative/mask.png labelId confidence``;
  every mask is a PNG in which any non-zero pixel belongs to the instance;
- panoptic: a COCO panoptic JSON (``annotations`` with ``image_id``, ``file_name`` and ``segments_info`` entries
  ``id``, ``category_id`` (label id), ``area``, ``bbox`` [x, y, w, h], ``iscrowd``) plus one RGB PNG per image whose
  segment id is ``R + 256 G + 256^2 B`` (0 = void).

The writers take the project's prediction contract (``docs/design.md``): ``semantic`` HxW trainIds (255 ignore),
``instances`` HxW ids (0 = none, instance ``k`` is row ``k-1`` of ``segments``: ``class``, ``score``), ``panoptic``
HxW ``trainId * 1000 + instance`` (negative ids or classes outside the 19 train classes are void).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
from cityscapesscripts.helpers.labels import labels as cs_labels
from PIL import Image

from panoptic_st.data.labels import IGNORE_INDEX, LABEL_DIVISOR, NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from panoptic_st.errors import EvaluationInputError

__all__ = [
    "CityscapesExporter",
    "EvaluationInputError",
    "PanopticJsonWriter",
    "cityscapes_prefix",
    "find_ground_truth",
    "id_to_rgb",
    "match_prediction_files",
    "output_stem",
    "panoptic_categories",
    "read_panoptic_bgr",
    "read_panoptic_ids",
    "rgb_to_id",
    "write_instance_prediction",
    "write_panoptic_json",
    "write_panoptic_prediction",
    "write_semantic_prediction",
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


def _png_gray_depth(path: Path) -> int:
    """Bit depth of a greyscale PNG (colour type 0, read from the IHDR header), else 0."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return 0
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or head[25] != 0:
        return 0
    return head[24]


def _cv2_read(path: Path) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img if img is not None and img.ndim == 2 else None


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A single-channel PNG with the values PIL gives (as the official scripts read it); errors name the file.

    8- and 16-bit greyscale PNGs are decoded with OpenCV (same values, faster), anything else with PIL (palette
    PNGs give their indices)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: file not found")
    if _png_gray_depth(path) in (8, 16):
        array = _cv2_read(path)
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


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Flat indices of the pixels of an instance mask: those non-zero after PIL's conversion to ``L``, exactly as
    the official script reads it (greyscale PNGs of up to 8 bits are decoded with OpenCV: same non-zero set).

    Only the bounding box of the non-zero pixels is scanned. Returns ``(flat_indices, (height, width))``."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: mask file not found")
    mask = _cv2_read(path) if 0 < _png_gray_depth(path) <= 8 else None
    if mask is None:
        try:
            with Image.open(path) as img:
                mask = np.asarray(img if img.mode == "L" else img.convert("L"))
        except OSError as exc:
            raise EvaluationInputError(f"{path}: cannot read mask ({exc})") from None
    height, width = mask.shape
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=np.uint8))
    ys, xs = np.nonzero(mask[y : y + h, x : x + w])
    return (ys + y) * width + (xs + x), (height, width)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Segment ids ``R + 256 G + 256^2 B`` of an HxWx3 RGB array (int64)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB encoding of segment ids in [0, 2^24)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], axis=-1).astype(np.uint8)


def read_panoptic_bgr(path: str | os.PathLike, buffer: np.ndarray | None = None) -> np.ndarray:
    """Decode a COCO panoptic PNG into an HxWx3 (or x4) uint8 BGR(A) array with OpenCV.

    ``buffer``, an earlier result of the same shape, is decoded into (saves page faults on big images).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationInputError(f"{path}: file not found")
    img = None
    if buffer is not None:
        try:
            img = cv2.imread(path, buffer, cv2.IMREAD_UNCHANGED)
        except (
            cv2.error,
            TypeError,
        ):  # the buffer does not fit this image (or OpenCV < 4.10: no dst argument)
            img = None
    if img is None or img.size == 0:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise EvaluationInputError(f"{path}: cannot read image")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise EvaluationInputError(f"{path}: expected an 8-bit RGB panoptic PNG, got {img.dtype} {img.shape}")
    return img


def bgr_id16_view(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """Zero-copy uint16 view ``G + 256 R`` of a BGR(A) image (byte offset 1, pixel stride), and whether it holds
    the whole id, i.e. every B is 0 (true for Cityscapes ids < 2^16). The view is byte-swapped relative to the id
    ``R + 256 G``: see :func:`swap_id16`."""
    height, width, channels = img.shape
    img = np.ascontiguousarray(img)
    view = np.ndarray((height, width), "<u2", buffer=img, offset=1, strides=(width * channels, channels))
    return view, cv2.countNonZero(cv2.extractChannel(img, 0)) == 0


def bgr_to_id(img: np.ndarray) -> np.ndarray:
    """Segment ids ``R + 256 G + 256^2 B`` (uint32) of a BGR(A) image."""
    img32 = img[..., :3].astype(np.uint32)
    return img32[..., 2] + (img32[..., 1] << 8) + (img32[..., 0] << 16)


def swap_id16(ids):
    """Swap the two bytes of 16-bit values: ``G + 256 R`` <-> ``R + 256 G``."""
    return ((ids & 0xFF) << 8) | ((ids >> 8) & 0xFF)


def read_panoptic_ids(path: str | os.PathLike) -> np.ndarray:
    """Segment ids ``R + 256 G + 256^2 B`` of a COCO panoptic PNG as an HxW int64 array (alpha ignored, as the
    official script does)."""
    return bgr_to_id(read_panoptic_bgr(path)).astype(np.int64)


def read_json(path: str | os.PathLike) -> dict:
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


def panoptic_categories() -> list[dict]:
    """The ``categories`` of the official panoptic GT (label ids of the evaluated classes)."""
    return [
        {
            "id": int(lab.id),
            "name": lab.name,
            "color": list(lab.color),
            "supercategory": lab.category,
            "isthing": 1 if lab.hasInstances else 0,
        }
        for lab in cs_labels
        if not lab.ignoreInEval
    ]


# ----------------------------------------------------------------------------------------------------------------
# writers


def to_numpy(x) -> np.ndarray:
    """A tensor (bfloat16 / float16 as float32, which NumPy cannot hold) or array-like as a NumPy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return (x.float() if x.dtype in (torch.bfloat16, torch.float16) else x).cpu().numpy()
    return np.asarray(x)


_FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # unfiltered rows decode several times faster (OpenCV >= 4.10)
    _FAST_PNG += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
"""PNG writer settings: fast to write and, above all, fast to decode for every evaluator."""

_TRAIN_TO_LABEL = np.zeros(256, np.uint8)
_TRAIN_TO_LABEL[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID


def write_semantic_prediction(out_dir: str | os.PathLike, image_name: str, semantic) -> Path:
    """Write a trainId map (HxW, 255 = ignore -> label id 0) as ``{out_dir}/{prefix}_pred_labelIds.png``."""
    sem = to_numpy(semantic).astype(np.int64)
    if sem.ndim != 2:
        raise ValueError(f"semantic prediction of {image_name} must be HxW, got shape {sem.shape}")
    sem = np.where((sem >= 0) & (sem < NUM_CLASSES), sem, IGNORE_INDEX)
    out = Path(out_dir) / f"{output_stem(image_name)}_pred_labelIds.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), _TRAIN_TO_LABEL[sem], _FAST_PNG)
    return out


def _instance_masks(instances, num: int | None = None) -> np.ndarray:
    arr = to_numpy(instances)
    if arr.ndim == 3:
        return arr.astype(bool)
    if arr.ndim != 2:
        raise ValueError(f"instances must be an HxW id map or NxHxW masks, got shape {arr.shape}")
    n = int(arr.max()) if num is None else num
    return np.stack([arr == k for k in range(1, n + 1)]) if n > 0 else np.zeros((0,) + arr.shape, bool)


def write_instance_prediction(out_dir: str | os.PathLike, image_name: str, instances, labels, scores) -> Path:
    """Write ``{out_dir}/{prefix}_pred.txt`` and one mask PNG per instance under ``{out_dir}/masks/``.

    ``instances``: HxW id map (instance ``k`` >= 1 owns ``labels[k-1]`` and ``scores[k-1]``) or NxHxW bool masks;
    ``labels``: trainIds; ``scores``: confidences, written with full precision (``repr``).
    """
    lab = to_numpy(labels).astype(np.int64).reshape(-1)
    sc = to_numpy(scores).astype(np.float64).reshape(-1)
    if lab.shape != sc.shape:
        raise ValueError(f"{image_name}: {lab.size} labels but {sc.size} scores")
    masks = _instance_masks(instances, num=lab.size)
    if len(masks) != lab.size:
        raise ValueError(f"{image_name}: {len(masks)} masks but {lab.size} labels")
    stem = output_stem(image_name)
    out_dir = Path(out_dir)
    txt = out_dir / f"{stem}_pred.txt"
    mask_stem = out_dir / "masks" / stem
    mask_stem.parent.mkdir(parents=True, exist_ok=True)
    txt.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (mask, t, s) in enumerate(zip(masks, lab, sc)):
        if not 0 <= t < NUM_CLASSES:
            continue
        path = Path(f"{mask_stem}_{k:04d}.png")
        cv2.imwrite(str(path), mask.astype(np.uint8) * 255, _FAST_PNG)
        rel = os.path.relpath(path, txt.parent).replace(os.sep, "/")
        lines.append(f"{rel} {int(TRAIN_ID_TO_LABEL_ID[t])} {float(s)!r}\n")
    txt.write_text("".join(lines))
    return txt


def write_panoptic_prediction(png_dir: str | os.PathLike, image_name: str, panoptic) -> tuple[dict, dict]:
    """Write one panoptic PNG (``{png_dir}/{stem}_panoptic.png``); returns its ``images`` and ``annotations``
    entries for the JSON.

    Segment ids are ``labelId * 1000 + instance`` (Cityscapes style, never 0, < 2^16); thing segments are written
    with ``iscrowd`` 0.
    """
    pan = to_numpy(panoptic).astype(np.int64)
    if pan.ndim != 2:
        raise ValueError(f"panoptic prediction of {image_name} must be HxW, got shape {pan.shape}")
    cls = np.floor_divide(pan, LABEL_DIVISOR)
    inst = pan - cls * LABEL_DIVISOR
    valid = (pan >= 0) & (cls < NUM_CLASSES)
    seg = np.where(valid, _TRAIN_TO_LABEL[np.clip(cls, 0, 255)].astype(np.int64) * LABEL_DIVISOR + inst, 0)
    stem = output_stem(image_name)
    file_name = f"{stem}_panoptic.png"
    path = Path(png_dir) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(id_to_rgb(seg), cv2.COLOR_RGB2BGR), _FAST_PNG)
    image = {"id": stem, "file_name": f"{stem}_leftImg8bit.png", "height": seg.shape[0], "width": seg.shape[1]}
    return image, {"image_id": stem, "file_name": file_name, "segments_info": _segments_info(seg)}


def _segments_info(seg: np.ndarray) -> list[dict]:
    """COCO ``segments_info`` (id, category, area, bbox, iscrowd 0) of an HxW segment-id map (0 = void)."""
    ids, inverse = np.unique(seg, return_inverse=True)
    inverse = inverse.reshape(seg.shape)
    n = len(ids)
    height, width = seg.shape
    counts = np.bincount(inverse.ravel(), minlength=n)
    # per segment: which columns / rows it touches (one bincount each), then first and last of them
    cols = np.bincount((inverse * width + np.arange(width)).ravel(), minlength=n * width).reshape(n, width) > 0
    rows = np.bincount((inverse * height + np.arange(height)[:, None]).ravel(),
                       minlength=n * height).reshape(n, height) > 0
    x0, x1 = cols.argmax(1), width - 1 - cols[:, ::-1].argmax(1)
    y0, y1 = rows.argmax(1), height - 1 - rows[:, ::-1].argmax(1)
    return [{"id": int(sid), "category_id": int(sid // LABEL_DIVISOR), "area": int(counts[i]),
             "bbox": [int(x0[i]), int(y0[i]), int(x1[i] - x0[i] + 1), int(y1[i] - y0[i] + 1)], "iscrowd": 0}
            for i, sid in enumerate(ids.tolist()) if sid != 0]


def write_panoptic_json(json_path: str | os.PathLike, images: list[dict], annotations: list[dict]) -> Path:
    """The COCO panoptic JSON of the PNGs written by `write_panoptic_prediction`, with the official categories."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": panoptic_categories()}, f)
    return json_path


class PanopticJsonWriter:
    """Collects panoptic predictions into the official format: ``add()`` writes one PNG, ``close()`` the JSON.
    Use as a context manager or call ``close()``."""

    def __init__(self, json_path: str | os.PathLike, png_dir: str | os.PathLike | None = None) -> None:
        self.json_path = Path(json_path)
        self.png_dir = Path(png_dir) if png_dir is not None else self.json_path.with_suffix("")
        self.png_dir.mkdir(parents=True, exist_ok=True)
        self.annotations: list[dict] = []
        self.images: list[dict] = []

    def add(self, image_name: str, panoptic) -> Path:
        image, annotation = write_panoptic_prediction(self.png_dir, image_name, panoptic)
        self.images.append(image)
        self.annotations.append(annotation)
        return self.png_dir / annotation["file_name"]

    def close(self) -> Path:
        return write_panoptic_json(self.json_path, self.images, self.annotations)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CityscapesExporter:
    """Writes prediction-contract dicts into every official format they allow, under ``out_root``:
    ``semantic/`` (``semantic``), ``instance/`` (``instances`` + ``segments``) and ``panoptic.json`` +
    ``panoptic/`` (``panoptic``)."""

    def __init__(self, out_root: str | os.PathLike) -> None:
        self.out_root = Path(out_root)
        self.semantic_dir = self.out_root / "semantic"
        self.instance_dir = self.out_root / "instance"
        self.panoptic_dir = self.out_root / "panoptic"
        self.panoptic_json = self.out_root / "panoptic.json"
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def write(self, image_name: str, prediction: Mapping) -> tuple[dict, dict] | None:
        """Write one image's files; returns its panoptic JSON entries (image, annotation), if it has a panoptic map."""
        write_semantic_prediction(self.semantic_dir, image_name, prediction["semantic"])
        if "instances" in prediction:
            segments = prediction["segments"]
            write_instance_prediction(self.instance_dir, image_name, prediction["instances"], segments["class"],
                                      segments["score"])
        if "panoptic" in prediction:
            return write_panoptic_prediction(self.panoptic_dir, image_name, prediction["panoptic"])
        return None

    def add(self, image_name: str, prediction: Mapping) -> None:
        """Write one image's files and keep its panoptic entries for ``close()``."""
        entries = self.write(image_name, prediction)
        if entries is not None:
            self.images.append(entries[0])
            self.annotations.append(entries[1])

    def close(self) -> None:
        if self.annotations:
            write_panoptic_json(self.panoptic_json, self.images, self.annotations)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
