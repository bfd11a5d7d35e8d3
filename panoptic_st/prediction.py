"""Checkpoints in, results out, through Lightning's `Trainer.predict` (devices, precision and DDP as in training).

- `predict(...)` writes, per image, the files the official Cityscapes scripts read (`semantic/*_labelIds.png`,
  `instance/*.txt` + `instance/masks/`, `panoptic/*.png` + `panoptic.json`), optionally colour overlays. Every image
  is predicted by one process only (no padding of the last shard), and a rerun skips the images already written.
- `score(...)` scores the same predictions in process (mIoU, PQ/SQ/RQ/PQ+, AP); `evaluate(cfg, checkpoint)` is the
  `panoptic-st evaluate` command on top of it, writing its JSON beside the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, Subset

from panoptic_st.config import ConfigError, ExperimentConfig
from panoptic_st.data.dataset import read_rgb
from panoptic_st.data.labels import CLASS_NAMES, PROTOCOLS
from panoptic_st.evaluation.export import CityscapesExporter, output_stem, write_panoptic_json
from panoptic_st.evaluation.instance import InstanceAP
from panoptic_st.evaluation.panoptic import PanopticQuality, panoptic_from_semantic_instance
from panoptic_st.evaluation.semantic import SemanticIoU
from panoptic_st.panoptic.predictor import PanopticPredictor, ap_input

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DATASETS = {"cityscapes": ("leftImg8bit", "_leftImg8bit.png")}
MANIFEST = "predict.json"
DONE = ".done"


class PredictionError(ConfigError):
    """A prediction request that cannot work (no images, an output folder of other checkpoints, ...)."""


# ----------------------------------------------------------------------------------------------------------------
# images and their sharding over processes


class ImageFolder(Dataset):
    """Images under a root folder (recursive), each with `meta.name` = its path relative to the root."""

    def __init__(self, root: str | Path, files: Sequence[Path]) -> None:
        self.root, self.files = Path(root), list(files)
        self.names = [f.relative_to(self.root).as_posix() for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        image = torch.from_numpy(np.ascontiguousarray(read_rgb(path).transpose(2, 0, 1))).float().div_(255.0)
        return {"image": image, "meta": {"name": self.names[index], "image_path": str(path)}}


def image_files(root: str | Path) -> list[Path]:
    """Every PNG / JPEG under `root`, sorted; an error if there is none."""
    root = Path(root)
    if not root.is_dir():
        raise PredictionError(f"{root}: image folder not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise PredictionError(f"{root}: no .png or .jpg images found (searched recursively)")
    return files


def dataset_images(dataset: str, root: str | Path, split: str, labels: bool = False) -> Dataset:
    """The images of a dataset split, named as the dataset names them (Cityscapes: leftImg8bit/{split}/{city}/);
    with `labels`, its labelled items (to cluster instances inside the ground-truth masks)."""
    if dataset not in DATASETS:
        raise PredictionError(f"--dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    if labels:
        from panoptic_st.data.cityscapes import CityscapesDataset

        return CityscapesDataset(root, split)
    folder, suffix = DATASETS[dataset]
    images = Path(root) / folder / split
    files = [f for f in image_files(images) if f.name.endswith(suffix)]
    if not files:
        raise PredictionError(f"{images}: no *{suffix} images")
    return ImageFolder(images, files)


class ShardedData(L.LightningDataModule):
    """One dataset, split over the processes as images rank, rank + world, ... (each image exactly once)."""

    def __init__(self, dataset: Dataset, batch_size: int = 1, num_workers: int = 2) -> None:
        super().__init__()
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers

    def predict_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        shard = Subset(self.dataset, range(rank, len(self.dataset), world))
        return DataLoader(shard, batch_size=self.batch_size, num_workers=self.num_workers,
                          persistent_workers=False, pin_memory=False)


def build_trainer(accelerator: str = "auto", devices: int | str = 1, strategy: str = "auto", num_nodes: int = 1,
                  precision: str = "32-true", progress: bool = True, callbacks: Sequence = ()) -> L.Trainer:
    """A Trainer for prediction: no logger, no checkpoints, our own sharding."""
    return L.Trainer(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
                     precision=precision, logger=False, enable_checkpointing=False, enable_model_summary=False,
                     enable_progress_bar=progress, callbacks=list(callbacks), use_distributed_sampler=False)


# ----------------------------------------------------------------------------------------------------------------
# writing the official formats


def done_marker(out: Path, name: str) -> Path:
    """The file whose presence says an image's results are complete (it holds its panoptic JSON entries)."""
    return out / DONE / f"{output_stem(name)}.json"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _image_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


class OfficialFormatWriter(BasePredictionWriter):
    """Writes each predicted image's official result files as soon as its batch is done, then its done marker."""

    def __init__(self, out: str | Path, overlays: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.out, self.overlays = Path(out), overlays
        self.exporter = CityscapesExporter(self.out)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        for b, result in enumerate(prediction):
            self.write(result, batch["image"][b])

    def write(self, result: dict, image: torch.Tensor) -> None:
        """All files of one image; the done marker last, so an interrupted image is predicted again."""
        name = result["meta"]["name"]
        cpu = {k: v for k, v in result.items() if k != "meta"}
        entries = self.exporter.write(name, cpu)
        if self.overlays:
            save_overlay(self.out / "overlays" / f"{output_stem(name)}.png", _image_uint8(image), cpu)
        marker = {} if entries is None else {"image": entries[0], "annotation": entries[1]}
        _write_atomically(done_marker(self.out, name), json.dumps(marker))


def save_overlay(path: Path, image: np.ndarray, prediction: dict) -> None:
    """The image blended with the panoptic map's colours (semantic colours for a semantic-only prediction)."""
    import cv2

    from panoptic_st.viz import overlay, panoptic_colors

    key = "panoptic" if "panoptic" in prediction else "semantic"
    ids = prediction[key].cpu().numpy().astype(np.int64)
    colors = panoptic_colors(ids if key == "panoptic" else ids * 1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(overlay(image, colors), cv2.COLOR_RGB2BGR))


def write_panoptic_index(out: Path, names: Sequence[str]) -> Path | None:
    """`panoptic.json` from the done markers of `names` (in that order); None for semantic-only predictions."""
    images, annotations = [], []
    for name in names:
        marker = json.loads(done_marker(out, name).read_text())
        if marker:
            images.append(marker["image"])
            annotations.append(marker["annotation"])
    return write_panoptic_json(out / "panoptic.json", images, annotations) if annotations else None


def _checked_manifest(out: Path, request: dict) -> None:
    """Refuse an output folder that holds the predictions of other checkpoints or settings; record this request."""
    path = out / MANIFEST
    if path.is_file():
        earlier = json.loads(path.read_text())
        if earlier != request:
            changed = sorted(k for k in {*earlier, *request} if earlier.get(k) != request.get(k))
            raise PredictionError(f"{out} holds predictions made with other settings ({', '.join(changed)}); "
                                  "choose another --out or delete it")
        return
    _write_atomically(path, json.dumps(request, indent=2))


@dataclass
class PredictionSettings:
    """What `predict` runs: checkpoints, how images are scaled and clustered, and the Trainer's hardware."""

    semantic: str | None
    instances: list[str] = field(default_factory=list)
    masks: str = "semantic"
    scale: float = 1.0
    clustering: dict = field(default_factory=dict)
    batch_size: int = 1
    num_workers: int = 2
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    overlays: bool = False
    progress: bool = True

    def request(self) -> dict:
        """The settings that decide the written files (a rerun into the same folder must repeat them)."""
        return {"semantic": self.semantic and str(Path(self.semantic).resolve()), "masks": self.masks,
                "instances": [str(Path(p).resolve()) for p in self.instances],
                "scale": self.scale, "clustering": self.clustering, "precision": self.precision}


def predict(settings: PredictionSettings, images: Dataset, out: str | Path) -> dict:
    """Predict every image of `images` (a dataset with `names`) not yet written under `out`; returns counts and the
    output folders."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(images.names)
    _checked_manifest(out, settings.request())
    todo = [i for i, name in enumerate(names) if not done_marker(out, name).is_file()]
    if len(todo) < len(names):
        print(f"{len(names) - len(todo)} of {len(names)} images already written in {out}; predicting the rest")
    is_zero = True
    if todo:
        predictor = PanopticPredictor.from_checkpoints(settings.semantic, settings.instances, scale=settings.scale,
                                                       masks=settings.masks, **settings.clustering)
        trainer = build_trainer(settings.accelerator, settings.devices, settings.strategy, settings.num_nodes,
                                settings.precision, settings.progress, [OfficialFormatWriter(out, settings.overlays)])
        data = ShardedData(Subset(images, todo), settings.batch_size, settings.num_workers)
        trainer.predict(predictor, datamodule=data, return_predictions=False)
        trainer.strategy.barrier()
        is_zero = trainer.is_global_zero
    result = {"out": str(out), "images": len(names), "predicted": len(todo)}
    if is_zero:
        panoptic = write_panoptic_index(out, names)
        result["panoptic_json"] = str(panoptic) if panoptic else None
    return result


# ----------------------------------------------------------------------------------------------------------------
# scoring in process


class ScoreCallback(L.Callback):
    """mIoU, PQ (19 and 16 classes) and AP of a predictor's contract against the batches' ground truth."""

    def __init__(self, min_region_size: int | None = None, panels: int = 0) -> None:
        super().__init__()
        self.miou, self.ap = SemanticIoU(), InstanceAP(min_region_size=min_region_size)
        self.pq, self.pq16 = PanopticQuality(), PanopticQuality(classes=PROTOCOLS[16])
        self.panels_wanted, self.panels = panels, []
        self.instances = False
        self.result: dict = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        for metric in (self.miou, self.ap, self.pq, self.pq16):
            metric.to(pl_module.device)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for b, pred in enumerate(outputs):
            semantic, instance = batch["semantic"][b], batch["instance"][b]
            self.miou.update(pred["semantic"][None], semantic[None])
            if "instances" not in pred:
                continue
            self.instances = True
            self.ap.update([ap_input(pred)], [{"semantic": semantic, "instance": instance}])
            truth = panoptic_from_semantic_instance(semantic, instance)
            self.pq.update(pred["panoptic"], truth)
            self.pq16.update(pred["panoptic"], truth)
            if len(self.panels) < self.panels_wanted:
                self.panels.append((batch["image"][b].cpu(), pred["panoptic"].cpu(), truth.cpu()))

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.result = {"miou": self.miou.compute()}
        if self.instances:
            self.result.update(ap=self.ap.compute(), pq=self.pq.compute(), pq16=self.pq16.compute())


def score(predictor: PanopticPredictor, dataset: Dataset, trainer_options: dict | None = None,
          batch_size: int = 1, num_workers: int = 0, min_region_size: int | None = None, panels: int = 0) -> dict:
    """In-process metrics of `predictor` on a labelled dataset: `miou` (SemanticIoU.compute()), and with instance
    networks `ap`, `pq`, `pq16`, plus the first `panels` (image, panoptic, truth) triples under `panels`."""
    callback = ScoreCallback(min_region_size, panels)
    trainer = build_trainer(**(trainer_options or {}), callbacks=[callback])
    trainer.predict(predictor, datamodule=ShardedData(dataset, batch_size, num_workers), return_predictions=False)
    return {**callback.result, "panels": callback.panels}


def metric_summary(result: dict) -> dict[str, float | None]:
    """Flat `val/...` metrics of a `score` result (the names training logs), NaN as None."""
    iou = result["miou"]
    metrics = {f"val/miou{n}": float(iou[f"miou_{n}"]) for n in (19, 16, 13)}
    metrics.update({f"val/iou/{name}": float(iou["iou"][c]) for c, name in enumerate(CLASS_NAMES)})
    if "ap" in result:
        metrics.update({"val/ap": float(result["ap"]["ap"]), "val/ap50": float(result["ap"]["ap50"])})
        for train_id, values in result["ap"]["per_class"].items():
            name = CLASS_NAMES[int(train_id)]
            metrics.update({f"val/ap/{name}": float(values["ap"]), f"val/ap50/{name}": float(values["ap50"])})
        for key in ("pq", "sq", "rq", "pq_plus"):
            metrics[f"val/{key}"] = float(result["pq"]["All"][key])
        metrics["val/pq16"] = float(result["pq16"]["All"]["pq"])
    return {k: None if math.isnan(v) else v for k, v in metrics.items()}


# ----------------------------------------------------------------------------------------------------------------
# `panoptic-st evaluate`


def parse_masks(masks: str) -> str | None:
    """The semantic checkpoint of `--masks semantic:CKPT`, or None for `--masks gt`."""
    if masks == "gt":
        return None
    if masks.startswith("semantic:") and len(masks) > len("semantic:"):
        return masks[len("semantic:"):]
    raise PredictionError(f"--masks must be 'gt' or 'semantic:CHECKPOINT', got {masks!r}")


def evaluate(cfg: ExperimentConfig, checkpoint: str | Path, adabn_first: bool = False, masks: str = "gt",
             out: str | Path | None = None) -> dict:
    """Score a semantic or instance checkpoint on the target validation split (instance AP inside ground-truth
    masks or a semantic checkpoint's, as `masks` says); writes strict JSON beside the checkpoint (or to `out`)."""
    from panoptic_st.checkpoints import load_checkpoint_state
    from panoptic_st.data.datamodule import build_dataset
    from panoptic_st.data.transforms import eval_transform

    branch = load_checkpoint_state(checkpoint).get("hyper_parameters", {}).get("branch")
    semantic_masks = parse_masks(masks)
    if branch == "semantic":
        predictor, used = PanopticPredictor.from_checkpoints(checkpoint), None
    else:
        predictor = PanopticPredictor.from_checkpoints(semantic_masks, [checkpoint],
                                                       masks="gt" if semantic_masks is None else "semantic")
        used = masks
    if adabn_first:
        from panoptic_st.data.datamodule import PanopticDataModule
        from panoptic_st.training import adabn

        datamodule = PanopticDataModule(cfg.data, "target", seed=cfg.seed)
        datamodule.setup()
        adabn(predictor.semantic_net if branch == "semantic" else predictor.instance_nets[0], datamodule)
    dataset = build_dataset(cfg.data.target, cfg.data, cfg.data.val_split, eval_transform(None))
    t = cfg.trainer
    options = {"accelerator": t.accelerator, "devices": t.devices, "strategy": t.strategy, "num_nodes": t.num_nodes,
               "precision": t.precision, "progress": t.progress_bar}
    metrics = metric_summary(score(predictor, dataset, options, cfg.data.val_batch_size))
    suffix = "_adabn" if adabn_first else ""
    path = Path(out) if out else Path(checkpoint).with_name(f"{Path(checkpoint).stem}.eval{suffix}.json")
    result = {"checkpoint": str(checkpoint), "branch": branch, "masks": used, "adabn": adabn_first,
              "split": f"{cfg.data.target} {cfg.data.val_split}", "metrics": metrics}
    _write_atomically(path, json.dumps(result, indent=2, allow_nan=False))
    if used:
        print(f"instance masks: {used}")
    for key in sorted(metrics):
        if "/iou/" not in key and "/ap/" not in key and "/ap50/" not in key:
            value = metrics[key]
            print(f"{key:<28}{'n/a' if value is None else f'{value:.4f}'}")
    print(f"results written to {path}")
    return result
