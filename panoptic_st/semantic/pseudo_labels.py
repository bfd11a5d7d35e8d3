"""SAC's target side: multi-view sampling, student photometric noise, teacher view fusion, running class prior,
adaptive per-class thresholds and pseudo-labels.

A view's affine [2, 3] maps view coordinates to reference coordinates (`panoptic_st.ops.geometry`), so
`warp(reference, affine)` renders the view and `warp(view, invert_affines(affine))` puts it back into the reference
frame. Views of one image are consecutive: view k of image b is row b * group_size + k.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from panoptic_st.data.labels import IGNORE_INDEX
from panoptic_st.ops.classes import max_over_classes
from panoptic_st.ops.geometry import invert_affines, warp


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


def _gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of [N, C, H, W] images with a per-image sigma [N] (CPU float64), reflect-padded.

    Image n gets torchvision's kernel: size 2 * ceil(3 sigma_n) + 1, weights proportional to
    exp(-d^2 / (2 sigma_n^2)) over the integer offsets d. The kernel is separable, so the blur is done as two
    1-D passes over shifted slices; all images share the largest radius, with zero weights beyond their own.
    """
    radii = torch.ceil(3.0 * sigmas)
    radius = int(radii.max())
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigmas[:, None]) ** 2) * (offsets.abs() <= radii[:, None])
    weights = (weights / weights.sum(dim=1, keepdim=True)).to(device=images.device, dtype=images.dtype)
    weights = weights[:, None, None, None, :]  # [N, 1, 1, 1, taps]: one weight per image and offset
    height, width = images.shape[-2:]
    padded = F.pad(images, [radius] * 4, mode="reflect")
    rows = padded[..., :width] * weights[..., 0]
    for d in range(1, 2 * radius + 1):
        rows.addcmul_(padded[..., d : d + width], weights[..., d])
    out = rows[..., :height, :] * weights[..., 0]
    for d in range(1, 2 * radius + 1):
        out.addcmul_(rows[..., d : d + height, :], weights[..., d])
    return out


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma [N, 1, H, W] of RGB images [N, 3, H, W] (torchvision's weights)."""
    r, g, b = images.unbind(dim=1)
    return (r * 0.2989 + g * 0.587 + b * 0.114)[:, None]


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's blend with a per-image ratio [N]: clamp(ratio * images + (1 - ratio) * other, 0, 1)."""
    ratio = ratio[:, None, None, None]
    return (images * ratio + other * (1.0 - ratio)).clamp_(0.0, 1.0)


def _adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Hue rotation by a per-image fraction of the colour wheel [N] (torchvision's adjust_hue, vectorised).

    The HSV round trip in closed form: value (max) and chroma (max - min) are kept, the hue h (in sixths of the
    wheel) moves by 6 * shift, and channel n of (r, g, b) = (5, 3, 1) is max - chroma * clamp(min(k, 4 - k), 0, 1)
    with k = (n + h) mod 6.
    """
    r, g, b = images.unbind(dim=1)
    minc, maxc = torch.aminmax(images, dim=1)
    chroma = maxc - minc
    divisor = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        maxc == r, (g - b) / divisor, torch.where(maxc == g, (b - r) / divisor + 2.0, (r - g) / divisor + 4.0)
    )
    hue = hue + 6.0 * shift[:, None, None]
    channel = torch.tensor([5.0, 3.0, 1.0], device=images.device, dtype=images.dtype)[:, None, None]
    k = (hue[:, None] + channel).remainder_(6.0)
    return maxc[:, None] - chroma[:, None] * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def _color_jitter(
    images: torch.Tensor, u: torch.Tensor, strength: tuple[float, float, float, float]
) -> torch.Tensor:
    """torchvision-style ColorJitter of [N, 3, H, W] images; per image, the factors and the random order of the
    four adjustments come from 8 uniforms (a row of `u` [N, 8], CPU float64)."""
    brightness, contrast, saturation, hue = strength
    factors = torch.stack(
        [
            1.0 + brightness * (2.0 * u[:, 0] - 1.0),
            1.0 + contrast * (2.0 * u[:, 1] - 1.0),
            1.0 + saturation * (2.0 * u[:, 2] - 1.0),
            hue * (2.0 * u[:, 3] - 1.0),
        ]
    ).to(device=images.device, dtype=images.dtype)
    ops = (
        lambda x, f: (x * f[:, None, None, None]).clamp_(0.0, 1.0),
        lambda x, f: _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f),
        lambda x, f: _blend(x, _grayscale(x), f),
        _adjust_hue,
    )
    order = u[:, 4:8].argsort(dim=1)  # the k-th adjustment of image n is ops[order[n, k]]
    images = images.clone()
    for position in range(4):
        for op, apply in enumerate(ops):
            rows = (order[:, position] == op).nonzero().flatten()
            if len(rows) == len(images):
                images = apply(images, factors[op])
            elif len(rows):
                rows = rows.to(images.device)
                images[rows] = apply(images[rows], factors[op, rows])
    return images


def photometric_noise(
    views: torch.Tensor,
    generator: torch.Generator | None = None,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.5,
    grayscale_p: float = 0.2,
) -> torch.Tensor:
    """Student-view noise on [N, 3, H, W] images in [0, 1] (not normalised; call `normalize` afterwards).

    Per view, independently: Gaussian blur with sigma ~ U[blur_sigma] (always; torchvision's kernel of size
    2 * ceil(3 sigma) + 1), ColorJitter(*jitter) with probability `jitter_p`, greyscale with probability
    `grayscale_p`. Vectorised over the views; 11 uniforms per view drive it.
    """
    u = _uniform((views.shape[0], 11), 0.0, 1.0, generator).cpu().double()
    images = _gaussian_blur(views, blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u[:, 0])
    jittered = (u[:, 1] < jitter_p).nonzero().flatten()
    if len(jittered) == len(images):
        images = _color_jitter(images, u[:, 3:], jitter)
    elif len(jittered):
        rows = jittered.to(images.device)
        images[rows] = _color_jitter(images[rows], u[jittered, 3:], jitter)
    grey = (u[:, 2] < grayscale_p).to(images.device)[:, None, None, None]
    return torch.where(grey, _grayscale(images), images)


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
    return warp(fused, affines, padding_mode="border").mul_(valid[:, None]), valid


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
    maxima: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """theta [B, C] = max(lower, upper * peak_{b,c} * (1 - exp(-chi_c / beta))) for probs [B, C, H, W].

    peak_{b,c} is the highest max-probability among the pixels of image b whose argmax is c (0 if none).
    `maxima` is `max_over_classes(probs)` when the caller already has it.
    """
    batch, classes = probs.shape[:2]
    confidence, argmax = max_over_classes(probs) if maxima is None else maxima
    peaks = probs.new_zeros(batch, classes).scatter_reduce_(
        1, argmax.view(batch, -1), confidence.view(batch, -1), reduce="amax"
    )
    discount = 1.0 - torch.exp(-prior.to(probs.dtype) / beta)
    return (upper * peaks * discount).clamp_min(lower)


def pseudo_labels(
    probs: torch.Tensor,
    theta: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    maxima: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels [B, H, W], confidence [B, H, W]): argmax c where its probability > theta[b, c], else ignore_index;
    confidence is each pixel's max probability (`maxima` is `max_over_classes(probs)` when already computed)."""
    confidence, argmax = max_over_classes(probs) if maxima is None else maxima
    threshold = theta.gather(1, argmax.view(probs.shape[0], -1)).view_as(confidence)
    labels = torch.where(confidence > threshold, argmax, torch.full_like(argmax, ignore_index))
    return labels, confidence
