import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from panoptic_st.ops.classes import max_over_classes
from panoptic_st.ops.images import normalize
from panoptic_st.semantic.pseudo_labels import (
    ClassPrior,
    adaptive_thresholds,
    fuse_views,
    make_views,
    photometric_noise,
    pseudo_labels,
    view_affines,
)

IGN = 255


def affines(*views: tuple[float, float, float, float]) -> torch.Tensor:
    """Affines from (flip, scale, cx, cy) tuples."""
    flips, scales, cx, cy = (torch.tensor(v, dtype=torch.float32) for v in zip(*views))
    return view_affines(flips, scales, torch.stack([cx, cy], dim=1))


def two_class_logits(p_first: float, h: int, w: int) -> torch.Tensor:
    """Constant [1, 2, h, w] logits with softmax (p_first, 1 - p_first)."""
    logits = torch.zeros(1, 2, h, w)
    logits[:, 0] = math.log(p_first / (1 - p_first))
    return logits


# ---------------------------------------------------------------- view sampling and noise


def pixel_centres(n: int) -> torch.Tensor:
    return -1 + (2 * torch.arange(n) + 1) / n


def test_make_views_affines_map_view_to_reference_coordinates():
    h, w = 32, 64
    ys, xs = torch.meshgrid(pixel_centres(h), pixel_centres(w), indexing="ij")
    image = torch.stack([xs, ys, torch.zeros_like(xs)])[None].repeat(2, 1, 1, 1)
    views, A = make_views(image, group_size=4, generator=torch.Generator().manual_seed(3))
    assert views.shape == (8, 3, h, w) and A.shape == (8, 2, 3)
    # a linear image is reproduced exactly by bilinear sampling: view(u, v) = A @ (u, v, 1)
    expected_x = A[:, 0, 0, None, None] * xs + A[:, 0, 2, None, None]
    expected_y = A[:, 1, 1, None, None] * ys + A[:, 1, 2, None, None]
    assert torch.allclose(views[:, 0], expected_x, atol=0.04)
    assert torch.allclose(views[:, 1], expected_y, atol=0.04)
    scales = A[:, 1, 1]
    assert torch.equal(scales[::4], torch.ones(2)) and torch.equal(A[::4, :, 2], torch.zeros(2, 2))
    assert bool(((scales >= 0.5) & (scales <= 1.0)).all())
    # crops stay inside the reference: |centre| + scale <= 1
    assert bool((A[:, :, 2].abs() + scales[:, None] <= 1 + 1e-6).all())


def test_make_views_view_zero_is_reference_up_to_flip_and_flips_vary():
    image = torch.rand(16, 3, 8, 12)
    views, A = make_views(image, group_size=2, generator=torch.Generator().manual_seed(0))
    for b in range(16):
        assert torch.allclose(views[2 * b], image[b], atol=1e-6) or torch.allclose(
            views[2 * b], image[b].flip(-1), atol=1e-6
        )
    assert set(torch.sign(A[:, 0, 0]).tolist()) == {-1.0, 1.0}


def test_make_views_is_reproducible_with_a_generator():
    image = torch.rand(2, 3, 16, 16)
    first = make_views(image, generator=torch.Generator().manual_seed(5))
    second = make_views(image, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_photometric_noise_range_reproducibility_and_options():
    views = torch.rand(4, 3, 24, 32)
    noisy = photometric_noise(views, torch.Generator().manual_seed(1))
    assert noisy.shape == views.shape and 0 <= noisy.min() and noisy.max() <= 1
    assert not torch.allclose(noisy, views, atol=1e-3)
    assert torch.equal(noisy, photometric_noise(views, torch.Generator().manual_seed(1)))
    grey = photometric_noise(views, torch.Generator().manual_seed(1), jitter_p=0.0, grayscale_p=1.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    flat = torch.full((2, 3, 16, 16), 0.3)  # blurring a constant image changes nothing
    assert torch.allclose(photometric_noise(flat, jitter_p=0.0, grayscale_p=0.0), flat, atol=1e-6)


def reference_noise(views, generator, jitter_p=0.5, grayscale_p=0.2):
    """Per-view torchvision reference of `photometric_noise` with default strengths, same uniforms."""
    out = []
    for view, u in zip(views, torch.rand((views.shape[0], 11), generator=generator).tolist()):
        sigma = 0.1 + 1.9 * u[0]
        kernel = 2 * math.ceil(3.0 * sigma) + 1
        view = TF.gaussian_blur(view, [kernel, kernel], [sigma, sigma])
        if u[1] < jitter_p:
            ops = (
                (TF.adjust_brightness, 1.0 + 0.4 * (2.0 * u[3] - 1.0)),
                (TF.adjust_contrast, 1.0 + 0.4 * (2.0 * u[4] - 1.0)),
                (TF.adjust_saturation, 1.0 + 0.4 * (2.0 * u[5] - 1.0)),
                (TF.adjust_hue, 0.1 * (2.0 * u[6] - 1.0)),
            )
            for index in sorted(range(4), key=[u[7 + k] for k in range(4)].__getitem__):
                op, factor = ops[index]
                view = op(view, factor)
        if u[2] < grayscale_p:
            view = TF.rgb_to_grayscale(view, num_output_channels=3)
        out.append(view)
    return torch.stack(out)


@pytest.mark.parametrize("jitter_p, grayscale_p", [(0.5, 0.2), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_photometric_noise_matches_the_per_view_torchvision_pipeline(jitter_p, grayscale_p):
    views = torch.rand(8, 3, 20, 28, generator=torch.Generator().manual_seed(4))
    views[:, :, :3] = views[:, :1, :3]  # grey pixels (no hue)
    views[:, 1, 3:6] = views[:, 0, 3:6]  # red == green ties
    for seed in range(6):
        expected = reference_noise(views, torch.Generator().manual_seed(seed), jitter_p, grayscale_p)
        noisy = photometric_noise(
            views, torch.Generator().manual_seed(seed), jitter_p=jitter_p, grayscale_p=grayscale_p
        )
        assert torch.allclose(noisy, expected, atol=1e-5)


def test_normalize_uses_imagenet_statistics():
    image = torch.tensor([0.485 + 0.229, 0.456, 0.406]).view(1, 3, 1, 1)
    out = normalize(image)
    assert torch.allclose(out.flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)


# ---------------------------------------------------------------- view fusion


def test_fusing_a_flipped_view_with_the_reference():
    torch.manual_seed(0)
    low = torch.randn(2, 5, 4, 8)  # two views' teacher logits at half resolution
    logits = torch.stack([low[0], low[1].flip(-1)])
    probs, valid = fuse_views(logits, affines((1, 1, 0, 0), (-1, 1, 0, 0)), group_size=2, size=(8, 16))
    up = F.interpolate(low, size=(8, 16), mode="bilinear", align_corners=False).softmax(1)
    reference = (up[0] + up[1]) / 2
    assert torch.allclose(probs[0], reference, atol=1e-5)
    assert torch.allclose(probs[1], reference.flip(-1), atol=1e-5)
    assert bool(valid.all())


def test_consistent_flipped_view_gives_back_the_reference_probabilities():
    torch.manual_seed(1)
    ref_logits = torch.randn(1, 4, 6, 10)
    logits = torch.cat([ref_logits, ref_logits.flip(-1)])
    probs, _ = fuse_views(logits, affines((1, 1, 0, 0), (-1, 1, 0, 0)), group_size=2)
    assert torch.allclose(probs[0], ref_logits[0].softmax(0), atol=1e-6)


def test_a_2x_zoom_view_only_affects_its_region():
    h, w = 8, 16
    pa = torch.tensor([0.9, 0.1])[:, None, None]  # reference view
    pb = torch.tensor([0.3, 0.7])[:, None, None]  # zoom on the top-left quadrant
    logits = torch.cat([two_class_logits(0.9, h, w), two_class_logits(0.3, h, w)])
    probs, valid = fuse_views(logits, affines((1, 1, 0, 0), (1, 0.5, -0.5, -0.5)), group_size=2)
    avg = (pa + pb) / 2
    expected_ref = pa.expand(2, h, w).clone()
    expected_ref[:, :4, :8] = avg
    assert torch.allclose(probs[0], expected_ref, atol=1e-6)
    # the zoom view lies inside the quadrant; its last row/column sample the quadrant edge bilinearly
    expected_zoom = avg.expand(2, h, w).clone()
    expected_zoom[:, 7, :15] = 0.75 * avg[:, 0] + 0.25 * pa[:, 0]
    expected_zoom[:, :7, 15] = 0.75 * avg[:, 0] + 0.25 * pa[:, 0]
    expected_zoom[:, 7, 15] = 0.5625 * avg[:, 0, 0] + 0.4375 * pa[:, 0, 0]
    assert torch.allclose(probs[1], expected_zoom, atol=1e-6)
    assert bool(valid.all())


def test_validity_follows_the_summed_mass_threshold():
    h, w = 8, 16
    logits = torch.cat([two_class_logits(0.9, h, w), two_class_logits(0.3, h, w)])
    # mass is 2 where the 2x zoom overlaps the reference (top-left quadrant), 1 elsewhere
    probs, valid = fuse_views(logits, affines((1, 1, 0, 0), (1, 0.5, -0.5, -0.5)), group_size=2, min_mass=1.5)
    quadrant = torch.zeros(h, w, dtype=torch.bool)
    quadrant[:4, :8] = True
    assert torch.equal(valid[0], quadrant)
    assert bool(valid[1].all())
    assert torch.count_nonzero(probs[0][:, ~quadrant]) == 0


def test_view_pixels_outside_the_reference_are_invalid_and_zero():
    h, w = 8, 16
    logits = torch.cat([two_class_logits(0.9, h, w), two_class_logits(0.2, h, w)])
    # view 1 zooms out 2x: its outer ring maps outside the reference
    probs, valid = fuse_views(logits, affines((1, 1, 0, 0), (1, 2, 0, 0)), group_size=2)
    expected_valid = torch.zeros(h, w, dtype=torch.bool)
    expected_valid[2:6, 4:12] = True
    assert bool(valid[0].all())
    assert torch.equal(valid[1], expected_valid)
    assert torch.count_nonzero(probs[1][:, ~expected_valid]) == 0
    assert torch.allclose(probs[1].sum(0)[expected_valid], torch.ones(32))


def test_reference_pixels_without_enough_mass_are_invalid():
    h, w = 4, 8
    logits = two_class_logits(0.9, h, w)
    # a single view shifted right by half the image: its right half maps outside the reference
    probs, valid = fuse_views(logits, affines((1, 1, 1.0, 0)), group_size=1)
    assert bool(valid[0, :, :4].all()) and not bool(valid[0, :, 4:].any())
    assert torch.allclose(probs[0, 0, :, :4], torch.full((h, 4), 0.9))
    assert torch.count_nonzero(probs[0, :, :, 4:]) == 0


# ---------------------------------------------------------------- prior, thresholds, labels


def test_class_prior_initialises_then_averages_and_is_saved():
    prior = ClassPrior(num_classes=2)
    first = torch.tensor([0.8, 0.2])[None, :, None, None].expand(2, 2, 3, 3)
    second = torch.tensor([0.4, 0.6])[None, :, None, None].expand(2, 2, 3, 3)
    assert torch.allclose(prior.observe(first), torch.tensor([0.8, 0.2]))
    assert torch.allclose(
        prior.observe(second), torch.tensor([0.99 * 0.8 + 0.01 * 0.4, 0.99 * 0.2 + 0.01 * 0.6])
    )
    restored = ClassPrior(num_classes=2)
    restored.load_state_dict(prior.state_dict())
    restored.observe(second)
    prior.observe(second)
    assert torch.allclose(restored.prior, prior.prior)


def threshold_example() -> tuple[torch.Tensor, torch.Tensor]:
    image0 = [
        [0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1],
        [0.33, 0.36, 0.31], [0.3, 0.3, 0.4], [0.4, 0.45, 0.15],
    ]  # fmt: skip
    image1 = [[0.5, 0.3, 0.2]] * 6
    probs = torch.tensor([image0, image1]).view(2, 2, 3, 3).permute(0, 3, 1, 2)  # [B, C, 2, 3]
    prior = torch.tensor([0.5, 1e-3, 0.0])
    return probs, prior


def test_adaptive_thresholds_by_hand():
    probs, prior = threshold_example()
    theta = adaptive_thresholds(probs, prior)
    expected = torch.tensor(
        [
            [max(0.2, 0.75 * 0.9 * (1 - math.exp(-500))), 0.75 * 0.8 * (1 - math.exp(-1)), 0.2],
            [0.75 * 0.5, 0.2, 0.2],  # class 1 and 2 absent from image 1: peak 0 -> floor
        ]
    )
    assert torch.allclose(theta, expected, atol=1e-6)


def test_pseudo_labels_keep_only_pixels_above_their_class_threshold():
    probs, prior = threshold_example()
    labels, confidence = pseudo_labels(probs, adaptive_thresholds(probs, prior))
    assert labels.tolist() == [[[0, IGN, 1], [IGN, 2, 1]], [[0, 0, 0], [0, 0, 0]]]
    assert torch.allclose(confidence[0], torch.tensor([[0.9, 0.6, 0.8], [0.36, 0.4, 0.45]]))


def test_pseudo_labels_threshold_is_strict():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3]]).T.reshape(1, 2, 1, 2)
    labels, _ = pseudo_labels(probs, torch.tensor([[0.6, 0.5]]))
    assert labels.tolist() == [[[IGN, 0]]]


def test_max_over_classes_is_torch_max_with_ties_zeros_and_nans():
    probs = torch.rand(3, 19, 6, 8, generator=torch.Generator().manual_seed(0))
    probs = (probs * 4).round() / 4  # many ties: the first maximal class wins
    probs[1, :, :2] = 0.0
    probs[2, 3:6, 4, 4] = 1.0
    expected = probs.max(dim=1)
    confidence, argmax = max_over_classes(probs)
    assert torch.equal(confidence, expected.values) and torch.equal(argmax, expected.indices)
    probs[0, [4, 7], 1, 1] = float("nan")  # NaN is maximal; its first index
    expected = probs.max(dim=1)
    confidence, argmax = max_over_classes(probs)
    assert torch.equal(argmax, expected.indices) and int(argmax[0, 1, 1]) == 4
    assert torch.equal(confidence.nan_to_num(-1.0), expected.values.nan_to_num(-1.0))


def test_fuse_views_rejects_incomplete_groups():
    with pytest.raises(ValueError, match="groups of 3"):
        fuse_views(torch.zeros(4, 2, 4, 4), affines(*[(1, 1, 0, 0)] * 4), group_size=3)
