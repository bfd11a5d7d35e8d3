"""The toy's instance-gap option: dense groups of touching same-class things on the Cityscapes-style target only."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panoptic_st.cli import main
from panoptic_st.data.check import check_dataset
from panoptic_st.data.toy import make_toy

COUNTS = {"n_source": 3, "n_target": 10, "n_val": 2, "progress": False}


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _touching_pairs(instance_ids: np.ndarray) -> int:
    """Pairs of different instances of one class that share a boundary (4-neighbourhood)."""
    pairs = set()
    for a, b in ((instance_ids[:, 1:], instance_ids[:, :-1]), (instance_ids[1:], instance_ids[:-1])):
        touch = (a >= 1000) & (b >= 1000) & (a != b) & (a // 1000 == b // 1000)
        pairs |= {tuple(sorted(p)) for p in zip(a[touch].tolist(), b[touch].tolist())}
    return len(pairs)


def _touching_pairs_per_target_image(root: Path) -> float:
    files = sorted((root / "cityscapes" / "gtFine" / "train").glob("*/*_gtFine_instanceIds.png"))
    assert len(files) == COUNTS["n_target"]
    return float(np.mean([_touching_pairs(np.array(Image.open(p), np.int64)) for p in files]))


@pytest.fixture(scope="module")
def toys(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toys")
    make_toy(root / "plain", seed=0, workers=2, **COUNTS)
    assert main(["data", "make-toy", "--out", str(root / "gap"), "--instance-gap", "--workers", "2",
                 *(f"--{k.replace('_', '-')}={v}" for k, v in COUNTS.items() if k != "progress")]) == 0
    return {"plain": root / "plain", "gap": root / "gap"}


def test_the_gap_changes_only_the_cityscapes_style_images_and_the_readme_records_it(toys):
    plain, gap = _checksums(toys["plain"]), _checksums(toys["gap"])
    assert plain.keys() == gap.keys()
    changed = {k for k in plain if plain[k] != gap[k]}
    assert {k for k in changed if not k.startswith("cityscapes/")} == {"README.md"}
    assert any("leftImg8bit/train/" in k for k in changed) and any("leftImg8bit/val/" in k for k in changed)
    assert any("gtFine/train/" in k and k.endswith("_instanceIds.png") for k in changed)
    readme = (toys["gap"] / "README.md").read_text()
    assert "instance gap" in readme and "striped (amplitude 0.35)" in readme
    assert "instance gap" not in (toys["plain"] / "README.md").read_text()


def test_the_target_has_many_more_touching_instances_of_one_class(toys):
    plain, gap = (_touching_pairs_per_target_image(toys[name]) for name in ("plain", "gap"))
    assert gap >= 5 and gap >= 2.5 * plain


def test_the_gap_toy_is_deterministic_per_seed_for_any_worker_count(toys, tmp_path):
    make_toy(tmp_path / "again", seed=0, workers=1, instance_gap=True, **COUNTS)
    make_toy(tmp_path / "seed1", seed=1, workers=1, instance_gap=True, **COUNTS)
    gap, again, seed1 = _checksums(toys["gap"]), _checksums(tmp_path / "again"), _checksums(tmp_path / "seed1")
    assert again == gap
    assert any(seed1[k] != gap[k] for k in gap if "leftImg8bit" in k)


@pytest.mark.parametrize("fmt", ["synthia", "gta5", "cityscapes"])
def test_data_check_accepts_the_gap_toy(toys, fmt):
    report = check_dataset(toys["gap"] / fmt, fmt)
    assert report.ok, report.summary()
