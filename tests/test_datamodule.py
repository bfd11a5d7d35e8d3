import pytest
import torch

from panoptic_st.config import load_config
from panoptic_st.data.datamodule import PanopticDataModule, batch_split
from panoptic_st.data.dataset import DatasetError


def _cfg(root, *overrides):
    return load_config("toy/semantic_baseline", [f"data.root={root}", "data.num_workers=0", "data.crop=[64,128]",
                                                 "data.target_size=[64,128]", *overrides]).data


def test_source_mode_batches_follow_the_item_contract(toy_root):
    dm = PanopticDataModule(_cfg(toy_root, "data.batch_size=4"), "source")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 128) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["semantic"].dtype == torch.long and batch["semantic"].shape == (4, 64, 128)
    assert batch["instance"].dtype == torch.long
    assert set(batch["meta"]["domain"]) <= {"synthia", "gta5"}
    val = next(iter(dm.val_dataloader()))
    assert set(val["meta"]["domain"]) == {"cityscapes"}


def test_adapt_mode_gives_source_and_target_batches(toy_root):
    dm = PanopticDataModule(_cfg(toy_root, "data.sources=[synthia,gta5]", "data.target_batch_size=3"), "adapt")
    dm.setup()
    batch, _, _ = next(iter(dm.train_dataloader()))
    assert batch["source"]["image"].shape[0] == 8 and batch["target"]["image"].shape[0] == 3
    assert set(batch["target"]["meta"]["domain"]) == {"cityscapes"}
    assert len(dm.source) == 24


@pytest.mark.parametrize("mix, expected", [(0.0, (0, 8)), (0.25, (2, 6)), (0.5, (4, 4)), (0.75, (6, 2))])
def test_source_mix_sets_the_source_share_of_a_batch(toy_root, mix, expected):
    cfg = _cfg(toy_root, f"data.source_mix={mix}")
    assert batch_split(cfg) == expected
    dm = PanopticDataModule(cfg, "adapt", require_instances=True)
    dm.setup()
    batch, _, _ = next(iter(dm.train_dataloader()))
    sizes = tuple(batch[k]["image"].shape[0] if k in batch else 0 for k in ("source", "target"))
    assert sizes == expected


def test_instance_stage_skips_sources_without_instance_labels(toy_root):
    dm = PanopticDataModule(_cfg(toy_root, "data.sources=[gta5,synthia]"), "source", require_instances=True)
    dm.setup()
    assert getattr(dm.source, "domain", None) == "synthia"
    with pytest.raises(DatasetError, match="carries instance labels"):
        PanopticDataModule(_cfg(toy_root, "data.sources=[gta5]"), "source", require_instances=True).setup()


def test_setup_check_names_the_bad_file(toy_root, tmp_path):
    import shutil

    root = tmp_path / "toy"
    shutil.copytree(toy_root, root)
    bad = sorted((root / "synthia" / "GT" / "LABELS").glob("*.png"))[1]
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=str(bad)):
        PanopticDataModule(_cfg(root), "source").setup()
