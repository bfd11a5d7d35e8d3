"""The official Cityscapes evaluators called in-process, with printing and result files disabled: the references that
the equality tests and the benchmarks compare ``panoptic_st.evaluation`` with."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["official_instance", "official_panoptic", "official_semantic"]


@contextlib.contextmanager
def _numpy_in1d_shim():
    """The official instance/semantic scripts call ``np.in1d``, which NumPy 2.4 removed; lend them ``np.isin``."""
    added = not hasattr(np, "in1d")
    if added:
        np.in1d = lambda a, b, invert=False: np.isin(np.asarray(a).ravel(), b, invert=invert)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.in1d  # type: ignore[attr-defined]


def _json_writer_for_numpy(data, file_name) -> None:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        return o.__dict__

    with open(file_name, "w") as f:
        json.dump(data, f, default=default, sort_keys=True, indent=4)


def official_panoptic(gt_json, gt_dir, pred_json, pred_dir, results_file) -> dict:
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    with contextlib.redirect_stdout(io.StringIO()):
        return evaluatePanoptic(str(gt_json), str(gt_dir), str(pred_json), str(pred_dir), str(results_file))


def official_semantic(gt_dir, pred_dir) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    args = copy.copy(ev.args)
    args.evalInstLevelScore = False  # nIoU is not reproduced (and needs np.in1d)
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    args.predictionPath = str(pred_dir)
    args.predictionWalk = None
    gts = sorted(str(p) for p in Path(gt_dir).rglob("*_gtFine_labelIds.png"))
    preds = [ev.getPrediction(args, gt) for gt in gts]
    with contextlib.redirect_stdout(io.StringIO()):
        return ev.evaluateImgLists(preds, gts, args)


def official_instance(gt_dir, pred_dir, workdir, min_region_size: int = 100) -> dict:
    """Runs evalInstanceLevelSemanticLabeling (GT instances under ``min_region_size`` px ignored, official: 100);
    ``workdir`` receives its GT cache and its ``matches.json``."""
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as ev

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args = copy.copy(ev.args)
    args.JSONOutput = False
    args.quiet = True
    args.distanceAvailable = False
    args.minRegionSizes = np.array([min_region_size, 1000, 1000])
    args.gtInstancesFile = str(workdir / "gtInstances.json")
    if os.path.exists(args.gtInstancesFile):
        os.remove(args.gtInstancesFile)
    args.predictionPath = None
    args.predictionWalk = None
    old_env = os.environ.get("CITYSCAPES_RESULTS")
    os.environ["CITYSCAPES_RESULTS"] = str(pred_dir)
    old_cwd = os.getcwd()
    try:
        gts = sorted(str(p) for p in Path(gt_dir).rglob("*_gtFine_instanceIds.png"))
        preds = [ev.getPrediction(gt, args) for gt in gts]
        os.chdir(workdir)  # it writes matches.json into the working directory
        saved_writer = ev.writeDict2JSON
        ev.writeDict2JSON = _json_writer_for_numpy  # its matches.json holds NumPy ints (NumPy 2)
        with _numpy_in1d_shim(), contextlib.redirect_stdout(io.StringIO()):
            return ev.evaluateImgLists(preds, gts, args)
    finally:
        ev.writeDict2JSON = saved_writer
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("CITYSCAPES_RESULTS", None)
        else:
            os.environ["CITYSCAPES_RESULTS"] = old_env
