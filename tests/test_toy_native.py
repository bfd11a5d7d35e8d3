"""`make-toy --native-size` writes the toy datasets at the real datasets' sizes; the default toy stays unchanged."""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from panoptic_st.cli import main
from panoptic_st.data import toy
from panoptic_st.data.check import check_dataset
from panoptic_st.data.mixed import gta5_truck_train_split

CITYSCAPES = (1024, 2048)
SYNTHIA = (760, 1280)
GTA5 = (1052, 1914)
GTA5_ODD = {(1054, 1914), (1080, 1920)}
DEFAULT_TOY_DIGEST = "cb354c2e4813df7d29381a3dbdddab7169ba849c889c918479c50600968d6b84"
"""Content of `make_toy(seed=0, n_source=3, n_target=3, n_val=2)` before native sizes existed: a change alters the
default toy that the recorded results were measured on."""


def _shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image file."""
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]


def _content_digest(root: Path) -> str:
    """sha256 over every file's relative path and content, PNGs by their decoded pixels (encoder-independent)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        if path.suffix == ".png":
            pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            digest.update(f"{pixels.shape}{pixels.dtype}".encode() + pixels.tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    """Native-size toy from the command line: 3 source images (GTA5: default size, odd size, truck-and-train scene)."""
    out = tmp_path_factory.mktemp("native")
    assert main(["data", "make-toy", "--native-size", "--out", str(out), "--n-source", "3", "--n-target", "1",
                 "--n-val", "1", "--workers", "2"]) == 0
    return out


def test_every_image_and_label_has_its_datasets_real_size(native):
    synthia = sorted((native / "synthia").rglob("*.png"))
    cityscapes = sorted((native / "cityscapes").rglob("*.png"))
    assert len(synthia) == 9 and {_shape(p) for p in synthia} == {SYNTHIA}
    assert len(cityscapes) == 2 * 5 and {_shape(p) for p in cityscapes} == {CITYSCAPES}  # 4 per image + panoptic
    gta = {p.name: (_shape(p), _shape(native / "gta5" / "labels" / p.name))
           for p in (native / "gta5" / "images").glob("*.png")}
    assert all(image == label for image, label in gta.values())
    indices = [int(Path(line).stem) - 1 for line in (native / "gta5" / "train.txt").read_text().split()]
    assert sorted(image for image, _ in gta.values()) == sorted(toy.native_image_size("gta5", i) for i in indices)
    assert gta["00001.png"][0] == GTA5 and gta["00002.png"][0] in GTA5_ODD


def test_the_native_gta5_images_feed_the_mixed_source(native):
    split = gta5_truck_train_split(native / "gta5", native / "mixed.txt", progress=False)
    assert split.read_text().split() == [f"images/{toy.truck_and_train_index(0, 2) + 1:05d}.png"]
    for path in (native / "cityscapes" / "gtFine").glob("*/*/*_polygons.json"):
        polygons = json.loads(path.read_text())
        assert (polygons["imgHeight"], polygons["imgWidth"]) == CITYSCAPES


def test_native_size_output_passes_the_data_check_in_all_three_formats(native):
    for fmt, items in (("synthia", 3), ("gta5", 3), ("cityscapes", 2)):
        report = check_dataset(native / fmt, fmt)
        assert report.ok, report.summary()
        assert report.items == items


def test_native_size_writes_the_panoptic_ground_truth_and_says_so(native):
    gt = native / "cityscapes" / "gtFine"
    panoptic = json.loads((gt / "cityscapes_panoptic_val.json").read_text())
    assert [(img["height"], img["width"]) for img in panoptic["images"]] == [CITYSCAPES]
    assert (gt / "cityscapes_panoptic_train.json").is_file()
    assert "SYNTHIA 1280x760, GTA5 1914x1052" in (native / "README.md").read_text()


def _class_shares(scene: toy.Scene) -> np.ndarray:
    return np.bincount(scene.sem.ravel(), minlength=toy.NUM_CLASSES + 1) / scene.sem.size


def test_odd_gta5_sizes_recur_and_scenes_scale_with_the_image():
    sizes = [toy.native_image_size("gta5", i) for i in range(20)]
    assert sizes.count(GTA5) == 16 and set(sizes) - {GTA5} == GTA5_ODD
    assert toy.native_image_size("cityscapes_val", 1) == CITYSCAPES
    big = toy.draw_scene(toy.image_rng(0, "cityscapes_train", 0), *CITYSCAPES, toy.detail_scale(*CITYSCAPES))
    small = toy.draw_scene(toy.image_rng(0, "cityscapes_train", 0), *toy.DEFAULT_SIZE)
    assert big.things == small.things  # the same scene, every class covering the same share of the image
    assert np.abs(_class_shares(big) - _class_shares(small)).max() < 0.03


def test_cli_native_size_defaults_to_a_few_images_and_rejects_a_fixed_size(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(toy, "make_toy", lambda out, **kw: calls.append(kw))
    assert main(["data", "make-toy", "--native-size", "--out", str(tmp_path)]) == 0
    assert main(["data", "make-toy", "--native-size", "--n-val", "1", "--out", str(tmp_path)]) == 0
    assert [(c["n_source"], c["n_target"], c["n_val"], c["native_size"]) for c in calls] == [
        (4, 4, 3, True), (4, 4, 1, True)]
    assert "height" not in calls[0]
    assert main(["data", "make-toy", "--native-size", "--height", "64", "--out", str(tmp_path)]) == 1
    assert "--native-size" in capsys.readouterr().err and len(calls) == 2


def test_default_toy_is_unchanged(tmp_path):
    toy.make_toy(tmp_path, seed=0, n_source=3, n_target=3, n_val=2, workers=1, progress=False)
    assert {_shape(p) for p in (tmp_path / "gta5" / "images").glob("*.png")} == {(96, 192)}
    assert _content_digest(tmp_path) == DEFAULT_TOY_DIGEST
