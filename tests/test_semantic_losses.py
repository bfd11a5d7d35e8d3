import math

import pytest
import torch

from panoptic_st.semantic.losses import focal_target_loss, source_cross_entropy

IGN = 255


def test_focal_target_loss_by_hand():
    # 2 images x 2x2 pixels, 2 classes; image 0 predicts p = (1/2, 1/2), image 1 p = (3/4, 1/4)
    logits = torch.zeros(2, 2, 2, 2)
    logits[1, 0] = math.log(3.0)
    labels = torch.tensor([[[0, 1], [IGN, 1]], [[0, 0], [1, IGN]]])
    confidence = torch.tensor([[[0.8, 0.5], [0.9, 1.0]], [[1.0, 0.5], [0.6, 0.7]]])
    prior = torch.tensor([0.5, 0.0])  # class weights (1 - chi)^3 = (1/8, 1)
    image0 = 0.8 * 0.125 * math.log(2) + 0.5 * math.log(2) + 1.0 * math.log(2)
    image1 = (1.0 + 0.5) * 0.125 * math.log(4 / 3) + 0.6 * math.log(4)
    expected = (image0 + image1) / 8  # ignored pixels count in the mean with 0
    loss = focal_target_loss(logits, labels, confidence, prior)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_focal_target_loss_power_and_gradient():
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)
    labels = torch.tensor([[[0, 1]]])
    confidence = torch.tensor([[[1.0, 1.0]]])
    prior = torch.tensor([0.5, 0.5])
    loss = focal_target_loss(logits, labels, confidence, prior, power=1.0)
    assert loss.item() == pytest.approx(0.5 * math.log(2), rel=1e-6)
    loss.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 4


def test_source_cross_entropy_averages_labelled_pixels_only():
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 0, 0, 0] = math.log(3.0)  # pixel 0: p = (3/4, 1/4)
    target = torch.tensor([[[0, 1, IGN]]])
    expected = (math.log(4 / 3) + math.log(2)) / 2
    assert source_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_source_cross_entropy_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = source_cross_entropy(logits, torch.full((1, 2, 2), IGN))
    assert loss.item() == 0.0
    loss.backward()
