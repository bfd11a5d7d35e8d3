import math

import pytest
import torch

from panoptic_st.instance.losses import (
    consistency_loss,
    dice_loss,
    gaussian_kernel,
    instance_dice_loss,
    margin_epsilon,
    pull_loss,
    push_loss,
    regulariser_loss,
    sample_angles,
    sample_consistency_anchors,
    spoco_loss,
    unlabelled_push_loss,
)
from panoptic_st.ops.geometry import rotate, rotate_back


def emb1d(*values: float) -> torch.Tensor:
    """Embedding map [1, 1, len] with one embedding dimension."""
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, -1)


def lab1d(*ids: int) -> torch.Tensor:
    return torch.tensor(ids).reshape(1, -1)


def test_pull_hand_computed():
    # instance 1: values 0, 2 (mean 1, distances 1) -> (1 - 0.5)^2 = 0.25; instance 2: one pixel -> 0
    loss = pull_loss(emb1d(0.0, 5.0, 2.0, 9.0), lab1d(1, 2, 1, 0), delta_v=0.5)
    assert loss.item() == pytest.approx((0.25 + 0.0) / 2)


def test_no_pull_inside_delta_v():
    emb = emb1d(0.0, 0.8).requires_grad_()
    loss = pull_loss(emb, lab1d(1, 1), delta_v=0.5)  # both pixels 0.4 from the mean
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(emb.grad == 0)


def test_push_hand_computed():
    # means 0, 1, 10 and 2 * delta_d = 2: only the pair (0, 1) is pushed, (2 - 1)^2 twice over 3 * 2 pairs
    loss = push_loss(emb1d(0.0, 1.0, 10.0, 3.0), lab1d(1, 2, 3, 0), delta_d=1.0)
    assert loss.item() == pytest.approx(2.0 / 6.0)


def test_no_push_beyond_two_delta_d():
    emb = emb1d(0.0, 4.01).requires_grad_()
    loss = push_loss(emb, lab1d(1, 2), delta_d=2.0)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(emb.grad == 0)
    assert push_loss(emb1d(0.0, 3.0), lab1d(1, 2), delta_d=2.0).item() == pytest.approx(1.0)


def test_push_single_instance_is_zero():
    assert push_loss(emb1d(0.0, 0.1), lab1d(1, 1)).item() == 0.0


def test_regulariser_hand_computed():
    emb = torch.tensor([[[3.0, 1.0, 0.0]], [[4.0, -1.0, 0.0]]])  # [D=2, H=1, W=3]: means (3, 4) and (1, -1)
    assert regulariser_loss(emb, lab1d(1, 2, 0)).item() == pytest.approx((5.0 + math.sqrt(2.0)) / 2)


def test_kernel_is_half_at_delta_v():
    sq = torch.tensor([0.0, 0.5**2, 1.0])
    values = gaussian_kernel(sq, delta_v=0.5)
    assert values.tolist() == pytest.approx([1.0, 0.5, 0.5**4])


def test_dice_loss_values():
    pred = torch.tensor([[1.0, 0.5, 0.0]])
    target = torch.tensor([[1.0, 1.0, 0.0]])
    assert dice_loss(pred, target).item() == pytest.approx(1.0 - 2 * 1.5 / (1.25 + 2.0))
    assert dice_loss(target, target).item() == pytest.approx(0.0)


def test_instance_dice_hand_computed():
    phi = lambda d: 2.0 ** (-(d**2) / 0.25)
    loss = instance_dice_loss(emb1d(0.0, 0.0, 0.5, 3.0), lab1d(1, 1, 0, 2), delta_v=0.5)
    p1 = [1.0, 1.0, 0.5, phi(3.0)]  # around the mean 0 of instance 1
    p2 = [phi(3.0), phi(3.0), phi(2.5), 1.0]  # around the mean 3 of instance 2
    dice1 = 2 * 2.0 / (sum(p * p for p in p1) + 2.0)
    dice2 = 2 * 1.0 / (sum(p * p for p in p2) + 1.0)
    assert loss.item() == pytest.approx(1.0 - (dice1 + dice2) / 2, rel=1e-5)


def test_instance_dice_random_anchor_pixels():
    emb, labels = emb1d(0.0, 0.0, 0.0, 3.0), lab1d(1, 1, 1, 0)
    exact = instance_dice_loss(emb, labels)
    sampled = instance_dice_loss(emb, labels, anchor_pixels=1, generator=torch.Generator().manual_seed(0))
    assert sampled.item() == pytest.approx(exact.item())
    varied = emb1d(0.0, 0.4, -0.4, 3.0)
    draws = {
        round(instance_dice_loss(varied, labels, anchor_pixels=1, generator=torch.Generator().manual_seed(s)).item(), 6)
        for s in range(8)
    }
    assert len(draws) > 1


def test_unlabelled_push_hand_computed():
    # means 0.5 (instance 1) and 3 (instance 2); unlabelled pixels 0.5 and 4; delta_d = 2
    # instance 1: (2 - 0)^2 + 0 over 2 pixels = 2; instance 2: 0 + (2 - 1)^2 over 2 = 0.5
    loss = unlabelled_push_loss(emb1d(0.0, 1.0, 3.0, 0.5, 4.0), lab1d(1, 1, 2, 0, 0), delta_d=2.0)
    assert loss.item() == pytest.approx((2.0 + 0.5) / 2)


def test_consistency_zero_when_networks_agree():
    torch.manual_seed(0)
    emb = torch.randn(2, 4, 8, 8)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[:, :3] = 1
    loss = consistency_loss(emb, emb.clone(), labels, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_consistency_hand_computed_and_g_is_target():
    # the only unlabelled pixel (index 2) is the anchor; f-mask [1, 0.5, 1], g-mask [1, 1, 1]
    emb_f = emb1d(0.0, 0.5, 0.0).requires_grad_()
    emb_g = emb1d(0.0, 0.0, 0.0).requires_grad_()
    loss = consistency_loss(emb_f, emb_g, lab1d(1, 1, 0))
    assert loss.item() == pytest.approx(1.0 - 2 * 2.5 / (2.25 + 3.0))
    loss.backward()
    assert emb_g.grad is None
    assert emb_f.grad.abs().sum() > 0


def test_consistency_ignores_invalid_pixels():
    valid = torch.tensor([[True, False, True]])
    loss = consistency_loss(emb1d(0.0, 0.5, 0.0), emb1d(0.0, 0.0, 0.0), lab1d(1, 1, 0), valid=valid)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_consistency_anchor_sampling_covers_region():
    # two embedding clusters in a fully unlabelled image: two anchors cover everything
    emb = torch.cat([torch.zeros(1, 50), torch.full((1, 50), 5.0)], dim=1)
    region = torch.ones(100, dtype=torch.bool)
    pixels = sample_consistency_anchors(emb, emb, region, generator=torch.Generator().manual_seed(1))
    assert pixels.numel() == 2
    assert {int(p) < 50 for p in pixels} == {True, False}
    # every pixel its own cluster: stops at max_anchors
    spread = torch.arange(100.0)[None]
    assert sample_consistency_anchors(spread, spread, region, max_anchors=20).numel() == 20
    # stops once less than 5% of the region is uncovered: 96 pixels in one cluster, 4 elsewhere
    mostly = torch.cat([torch.zeros(1, 96), torch.arange(4.0)[None] + 10.0], dim=1)
    first_big = sample_consistency_anchors(mostly, mostly, region, generator=torch.Generator().manual_seed(0))
    assert first_big.tolist() == [first_big[0].item()] and first_big[0] < 96


def test_margin_epsilon_decay():
    assert margin_epsilon(0, 1.0, 0.01) == pytest.approx(1.0)
    assert margin_epsilon(100, 1.0, 0.01) == pytest.approx(math.exp(-1.0))
    assert margin_epsilon(1000, 0.5, 0.01) == pytest.approx(0.5 * math.exp(-10.0))
    assert margin_epsilon(50, 0.0, 0.1) == 0.0


def test_spoco_loss_combines_weights_and_epsilon():
    torch.manual_seed(0)
    emb_f = torch.randn(2, 3, 6, 6)
    emb_g = emb_f + 0.3 * torch.randn(2, 3, 6, 6)
    labels = torch.randint(0, 3, (2, 6, 6))

    def run(**kw):
        return spoco_loss(emb_f, labels, emb_g, generator=torch.Generator().manual_seed(0), **kw)

    terms = run(w_consistency=0.1)
    expected = (
        terms["pull"] + terms["push"] + 0.001 * terms["reg"] + terms["instance"] + terms["unlabelled"]
        + 0.1 * terms["consistency"]
    )
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["consistency"].item() > 0
    assert run(w_consistency=1.0)["loss"].item() == pytest.approx(
        (expected + 0.9 * terms["consistency"]).item(), rel=1e-6
    )
    widened = run(epsilon=0.5)
    assert widened["pull"].item() == pytest.approx(pull_loss(emb_f, labels, delta_v=1.0).item(), rel=1e-6)
    assert widened["push"].item() == pytest.approx(push_loss(emb_f, labels, delta_d=2.5).item(), rel=1e-6)
    assert "consistency" not in spoco_loss(emb_f, labels)


def test_batch_is_mean_of_images():
    torch.manual_seed(1)
    emb = torch.randn(2, 4, 5, 5)
    labels = torch.randint(0, 4, (2, 5, 5))
    for term in (pull_loss, push_loss, regulariser_loss, instance_dice_loss, unlabelled_push_loss):
        per_image = [term(emb[i], labels[i]).item() for i in range(2)]
        assert term(emb, labels).item() == pytest.approx(sum(per_image) / 2, rel=1e-5)


def test_no_instances_gives_zero_with_graph():
    emb = torch.randn(1, 4, 5, 5, requires_grad=True)
    labels = torch.zeros(1, 5, 5, dtype=torch.long)
    terms = spoco_loss(emb, labels, emb.detach())
    for name in ("pull", "push", "reg", "instance", "unlabelled"):
        assert terms[name].item() == 0.0
    terms["loss"].backward()
    assert torch.isfinite(emb.grad).all()


def test_gradients_finite_on_degenerate_embeddings():
    emb = torch.zeros(1, 4, 6, 6, requires_grad=True)
    labels = torch.randint(0, 3, (1, 6, 6), generator=torch.Generator().manual_seed(0))
    spoco_loss(emb, labels, emb.detach())["loss"].backward()
    assert torch.isfinite(emb.grad).all()


def test_rotate_matches_rot90_and_round_trip():
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    assert torch.allclose(rotate(x, 90.0), torch.rot90(x, 1, (2, 3)), atol=1e-4)
    wide = torch.arange(32.0).reshape(1, 1, 4, 8)
    assert torch.allclose(rotate(wide, 180.0), torch.rot90(wide, 2, (2, 3)), atol=1e-4)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 24), torch.linspace(-1, 1, 48), indexing="ij")
    smooth = torch.stack([yy, xx, yy * xx])[None].repeat(2, 1, 1, 1)
    angles = torch.tensor([30.0, 135.0])
    back, valid = rotate_back(rotate(smooth, angles), angles)
    assert valid.shape == (2, 24, 48)
    assert 0.3 < valid.float().mean() < 1.0
    assert (back - smooth).abs().permute(1, 0, 2, 3)[:, valid].max() < 0.1
    _, all_valid = rotate_back(smooth, 0.0)
    assert all_valid.all()


def test_sample_angles_range():
    angles = sample_angles(1000, torch.Generator().manual_seed(0))
    assert angles.shape == (1000,)
    assert angles.min() >= 0.0 and angles.max() < 180.0
    assert angles.max() - angles.min() > 170.0


def test_sample_angles_max_angle_bounds_the_range():
    angles = sample_angles(1000, torch.Generator().manual_seed(0), max_angle=30.0)
    assert angles.min() >= 0.0 and angles.max() < 30.0
    assert angles.max() - angles.min() > 28.0
    assert sample_angles(5, max_angle=0.0).eq(0.0).all()
