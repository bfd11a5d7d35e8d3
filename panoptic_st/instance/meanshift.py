"""Flat-kernel mean-shift in torch (any device), the mean-shift+ merge and an agglomerative baseline.

`mean_shift` follows scikit-learn's `MeanShift(bin_seeding=True, cluster_all=True)`: the same seeds, shift rule,
stopping rule, duplicate-mode removal and labelling, but all seeds move at once and the distances are computed
in bounded chunks, so it runs on a GPU or uses every CPU core through matrix products.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

PRUNE_MIN_POINTS = 4096
"""From this many points on, `mean_shift` prunes neighbour searches by default (see there)."""
DEDUPLICATE_MIN_WALKERS = 256
"""Moving seeds that coincide are merged (their futures are identical) only above this many: for fewer, finding
them costs more than shifting them; the result is the same either way."""


def _unique_rows(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows of an integer matrix [N,D] and their counts.

    When the rows fit an exact float64 key (mixed-radix number < 2^53) they are found by one float sort,
    which is faster on the CPU than `torch.unique(dim=0)` or an int64 sort.
    """
    low = rows.min(0).values
    span = rows.max(0).values - low + 1
    if float(torch.prod(span.double())) >= 2.0**53:
        return torch.unique(rows, dim=0, return_counts=True)
    strides = torch.cumprod(torch.cat([span.new_ones(1), span[:-1]]), 0)
    keys, order = torch.sort(((rows - low) * strides).sum(1).double())
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    return rows[order[torch.cumsum(counts, 0) - counts]], counts


def bin_seeds(points: Tensor, bin_size: float, min_bin_freq: int = 1) -> Tensor:
    """Centres of the grid bins (spacing `bin_size`, points rounded) holding >= `min_bin_freq` points.

    Like scikit-learn, the points themselves are returned when binning does not reduce their number.
    """
    bins, counts = _unique_rows(torch.round(points / bin_size).long())
    bins = bins[counts >= min_bin_freq]
    if bins.shape[0] == points.shape[0]:
        return points
    return bins.to(points.dtype) * bin_size


class _Partition(NamedTuple):
    """Points sorted into compact groups (for pruning by the triangle inequality)."""

    points_aug: Tensor  # [N, D+1] points grouped contiguously, with a column of ones appended
    sq_norms: Tensor  # [N] squared norms of those points
    centres: Tensor  # [G, D] group centres
    radii: Tensor  # [G] largest distance of a member from its centre
    bounds: list[int]  # group g holds rows bounds[g]:bounds[g + 1]


def _farthest_points(points: Tensor, k: int) -> Tensor:
    """Up to k points chosen by farthest-point sampling, starting from the point farthest from the centroid."""
    dist = torch.linalg.vector_norm(points - points.mean(0), dim=1)
    chosen = []
    for _ in range(min(k, points.shape[0])):
        index = int(torch.argmax(dist))
        chosen.append(index)
        dist = torch.minimum(dist, torch.linalg.vector_norm(points - points[index], dim=1))
    return points[chosen]


def _partition(points: Tensor, seeds: Tensor, n_groups: int, chunk: int) -> _Partition:
    """Group the points around `n_groups` centres farthest-point-sampled among the seeds (which span the data)."""
    centres = _farthest_points(seeds, n_groups)
    group = nearest_center(points, centres, chunk)
    order = torch.argsort(group, stable=True)
    grouped, group = points[order], group[order]
    dist = torch.linalg.vector_norm(grouped - centres[group], dim=1)
    radii = dist.new_zeros(centres.shape[0]).scatter_reduce_(0, group, dist, reduce="amax")
    counts = torch.bincount(group, minlength=centres.shape[0])
    bounds = [0, *torch.cumsum(counts, 0).tolist()]
    points_aug = torch.cat([grouped, grouped.new_ones(grouped.shape[0], 1)], dim=1)
    return _Partition(points_aug, (grouped**2).sum(1), centres, radii, bounds)


def _dense_sums(means: Tensor, points_aug: Tensor, sq_norms: Tensor, radius: float, chunk: int) -> Tensor:
    """For each mean [A,D]: sum and count of the points within `radius`, as [A,D+1], ~chunk distances at once."""
    dim = means.shape[1]
    threshold = radius**2 - (means**2).sum(1, keepdim=True)
    step = max(1, chunk // means.shape[0])
    sums = means.new_zeros(means.shape[0], dim + 1)
    for start in range(0, points_aug.shape[0], step):
        block = points_aug[start : start + step]
        # ||p||^2 - 2 m.p <= r^2 - ||m||^2  <=>  ||p - m|| <= r
        partial = torch.addmm(sq_norms[None, start : start + step], means, block[:, :dim].T, alpha=-2.0)
        sums += torch.le(partial, threshold, out=partial) @ block
    return sums


def _neighbour_sums(means: Tensor, part: _Partition, radius: float, chunk: int) -> Tensor:
    """`_dense_sums` over all points, skipping the groups that lie farther than `radius` from a mean."""
    slack = 1e-4 * radius
    near = torch.cdist(means, part.centres) <= radius + part.radii + slack
    pairs = torch.nonzero(near.T)
    per_group = near.sum(0).tolist()
    sums = means.new_zeros(means.shape[0], means.shape[1] + 1)
    for g, rows in enumerate(pairs[:, 1].split(per_group)):
        if rows.numel() == 0:
            continue
        start, stop = part.bounds[g], part.bounds[g + 1]
        block = _dense_sums(means[rows], part.points_aug[start:stop], part.sq_norms[start:stop], radius, chunk)
        sums.index_add_(0, rows, block)
    return sums


def _shift_seeds(
    points: Tensor, seeds: Tensor, bandwidth: float, max_iter: int, tol: float, chunk: int, n_groups: int
) -> tuple[Tensor, Tensor]:
    """Shift all seeds to the mean of their flat-kernel neighbourhood until they move <= tol * bandwidth.

    Returns the distinct final means [M',D] and their intensities [M'] (number of points in the last
    neighbourhood, 0 for a seed with no point within the bandwidth). Converged seeds leave the batch, and
    seeds that land on the same point while still moving are shifted once (when there are many of them).
    """
    if n_groups > 1:
        part = _partition(points, seeds, n_groups, chunk)
        neighbour_sums = lambda means: _neighbour_sums(means, part, bandwidth, chunk)
    else:
        points_aug = torch.cat([points, points.new_ones(points.shape[0], 1)], dim=1)
        sq_norms = (points**2).sum(1)
        neighbour_sums = lambda means: _dense_sums(means, points_aug, sq_norms, bandwidth, chunk)
    walkers = seeds
    finished, intensities = [], []
    for iteration in range(max_iter):
        sums = neighbour_sums(walkers)
        counts = sums[:, -1]
        shifted = torch.where(counts[:, None] > 0, sums[:, :-1] / counts.clamp(min=1)[:, None], walkers)
        moving = torch.linalg.vector_norm(shifted - walkers, dim=1) > tol * bandwidth
        if iteration == max_iter - 1:
            moving[:] = False
        finished.append(shifted[~moving])
        intensities.append(counts[~moving])
        walkers = shifted[moving]
        if walkers.shape[0] > DEDUPLICATE_MIN_WALKERS:
            walkers = torch.unique(walkers, dim=0)
        if walkers.shape[0] == 0:
            break
    return torch.cat(finished), torch.cat(intensities)


def _by_intensity(centers: Tensor, intensity: Tensor) -> Tensor:
    """Order of the centres by decreasing intensity, ties by decreasing coordinates (scikit-learn's order)."""
    order = torch.arange(centers.shape[0], device=centers.device)
    for column in reversed(range(centers.shape[1])):
        order = order[torch.sort(centers[order, column], descending=True, stable=True).indices]
    return order[torch.sort(intensity[order], descending=True, stable=True).indices]


def _remove_duplicate_modes(centers: Tensor, intensity: Tensor, bandwidth: float) -> Tensor:
    """Keep modes by decreasing intensity, dropping every mode within `bandwidth` of one already kept."""
    ordered = centers[_by_intensity(centers, intensity)]
    alive = torch.ones(ordered.shape[0], dtype=torch.bool, device=centers.device)
    kept = []
    while bool(alive.any()):
        first = int(torch.argmax(alive.to(torch.uint8)))
        kept.append(first)
        alive &= torch.linalg.vector_norm(ordered - ordered[first], dim=1) > bandwidth
    return ordered[kept]


def nearest_center(points: Tensor, centers: Tensor, chunk_size: int = 1 << 22) -> Tensor:
    """Index of the nearest centre [K,D] for each point [N,D], computed in chunks of ~chunk_size distances."""
    step = max(1, chunk_size // max(1, centers.shape[0]))
    center_sq = (centers**2).sum(1)
    labels = [
        torch.addmm(center_sq[None], block, centers.T, alpha=-2.0).argmin(1)
        for block in points.split(step)
    ]
    return torch.cat(labels)


def mean_shift(
    embeddings: Tensor,
    bandwidth: float,
    *,
    bin_seeding: bool = True,
    min_bin_freq: int = 1,
    max_iter: int = 300,
    tol: float = 1e-3,
    chunk_size: int = 1 << 20,
    n_groups: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Flat-kernel mean-shift of `embeddings` [N,D]; returns labels [N] (long) and modes [K,D].

    Seeds are the occupied bins of a grid with spacing `bandwidth` (>= `min_bin_freq` points) or, without
    `bin_seeding`, all points; when no bin centre has a point within `bandwidth` (scikit-learn raises then), the
    points themselves seed. All seeds shift together to the mean of the points within `bandwidth` until
    they move by <= tol * bandwidth (at most `max_iter` shifts); modes closer than `bandwidth` to a mode of
    higher intensity are dropped, and every point takes the label of its nearest mode. `chunk_size` bounds
    the number of seed-point distances held in memory at once. The points are split into `n_groups` compact
groups and a seed skips the groups that cannot hold a neighbour (exact pruning by the triangle inequality);
by default 32 groups from `PRUNE_MIN_POINTS` points on and none below, where the per-group bookkeeping costs more
than the pruning saves (`experiments/benchmarks/bench_meanshift.py` measures both). Computes in float32 unless
given float64.
    """
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"expected a non-empty [N, D] tensor, got shape {tuple(embeddings.shape)}")
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    points = embeddings if embeddings.dtype == torch.float64 else embeddings.float()
    seeds = bin_seeds(points, bandwidth, min_bin_freq) if bin_seeding else points
    if n_groups is None:
        n_groups = 32 if points.shape[0] >= PRUNE_MIN_POINTS else 1
    if seeds.shape[0] == 0:
        raise ValueError(f"no seed: no bin of size {bandwidth} holds min_bin_freq={min_bin_freq} points")
    # centring keeps the float32 distance expansion ||p||^2 - 2 m.p + ||m||^2 accurate
    origin = points.mean(0)
    centered = points - origin
    means, intensity = _shift_seeds(centered, seeds - origin, bandwidth, max_iter, tol, chunk_size, n_groups)
    found = intensity > 0
    if not bool(found.any()):
        if bin_seeding:  # every bin centre is off its points (high dimension, few points): seed at the points
            return mean_shift(embeddings, bandwidth, bin_seeding=False, max_iter=max_iter, tol=tol,
                              chunk_size=chunk_size, n_groups=n_groups)
        raise ValueError(f"no point lies within bandwidth={bandwidth} of any seed")
    modes = _remove_duplicate_modes(means[found], intensity[found], bandwidth)
    return nearest_center(centered, modes, chunk_size), modes + origin


def merge_clusters(embeddings: Tensor, labels: Tensor, delta_d: float = 2.0) -> Tensor:
    """Mean-shift+ merge of clusters (labels [N] >= 0) of `embeddings` [N,D]; returns new labels 0..K'-1.

    Clusters are visited by decreasing size; one whose mean embedding lies within `delta_d` of an existing
    anchor (the nearest one) joins it, otherwise its mean becomes a new anchor. Anchors keep their first mean.
    """
    ids, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    sums = embeddings.new_zeros(ids.numel(), embeddings.shape[1]).index_add_(0, inverse, embeddings)
    means = sums / counts[:, None].to(embeddings.dtype)
    target = torch.empty_like(ids)
    anchors: list[Tensor] = []
    for cluster in torch.sort(counts, descending=True, stable=True).indices.tolist():
        if anchors:
            dist = torch.linalg.vector_norm(torch.stack(anchors) - means[cluster], dim=1)
            nearest = int(torch.argmin(dist))
            if float(dist[nearest]) < delta_d:
                target[cluster] = nearest
                continue
        target[cluster] = len(anchors)
        anchors.append(means[cluster])
    return target[inverse]


def agglomerative_clusters(
    embeddings: Tensor,
    distance_threshold: float = 2.0,
    linkage: str = "average",
    max_points: int = 5000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Labels [N] from scikit-learn `AgglomerativeClustering(distance_threshold=...)` (CPU, for comparison).

    Its memory grows as N^2, so at most `max_points` random points are clustered and every other point takes
    the cluster whose mean embedding is nearest.
    """
    from sklearn.cluster import AgglomerativeClustering

    points = embeddings.detach().float()
    n = points.shape[0]
    if n == 1:
        return torch.zeros(1, dtype=torch.long, device=embeddings.device)
    subset = torch.randperm(n, generator=generator)[:max_points].to(points.device) if n > max_points else None
    sample = points if subset is None else points[subset]
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance_threshold, linkage=linkage)
    sample_labels = torch.as_tensor(model.fit_predict(sample.cpu().numpy()), device=points.device).long()
    if subset is None:
        return sample_labels
    k = int(sample_labels.max()) + 1
    sums = points.new_zeros(k, points.shape[1]).index_add_(0, sample_labels, sample)
    means = sums / torch.bincount(sample_labels, minlength=k)[:, None].to(points.dtype)
    return nearest_center(points, means)
