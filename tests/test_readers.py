"""The readers decode the real on-disk formats into the item contract."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.dataset import DatasetError
from panoptic_st.data.gta5 import GTA5Dataset
from panoptic_st.data.labels import LABEL_ID_TO_TRAIN_ID, PROTOCOLS, THING_TRAIN_IDS, train_id
from panoptic_st.data.mixed import build_mixed, gta5_truck_train_split
from panoptic_st.data.synthia import SynthiaDataset


def _rgb(path, h=4, w=6):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))


def _gta_label(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(ids, np.uint8), mode="P")
    img.putpalette([v for i in range(256) for v in (i, i, i)])
    img.save(path)


def test_label_tables_follow_cityscapes():
    assert THING_TRAIN_IDS == tuple(range(11, 19))
    assert len(PROTOCOLS[16]) == 16 and len(PROTOCOLS[13]) == 13
    assert {9, 14, 16}.isdisjoint(PROTOCOLS[16]) and {3, 4, 5}.isdisjoint(PROTOCOLS[13])
    assert LABEL_ID_TO_TRAIN_ID[7] == 0 and LABEL_ID_TO_TRAIN_ID[33] == 18 and LABEL_ID_TO_TRAIN_ID[0] == 255


def test_synthia_reader_decodes_16bit_multichannel_labels(tmp_path):
    root = tmp_path / "synthia"
    _rgb(root / "RGB" / "0000000.png", 2, 3)
    label = np.zeros((2, 3, 3), np.uint16)
    label[..., 2] = [[3, 8, 8], [0, 20, 13]]  # road, car, car / void, train, parking-slot
    label[..., 1] = [[0, 1, 2], [0, 300, 0]]  # instance ids in G (16-bit: 300 survives)
    (root / "GT" / "LABELS").mkdir(parents=True)
    cv2.imwrite(str(root / "GT" / "LABELS" / "0000000.png"), label)
    item = SynthiaDataset(root)[0]
    assert item["semantic"].tolist() == [[0, 13, 13], [255, train_id("train"), 255]]
    assert item["instance"].tolist() == [[0, 1, 2], [0, 300, 0]]
    assert item["image"].shape == (3, 2, 3) and item["meta"]["domain"] == "synthia"


def test_synthia_reader_rejects_unknown_class_with_path(tmp_path):
    root = tmp_path / "synthia"
    _rgb(root / "RGB" / "0000000.png", 2, 2)
    label = np.zeros((2, 2, 3), np.uint16)
    label[0, 0, 2] = 40
    (root / "GT" / "LABELS").mkdir(parents=True)
    cv2.imwrite(str(root / "GT" / "LABELS" / "0000000.png"), label)
    with pytest.raises(DatasetError, match=r"0000000.png: unknown label ids \[40\]"):
        SynthiaDataset(root)[0]


def test_gta5_reader_maps_label_ids_to_train_ids(tmp_path):
    root = tmp_path / "gta5"
    _rgb(root / "images" / "00001.png", 1, 4)
    _gta_label(root / "labels" / "00001.png", [[7, 26, 0, 33]])
    item = GTA5Dataset(root)[0]
    assert item["semantic"].tolist() == [[0, 13, 255, 18]]
    assert item["instance"].abs().sum() == 0


def test_cityscapes_reader_keeps_thing_instances_and_drops_crowd(tmp_path):
    root = tmp_path / "cityscapes"
    stem = "aachen_000000_000019"
    _rgb(root / "leftImg8bit" / "val" / "aachen" / f"{stem}_leftImg8bit.png", 1, 5)
    gt = root / "gtFine" / "val" / "aachen"
    gt.mkdir(parents=True)
    cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), np.array([[7, 26, 26, 24, 24]], np.uint8))
    instance_ids = np.array([[7, 26000, 26001, 24, 24000]], np.uint16)
    cv2.imwrite(str(gt / f"{stem}_gtFine_instanceIds.png"), instance_ids)
    item = CityscapesDataset(root, "val")[0]
    assert item["semantic"].tolist() == [[0, 13, 13, 11, 11]]
    assert item["instance"].tolist() == [[0, 2, 3, 0, 1]]  # per-image ids 1..N; the crowd group (24) is 0
    assert item["meta"]["name"] == stem


def test_mixed_split_of_a_read_only_gta_root_is_cached_in_the_user_cache(tmp_path, monkeypatch):
    gta = tmp_path / "gta5"
    _rgb(gta / "images" / "00001.png", 1, 3)
    _gta_label(gta / "labels" / "00001.png", [[27, 31, 7]])
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == gta else real_access(path, mode))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    split = gta5_truck_train_split(gta, progress=False)
    assert split.parent == tmp_path / "cache" / "panoptic_st"
    assert split.read_text().split() == ["images/00001.png"]
    assert not (gta / "mixed_truck_train.txt").exists()
    assert gta5_truck_train_split(gta, progress=False) == split


def test_mixed_split_contains_only_gta_images_with_truck_and_train(tmp_path):
    gta, syn = tmp_path / "gta5", tmp_path / "synthia"
    contents = {"00001": [7, 27, 31], "00002": [7, 27, 26], "00003": [31, 26, 8], "00004": [27, 31, 33]}
    for name, ids in contents.items():
        _rgb(gta / "images" / f"{name}.png", 1, 3)
        _gta_label(gta / "labels" / f"{name}.png", [ids])
    _rgb(syn / "RGB" / "0000000.png", 1, 3)
    (syn / "GT" / "LABELS").mkdir(parents=True)
    cv2.imwrite(str(syn / "GT" / "LABELS" / "0000000.png"), np.zeros((1, 3, 3), np.uint16))
    split = gta5_truck_train_split(gta, progress=False)
    assert split.read_text().split() == ["images/00001.png", "images/00004.png"]
    mixed = build_mixed(syn, gta)
    assert len(mixed) == 3
    assert [mixed[i]["meta"]["domain"] for i in range(3)] == ["synthia", "gta5", "gta5"]
    (gta / "labels" / "00002.png").unlink()  # the cached split is reused, not recomputed
    assert gta5_truck_train_split(gta, progress=False).read_text() == split.read_text()
