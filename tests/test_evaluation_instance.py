"""Instance AP / AP50: equal to the official evalInstanceLevelSemanticLabeling on generated Cityscapes files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from panoptic_st.data.labels import THING_TRAIN_IDS
from panoptic_st.evaluation.export import write_instance_prediction
from panoptic_st.evaluation.instance import (
    InstanceAP,
    average_precision,
    evaluate_instances,
    paired_bootstrap,
    scaled_min_region_size,
)
from panoptic_st.evaluation.official import official_instance
from panoptic_st.evaluation.synthetic import make_eval_fixture, to_contract

TOL = 1e-6


def _assert_same(ours: dict, ref: dict) -> None:
    """The file evaluator's AP matrix and averages equal the official ones to the last digit (NaN = NaN)."""
    a, b = np.asarray(ours["resultApMatrix"]), np.asarray(ref["resultApMatrix"])
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)
    for key in ("allAp", "allAp50%"):
        assert ours["averages"][key] == ref["averages"][key], key
    for name, entry in ref["averages"]["classes"].items():
        for key in ("ap", "ap50%"):
            x, y = ours["averages"]["classes"][name][key], entry[key]
            assert (math.isnan(x) and math.isnan(y)) or x == y, (name, key)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_eval_fixture(tmp_path_factory.mktemp("inst"), n_images=24, seed=7)


@pytest.fixture(scope="module")
def official(fx, tmp_path_factory):
    return official_instance(fx.gt_dir, fx.instance_pred_dir, tmp_path_factory.mktemp("inst_work"))


def test_file_evaluation_equals_official(fx, official, tmp_path):
    ours = evaluate_instances(fx.gt_dir, fx.instance_pred_dir, tmp_path / "res.json")
    _assert_same(ours, official)
    assert (tmp_path / "res.json").exists()
    ap = np.asarray(official["resultApMatrix"])[0]
    assert np.isnan(ap[5]).all()  # train: predicted, never in the GT
    assert (ap[3] == 0).all()  # truck: in the GT, never predicted
    assert np.nanmax(ap) > 0.3  # not degenerate


def test_file_evaluation_equals_official_with_many_segments(tmp_path):
    """Scenes with 5-30 thing segments per image, masks written by PIL and by the exporter (1-bit PNGs)."""
    many = make_eval_fixture(tmp_path / "fx", n_images=6, shape=(128, 256), seed=13, things=(5, 31))
    exported = tmp_path / "exported"
    for im in many.images:
        c = to_contract(im)
        write_instance_prediction(exported, im.prefix, c["pred_masks"], c["pred_labels"], c["pred_scores"])
    for pred_dir in (many.instance_pred_dir, exported):
        ref = official_instance(many.gt_dir, pred_dir, tmp_path / "work")
        _assert_same(evaluate_instances(many.gt_dir, pred_dir, workers=1), ref)
        assert np.isfinite(np.asarray(ref["resultApMatrix"])).sum() >= 30  # most classes have GT


def _metric(fx, images=None, split=None) -> InstanceAP:
    metric = InstanceAP()
    for im in images if images is not None else fx.images:
        c = to_contract(im)
        metric.update(
            [{"masks": c["pred_masks"], "labels": c["pred_labels"], "scores": c["pred_scores"]}],
            [{"semantic": c["semantic"], "instance": c["instance"]}],
        )
    return metric


def test_metric_on_tensors_equals_official(fx, official):
    res = _metric(fx).compute()
    ref = official["averages"]
    assert abs(res["ap"] - ref["allAp"]) <= TOL and abs(res["ap50"] - ref["allAp50%"]) <= TOL
    for t, name in zip(THING_TRAIN_IDS, ref["classes"]):
        for ours, theirs in ((res["per_class"][t]["ap"], ref["classes"][name]["ap"]),
                             (res["per_class"][t]["ap50"], ref["classes"][name]["ap50%"])):  # fmt: skip
            assert (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= TOL, name


def test_merged_states_equal_one_pass(fx):
    whole = _metric(fx, fx.images[:10]).compute()
    a, b = _metric(fx, fx.images[:4]), _metric(fx, fx.images[4:10])
    a.merge_state(b)  # list states are concatenated, counts summed, as across processes
    merged = a.compute()
    assert merged["ap"] == pytest.approx(whole["ap"], abs=1e-12)
    assert torch.allclose(merged["ap_matrix"], whole["ap_matrix"], equal_nan=True)


def _records(fx, perfect: bool = False) -> list:
    """Per-image match records of the fixture's predictions, or of predictions equal to the ground truth."""
    metric, records = InstanceAP(), []
    for im in fx.images:
        c = to_contract(im)
        if perfect:
            pairs = torch.unique(torch.stack([c["semantic"], c["instance"]]).flatten(1), dim=1).T.tolist()
            objects = [(cls, i) for cls, i in pairs if i > 0]  # instance ids count per class
            masks = torch.stack([(c["semantic"] == cls) & (c["instance"] == i) for cls, i in objects])
            pred = {"masks": masks, "labels": torch.tensor([cls for cls, _ in objects]),
                    "scores": torch.ones(len(objects))}
        else:
            pred = {"masks": c["pred_masks"], "labels": c["pred_labels"], "scores": c["pred_scores"]}
        records.append(metric.records(pred, {"semantic": c["semantic"], "instance": c["instance"]}))
    return records


def test_paired_bootstrap_scores_equal_the_metric_and_a_model_against_itself_gains_nothing(fx):
    records = _records(fx)
    result = paired_bootstrap(records, records, len(THING_TRAIN_IDS), samples=50)
    assert result["ap_a"] == pytest.approx(float(_metric(fx).compute()["ap50"]), abs=1e-12)
    assert result["difference"] == result["low"] == result["high"] == result["p_better"] == 0.0


def test_paired_bootstrap_finds_a_better_model_better_on_every_resample(fx):
    worse, better = _records(fx), _records(fx, perfect=True)
    result = paired_bootstrap(worse, better, len(THING_TRAIN_IDS), samples=200)
    assert result["ap_b"] == 1.0 and result["ap_a"] < 0.9
    assert 0.0 < result["low"] <= result["difference"] <= result["high"] and result["p_better"] == 1.0
    with pytest.raises(ValueError, match="same non-zero number"):
        paired_bootstrap(worse, better[:-1], len(THING_TRAIN_IDS))


def test_instance_map_input_equals_masks(fx):
    by_masks, by_map = InstanceAP(), InstanceAP()
    for im in fx.images[:8]:
        c = to_contract(im)
        inst = torch.zeros_like(c["instance"])
        labels, scores, masks = [], [], []
        for k, (m, lab, s) in enumerate(zip(c["pred_masks"], c["pred_labels"], c["pred_scores"])):
            m = m & (inst == 0)  # an id map cannot hold overlapping masks
            inst[m] = len(labels) + 1
            labels.append(int(lab))
            scores.append(float(s))
            masks.append(m)
        target = [{"semantic": c["semantic"], "instance": c["instance"]}]
        lab_t, sc_t = torch.tensor(labels), torch.tensor(scores, dtype=torch.float64)
        by_masks.update([{"masks": torch.stack(masks), "labels": lab_t, "scores": sc_t}], target)
        by_map.update([{"instances": inst, "labels": lab_t, "scores": sc_t}], target)
    assert torch.allclose(by_masks.compute()["ap_matrix"], by_map.compute()["ap_matrix"], equal_nan=True)


# --------------------------------------------------------------------------------------------------------------
# targeted cases, on tiny hand-made files


def _write_case(root: Path, gts: list[np.ndarray], preds: list[list[tuple[np.ndarray, int, float]]]):
    gt_dir, pred_dir = root / "gt" / "x", root / "pred"
    gt_dir.mkdir(parents=True)
    (pred_dir / "m").mkdir(parents=True)
    for i, (gt, plist) in enumerate(zip(gts, preds)):
        prefix = f"x_{i:06d}_000001"
        Image.fromarray(gt.astype(np.uint16)).save(gt_dir / f"{prefix}_gtFine_instanceIds.png")
        lines = []
        for k, (mask, lab, score) in enumerate(plist):
            Image.fromarray(mask.astype(np.uint8) * 255).save(pred_dir / "m" / f"{prefix}_{k}.png")
            lines.append(f"m/{prefix}_{k}.png {lab} {score!r}\n")
        (pred_dir / f"{prefix}.txt").write_text("".join(lines))
    return root / "gt", pred_dir


def _box(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_targeted_rules_equal_official(tmp_path):
    """Duplicates, tied scores, small groups counted twice in the ignore share, an ignore share between the
    thresholds, predictions on void, a second image without predictions."""
    s = (40, 60)
    gt = np.full(s, 7, np.int64)  # road
    gt[0:20, 0:20] = 26000  # car instance, 400 px
    gt[25:33, 0:10] = 26  # small car group, 80 px
    gt[20:40, 40:60] = 24000  # person, 400 px
    gt[0:10, 40:60] = 4  # static (void)
    gt[30:40, 20:30] = 26001  # car, 100 px (exactly the minimum size)
    car_a = _box(s, 0, 20, 0, 18)  # IoU 0.9
    car_b = _box(s, 0, 20, 0, 15)  # IoU 0.75: duplicate, same score as a
    car_c = _box(
        s, 22, 33, 0, 10
    )  # 80 px on the group (counted twice) + 20 on road: ignored at every threshold
    car_d = _box(s, 0, 14, 40, 60)  # 200 of 280 px on void: share 0.714, FP only from threshold 0.75 up
    person = _box(s, 21, 40, 40, 60)
    car_e = _box(s, 30, 40, 20, 31)  # IoU 100/110
    preds = [[(car_a, 26, 0.8), (car_b, 26, 0.8), (car_c, 26, 0.6), (car_d, 26, 0.7), (person, 24, 0.5),
              (car_e, 26, 0.3)], []]  # fmt: skip
    gt2 = np.full(s, 7, np.int64)
    gt2[5:25, 5:25] = 24000
    gt_dir, pred_dir = _write_case(tmp_path, [gt, gt2], preds)
    ref = official_instance(gt_dir, pred_dir, tmp_path / "work")
    _assert_same(evaluate_instances(gt_dir, pred_dir), ref)


def test_all_predictions_ignored_gives_zero_where_official_crashes(tmp_path):
    s = (30, 30)
    gt = np.full(s, 7, np.int64)
    gt[0:15, 0:15] = 27000  # truck
    gt[15:30, 15:30] = 27  # truck group
    gt_dir, pred_dir = _write_case(tmp_path, [gt], [[(_box(s, 15, 30, 15, 30), 27, 0.9)]])
    with pytest.raises(IndexError):
        official_instance(gt_dir, pred_dir, tmp_path / "work")
    res = evaluate_instances(gt_dir, pred_dir)
    assert res["averages"]["classes"]["truck"]["ap"] == 0.0


def test_average_precision_curve():
    # scores 0.9 (TP), 0.8 (FP), 0.7 (TP), one GT never matched
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), hard_fn=1)
    # points (r, p): (1/3, 1), (1/3, 1/2), (2/3, 2/3), artificial (0, 1)
    r = [2 / 3, 1 / 3, 1 / 3, 0]
    p = [2 / 3, 1 / 2, 1, 1]
    widths = [(r[0] - r[1]) / 2, (r[0] - r[2]) / 2, (r[1] - r[3]) / 2, (r[2] - 0) / 2]
    assert ap == pytest.approx(sum(pi * wi for pi, wi in zip(p, widths)))
    assert average_precision(np.array([True, True]), np.array([0.5, 0.5]), hard_fn=0) == pytest.approx(1.0)


def _one_car(height: int, width: int, side: int) -> tuple[dict, dict]:
    """A square car of side `side` px, predicted exactly."""
    car = THING_TRAIN_IDS[2]
    semantic = torch.zeros(height, width, dtype=torch.long)
    instance = torch.zeros(height, width, dtype=torch.long)
    semantic[:side, :side], instance[:side, :side] = car, 1
    pred = {"masks": (instance == 1)[None], "labels": torch.tensor([car]), "scores": torch.tensor([0.9])}
    return pred, {"semantic": semantic, "instance": instance}


def test_scaled_minimum_region_keeps_small_objects_of_downscaled_images():
    pred, target = _one_car(96, 192, 7)  # 49 px: below the official 100 px, above 100 px scaled to 96x192 (1 px)
    official_size, scaled = InstanceAP(), InstanceAP(min_region_size=None)
    official_size.update([pred], [target])
    scaled.update([pred], [target])
    assert int(official_size.n_gt.sum()) == 0
    assert int(scaled.n_gt.sum()) == 1 and float(scaled.compute()["ap50"]) == 1.0


def test_scaled_minimum_region_is_the_official_one_at_full_resolution():
    assert scaled_min_region_size(1024, 2048) == 100
    pred, target = _one_car(1024, 2048, 9)  # 81 px: ignored by both
    scaled = InstanceAP(min_region_size=None)
    scaled.update([pred], [target])
    assert int(scaled.n_gt.sum()) == 0
