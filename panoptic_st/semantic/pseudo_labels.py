"""SAC's target side: multi-view sampling, student photometric noise, teacher view fusion, running class prior,
adaptive per-class thresholds and pseudo-labels.

Coordinates are `affine_grid` normalised coordinates (align_corners=False, x and y in [-1, 1]). A view's affine
[2, 3] maps view coordinates to reference coordinates, so `warp(reference, affine)` renders the view and
`warp(view, invert_affines(affine))` puts it back into the reference frame. Views of one image are consecutive:
view k of image b is row b * group_size + k.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from panoptic_st.data.labels import IGNORE_INDEX


def _uniform(
    shape: int | tuple[int, ...], low: float, high: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Uniform samples in [low, high) on the generator's device (the default device without one)."""
    device = None if generator is None else generator.device
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def view_affines(flips: torch.Tensor, scales: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Affines [N, 2, 3] from flips (+-1) [N], crop scales [N] and crop centres [N, 2]: x = s f u + cx, y = s v + cy."""
    zeros = torch.zeros_like(scales)
    row_x = torch.stack([scales * flips, zeros, centers[:, 0]], dim=-1)
    row_y = torch.stack([zeros, scales, centers[:, 1]], dim=-1)
    return torch.stack([row_x, row_y], dim=1)


def invert_affines(affines: torch.Tensor) -> torch.Tensor:
    """Inverse maps [N, 2, 3] of affines [N, 2, 3]."""
    bottom = affines.new_tensor([0.0, 0.0, 1.0]).expand(affines.shape[0], 1, 3)
    return torch.linalg.inv(torch.cat([affines, bottom], dim=1))[:, :2]


def warp(tensor: torch.Tensor, affines: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Bilinear resampling of [N, C, H, W]: the output at location u takes the input at affines @ (u, 1)."""
    grid = F.affine_grid(affines.to(tensor.dtype), list(tensor.shape), align_corners=False)
    return F.grid_sample(tensor, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def make_views(
    images: torch.Tensor,
    group_size: int = 4,
    zoom: tuple[float, float] = (0.5, 1.0),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`group_size` views per image [B, 3, H, W] -> (views [B*G, 3, H, W], view-to-reference affines [B*G, 2, 3]).

    The reference frame is the given image. View 0 is the reference, flipped with p=0.5; views k>=1 are random
    crops of side scale s ~ U[zoom] (aspect kept, inside the image) resized back to H x W, each flipped with
    p=0.5. SAC's one shared flip followed by independent per-view flips is folded in: composed with independent
    fair per-view flips (and crop centres symmetric about the centre) it yields exactly this distribution.
    Random parameters are drawn with `generator` on its device; the resampling runs on the images' device.
    """
    n = images.shape[0] * group_size
    flips = torch.where(_uniform(n, 0.0, 1.0, generator) < 0.5, -1.0, 1.0)
    scales = _uniform(n, zoom[0], zoom[1], generator)
    scales[::group_size] = 1.0
    centers = _uniform((n, 2), -1.0, 1.0, generator) * (1.0 - scales)[:, None]
    affines = view_affines(flips, scales, centers).to(device=images.device, dtype=images.dtype)
    views = warp(images.repeat_interleave(group_size, dim=0), affines, padding_mode="border")
    return views, affines


def _color_jitter(
    image: torch.Tensor, u: list[float], strength: tuple[float, float, float, float]
) -> torch.Tensor:
    """torchvision-style ColorJitter of one image; factors and the random order come from 8 uniforms `u`."""
    brightness, contrast, saturation, hue = strength
    ops = (
        lambda x: TF.adjust_brightness(x, 1.0 + brightness * (2.0 * u[0] - 1.0)),
        lambda x: TF.adjust_contrast(x, 1.0 + contrast * (2.0 * u[1] - 1.0)),
        lambda x: TF.adjust_saturation(x, 1.0 + saturation * (2.0 * u[2] - 1.0)),
        lambda x: TF.adjust_hue(x, hue * (2.0 * u[3] - 1.0)),
    )
    for index in sorted(range(4), key=lambda k: u[4 + k]):
        image = ops[index](image)
    return image


def _noise_one(
    image: torch.Tensor,
    u: list[float],
    blur_sigma: tuple[float, float],
    jitter: tuple[float, float, float, float],
    jitter_p: float,
    grayscale_p: float,
) -> torch.Tensor:
    """Blur, maybe colour-jitter, maybe greyscale one [3, H, W] image, driven by 11 uniforms `u`."""
    sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u[0]
    kernel = 2 * math.ceil(3.0 * sigma) + 1
    image = TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])
    if u[1] < jitter_p:
        image = _color_jitter(image, u[3:], jitter)
    if u[2] < grayscale_p:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    return image


def photometric_noise(
    views: torch.Tensor,
    generator: torch.Generator | None = None,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.5,
    grayscale_p: float = 0.2,
) -> torch.Tensor:
    """Student-view noise on [N, 3, H, W] images in [0, 1] (not normalised; call `normalize` afterwards).

    Per view, independently: Gaussian blur with sigma ~ U[blur_sigma] (always), ColorJitter(*jitter) with
    probability `jitter_p`, greyscale with probability `grayscale_p`.
    """
    uniforms = _uniform((views.shape[0], 11), 0.0, 1.0, generator).tolist()
    noisy = [_noise_one(v, u, blur_sigma, jitter, jitter_p, grayscale_p) for v, u in zip(views, uniforms)]
    return torch.stack(noisy)


def normalize(
    images: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """Per-channel (image - mean) / std of [..., 3, H, W] images in [0, 1]; ImageNet statistics by default."""
    return TF.normalize(images, list(mean), list(std))


def fuse_views(
    teacher_logits: torch.Tensor,
    affines: torch.Tensor,
    group_size: int,
    size: tuple[int, int] | None = None,
    min_mass: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse the teacher's per-view predictions -> (probabilities [B*G, C, h, w], valid [B*G, h, w]).

    Logits (upsampled to `size` if given) -> softmax -> warp into the reference frame (outside a view: 0) ->
    per reference pixel, sum of probabilities / summed mass (mass clamped >= 1e-3), valid where mass > min_mass
    -> warp back into each view. Probabilities are zero at invalid view pixels. Warping back pads with border
    values (a view pixel within half a pixel of the image edge keeps the edge value); a view pixel is valid where
    the bilinearly warped-back validity exceeds 0.5.
    """
    if teacher_logits.shape[0] % group_size:
        raise ValueError(f"{teacher_logits.shape[0]} views do not split into groups of {group_size}")
    if size is not None:
        teacher_logits = F.interpolate(teacher_logits, size=size, mode="bilinear", align_corners=False)
    probs = teacher_logits.float().softmax(dim=1)
    aligned = warp(probs, invert_affines(affines))
    n, c, h, w = aligned.shape
    summed = aligned.view(n // group_size, group_size, c, h, w).sum(dim=1)
    mass = summed.sum(dim=1, keepdim=True)
    fused = (summed / mass.clamp_min(1e-3)).repeat_interleave(group_size, dim=0)
    covered = (mass > min_mass).float().repeat_interleave(group_size, dim=0)
    valid = warp(covered, affines)[:, 0] > 0.5
    return warp(fused, affines, padding_mode="border") * valid[:, None], valid


class ClassPrior(nn.Module):
    """Running class prior chi_c (mean teacher probability of class c): the first observation initialises it,
    then chi <- momentum * chi + (1 - momentum) * observed. Kept as buffers, so it is saved in checkpoints.

    Quirk fixed: under torch.distributed the observation is averaged across ranks (the public code keeps a
    per-rank prior).
    """

    def __init__(self, num_classes: int, momentum: float = 0.99):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("prior", torch.zeros(num_classes))
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def observe(self, probs: torch.Tensor) -> torch.Tensor:
        """Fold in probabilities [B, C, H, W]; returns the updated prior [C]."""
        observed = probs.float().mean(dim=(0, 2, 3))
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(observed)
            observed /= dist.get_world_size()
        if self.initialised:
            self.prior.lerp_(observed, 1.0 - self.momentum)
        else:
            self.prior.copy_(observed)
            self.initialised.fill_(True)
        return self.prior


def adaptive_thresholds(
    probs: torch.Tensor,
    prior: torch.Tensor,
    upper: float = 0.75,
    lower: float = 0.2,
    beta: float = 1e-3,
) -> torch.Tensor:
    """theta [B, C] = max(lower, upper * peak_{b,c} * (1 - exp(-chi_c / beta))) for probs [B, C, H, W].

    peak_{b,c} is the highest max-probability among the pixels of image b whose argmax is c (0 if none).
    """
    batch, classes = probs.shape[:2]
    confidence, argmax = probs.max(dim=1)
    peaks = probs.new_zeros(batch, classes).scatter_reduce_(
        1, argmax.view(batch, -1), confidence.view(batch, -1), reduce="amax"
    )
    discount = 1.0 - torch.exp(-prior.to(probs.dtype) / beta)
    return (upper * peaks * discount).clamp_min(lower)


def pseudo_labels(
    probs: torch.Tensor, theta: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels [B, H, W], confidence [B, H, W]): argmax c where its probability > theta[b, c], else ignore_index;
    confidence is each pixel's max probability."""
    confidence, argmax = probs.max(dim=1)
    threshold = theta.gather(1, argmax.view(probs.shape[0], -1)).view_as(confidence)
    labels = torch.where(confidence > threshold, argmax, torch.full_like(argmax, ignore_index))
    return labels, confidence
