"""Media logging: overlays, pseudo-label panels, embedding PCA images and per-class tables reach W&B (offline),
TensorBoard or PNG/CSV files under `<run dir>/media/`, every `logger.image_interval` steps."""

import csv
import json
import math
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
from conftest import tiny_overrides
from PIL import Image

from panoptic_st.config import load_config
from panoptic_st.data.labels import CLASS_NAMES, PALETTE
from panoptic_st.media import MediaSink
from panoptic_st.training import train
from panoptic_st.viz import embedding_rgb, instance_colors

TINY = tiny_overrides()
HEIGHT, WIDTH = 64, 128


def semantic_self_training(toy_root: Path, out: Path, *overrides: str):
    """Two self-training steps from random weights (no baseline checkpoint needed)."""
    return load_config("toy/semantic_selftrain", [
        f"data.root={toy_root}", *TINY, "trainer.max_steps=2", f"output_dir={out}", "semantic.init_checkpoint=null",
        "semantic.adabn_init=false", *overrides])


def instance_self_training(toy_root: Path, out: Path, semantic_checkpoint: str, *overrides: str):
    """Two instance self-training steps on pseudo-labels inside the given semantic network's masks."""
    return load_config("toy/instance_selftrain", [
        f"data.root={toy_root}", *TINY, "trainer.max_steps=2", f"output_dir={out}", "trainer.limit_val_batches=0",
        "instance.init_checkpoint=null", f"instance.semantic_checkpoint={semantic_checkpoint}", *overrides])


def train_offline(cfg) -> dict:
    """`train(cfg)` with an offline W&B run that is closed afterwards (a later logger would reuse it)."""
    import wandb

    try:
        return train(cfg)
    finally:
        wandb.finish()


@pytest.fixture(scope="module")
def csv_semantic_run(toy_root, tmp_path_factory) -> Path:
    """Semantic self-training with the default CSV logger and media every step; its output directory."""
    out = tmp_path_factory.mktemp("csv_semantic")
    train(semantic_self_training(toy_root, out, "logger.image_interval=1"))
    return out


@pytest.fixture(scope="module")
def wandb_runs(toy_root, csv_semantic_run, tmp_path_factory) -> Path:
    """Semantic and instance self-training logged to offline W&B (no API key), media every step."""
    out = tmp_path_factory.mktemp("wandb_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(out))
        mp.setenv("WANDB_SILENT", "true")
        wandb = ["logger.kind=wandb", "logger.image_interval=1"]
        train_offline(semantic_self_training(toy_root, out / "semantic", *wandb))
        train_offline(instance_self_training(toy_root, out / "instance", str(csv_semantic_run / "final.ckpt"),
                                             *wandb))
    return out


def wandb_media(run_dir: Path) -> Path:
    """The `files/media` folder of the single offline W&B run in a stage's output directory."""
    (run,) = (run_dir / "wandb").glob("offline-run-*")
    return run / "files" / "media"


def assert_ious(values) -> None:
    """Per-class IoUs: each in [0, 1], or NaN for a class with no pixels in prediction and ground truth; some
    finite."""
    values = [float(v) for v in values]
    assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in values)
    assert any(not math.isnan(v) for v in values)


def test_wandb_offline_semantic_run_stores_overlays_panels_and_the_class_table(wandb_runs):
    out = wandb_runs
    media = wandb_media(out / "semantic")
    for key in ("overlay", "pseudo_labels"):
        images = sorted((media / "images" / "media").glob(f"{key}_*.png"))
        assert len(images) == 2, key  # steps 1 and 2
    (table,) = (media / "table" / "media").glob("per_class_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["class", "iou"]
    assert [row[0] for row in content["data"]] == list(CLASS_NAMES)
    assert_ious(row[1] for row in content["data"])


def test_wandb_offline_instance_run_stores_embedding_panels(wandb_runs):
    out = wandb_runs
    images = sorted((wandb_media(out / "instance") / "images" / "media").glob("embeddings_*.png"))
    assert len(images) == 2
    assert np.asarray(Image.open(images[0])).shape[:2] == (HEIGHT, 3 * WIDTH)


def read_png(path: Path) -> np.ndarray:
    """An RGB PNG as a uint8 array."""
    return np.asarray(Image.open(path).convert("RGB"))


def test_csv_logger_writes_semantic_pngs_and_the_class_table_under_media(csv_semantic_run):
    media = csv_semantic_run / "media"
    assert sorted(p.name for p in media.glob("*.png")) == [
        "overlay_000001.png", "overlay_000002.png", "pseudo_labels_000001.png", "pseudo_labels_000002.png"]
    assert read_png(media / "overlay_000002.png").shape == (HEIGHT, WIDTH, 3)
    panel = read_png(media / "pseudo_labels_000002.png")
    assert panel.shape == (HEIGHT, 3 * WIDTH, 3)
    allowed = {tuple(c) for c in PALETTE} | {(0, 0, 0)}
    for part in (panel[:, WIDTH:2 * WIDTH], panel[:, 2 * WIDTH:]):  # pseudo-labels (ignore: black), prediction
        assert {tuple(c) for c in part.reshape(-1, 3)} <= allowed
    with (media / "per_class_000002.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class", "iou"]
    assert [r[0] for r in rows[1:]] == list(CLASS_NAMES)
    assert_ious(float(r[1]) for r in rows[1:])


def test_csv_logger_writes_instance_embedding_panels(csv_semantic_run, toy_root, tmp_path):
    semantic_checkpoint = str(csv_semantic_run / "final.ckpt")
    train(instance_self_training(toy_root, tmp_path, semantic_checkpoint, "logger.image_interval=2"))
    pngs = sorted((tmp_path / "media").glob("*.png"))
    assert [p.name for p in pngs] == ["embeddings_000002.png"]
    assert read_png(pngs[0]).shape == (HEIGHT, 3 * WIDTH, 3)


def test_interval_zero_writes_no_media(toy_root, tmp_path):
    train(semantic_self_training(toy_root, tmp_path, "logger.image_interval=0", "trainer.max_steps=1"))
    assert (tmp_path / "final.ckpt").is_file()
    assert not (tmp_path / "media").exists()


def test_tensorboard_gets_hwc_images_and_a_markdown_table(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = Mock(spec=TensorBoardLogger)
    sink = MediaSink(logger, tmp_path / "media")
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    sink.image("media/overlay", image, 7)
    sink.table("media/per_class", ["class", "iou"], [["road", 0.5]], 7)
    logger.experiment.add_image.assert_called_once_with("media/overlay", image, 7, dataformats="HWC")
    logger.experiment.add_text.assert_called_once_with(
        "media/per_class", "| class | iou |\n| --- | --- |\n| road | 0.5000 |", 7)
    assert not (tmp_path / "media").exists()


def test_embedding_pca_maps_orthogonal_clusters_to_distinct_colours():
    rng = np.random.default_rng(0)
    dim, height, width = 8, 6, 9
    cluster = np.repeat(np.arange(3), width // 3)[None].repeat(height, axis=0)  # three vertical bands
    centres = np.eye(dim)[:3] * 4.0
    embeddings = centres[cluster].transpose(2, 0, 1) + rng.normal(0, 0.05, (dim, height, width))
    rgb = embedding_rgb(embeddings)
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    means = np.stack([rgb[cluster == k].mean(axis=0) for k in range(3)])
    spread = max(rgb[cluster == k].std(axis=0).max() for k in range(3))
    gaps = [np.linalg.norm(means[a] - means[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 100 and spread < 10


def test_instance_colours_keep_background_black_and_instances_apart():
    instances = np.array([[0, 1, 1], [2, 2, 0], [7, 7, 7]])
    rgb = instance_colors(instances)
    assert rgb.shape == (3, 3, 3) and rgb.dtype == np.uint8
    assert (rgb[instances == 0] == 0).all() and (rgb[instances > 0] > 0).any(axis=1).all()
    assert len({tuple(rgb[instances == k][0]) for k in (1, 2, 7)}) == 3
