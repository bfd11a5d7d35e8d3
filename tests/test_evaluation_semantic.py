"""mIoU: equal to the official evalPixelLevelSemanticLabeling on generated Cityscapes files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from panoptic_st.data.labels import CLASS_NAMES, NUM_CLASSES, PROTOCOLS, label_ids_to_train_ids
from panoptic_st.evaluation.official import official_semantic
from panoptic_st.evaluation.semantic import (
    SemanticIoU,
    confusion_matrix,
    evaluate_semantic,
    iou_from_confusion,
    mean_iou,
)
from panoptic_st.evaluation.synthetic import make_eval_fixture


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_eval_fixture(tmp_path_factory.mktemp("sem"), n_images=24, seed=3)


@pytest.fixture(scope="module")
def official(fx):
    return official_semantic(fx.gt_dir, fx.semantic_pred_dir)


def test_file_evaluation_equals_official(fx, official):
    ours = evaluate_semantic(fx.gt_dir, fx.semantic_pred_dir)
    assert ours["confMatrix"] == np.asarray(official["confMatrix"]).tolist()
    assert set(ours["classScores"]) == set(official["classScores"])
    for name, value in official["classScores"].items():
        assert _close(ours["classScores"][name], value), name
    for name, value in official["categoryScores"].items():
        assert _close(ours["categoryScores"][name], value), name
    assert _close(ours["averageScoreClasses"], official["averageScoreClasses"])
    assert _close(ours["averageScoreCategories"], official["averageScoreCategories"])
    # the fixture has a class in neither GT nor prediction (terrain): NaN, left out of the mean
    assert math.isnan(official["classScores"]["terrain"]) and math.isnan(ours["classScores"]["terrain"])
    assert official["classScores"]["truck"] == 0.0  # in the GT, never predicted
    assert official["classScores"]["train"] == 0.0  # predicted, never in the GT


def test_metric_on_tensors_equals_official(fx, official):
    metric = SemanticIoU()
    for im in fx.images:  # two batches of different sizes
        gt = torch.from_numpy(label_ids_to_train_ids(im.label_ids).astype(np.int64))
        pred = torch.from_numpy(label_ids_to_train_ids(im.pred_label_ids).astype(np.int64))
        metric.update(pred[None], gt[None])
    res = metric.compute()
    for t, name in enumerate(CLASS_NAMES):
        assert _close(float(res["iou"][t]), official["classScores"][name]), name
    assert _close(float(res["miou"]), official["averageScoreClasses"])
    assert _close(float(res["miou_19"]), official["averageScoreClasses"])
    for n in (16, 13):
        names = [CLASS_NAMES[t] for t in PROTOCOLS[n]]
        vals = [official["classScores"][k] for k in names if not math.isnan(official["classScores"][k])]
        assert _close(float(res[f"miou_{n}"]), sum(vals) / len(vals))


def _naive_confusion(pred, target, c):
    cm = np.zeros((c, c + 1), np.int64)
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist()):
        if 0 <= t < c:
            cm[t, p if 0 <= p < c else c] += 1
    return cm


def test_confusion_matrix_matches_naive_count():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 6, (7, 9))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, 6, (7, 9))
    pred[rng.random(pred.shape) < 0.2] = 255
    pred[0, 0] = -1
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), num_classes=5)
    assert cm.shape == (5, 6)
    assert np.array_equal(cm.numpy(), _naive_confusion(pred, target, 5))


def test_void_prediction_is_a_false_negative_and_absent_class_is_nan():
    target = torch.tensor([[0, 0, 1, 255]])
    pred = torch.tensor([[0, 255, 1, 2]])
    iou = iou_from_confusion(confusion_matrix(pred, target, num_classes=4))
    assert iou[0] == pytest.approx(0.5)  # one TP, one void prediction (FN)
    assert iou[1] == pytest.approx(1.0)
    assert iou[2] != iou[2] and iou[3] != iou[3]  # class 2 only on ignored GT, class 3 nowhere: NaN
    assert float(mean_iou(iou)) == pytest.approx(0.75)


def test_metric_accepts_logits_and_merges_states():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.integers(0, NUM_CLASSES, (4, 8, 8)))
    logits = torch.from_numpy(rng.normal(size=(4, NUM_CLASSES, 8, 8)))
    whole = SemanticIoU()
    whole.update(logits, target)
    a, b = SemanticIoU(), SemanticIoU()
    a.update(logits[:2].argmax(1), target[:2])
    b.update(logits[2:].argmax(1), target[2:])
    a.merge_state(b)  # what the distributed sum does
    assert torch.equal(a.confmat, whole.confmat)
    assert torch.allclose(a.compute()["miou"], whole.compute()["miou"], equal_nan=True)


def test_palette_prediction_png_is_read_as_indices(tmp_path):
    """The official script reads predictions with PIL; a palette PNG holds label ids as indices."""
    gt_dir, pred_dir = tmp_path / "gt" / "x", tmp_path / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    gt = np.full((4, 6), 7, np.uint8)
    gt[:, 3:] = 26
    Image.fromarray(gt).save(gt_dir / "x_000000_000001_gtFine_labelIds.png")
    pal = Image.fromarray(gt).convert("P")
    pal.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    pal.save(pred_dir / "x_000000_000001_pred.png")
    res = evaluate_semantic(tmp_path / "gt", pred_dir)
    assert res["classScores"]["road"] == 1.0 and res["classScores"]["car"] == 1.0
