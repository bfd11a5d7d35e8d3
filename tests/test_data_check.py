"""`data check` reports each kind of defect with its path and exits 1; clean data exits 0."""

import shutil

import cv2
import numpy as np
import pytest

from panoptic_st.cli import main
from panoptic_st.data.check import check_dataset
from panoptic_st.data.dataset import DatasetError
from panoptic_st.data.synthia import SynthiaDataset


@pytest.fixture()
def broken(toy_root, tmp_path):
    """A fresh copy of the toy data to break."""
    root = tmp_path / "toy"
    shutil.copytree(toy_root, root)
    return root


def _first(path_glob):
    return min(path_glob)


@pytest.mark.parametrize("fmt", ["cityscapes", "gta5", "synthia"])
def test_clean_toy_data_passes(toy_root, fmt, capsys):
    assert main(["data", "check", str(toy_root / fmt), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "0 problem(s)" in out and "road" in out


def _expect(root, fmt, kind, path, capsys):
    assert main(["data", "check", str(root / fmt), "--format", fmt]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"error: [{kind}]")]
    assert any(str(path) in line for line in lines), err


def test_missing_label_is_reported(broken, capsys):
    label = _first((broken / "gta5" / "labels").glob("*.png"))
    label.unlink()
    _expect(broken, "gta5", "missing", label, capsys)


def test_missing_image_is_reported(broken, capsys):
    image = _first((broken / "synthia" / "RGB").glob("*.png"))
    image.unlink()
    _expect(broken, "synthia", "missing", image, capsys)


def test_orphan_files_are_reported_without_split_files(broken, capsys):
    image = _first((broken / "synthia" / "RGB").glob("*.png"))
    image.unlink()
    (broken / "synthia" / "train.txt").unlink()
    _expect(broken, "synthia", "missing", image, capsys)


def test_size_mismatch_is_reported(broken, capsys):
    label = _first((broken / "cityscapes" / "gtFine" / "val").rglob("*_labelIds.png"))
    cv2.imwrite(str(label), np.full((10, 20), 7, np.uint8))
    _expect(broken, "cityscapes", "size", label, capsys)


def test_unknown_label_id_is_reported(broken, capsys):
    label = _first((broken / "synthia" / "GT" / "LABELS").glob("*.png"))
    data = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    data[0, 0, 2] = 99
    cv2.imwrite(str(label), data)
    _expect(broken, "synthia", "unknown-id", label, capsys)


def test_truncated_file_is_reported(broken, capsys):
    image = _first((broken / "cityscapes" / "leftImg8bit" / "train").rglob("*.png"))
    image.write_bytes(image.read_bytes()[:200])
    _expect(broken, "cityscapes", "unreadable", image, capsys)


def test_empty_split_is_reported(broken, capsys):
    split_dir = broken / "cityscapes" / "leftImg8bit" / "val"
    shutil.rmtree(split_dir)
    shutil.rmtree(broken / "cityscapes" / "gtFine" / "val")
    (broken / "cityscapes" / "val.txt").unlink(missing_ok=True)
    _expect(broken, "cityscapes", "empty", split_dir, capsys)


def test_class_frequencies_cover_all_labelled_pixels(toy_root):
    report = check_dataset(toy_root / "cityscapes", "cityscapes")
    image = cv2.imread(str(_first((toy_root / "cityscapes" / "leftImg8bit").rglob("*.png"))))
    assert report.class_pixels.sum() == report.items * image.shape[0] * image.shape[1]


def test_dataset_raises_clear_error_on_bad_item_before_training(broken):
    label = _first((broken / "synthia" / "GT" / "LABELS").glob("*.png"))
    label.write_bytes(b"not a png")
    dataset = SynthiaDataset(broken / "synthia")
    with pytest.raises(DatasetError, match=str(label)):
        dataset[[s.label for s in dataset.samples].index(label)]
