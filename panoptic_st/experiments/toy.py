"""What the toy experiment scripts (`experiments/*.py`) share: the instance models of a seed's demo run, per-image AP
records, the paired bootstrap of the self-training gain, saved scores, retraining the demo's instance
self-training stage with other settings, and the table of pseudo-instances by kind."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.labels import THING_TRAIN_IDS
from panoptic_st.evaluation.instance import InstanceAP, InstanceRecords, paired_bootstrap
from panoptic_st.evaluation.instance_records import OVERLAPS, mean_ap, records_at_threshold
from panoptic_st.instance.statistics import PSEUDO_LABEL_KINDS, pseudo_label_kinds
from panoptic_st.panoptic.predictor import PanopticPredictor, ap_input
from panoptic_st.pipeline import DEMO_STAGES
from panoptic_st.stages import run_chain

MODELS = ("instance_baseline", "instance_self_train")
"""The instance stages of a seed's demo run (`experiments/panoptic_toy_seeds.py`), baseline first."""
MASKS = ("self-trained semantic", "ground truth")
HELDOUT = {"n_source": 0, "n_target": 1, "n_val": 800, "val_start": 200}
"""`make_toy` arguments of the held-out toy Cityscapes val images 200-999 of the same generator."""
UNSEEN_SOURCE = {"seed": 1, "n_source": 200, "n_target": 1, "n_val": 1}
"""`make_toy` arguments of 200 toy-SYNTHIA images no model trained on (data seed 1): the source side of a gap."""


def final_checkpoint(run_dir: Path, stage: str) -> Path:
    """The final checkpoint of one stage of a seed's demo run."""
    return run_dir / stage / "final.ckpt"


def image_records(predictor: PanopticPredictor, dataset: Dataset, batch_size: int = 10) -> list[InstanceRecords]:
    """AP match records of each image, the predictor's instances clustered inside its semantic network's masks
    (or inside the ground-truth semantic masks for a predictor with `masks="gt"`)."""
    metric, records = InstanceAP(thing_ids=predictor.clustering[0].classes, min_region_size=None), []
    for batch in DataLoader(dataset, batch_size=batch_size):
        preds = predictor.predict(batch["image"], batch["semantic"] if predictor.masks == "gt" else None)
        for pred, semantic, instance in zip(preds, batch["semantic"], batch["instance"]):
            records.append(metric.records(ap_input(pred), {"semantic": semantic, "instance": instance}))
    return records


def ap50(predictor: PanopticPredictor, dataset: Dataset) -> float:
    """Class-mean AP50 of the predictor on a dataset."""
    thr = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])
    records = [records_at_threshold(r, thr) for r in image_records(predictor, dataset)]
    return mean_ap(records, len(THING_TRAIN_IDS))


def paired_gain(predictors: Sequence[PanopticPredictor], dataset: Dataset) -> dict:
    """`paired_bootstrap` of the AP50 gain of the second predictor over the first, over the images of `dataset`."""
    records = [image_records(predictor, dataset) for predictor in predictors]
    return paired_bootstrap(*records, num_classes=len(THING_TRAIN_IDS))


def gain_cells(result: dict) -> str:
    """Markdown cells of a `paired_bootstrap` result: AP50 of both, the gain and its 95% interval, in points."""
    return (f"{100 * result['ap_a']:.2f} | {100 * result['ap_b']:.2f} | {100 * result['difference']:+.2f} | "
            f"{100 * result['low']:+.2f} .. {100 * result['high']:+.2f}")


def significance_seed(run_dir: Path, splits: dict[str, Path], checkpoints: tuple[Path, Path] | None = None) -> dict:
    """{split: paired_bootstrap of the AP50 gain of the second checkpoint over the first (default: the seed's
    instance baseline and self-trained model), both in the self-trained semantic masks} for one seed's run."""
    semantic = final_checkpoint(run_dir, "semantic_self_train")
    predictors = [PanopticPredictor.from_checkpoints(semantic, [checkpoint])
                  for checkpoint in checkpoints or [final_checkpoint(run_dir, model) for model in MODELS]]
    result = {}
    for split, root in splits.items():
        dataset = CityscapesDataset(root / "cityscapes", "val")
        result[split] = {"images": len(dataset), **paired_gain(predictors, dataset)}
    return result


def saved_or_computed(path: Path, rescore: bool, compute: Callable[[], dict]) -> dict:
    """The JSON saved at `path`, unless absent or `rescore`; then `compute()`, saved there."""
    if path.is_file() and not rescore:
        return json.loads(path.read_text())
    result = compute()
    path.write_text(json.dumps(result, indent=2))
    return result


def retrain_instance_self_training(run_dir: Path, out: Path, data: Path, seed: int,
                                   overrides: Sequence[str] = ()) -> dict:
    """The demo's instance self-training stage retrained into `out` with `overrides`, from the instance baseline and
    inside the self-trained semantic masks of a seed's demo run in `run_dir` (a finished run is reused)."""
    [stage] = [s for s in DEMO_STAGES if s.name == MODELS[1]]
    retrained = dataclasses.replace(stage, overrides=(*stage.overrides, *overrides), output_dir=out)
    done = {key: {"checkpoint": str(final_checkpoint(run_dir, key))} for key in (stage.init_from, stage.masks_from)}
    return run_chain([retrained], common=[f"seed={seed}", f"data.root={data}"], done=done)[stage.key]


KINDS_HEADER = "| true | merged | fragments | other | precision | recall |"
"""The columns of `kinds_cells`, to follow a table's own leading columns."""


def evenly_spaced(dataset: Dataset, count: int) -> Subset:
    """`count` items of `dataset` at an even stride from the first."""
    return Subset(dataset, range(0, len(dataset), max(len(dataset) // count, 1))[:count])


def kinds_per_image(pairs: Iterable[tuple[Tensor, Tensor]], images: int) -> dict[str, float]:
    """Pseudo-instances per image by kind (`pseudo_label_kinds`) over (pseudo-labels, ground-truth instances) pairs
    of `images` images, with the ground-truth instances per image under `objects`."""
    totals = dict.fromkeys((*PSEUDO_LABEL_KINDS, "objects"), 0)
    for pseudo, truth in pairs:
        for kind, count in pseudo_label_kinds(pseudo, truth).items():
            totals[kind] += count
        totals["objects"] += int((truth.unique() > 0).sum())
    return {kind: count / images for kind, count in totals.items()}


def kinds_cells(kinds: dict[str, float]) -> str:
    """The `KINDS_HEADER` cells of a `kinds_per_image` result: counts per image, precision and recall."""
    found = sum(kinds[kind] for kind in PSEUDO_LABEL_KINDS)
    return (f"{kinds['true']:.2f} | {kinds['merge']:.2f} | {kinds['fragment']:.2f} | {kinds['other']:.2f} | "
            f"{kinds['true'] / max(found, 1e-9):.3f} | {kinds['true'] / max(kinds['objects'], 1e-9):.3f} |")
