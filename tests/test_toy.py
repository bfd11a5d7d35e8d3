"""The toy benchmark is deterministic, uses the real on-disk formats, and the official Cityscapes tools accept it."""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from panoptic_st.data.labels import (
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    SYNTHIA_ID_TO_TRAIN_ID,
    TRAIN_ID_TO_LABEL_ID,
    train_id,
)
from panoptic_st.data.toy import draw_scene, image_rng, make_toy

SIZE = {"height": 64, "width": 128}


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    make_toy(out, seed=0, n_source=30, n_target=30, n_val=6, workers=2, progress=False, **SIZE)
    return out


def test_same_seed_gives_identical_files_for_any_worker_count(tmp_path):
    kw = {"n_source": 6, "n_target": 6, "n_val": 6, "progress": False, **SIZE}
    make_toy(tmp_path / "a", seed=0, workers=1, **kw)
    make_toy(tmp_path / "b", seed=0, workers=2, **kw)
    make_toy(tmp_path / "c", seed=1, workers=2, **kw)
    a, b, c = (_checksums(tmp_path / n) for n in "abc")
    assert len(a) > 100 and a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith(".png")]
    assert all(a[k] != c[k] for k in images if "RGB" in k or "images" in k or "leftImg8bit" in k)


def test_val_start_writes_the_following_val_images_and_none_of_the_default_ones(tmp_path):
    kw = {"n_source": 1, "n_target": 1, "workers": 1, "progress": False, **SIZE}
    make_toy(tmp_path / "val", seed=0, n_val=5, **kw)
    make_toy(tmp_path / "heldout", seed=0, n_val=3, val_start=3, **kw)
    val, heldout = (_checksums(tmp_path / n / "cityscapes" / "leftImg8bit" / "val") for n in ("val", "heldout"))
    listed = (tmp_path / "heldout" / "cityscapes" / "val.txt").read_text().split()
    assert len(heldout) == 3 and sorted(listed) == sorted(f"leftImg8bit/val/{k}" for k in heldout)
    assert set(heldout) & set(val) == {"frankfurt/frankfurt_000001_000019_leftImg8bit.png",
                                       "lindau/lindau_000001_000019_leftImg8bit.png"}  # images 3 and 4 of both
    assert all(heldout[k] == val[k] for k in set(heldout) & set(val))
    make_toy(tmp_path / "small", seed=0, n_val=3, **kw)
    small = _checksums(tmp_path / "small" / "cityscapes" / "leftImg8bit" / "val")
    assert not set(small) & set(heldout)


def test_object_texture_stripes_only_the_things_of_the_cityscapes_style_images(tmp_path):
    kw = {"n_source": 2, "n_target": 4, "n_val": 2, "workers": 1, "progress": False, **SIZE}
    make_toy(tmp_path / "plain", seed=0, **kw)
    make_toy(tmp_path / "striped", seed=0, object_texture=0.35, **kw)
    plain, striped = _checksums(tmp_path / "plain"), _checksums(tmp_path / "striped")
    changed = {k for k in plain if plain[k] != striped[k]} - {"README.md"}
    assert changed and all("leftImg8bit" in k for k in changed)  # labels and source images are unchanged
    assert "striped (amplitude 0.35)" in (tmp_path / "striped" / "README.md").read_text()
    for name in changed:
        a = np.asarray(Image.open(tmp_path / "plain" / name), np.int16)
        b = np.asarray(Image.open(tmp_path / "striped" / name), np.int16)
        gt = name.replace("leftImg8bit/", "gtFine/").replace("_leftImg8bit.png", "_gtFine_instanceIds.png")
        things = np.asarray(Image.open(tmp_path / "plain" / gt)) >= 1000
        differs = np.abs(a - b).max(axis=2) > 12  # beyond what blur spreads across an object's border
        assert differs[things].mean() > 0.2 and differs[~things].mean() < 0.02


def test_official_panoptic_conversion_lists_every_val_image(toy):
    panoptic = json.loads((toy / "cityscapes" / "gtFine" / "cityscapes_panoptic_val.json").read_text())
    val = sorted((toy / "cityscapes" / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    assert len(val) == 6
    stems = sorted(p.name.removesuffix("_leftImg8bit.png") for p in val)
    assert sorted(img["id"] for img in panoptic["images"]) == stems  # its file_name has a known '_gtFine_' quirk
    for ann in panoptic["annotations"]:
        png = toy / "cityscapes" / "gtFine" / "cityscapes_panoptic_val" / ann["file_name"]
        ids = np.array(Image.open(png), np.int64) @ np.array([1, 256, 256 * 256])
        assert {s["id"] for s in ann["segments_info"]} <= set(np.unique(ids).tolist())
    listed = (toy / "cityscapes" / "val.txt").read_text().split()
    assert sorted(listed) == sorted(str(p.relative_to(toy / "cityscapes")) for p in val)


def test_official_pixel_evaluation_scores_gt_against_itself_as_perfect(toy):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    gts = sorted(str(p) for p in (toy / "cityscapes" / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    ev.args.quiet, ev.args.JSONOutput = True, False
    ev.args.evalInstLevelScore = False  # its nIoU path calls np.in1d, which numpy 2.4 removed
    result = ev.evaluateImgLists(gts, gts, ev.args)
    assert len(gts) == 6 and result["averageScoreClasses"] == pytest.approx(1.0)


def test_instance_ids_follow_cityscapes_encoding(toy):
    for lab in (toy / "cityscapes" / "gtFine").glob("*/*/*_gtFine_labelIds.png"):
        label_ids = np.array(Image.open(lab)).astype(np.int64)
        inst = np.array(Image.open(str(lab).replace("labelIds", "instanceIds"))).astype(np.int64)
        assert np.array_equal(np.where(inst >= 1000, inst // 1000, inst), label_ids)
        things = np.unique(inst[inst >= 1000])
        for lid in np.unique(things // 1000):
            assert sorted(things[things // 1000 == lid] % 1000) == list(range((things // 1000 == lid).sum()))


def test_synthia_labels_are_16bit_with_the_real_truck_train_terrain_quirk(toy):
    quirk, checked = (train_id("truck"), train_id("train")), 0
    for i in range(30):
        label = cv2.imread(str(toy / "synthia" / "GT" / "LABELS" / f"{i:07d}.png"), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint16 and label.shape == (64, 128, 3) and not label[..., 0].any()
        assert train_id("terrain") not in SYNTHIA_ID_TO_TRAIN_ID[label[..., 2]]
        scene = draw_scene(image_rng(0, "synthia", i), **SIZE)
        vehicle = np.isin(scene.sem, quirk) & (scene.inst > 0)
        assert (label[..., 2][vehicle] == 0).all() and (label[..., 1][vehicle] > 0).all()
        checked += int(vehicle.sum())
    assert checked > 0


def test_gta_labels_are_palette_pngs_of_label_ids(toy):
    for path in sorted((toy / "gta5" / "labels").glob("*.png"))[:5]:
        img = Image.open(path)
        assert img.mode == "P" and path.stem.isdigit() and int(path.stem) >= 1
        ids = np.array(img)
        assert ids.ndim == 2 and ids.max() <= 33
        palette = np.array(img.getpalette()[: 3 * 34]).reshape(34, 3)
        assert tuple(palette[TRAIN_ID_TO_LABEL_ID[train_id("car")]]) == (0, 0, 142)


def test_every_class_appears_in_each_fully_labelled_dataset(toy):
    gta = {int(v) for p in (toy / "gta5" / "labels").glob("*.png") for v in np.unique(np.array(Image.open(p)))}
    cs = {int(v) for p in (toy / "cityscapes" / "gtFine").glob("*/*/*_labelIds.png")
          for v in np.unique(np.array(Image.open(p)))}
    for label_ids in (gta, cs):
        assert set(range(NUM_CLASSES)) <= {int(LABEL_ID_TO_TRAIN_ID[i]) for i in label_ids}
