"""PQ/SQ/RQ (and PQ+): equal to the official evalPanopticSemanticLabeling on generated Cityscapes files."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from panoptic_st.data.labels import PROTOCOLS, THING_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
from panoptic_st.evaluation.official import official_panoptic
from panoptic_st.evaluation.panoptic import PanopticQuality, evaluate_panoptic
from panoptic_st.evaluation.synthetic import make_eval_fixture, to_contract

TOL = 1e-6


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_eval_fixture(tmp_path_factory.mktemp("pan"), n_images=24, seed=5)


@pytest.fixture(scope="module")
def official(fx, tmp_path_factory):
    out = tmp_path_factory.mktemp("pan_out") / "official.json"
    return official_panoptic(
        fx.panoptic_gt_json, fx.panoptic_gt_dir, fx.panoptic_pred_json, fx.panoptic_pred_dir, out
    )


def _assert_same(ours: dict, ref: dict) -> None:
    """The file evaluator's dict equals the official one to the last digit."""
    for key in ("All", "Things", "Stuff"):
        assert ours[key] == ref[key], key
    assert ours["per_class"] == ref["per_class"]


@pytest.mark.parametrize("workers", [1, 2])
def test_file_evaluation_equals_official(fx, official, tmp_path, workers):
    out = tmp_path / "ours.json"
    ours = evaluate_panoptic(
        fx.panoptic_gt_json,
        fx.panoptic_gt_dir,
        fx.panoptic_pred_json,
        fx.panoptic_pred_dir,
        out,
        workers=workers,
    )
    _assert_same(ours, official)
    assert json.loads(out.read_text()).keys() == {"All", "Things", "Stuff", "per_class"}
    assert 0 < official["Things"]["n"] < official["All"]["n"]  # the fixture is not degenerate
    assert official["per_class"][22] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}  # terrain: nowhere, left out


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Scenes with 5-30 thing segments per image."""
    return make_eval_fixture(tmp_path_factory.mktemp("pan_many"), n_images=8, shape=(128, 256), seed=11, things=(5, 31))


@pytest.mark.parametrize("workers", [1, 2])
def test_file_evaluation_equals_official_with_many_segments(many, tmp_path, workers):
    gt = (many.panoptic_gt_json, many.panoptic_gt_dir)
    pred = (many.panoptic_pred_json, many.panoptic_pred_dir)
    ref = official_panoptic(*gt, *pred, tmp_path / "official.json")
    _assert_same(evaluate_panoptic(*gt, *pred, workers=workers), ref)
    assert ref["Things"]["n"] >= 6  # most thing classes have segments


def test_metric_equals_official_with_many_segments(many, tmp_path):
    ref = official_panoptic(
        many.panoptic_gt_json, many.panoptic_gt_dir, many.panoptic_pred_json, many.panoptic_pred_dir, tmp_path / "o"
    )
    metric = PanopticQuality()
    for im in many.images:
        c = to_contract(im)
        metric.update(c["pred_panoptic"], c["panoptic"])
    _metric_vs_official(metric.compute(), ref)


def test_rgba_prediction_png_alpha_is_ignored(fx, official, tmp_path):
    import shutil

    pred_dir = tmp_path / "pred"
    shutil.copytree(fx.panoptic_pred_dir, pred_dir)
    first = min(pred_dir.iterdir())
    bgr = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    alpha = np.random.default_rng(0).integers(0, 256, bgr.shape[:2], dtype=np.uint8)
    cv2.imwrite(str(first), np.dstack([bgr, alpha]))
    ref = official_panoptic(
        fx.panoptic_gt_json, fx.panoptic_gt_dir, fx.panoptic_pred_json, pred_dir, tmp_path / "o"
    )
    _assert_same(
        evaluate_panoptic(fx.panoptic_gt_json, fx.panoptic_gt_dir, fx.panoptic_pred_json, pred_dir), ref
    )
    _assert_same(ref, official)


def _metric_vs_official(metric_result: dict, ref: dict) -> None:
    for key in ("All", "Things", "Stuff"):
        assert metric_result[key]["n"] == ref[key]["n"]
        for m in ("pq", "sq", "rq"):
            assert abs(metric_result[key][m] - ref[key][m]) <= TOL, (key, m)
    for t, entry in metric_result["per_class"].items():
        ref_entry = ref["per_class"][TRAIN_ID_TO_LABEL_ID[t]]
        for m in ("pq", "sq", "rq"):
            if math.isnan(entry[m]):  # no segment at all: NaN here, 0.0 in the official dict
                assert ref_entry[m] == 0.0
            else:
                assert abs(entry[m] - ref_entry[m]) <= TOL, (t, m)


def test_metric_on_tensors_equals_official(fx, official):
    metric = PanopticQuality()
    for im in fx.images:
        c = to_contract(im)
        metric.update(c["pred_panoptic"], c["panoptic"])
    _metric_vs_official(metric.compute(), official)


def test_metric_batches_and_merged_states_agree(fx, official):
    items = [to_contract(im) for im in fx.images[:8]]
    batched = PanopticQuality()
    batched.update(
        torch.stack([c["pred_panoptic"] for c in items]), torch.stack([c["panoptic"] for c in items])
    )
    a, b = PanopticQuality(), PanopticQuality()
    for c in items[:3]:
        a.update(c["pred_panoptic"], c["panoptic"])
    for c in items[3:]:
        b.update(c["pred_panoptic"], c["panoptic"])
    a.merge_state(b)  # what the distributed sum does
    for name in ("iou", "tp", "fp", "fn", "plus_iou", "plus_gt"):
        assert torch.allclose(getattr(a, name).double(), getattr(batched, name).double()), name
    assert a.compute()["All"]["pq"] == pytest.approx(batched.compute()["All"]["pq"], abs=1e-12)


def test_protocol_average_uses_only_its_classes(fx):
    full, sub = PanopticQuality(), PanopticQuality(classes=PROTOCOLS[16])
    for im in fx.images:
        c = to_contract(im)
        full.update(c["pred_panoptic"], c["panoptic"])
        sub.update(c["pred_panoptic"], c["panoptic"])
    per = full.compute()["per_class"]
    vals = [per[t]["pq"] for t in PROTOCOLS[16] if not math.isnan(per[t]["pq"])]
    assert sub.compute()["All"]["pq"] == pytest.approx(sum(vals) / len(vals), abs=1e-12)
    assert set(sub.compute()["per_class"]) == set(PROTOCOLS[16])


# --------------------------------------------------------------------------------------------------------------
# the individual rules, on hand-made maps (1 row; ids: class * 1000 + instance, -1 void)

CAR, ROAD, SIDEWALK = 13, 0, 1


def _pq(pred, gt, **kw):
    metric = PanopticQuality(**kw)
    metric.update(torch.tensor([pred]), torch.tensor([gt]))
    return metric, metric.compute()


def test_union_excludes_predicted_pixels_on_void():
    gt = [CAR * 1000 + 1] * 10 + [-1] * 10
    pred = [ROAD * 1000] * 4 + [CAR * 1000 + 5] * 14 + [ROAD * 1000] * 2
    metric, res = _pq(pred, gt)
    assert int(metric.tp[CAR]) == 1 and int(metric.fp[CAR]) == 0
    assert res["per_class"][CAR]["sq"] == pytest.approx(6 / (14 + 10 - 6 - 8))  # 0.6, not 6/18


def test_iou_of_exactly_half_is_not_a_match():
    gt = [CAR * 1000 + 1] * 4 + [ROAD * 1000] * 4
    pred = [CAR * 1000 + 1] * 2 + [ROAD * 1000] * 6  # car IoU 0.5
    metric, _ = _pq(pred, gt)
    assert int(metric.tp[CAR]) == 0 and int(metric.fn[CAR]) == 1 and int(metric.fp[CAR]) == 1


def test_crowd_is_never_matched_and_excuses_predictions_mostly_on_it():
    gt = [CAR * 1000] * 20 + [ROAD * 1000] * 20  # car group (crowd) + road
    pred = [ROAD * 1000] * 8 + [CAR * 1000 + 1] * 20 + [ROAD * 1000] * 12  # car: 12 px on crowd, 8 on road
    metric, res = _pq(pred, gt)
    assert int(metric.tp[CAR]) == int(metric.fp[CAR]) == int(metric.fn[CAR]) == 0
    assert math.isnan(res["per_class"][CAR]["pq"])  # left out of the averages
    assert res["Things"]["n"] == 0 and res["All"]["n"] == 1
    pred2 = [ROAD * 1000] * 12 + [CAR * 1000 + 1] * 20 + [ROAD * 1000] * 8  # 8/20 on crowd: a false positive
    metric2, _ = _pq(pred2, gt)
    assert int(metric2.fp[CAR]) == 1
    explicit, _ = _pq(pred2, gt, thing_ids=THING_TRAIN_IDS)  # same convention through the argument
    assert int(explicit.fp[CAR]) == 1


def test_crowd_can_also_be_given_explicitly():
    gt = [CAR * 1000 + 7] * 20 + [ROAD * 1000] * 20
    pred = [ROAD * 1000] * 8 + [CAR * 1000 + 1] * 20 + [ROAD * 1000] * 12
    metric = PanopticQuality()
    metric.update(torch.tensor([pred]), torch.tensor([gt]), target_crowd=[[CAR * 1000 + 7]])
    assert int(metric.tp[CAR]) == int(metric.fp[CAR]) == int(metric.fn[CAR]) == 0


def test_pq_plus_for_stuff_sums_all_overlapping_pairs():
    gt = [ROAD * 1000] * 20 + [SIDEWALK * 1000] * 8
    # road predicted as two segments (IoU 0.4 and 12/28), neither above 0.5
    pred = [ROAD * 1000 + 1] * 8 + [ROAD * 1000 + 2] * 12 + [ROAD * 1000 + 2] * 8
    _, res = _pq(pred, gt)
    road = res["per_class"][ROAD]
    assert road["pq"] == 0.0
    assert road["pq_plus"] == pytest.approx(8 / 20 + 12 / 28)
    assert math.isnan(res["per_class"][SIDEWALK]["pq_plus"]) is False
    assert res["per_class"][SIDEWALK]["pq_plus"] == 0.0  # one GT segment, no overlapping prediction
    assert res["Stuff"]["pq_plus"] == pytest.approx((8 / 20 + 12 / 28) / 2)


def test_pq_plus_equals_pq_for_things():
    gt = [CAR * 1000 + 1] * 10 + [ROAD * 1000] * 10
    pred = [CAR * 1000 + 3] * 8 + [ROAD * 1000] * 12
    _, res = _pq(pred, gt)
    assert res["per_class"][CAR]["pq_plus"] == res["per_class"][CAR]["pq"] == pytest.approx(0.8)
