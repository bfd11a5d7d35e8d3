"""Files written by panoptic_st.evaluation.export are read by the official evaluators, with our numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from panoptic_st.data.labels import CLASS_NAMES, THING_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
from panoptic_st.evaluation import (
    CityscapesExporter,
    InstanceAP,
    PanopticQuality,
    SemanticIoU,
    evaluate_instances,
    evaluate_panoptic,
    evaluate_semantic,
    write_instance_prediction,
)
from panoptic_st.evaluation.files import read_panoptic_ids
from panoptic_st.evaluation.official import official_instance, official_panoptic, official_semantic
from panoptic_st.evaluation.synthetic import make_eval_fixture, to_contract

TOL = 1e-6


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Fixture GT, and the fixture's predictions as tensors, exported by our writers; metrics on the tensors."""
    root = tmp_path_factory.mktemp("export")
    fx = make_eval_fixture(root / "data", n_images=20, seed=11)
    out = root / "out"
    sem, pan, inst = SemanticIoU(), PanopticQuality(), InstanceAP()
    with CityscapesExporter(out) as exporter:
        for im in fx.images:
            c = to_contract(im)
            # the image name may be any Cityscapes file name; the prefix is what matters
            exporter.add(
                f"{im.prefix}_leftImg8bit.png",
                {"semantic": c["pred_semantic"], "panoptic": c["pred_panoptic"]},
            )
            write_instance_prediction(
                out / "instance", im.prefix, c["pred_masks"], c["pred_labels"], c["pred_scores"]
            )
            sem.update(c["pred_semantic"], c["semantic"])
            pan.update(c["pred_panoptic"], c["panoptic"])
            inst.update(
                [{"masks": c["pred_masks"], "labels": c["pred_labels"], "scores": c["pred_scores"]}],
                [{"semantic": c["semantic"], "instance": c["instance"]}],
            )
    return fx, out, sem.compute(), pan.compute(), inst.compute()


def test_semantic_export(exported):
    fx, out, sem, _, _ = exported
    ref = official_semantic(fx.gt_dir, out / "semantic")
    for t, name in enumerate(CLASS_NAMES):
        assert _close(float(sem["iou"][t]), ref["classScores"][name]), name
    assert _close(float(sem["miou"]), ref["averageScoreClasses"])
    assert _close(
        evaluate_semantic(fx.gt_dir, out / "semantic")["averageScoreClasses"], ref["averageScoreClasses"]
    )


def test_panoptic_export(exported, tmp_path):
    fx, out, _, pan, _ = exported
    ref = official_panoptic(fx.panoptic_gt_json, fx.panoptic_gt_dir, out / "panoptic.json", out / "panoptic",
                            tmp_path / "r.json")  # fmt: skip
    for key in ("All", "Things", "Stuff"):
        assert pan[key]["n"] == ref[key]["n"]
        for m in ("pq", "sq", "rq"):
            assert abs(pan[key][m] - ref[key][m]) <= TOL, (key, m)
    for t, entry in pan["per_class"].items():
        for m in ("pq", "sq", "rq"):
            theirs = ref["per_class"][TRAIN_ID_TO_LABEL_ID[t]][m]
            assert (math.isnan(entry[m]) and theirs == 0.0) or abs(entry[m] - theirs) <= TOL, (t, m)
    ours_files = evaluate_panoptic(
        fx.panoptic_gt_json, fx.panoptic_gt_dir, out / "panoptic.json", out / "panoptic"
    )
    assert abs(ours_files["All"]["pq"] - ref["All"]["pq"]) <= TOL


def test_instance_export(exported, tmp_path):
    fx, out, _, _, inst = exported
    ref = official_instance(fx.gt_dir, out / "instance", tmp_path)
    assert _close(inst["ap"], ref["averages"]["allAp"]) and _close(inst["ap50"], ref["averages"]["allAp50%"])
    for t, name in zip(THING_TRAIN_IDS, ref["averages"]["classes"]):
        assert _close(inst["per_class"][t]["ap"], ref["averages"]["classes"][name]["ap"]), name
        assert _close(inst["per_class"][t]["ap50"], ref["averages"]["classes"][name]["ap50%"]), name
    ours = evaluate_instances(fx.gt_dir, out / "instance")
    assert np.allclose(ours["resultApMatrix"], ref["resultApMatrix"], equal_nan=True)


def test_panoptic_json_segments_describe_the_png(exported):
    out = exported[1]
    data = json.loads((out / "panoptic.json").read_text())
    assert {c["id"] for c in data["categories"]} == set(TRAIN_ID_TO_LABEL_ID)
    ann = data["annotations"][0]
    ids = read_panoptic_ids(out / "panoptic" / ann["file_name"])
    assert {s["id"] for s in ann["segments_info"]} == set(np.unique(ids).tolist()) - {0}
    for s in ann["segments_info"]:
        ys, xs = np.nonzero(ids == s["id"])
        assert s["area"] == len(ys) and s["iscrowd"] == 0
        assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert s["category_id"] == s["id"] // 1000 and s["category_id"] in TRAIN_ID_TO_LABEL_ID


def test_exporter_writes_the_prediction_contract(tmp_path):
    semantic = torch.full((6, 8), 13)
    semantic[:, 4:] = 11
    instances = torch.zeros(6, 8, dtype=torch.long)
    instances[1:5, 1:4] = 1  # car
    instances[1:5, 5:7] = 2  # person
    segments = {"id": torch.tensor([1, 2]), "class": torch.tensor([13, 11]),
                "score": torch.tensor([0.9, 0.4], dtype=torch.float64), "area": torch.tensor([12, 8])}
    with CityscapesExporter(tmp_path) as ex:
        ex.add("aachen_000001_000002_leftImg8bit.png",
               {"semantic": semantic, "instances": instances, "segments": segments})
    lines = (tmp_path / "instance" / "aachen_000001_000002_pred.txt").read_text().splitlines()
    assert [ln.split()[1:] for ln in lines] == [["26", "0.9"], ["24", "0.4"]]
    assert (tmp_path / "semantic" / "aachen_000001_000002_pred_labelIds.png").exists()
    assert not (tmp_path / "panoptic.json").exists()


def test_files_of_arbitrary_image_names_keep_their_folders(tmp_path):
    instances = torch.zeros(4, 4, dtype=torch.long)
    instances[:2, :2] = 1
    txt = write_instance_prediction(tmp_path, "drive 2/frame_7.jpg", instances, [13], [0.5])
    assert txt == tmp_path / "drive_2" / "frame_7_pred.txt"
    mask = txt.read_text().split()[0]
    assert (txt.parent / mask).is_file() and mask == "../masks/drive_2/frame_7_0000.png"
