"""`make_toy`: draws, renders and writes every image (in spawned worker processes), then the panoptic ground
truth, lists and README, and installs the finished toy."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import time
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
from tqdm import tqdm

from panoptic_st.data.labels import NUM_CLASSES
from panoptic_st.data.toy.domains import DEFAULT_SIZE, image_rng, image_size_and_scale
from panoptic_st.data.toy.folders import (
    STAGING,
    UNFINISHED_ENTRY,
    install,
    make_folders,
    refuse_foreign,
    remove_toy,
)
from panoptic_st.data.toy.formats import write_cityscapes, write_gta, write_synthia
from panoptic_st.data.toy.layout import draw_scene
from panoptic_st.data.toy.metadata import size_text, write_lists, write_readme
from panoptic_st.data.toy.render import render_gta, render_real, render_synthia
from panoptic_st.data.toy.scene import TRAIN, TRUCK

INSTANCE_GAP_STRIPES = 0.35
"""Stripe amplitude (`object_stripes`) of the Cityscapes-style things with `instance_gap`, unless one is given."""


def _make_one(task: tuple[Path, int, int, int, float, str, int, float, bool]) -> np.ndarray:
    """Draw, render and write one image; returns which scene classes it contains."""
    out, seed, height, width, scale, domain, index, object_texture, instance_gap = task
    rng = image_rng(seed, domain, index)
    scene = draw_scene(rng, height, width, scale, crowded=instance_gap and domain.startswith("cityscapes"))
    if domain == "synthia":
        write_synthia(out / "synthia", index, scene, render_synthia(scene, rng))
    elif domain == "gta5":
        write_gta(out / "gta5", index, scene, render_gta(scene, rng))
    else:
        rgb = render_real(scene, rng, object_texture)
        write_cityscapes(out / "cityscapes", domain.split("_")[1], index, scene, rgb)
    return np.bincount(scene.sem.ravel(), minlength=NUM_CLASSES + 1) > 0


def truck_and_train_index(seed: int, start: int, limit: int = 1000, shrink: int = 8) -> int:
    """The first native-size GTA5 image index from `start` whose scene shows a truck and a train (the Mixed source
    takes only such GTA5 images). Scenes are drawn `shrink` times smaller (same objects, as the detail scale
    follows the size) and not rendered; the chosen one is checked at full size."""
    for index in range(start, start + limit):
        height, width, scale = image_size_and_scale("gta5", index, True, 0, 0)
        small = draw_scene(image_rng(seed, "gta5", index), round(height / shrink), round(width / shrink),
                           scale / shrink)
        if np.isin([TRUCK, TRAIN], small.sem).all() and np.isin(
                [TRUCK, TRAIN], draw_scene(image_rng(seed, "gta5", index), height, width, scale).sem).all():
            return index
    raise RuntimeError(f"no GTA5 scene with a truck and a train among images {start}..{start + limit - 1}")


def _init_worker() -> None:
    """One OpenCV thread per worker process."""
    cv2.setNumThreads(1)


def make_toy(out: Path, seed: int = 0, n_source: int = 1000, n_target: int = 1000, n_val: int = 200,
             height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1], workers: int = 2, progress: bool = True,
             val_start: int = 0, object_texture: float = 0.0, native_size: bool = False,
             instance_gap: bool = False) -> dict:
    """Write the toy SYNTHIA, GTA5 and Cityscapes datasets (+ panoptic GT) under `out`; return counts, seconds.

    Every image is a function of (seed, dataset, index). `val_start` makes the Cityscapes val split images
    `val_start .. val_start + n_val - 1`: with `val_start=200` it shares no image with the default 200-image val
    split, a held-out test split for results selected on val. `object_texture` > 0 stripes the things of the
    Cityscapes-style images (amplitude of a brightness wave per object): a domain gap for the instance branch.
    `native_size` writes every dataset at the real datasets' sizes (`native_image_size`) instead of
    `height` x `width`, and its last GTA5 image is the first from there on whose scene shows a truck and a train (the
    Mixed source needs one); pair it with few images (`NATIVE_COUNTS`). `instance_gap` gives the Cityscapes-style
    scenes (train and val) rows of touching parked cars, groups of pedestrians and riders side by side on top of
    the sparse layout (`plan_crowds`), and stripes their things (`object_texture`, else INSTANCE_GAP_STRIPES); the
    SYNTHIA and GTA5 images stay as without it.
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
    refuse_foreign(out)
    staged = out / STAGING
    remove_toy(staged)
    make_folders(staged)
    first = {"cityscapes_val": val_start}
    indices = {d: list(range(first.get(d, 0), first.get(d, 0) + n)) for d, n in counts.items()}
    if native_size and n_source:
        indices["gta5"][-1] = truck_and_train_index(seed, n_source - 1)
    write_lists(staged, counts, val_start, indices["gta5"], UNFINISHED_ENTRY)
    texture = object_texture if object_texture or not instance_gap else INSTANCE_GAP_STRIPES
    tasks = [(staged, seed, *image_size_and_scale(d, i, native_size, height, width), d, i, texture, instance_gap)
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
    write_readme(staged, seed, size_text(native_size, height, width), counts, presence, val_start, texture,
                 instance_gap)
    write_lists(staged, counts, val_start, indices["gta5"])
    install(staged, out)
    seconds = time.perf_counter() - start
    print(f"toy benchmark: {sum(counts.values())} images in {out} ({seconds:.1f} s)")
    return {**counts, "seconds": seconds}
