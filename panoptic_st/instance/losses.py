"""SPOCO-style embedding losses of the instance branch (REFERENCE section 3).

Every term takes pixel embeddings [B,D,H,W] or [D,H,W] and instance labels [B,H,W] or [H,W] (0 = unlabelled /
background, any other value an instance id), computes its value per image and averages over the batch. Images
without labelled instances contribute 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from panoptic_st.instance.spatial import pixel_coordinates

_EPS = 1e-6


class _Instances(NamedTuple):
    """Labelled instances of one image: pixel mask, per-pixel instance index, sizes and mean embeddings."""

    labelled: Tensor  # [N] bool
    index: Tensor  # [n_labelled] instance index in 0..K-1 of each labelled pixel
    counts: Tensor  # [K]
    means: Tensor  # [K, D]


def _instances(emb: Tensor, labels: Tensor) -> _Instances:
    """Group the flat embeddings [D,N] of one image by the flat labels [N]."""
    labelled = labels > 0
    _, index = torch.unique(labels[labelled], return_inverse=True)
    counts = torch.bincount(index).to(emb.dtype)
    sums = emb.new_zeros(counts.numel(), emb.shape[0]).index_add_(0, index, emb[:, labelled].T)
    return _Instances(labelled, index, counts, sums / counts[:, None].clamp(min=1))


def centre_offset_loss(embeddings: Tensor, labels: Tensor, scale: float) -> Tensor:
    """Panoptic-DeepLab's offset loss (Cheng et al., CVPR 2020) on joint embeddings (`instance/spatial.py`).

    Per image: mean over labelled pixels i of ||p_i - s * c_k||_1, with p_i the spatial part (the last two channels,
    s * (x_i, y_i) + o_i) and c_k the centre of mass (mean column, row) of pixel i's instance k. Unlike the pull, it
    has no margin, so offsets are drawn all the way to the centre.
    """
    emb_b, lab_b = _as_batch(embeddings, labels)
    positions = scale * pixel_coordinates(*emb_b.shape[-2:], like=emb_b).flatten(1)
    values = []
    for emb, lab in zip(emb_b.flatten(2), lab_b.flatten(1)):
        inst = _instances(positions, lab)
        if inst.counts.numel() == 0:
            values.append(_zero(emb))
            continue
        spatial = emb[-2:, inst.labelled]
        values.append((spatial - inst.means[inst.index].T).abs().sum(0).mean())
    return torch.stack(values).mean()


def _zero(emb: Tensor) -> Tensor:
    """A zero that keeps the autograd graph connected to `emb`."""
    return emb.sum() * 0.0


def _per_image(term: Callable[..., Tensor], embeddings: Tensor, labels: Tensor, *args, **kwargs) -> Tensor:
    """Batch mean of `term(emb [D,N], labels [N], inst, ...)` over images of [B,D,H,W] or [D,H,W] input."""
    emb_b, lab_b = _as_batch(embeddings, labels)
    values = []
    for emb, lab in zip(emb_b.flatten(2), lab_b.flatten(1)):
        values.append(term(emb, lab, _instances(emb, lab), *args, **kwargs))
    return torch.stack(values).mean()


def _as_batch(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Add a batch axis to a single image and check that the shapes agree."""
    if embeddings.dim() == 3:
        embeddings, labels = embeddings[None], labels[None]
    if embeddings.dim() != 4 or labels.shape != embeddings.shape[:1] + embeddings.shape[2:]:
        raise ValueError(
            f"expected embeddings [B,D,H,W] and labels [B,H,W], got {tuple(embeddings.shape)} "
            f"and {tuple(labels.shape)}"
        )
    return embeddings, labels


def gaussian_kernel(sq_distance: Tensor, delta_v: float) -> Tensor:
    """phi(d) = exp(-d^2 / S) with S = delta_v^2 / ln 2, so that phi(delta_v) = 0.5; takes d^2."""
    return torch.exp(-sq_distance * (math.log(2.0) / delta_v**2))


def _sq_distances(emb: Tensor, anchors: Tensor) -> Tensor:
    """Squared distances [A,N] between anchors [A,D] and flat embeddings [D,N]."""
    sq = (anchors**2).sum(1)[:, None] + (emb**2).sum(0)[None] - 2.0 * anchors @ emb
    return sq.clamp(min=0.0)


def dice_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """1 - mean over rows of 2 sum(p g) / (sum p^2 + sum g^2); inputs [A,N], optional pixel weights [N]."""
    if weight is not None:
        pred, target = pred * weight, target * weight
    inter = (pred * target).sum(1)
    denom = (pred**2).sum(1) + (target**2).sum(1)
    return 1.0 - (2.0 * inter / denom.clamp(min=_EPS)).mean()


def _pull(emb: Tensor, labels: Tensor, inst: _Instances, delta_v: float) -> Tensor:
    if inst.counts.numel() == 0:
        return _zero(emb)
    dist = torch.linalg.vector_norm(emb[:, inst.labelled].T - inst.means[inst.index], dim=1)
    hinged = F.relu(dist - delta_v) ** 2
    per_instance = inst.counts.new_zeros(inst.counts.shape).index_add_(0, inst.index, hinged) / inst.counts
    return per_instance.mean()


def pull_loss(embeddings: Tensor, labels: Tensor, delta_v: float = 0.5) -> Tensor:
    """Intra-instance pull: mean over instances of mean_i [||e_i - mu_c|| - delta_v]_+^2."""
    return _per_image(_pull, embeddings, labels, delta_v)


def _push(emb: Tensor, labels: Tensor, inst: _Instances, delta_d: float) -> Tensor:
    k = inst.counts.numel()
    if k < 2:
        return _zero(emb)
    dist = torch.linalg.vector_norm(inst.means[:, None] - inst.means[None], dim=2)
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=emb.device)
    return (F.relu(2.0 * delta_d - dist[off_diagonal]) ** 2).sum() / (k * (k - 1))


def push_loss(embeddings: Tensor, labels: Tensor, delta_d: float = 2.0) -> Tensor:
    """Inter-instance push: sum over ordered pairs of [2 delta_d - ||mu_a - mu_b||]_+^2 / (K(K-1))."""
    return _per_image(_push, embeddings, labels, delta_d)


def _regulariser(emb: Tensor, labels: Tensor, inst: _Instances) -> Tensor:
    if inst.counts.numel() == 0:
        return _zero(emb)
    return torch.linalg.vector_norm(inst.means, dim=1).mean()


def regulariser_loss(embeddings: Tensor, labels: Tensor) -> Tensor:
    """Mean norm of the instance mean embeddings (keeps the embedding space bounded)."""
    return _per_image(_regulariser, embeddings, labels)


def _instance_anchors(
    emb: Tensor, inst: _Instances, anchor_pixels: int | None, generator: torch.Generator | None
) -> Tensor:
    """Anchor [K,D] per instance: its mean embedding, or the mean over `anchor_pixels` random pixels of it."""
    if anchor_pixels is None:
        return inst.means
    pixels = torch.nonzero(inst.labelled).squeeze(1)
    anchors = []
    for k in range(inst.counts.numel()):
        members = pixels[inst.index == k]
        pick = torch.randperm(members.numel(), generator=generator, device="cpu")[:anchor_pixels]
        anchors.append(emb[:, members[pick.to(members.device)]].mean(1))
    return torch.stack(anchors)


def _instance_dice(
    emb: Tensor,
    labels: Tensor,
    inst: _Instances,
    delta_v: float,
    anchor_pixels: int | None,
    generator: torch.Generator | None,
) -> Tensor:
    k = inst.counts.numel()
    if k == 0:
        return _zero(emb)
    anchors = _instance_anchors(emb, inst, anchor_pixels, generator)
    soft = gaussian_kernel(_sq_distances(emb, anchors), delta_v)
    target = torch.zeros_like(soft)
    target[:, inst.labelled] = F.one_hot(inst.index, k).T.to(soft.dtype)
    return dice_loss(soft, target)


def instance_dice_loss(
    embeddings: Tensor,
    labels: Tensor,
    delta_v: float = 0.5,
    anchor_pixels: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Dice between the kernel soft mask around each instance's anchor and its ground-truth mask.

    The anchor is the instance's mean embedding, or, with `anchor_pixels`, the mean embedding of that many
    randomly chosen pixels of the instance (the thesis's sampling). The soft mask covers the whole image.
    """
    return _per_image(_instance_dice, embeddings, labels, delta_v, anchor_pixels, generator)


def _unlabelled_push(emb: Tensor, labels: Tensor, inst: _Instances, delta_d: float) -> Tensor:
    unlabelled = emb[:, ~inst.labelled].T
    if inst.counts.numel() == 0 or unlabelled.shape[0] == 0:
        return _zero(emb)
    dist = torch.cdist(unlabelled, inst.means)
    return (F.relu(delta_d - dist) ** 2).mean(0).mean()


def unlabelled_push_loss(embeddings: Tensor, labels: Tensor, delta_d: float = 2.0) -> Tensor:
    """Push unlabelled pixels from every instance mean: mean_c mean_{i unlabelled} [delta_d - ||e_i - mu_c||]_+^2."""
    return _per_image(_unlabelled_push, embeddings, labels, delta_d)


def sample_consistency_anchors(
    emb_f: Tensor,
    emb_g: Tensor,
    region: Tensor,
    delta_v: float = 0.5,
    max_anchors: int = 20,
    volume_threshold: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Flat pixel indices of up to `max_anchors` random anchors in `region` [N] of one image ([D,N] embeddings).

    After each anchor, the pixels within delta_v of it in f's or g's embedding are marked covered; sampling
    stops when less than `volume_threshold` of the region remains uncovered (REFERENCE: "< 5% of it").
    """
    with torch.no_grad():
        uncovered = region.clone()
        stop = volume_threshold * int(region.sum())
        picked = []
        while len(picked) < max_anchors:
            remaining = int(uncovered.sum())
            if remaining == 0 or remaining < stop:
                break
            candidates = torch.nonzero(uncovered).squeeze(1)
            pick = int(torch.randint(candidates.numel(), (1,), generator=generator))
            pixel = candidates[pick]
            picked.append(pixel)
            for emb in (emb_f, emb_g):
                near = _sq_distances(emb, emb[:, pixel][None])[0] < delta_v**2
                uncovered &= ~near
        if not picked:
            return torch.zeros(0, dtype=torch.long, device=region.device)
        return torch.stack(picked)


def _consistency(
    emb_f: Tensor,
    emb_g: Tensor,
    region: Tensor,
    valid: Tensor,
    delta_v: float,
    max_anchors: int,
    volume_threshold: float,
    generator: torch.Generator | None,
) -> Tensor:
    emb_g = emb_g.detach()
    pixels = sample_consistency_anchors(emb_f, emb_g, region, delta_v, max_anchors, volume_threshold, generator)
    if pixels.numel() == 0:
        return _zero(emb_f)
    soft_f = gaussian_kernel(_sq_distances(emb_f, emb_f[:, pixels].T), delta_v)
    soft_g = gaussian_kernel(_sq_distances(emb_g, emb_g[:, pixels].T), delta_v)
    return dice_loss(soft_f, soft_g, weight=valid.to(soft_f.dtype))


def consistency_loss(
    emb_f: Tensor,
    emb_g: Tensor,
    labels: Tensor,
    valid: Tensor | None = None,
    delta_v: float = 0.5,
    max_anchors: int = 20,
    volume_threshold: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Dice between f's and g's soft masks around the same unlabelled anchor pixels, g (detached) as target.

    `emb_g` holds the momentum network's embeddings in f's frame (e.g. rotated back with `rotate_back`) and
    `valid` [B,H,W] / [H,W] marks where they exist; anchors are drawn in the valid unlabelled region and
    the Dice sums run over valid pixels only. Each network's mask is centred on its own embedding at the anchor.
    """
    emb_f_b, lab_b = _as_batch(emb_f, labels)
    emb_g_b, _ = _as_batch(emb_g, labels)
    valid_b = torch.ones_like(lab_b, dtype=torch.bool) if valid is None else valid.reshape(lab_b.shape)
    values = []
    for f, g, lab, val in zip(emb_f_b.flatten(2), emb_g_b.flatten(2), lab_b.flatten(1), valid_b.flatten(1)):
        region = (lab == 0) & val
        values.append(_consistency(f, g, region, val, delta_v, max_anchors, volume_threshold, generator))
    return torch.stack(values).mean()


def margin_epsilon(step: int, eps0: float, decay: float) -> float:
    """Extra margin eps0 * exp(-decay * step) added to delta_v and delta_d early in self-training."""
    return eps0 * math.exp(-decay * step)


def spoco_loss(
    emb_f: Tensor,
    labels: Tensor,
    emb_g: Tensor | None = None,
    valid: Tensor | None = None,
    *,
    delta_v: float = 0.5,
    delta_d: float = 2.0,
    epsilon: float = 0.0,
    w_pull: float = 1.0,
    w_push: float = 1.0,
    w_reg: float = 0.001,
    w_instance: float = 1.0,
    w_unlabelled: float = 1.0,
    w_consistency: float = 0.1,
    anchor_pixels: int | None = None,
    max_anchors: int = 20,
    volume_threshold: float = 0.05,
    generator: torch.Generator | None = None,
    appearance_dim: int | None = None,
    w_offset: float = 0.0,
    spatial_scale: float | None = None,
) -> dict[str, Tensor]:
    """All SPOCO terms and their weighted sum under key "loss".

    `epsilon` (see `margin_epsilon`) widens the pull margin delta_v and the push margins delta_d; the Dice
    kernel keeps delta_v. The consistency term needs `emb_g` and is weighted by `w_consistency`, which is
    honoured (the public SPOCO code ignores its consistency weight, a quirk not reproduced here).
    With `appearance_dim`, the regulariser sees only the first that many channels (the appearance part of joint
    embeddings, `instance/spatial.py`: the norm of a position would draw every centre towards the image corner).
    With `w_offset` > 0 and joint embeddings of `spatial_scale`, the `centre_offset_loss` term is added.
    """
    dv, dd = delta_v + epsilon, delta_d + epsilon
    terms = {
        "pull": _per_image(_pull, emb_f, labels, dv),
        "push": _per_image(_push, emb_f, labels, dd),
        "reg": _per_image(_regulariser, emb_f.narrow(-3, 0, appearance_dim or emb_f.shape[-3]), labels),
        "instance": _per_image(_instance_dice, emb_f, labels, delta_v, anchor_pixels, generator),
        "unlabelled": _per_image(_unlabelled_push, emb_f, labels, dd),
    }
    weights = {"pull": w_pull, "push": w_push, "reg": w_reg, "instance": w_instance, "unlabelled": w_unlabelled}
    if w_offset > 0:
        if spatial_scale is None:
            raise ValueError("the centre-offset term needs joint embeddings: give their spatial_scale")
        terms["offset"] = centre_offset_loss(emb_f, labels, spatial_scale)
        weights["offset"] = w_offset
    if emb_g is not None:
        terms["consistency"] = consistency_loss(
            emb_f, emb_g, labels, valid, delta_v, max_anchors, volume_threshold, generator
        )
        weights["consistency"] = w_consistency
    terms["loss"] = sum(weights[name] * value for name, value in terms.items())
    return terms


def sample_angles(batch_size: int, generator: torch.Generator | None = None, max_angle: float = 180.0) -> Tensor:
    """Uniform random rotation angles in [0, max_angle) degrees, one per image (SPOCO: [0, 180))."""
    return torch.rand(batch_size, generator=generator) * max_angle
